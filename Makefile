# The two commands of the README. Each one creates or refreshes .venv with pip, then runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

setup: $(STAMP)
	@scripts/install-system-deps.sh

# torch is pinned here so that pip takes the local CPU build instead of a multi-GB CUDA download. The system
# packages come first: the sparse extra (sparse EASE above the dense limit) compiles scikit-sparse against
# libsuitesparse-dev's headers; without them the rest installs and EASE's error names the missing extra.
$(STAMP): pyproject.toml Makefile
	@scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,multilingual,spark]'
	$(BIN)/pip install --quiet -e '.[sparse]' || echo "foryou[sparse] not installed (no libsuitesparse-dev?): EASE above the dense limit will fail"
	touch $(STAMP)

# The demo's write key is demo-key unless FORYOU_API_KEYS is set; reads need no key.
DEMO_KEY ?= $(or $(FORYOU_API_KEYS),demo-key)

demo: setup
	$(BIN)/foryou pipeline configs/demo.yaml
	@echo ""
	@echo "Serving runs/demo/bundle on http://127.0.0.1:8080 (playground at /, API docs at /docs; Ctrl-C stops). Try:"
	@echo "  curl 'http://127.0.0.1:8080/v1/users/12360/recommendations?k=5&explain=true'"
	@echo "  curl -X POST http://127.0.0.1:8080/v1/recommendations -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"interactions\": [{\"item_id\": \"85123A\", \"event_type\": \"purchase\"}], \"k\": 5, \"explain\": true}'"
	@echo "Writes (POST /v1/events, PUT /v1/items/ID) need the header X-API-Key: $(DEMO_KEY)"
	FORYOU_API_KEYS='$(DEMO_KEY)' $(BIN)/foryou serve runs/demo/bundle --port 8080

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs mlruns .cache

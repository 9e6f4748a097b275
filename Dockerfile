# The foryou service, CPU only. Build: docker build -t foryou .
# Run:   docker run -p 8080:8080 -v "$PWD/runs/demo/bundle:/srv/foryou/bundle:ro" -e FORYOU_API_KEYS=change-me foryou
# The store (SQLite, WAL) is /srv/foryou/service.db beside the bundle; mount /srv/foryou as a volume to keep it,
# or point serving.store_url at PostgreSQL (docker-compose.yml). tests/test_dockerfile.py runs this image's
# command (CMD) outside Docker on a copy of a bundle, so the two stay the same.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/foryou
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# torch's CPU wheel first (the default index would pull a multi-GB CUDA build), then foryou with PostgreSQL support
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install '.[postgres]'

RUN useradd --system --create-home --home-dir /srv/foryou foryou
USER foryou
WORKDIR /srv/foryou
VOLUME ["/srv/foryou/bundle"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["foryou", "serve", "/srv/foryou/bundle", "--host", "0.0.0.0", "--port", "8080"]

"""Schema fuzzing: schemathesis sends generated requests, valid and invalid, to every operation of the app's
own OpenAPI schema and checks each answer: no 5xx, a documented status code and content type, and a body that
matches the documented schema.

The app runs in-process (ASGI, lifespan started: the bundle is loaded) over a copy of the shop bundle, with
the write key on every request so that writes and admin are exercised, not only refused with 401.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi import checks as _openapi_checks  # noqa: F401 - registers the OpenAPI checks

from foryou.config import ServingConfig
from foryou.serving.app import create_app
from foryou.serving.store import sqlite_url

KEY = "fuzz-key"
MIN_REQUESTS = 1000
EXAMPLES_PER_MODE = 60  # per operation; operations with few possible inputs stop early
MODES = [schemathesis.GenerationMode("positive"), schemathesis.GenerationMode("negative")]
CHECKS = REGISTERED_CHECKS.get_all()  # `--checks all`: conformance, negative data rejected, positive accepted, ...


@pytest.fixture(scope="module")
def api_schema(shop_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    """The app's /openapi.json, loaded through the app itself (which starts its lifespan)."""
    root = tmp_path_factory.mktemp("fuzz")
    bundle = Path(shutil.copytree(shop_bundle, root / "bundle"))
    app = create_app(bundle, ServingConfig(rate_limit_per_minute=10**9), sqlite_url(root / "service.db"),
                     api_keys=[KEY], load_in_background=False)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def fuzz(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode,
         statuses: Counter[int]) -> None:
    """Up to EXAMPLES_PER_MODE generated requests; raises (after shrinking) on the first failed check."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def send(case: schemathesis.Case) -> None:
        response = case.call(headers={"X-API-Key": KEY})
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers={"X-API-Key": KEY})

    send()


def test_generated_requests_get_documented_answers_and_no_5xx(api_schema: schemathesis.BaseSchema) -> None:
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation the schema hides from the fuzzer
        operation = result.ok()
        for mode in MODES:
            try:
                fuzz(operation, mode, statuses)
            except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
                assert mode == "negative", operation.label
            except (Exception, FailureGroup) as error:  # noqa: BLE001 - report every operation's failure
                failures.append(f"{operation.label} ({mode}): {error}")
    print(f"schema fuzz: {statuses.total()} requests, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    assert statuses.total() >= MIN_REQUESTS, f"only {statuses.total()} requests: {dict(statuses)}"
    assert not [status for status in statuses if status >= 500]

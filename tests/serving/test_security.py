"""Abuse of the HTTP API: keys on reads when configured, the rate limit, the body cap, and malformed input
(broken JSON, wrong types, NaN / Infinity, overlong strings, non-UTF-8, impossible timestamps), which must each
be a 4xx naming the field, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.serving.api_client import KEY, WRITE, detail, ok, serving

READS = [("POST", "/v1/recommendations", {"user_id": "u0"}), ("GET", "/v1/users/u0/recommendations", None),
         ("GET", "/v1/users/u0/history", None), ("GET", "/v1/items/jew0/similar", None),
         ("POST", "/v1/users/encode", {"user_id": "u0"}), ("POST", "/v1/retrieve", {"vector": [0.0] * 17})]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, shop_bundle: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app per store backend: every bad input must be refused the same way on both."""
    store = None if request.param == "sqlite" else request.getfixturevalue("postgres_server").new_database()
    with serving(shop_bundle, tmp_path_factory.mktemp("security") / "store.db", store_url=store) as shared:
        yield shared


@pytest.fixture(scope="module")
def locked(shop_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app whose reads need a key, shared by the cases below."""
    with serving(shop_bundle, tmp_path_factory.mktemp("locked") / "store.db", require_key_for_reads=True) as app:
        yield app


@pytest.mark.parametrize(("method", "path", "body"), READS, ids=[f"{m} {p}" for m, p, _ in READS])
def test_reads_need_a_key_when_configured(locked: TestClient, method: str, path: str, body: object) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        response = locked.request(method, path, json=body, headers=headers)
        assert response.status_code == 401 and "X-API-Key" in detail(response)
    assert locked.request(method, path, json=body, headers=WRITE).status_code == 200
    for probe in ("/healthz", "/readyz", "/metrics"):  # orchestrators and scrapers carry no key
        assert locked.get(probe).status_code == 200


def test_reads_need_no_key_by_default(client: TestClient) -> None:
    for method, path, body in READS:
        assert client.request(method, path, json=body).status_code == 200, path


def test_the_rate_limit_answers_429_with_retry_after(shop_bundle: Path, tmp_path: Path) -> None:
    with serving(shop_bundle, tmp_path / "store.db", rate_limit_per_minute=3, api_keys=(KEY, "other-key")) as client:
        for _ in range(3):
            ok(client.get("/v1/users/u0/history"))
        limited = client.get("/v1/users/u0/history")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "rate limit" in detail(limited)
        # A made-up key is no way round it: only configured keys get buckets of their own.
        assert client.get("/v1/users/u0/history", headers={"X-API-Key": "made-up"}).status_code == 429
        assert client.get("/healthz").status_code == 200  # probes are not limited
        for _ in range(3):
            ok(client.get("/v1/users/u0/history", headers={"X-API-Key": "other-key"}))
        assert client.get("/v1/users/u0/history", headers={"X-API-Key": "other-key"}).status_code == 429
        assert 'foryou_requests_total{method="GET",route="rate_limited",status="429"}' in client.get("/metrics").text


def test_a_body_over_the_cap_is_413(shop_bundle: Path, tmp_path: Path) -> None:
    with serving(shop_bundle, tmp_path / "store.db", max_body_bytes=2048) as client:
        big = {"user_id": "u0", "interactions": [{"item_id": "jew1"}] * 200}
        response = client.post("/v1/recommendations", json=big)
        assert response.status_code == 413
        assert "max_body_bytes" in detail(response)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"user_id": "u0", "interactions": ['
            for _ in range(200):
                yield b'{"item_id": "jew1"},'
            yield b'{"item_id": "jew1"}]}'

        streamed = client.post("/v1/recommendations", content=chunks(), headers=JSON)
        assert streamed.status_code == 413 and "max_body_bytes" in detail(streamed)
        assert client.post("/v1/recommendations", json={"user_id": "u0", "k": 3}).status_code == 200


TOO_LONG = "x" * 257
BAD_INPUT = [
    # (method, path, raw body, the field the message must name)
    ("POST", "/v1/recommendations", b'{"user_id": "u0", "k": ', None),
    ("POST", "/v1/recommendations", b'{"k": NaN}', "body.k"),
    ("POST", "/v1/recommendations", b'{"k": Infinity}', "body.k"),
    ("POST", "/v1/recommendations", b'{"k": 1e400}', "body.k"),
    ("POST", "/v1/recommendations", b'{"k": "ten"}', "body.k"),
    ("POST", "/v1/recommendations", b'{"k": 2.5}', "body.k"),
    ("POST", "/v1/recommendations", b'{"filters": {"min_price": NaN}}', "body.filters.min_price"),
    ("POST", "/v1/recommendations", b'{"filters": {"max_price": -Infinity}}', "body.filters.max_price"),
    ("POST", "/v1/recommendations", b'{"filters": {"categories": "Kitchen"}}', "body.filters.categories"),
    ("POST", "/v1/recommendations", b'{"user_id": 17}', "body.user_id"),
    ("POST", "/v1/recommendations", b'{"interactions": "jew1"}', "body.interactions"),
    ("POST", "/v1/recommendations", b'{"strategy": ["two_tower"]}', "body.strategy"),
    ("POST", "/v1/recommendations", b'{"explain": "perhaps"}', "body.explain"),
    ("POST", "/v1/recommendations", b'{"user": "u0"}', "body.user"),
    ("POST", "/v1/recommendations", f'{{"user_id": "{TOO_LONG}"}}'.encode(), "body.user_id"),
    ("POST", "/v1/recommendations", f'{{"interactions": [{{"item_id": "{TOO_LONG}"}}]}}'.encode(),
     "body.interactions.0.item_id"),
    ("POST", "/v1/recommendations", b'{"interactions": [{"item_id": "jew1", "timestamp": "yesterday"}]}',
     "body.interactions.0.timestamp"),
    ("POST", "/v1/recommendations", (b'{"interactions": [{"item_id": "jew1", '
                                    b'"timestamp": "9999-12-31T23:59:59-14:00"}]}'), "body.interactions.0.timestamp"),
    ("POST", "/v1/recommendations", b'{"interactions": [' + b", ".join([b'{"item_id": "jew1"}'] * 1001) + b"]}",
     "interactions"),
    ("POST", "/v1/recommendations", b'{"user_id": "\\ud800"}', "body.user_id"),
    ("POST", "/v1/recommendations", b'{"user_id": "\xff\xfe"}', None),
    ("POST", "/v1/recommendations", b"[]", "body"),
    ("POST", "/v1/recommendations", b"\x00\x01", None),
    ("POST", "/v1/retrieve", b'{"vector": [0.5, NaN]}', "body.vector.1"),
    ("POST", "/v1/retrieve", b'{"vector": [1e300' + b", 0" * 16 + b"]}", "vector"),
    ("POST", "/v1/retrieve", b'{"vector": []}', "body.vector"),
    ("POST", "/v1/users/encode", b'{"interactions": [{"item_id": "jew1", "event_type": ""}]}',
     "body.interactions.0.event_type"),
    ("POST", "/v1/events", b'{"events": []}', "body.events"),
    ("POST", "/v1/events", b'{"events": [{"user_id": "u0", "item_id": "jew1", "timestamp": 1700000000}]}',
     "body.events.0.timestamp"),
    ("POST", "/v1/events", f'{{"events": [{{"user_id": "u0", "item_id": "jew1", "event_id": "{TOO_LONG}"}}]}}'.encode(),
     "body.events.0.event_id"),
    ("POST", "/v1/events", (b'{"events": [{"user_id": "u0", "item_id": "jew1", '
                           b'"timestamp": "0001-01-01T00:00:00+14:00"}]}'), "body.events.0.timestamp"),
    ("PUT", "/v1/items/jew1", b'{"fields": {"price": NaN}}', "body.fields.price"),
    ("PUT", "/v1/items/jew1", b'{"fields": {"price": "cheap"}}', "fields.price"),
    ("PUT", "/v1/items/jew1", b'{"fields": {"title": 5}}', "fields.title"),
    ("PUT", "/v1/items/jew1", b'{"fields": {"title": "' + b"x" * 10_001 + b'"}}', "body.fields.title"),
    ("PUT", "/v1/items/jew1", b'{"fields": {}, "available": "yes please"}', "body.available"),
    ("PUT", f"/v1/items/{TOO_LONG}", b'{"fields": {}}', "path.item_id"),
    ("POST", "/v1/admin/reload", b'{"bundle": 5}', "body.bundle"),
    ("GET", f"/v1/users/{TOO_LONG}/history", None, "path.user_id"),
    ("GET", "/v1/items/jew1/similar?k=many", None, "query.k"),
    ("GET", "/v1/users/u0/recommendations?k=0", None, "query.k"),
    ("GET", "/v1/users/u0/recommendations?explain=perhaps", None, "query.explain"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD_INPUT,
                         ids=[f"{m} {p[:30]} {(b or b'')[:40]!r}" for m, p, b, _ in BAD_INPUT])
def test_bad_input_is_a_4xx_naming_the_field(client: TestClient, method: str, path: str, body: bytes | None,
                                             field: str | None) -> None:
    response = client.request(method, path, content=body, headers={**JSON, **WRITE})
    assert 400 <= response.status_code < 500, response.text
    if field is not None:
        assert field in detail(response)
    assert ok(client.get("/readyz"))["status"] == "ready"

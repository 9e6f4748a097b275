"""The read side of the HTTP API over the generated shop (tests/serving/shop.py): recommendations for known
users, raw histories and both, every strategy, validation, fallbacks, reasons, filters; history, similar items,
encode + retrieve; probes, metrics and docs. Writes are in test_api_writes.py, abuse in test_security.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.serving.api_client import (
    ALL_ITEMS,
    CATEGORY,
    PERSONAL,
    PRICE,
    STRATEGIES,
    TITLE,
    detail,
    history_items,
    ids,
    model_version,
    ok,
    own_category_share,
    recommend,
    serving,
    similar,
    source_events,
)

from foryou.config import ServingConfig
from foryou.serving.app import create_app
from foryou.serving.state import ServingState
from foryou.serving.store import sqlite_url

JEWELLERY_VIEWS = [{"item_id": f"jew{i}", "timestamp": f"2024-01-0{i}T12:00:00Z"} for i in (1, 2, 3, 4)]
KITCHEN_VIEWS = [{"item_id": f"kit{i}", "timestamp": f"2024-02-0{i + 1}T12:00:00Z"} for i in (0, 1, 2, 3)]


@pytest.fixture(scope="module")
def client(shop_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the whole module: these tests only read."""
    with serving(shop_bundle, tmp_path_factory.mktemp("api") / "store.db") as reader:
        yield reader


@pytest.fixture(scope="module")
def u0_seen(client: TestClient) -> set[str]:
    return history_items(client, "u0")


def assert_ranked(answer: dict[str, Any], k: int) -> None:
    """k distinct items, ranks 1..k, scores best first."""
    items = answer["items"]
    assert len(items) == k
    assert len(set(ids(answer))) == k
    assert [item["rank"] for item in items] == list(range(1, k + 1))
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)


def test_the_bundle_serves_every_strategy(shop_bundle: Path) -> None:
    # The parametrized tests below cover this list; a bundle without one of them would skip it silently.
    assert json.loads((shop_bundle / "bundle.json").read_text())["strategies"] == STRATEGIES


# ---- recommendations ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_known_user_gets_k_ranked_unseen_items(client: TestClient, shop_bundle: Path, u0_seen: set[str],
                                               strategy: str) -> None:
    answer = recommend(client, user_id="u0", k=10, strategy=strategy)
    assert_ranked(answer, 10)
    assert not set(ids(answer)) & u0_seen
    assert (answer["user_id"], answer["strategy"], answer["fallback"]) == ("u0", strategy, None)
    assert answer["model_version"] == model_version(shop_bundle)
    assert answer["warnings"] == []


def test_default_strategy_is_the_bundles(client: TestClient, shop_bundle: Path) -> None:
    default = json.loads((shop_bundle / "bundle.json").read_text())["default_strategy"]
    assert recommend(client, user_id="u0", k=5) == recommend(client, user_id="u0", k=5, strategy=default)


def test_get_route_answers_like_the_post_route(client: TestClient) -> None:
    got = ok(client.get("/v1/users/u3/recommendations", params={"k": 7, "strategy": "content"}))
    assert got == recommend(client, user_id="u3", k=7, strategy="content")


USERS = [f"u{user}" for user in range(30)]  # 10 per category


def mean_own_category_share(client: TestClient, strategy: str) -> float:
    return sum(own_category_share(recommend(client, user_id=u, k=5, strategy=strategy), u) for u in USERS) / len(USERS)


@pytest.fixture(scope="module")
def popular_share(client: TestClient) -> float:
    return mean_own_category_share(client, "popular")


@pytest.mark.parametrize(("strategy", "least"), [("two_tower", 0.45), ("content", 0.9), ("collab", 0.8)])
def test_personal_strategies_favour_the_users_category(client: TestClient, popular_share: float, strategy: str,
                                                       least: float) -> None:
    # Every user keeps to one of 3 categories (chance: 1/3); popularity knows nothing of the user.
    share = mean_own_category_share(client, strategy)
    assert share >= least
    assert share > popular_share + 0.15


@pytest.mark.parametrize("strategy", ["two_tower", "content"])
def test_a_raw_history_gets_items_like_it(client: TestClient, strategy: str) -> None:
    answer = recommend(client, interactions=JEWELLERY_VIEWS, k=5, strategy=strategy)
    assert_ranked(answer, 5)
    assert (answer["user_id"], answer["fallback"]) == (None, None)
    assert not set(ids(answer)) & {view["item_id"] for view in JEWELLERY_VIEWS}
    assert sum(CATEGORY[item] == "Jewellery" for item in ids(answer)) >= 3


@pytest.mark.parametrize("strategy", PERSONAL)
def test_stored_history_and_given_events_both_count(client: TestClient, u0_seen: set[str], strategy: str) -> None:
    # item-item models sum over the whole history without recency: 3 kitchen views under 8 jewellery events
    # reach past the 12 unseen jewellery items, so look further down their lists
    k = 20 if strategy in ("ease", "item_knn") else 5
    stored_only = recommend(client, user_id="u0", k=k, strategy=strategy)
    given_only = recommend(client, interactions=KITCHEN_VIEWS, k=k, strategy=strategy)
    both = recommend(client, user_id="u0", interactions=KITCHEN_VIEWS, k=k, strategy=strategy)
    assert_ranked(both, k)
    assert not set(ids(both)) & (u0_seen | {view["item_id"] for view in KITCHEN_VIEWS})
    assert ids(both) != ids(stored_only)  # the given (kitchen) events count...
    assert ids(both) != ids(given_only)  # ...and so does the stored (jewellery) history
    assert any(CATEGORY[item] == "Kitchen" for item in ids(both))


def test_unknown_strategy_is_refused_with_the_available_ones(client: TestClient) -> None:
    response = client.post("/v1/recommendations", json={"user_id": "u0", "strategy": "bogus"})
    assert response.status_code == 422
    message = detail(response)
    assert message.startswith("strategy:") and "'bogus'" in message
    assert all(name in message for name in STRATEGIES)


def test_k_above_the_servers_maximum_is_refused_naming_k(client: TestClient) -> None:
    response = client.post("/v1/recommendations", json={"user_id": "u0", "k": 201})
    assert response.status_code == 422
    assert detail(response).startswith("k: 201") and "max_k" in detail(response)
    assert client.get("/v1/users/u0/recommendations", params={"k": 201}).status_code == 422
    assert client.get("/v1/items/jew0/similar", params={"k": 201}).status_code == 422


@pytest.mark.parametrize("k", [0, -3])
def test_k_must_be_positive(client: TestClient, k: int) -> None:
    response = client.post("/v1/recommendations", json={"user_id": "u0", "k": k})
    assert response.status_code == 422
    assert detail(response).startswith("body.k:")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_unknown_user_without_events_gets_popular_items(client: TestClient, strategy: str) -> None:
    answer = recommend(client, user_id="stranger", k=5, strategy=strategy)
    assert_ranked(answer, 5)
    assert answer["fallback"] == (None if strategy == "popular" else "popular")
    assert answer["strategy"] == strategy
    assert ids(answer) == ids(recommend(client, k=5, strategy="popular"))


def test_events_on_unknown_items_are_ignored_and_named(client: TestClient) -> None:
    known = JEWELLERY_VIEWS[:2]
    unknown = [{"item_id": "no-such-1", "timestamp": "2024-01-05T12:00:00Z"},
               {"item_id": "no-such-2", "timestamp": "2024-01-06T12:00:00Z"}]
    mixed = recommend(client, interactions=known + unknown, k=5)
    assert ids(mixed) == ids(recommend(client, interactions=known, k=5))
    assert mixed["fallback"] is None
    assert len(mixed["warnings"]) == 1
    assert "'no-such-1'" in mixed["warnings"][0] and "'no-such-2'" in mixed["warnings"][0]
    only_unknown = recommend(client, interactions=unknown, k=5)
    assert only_unknown["fallback"] == "popular" and "'no-such-1'" in only_unknown["warnings"][0]


@pytest.mark.parametrize("strategy", PERSONAL)
def test_reasons_name_items_from_the_users_own_history(client: TestClient, u0_seen: set[str],
                                                       strategy: str) -> None:
    answer = recommend(client, user_id="u0", k=8, strategy=strategy, explain=True)
    for item in answer["items"]:
        named = [reason for reason in item["reasons"] if reason["kind"] in ("history", "content")]
        assert len(named) == 1, item
        assert named[0]["item_id"] in u0_seen
        assert TITLE[named[0]["item_id"]] in named[0]["text"]
        if any(reason["kind"] == "category" for reason in item["reasons"]):
            assert item["category"] == "Jewellery"  # u0's category
    assert recommend(client, user_id="u0", k=8, strategy=strategy)["items"][0]["reasons"] is None


@pytest.mark.parametrize("asked", [{"user_id": "stranger"}, {"user_id": "u0", "strategy": "popular"}])
def test_popular_answers_give_popular_reasons(client: TestClient, asked: dict[str, str]) -> None:
    answer = recommend(client, k=5, explain=True, **asked)
    for item in answer["items"]:
        assert item["reasons"] == [{"kind": "popular", "text": f"Popular in {item['category']}", "item_id": None,
                                    "feature": None}]


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({"categories": ["Kitchen"]}, lambda item: CATEGORY[item] == "Kitchen"),
    ({"categories": ["Kitchen", "Home Decor"]}, lambda item: CATEGORY[item] != "Jewellery"),
    ({"exclude_categories": ["Jewellery", "Kitchen"]}, lambda item: CATEGORY[item] == "Home Decor"),
    ({"min_price": 45.0}, lambda item: PRICE[item] >= 45.0),
    ({"max_price": 12.0}, lambda item: PRICE[item] <= 12.0),  # exactly 5 pass: kit0..kit4
    ({"categories": ["Home Decor"], "min_price": 30.0, "max_price": 40.0},
     lambda item: CATEGORY[item] == "Home Decor" and 30.0 <= PRICE[item] <= 40.0),
]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("filters", "passes"), FILTERS, ids=[json.dumps(f) for f, _ in FILTERS])
def test_filters_hold_for_every_strategy_and_still_fill_k(client: TestClient, u0_seen: set[str], strategy: str,
                                                          filters: dict[str, Any], passes: Any) -> None:
    answer = recommend(client, user_id="u0", k=5, strategy=strategy, filters=filters)
    assert_ranked(answer, 5)
    assert all(passes(item) for item in ids(answer)), ids(answer)
    assert not set(ids(answer)) & u0_seen
    assert answer["fallback"] is None


def test_a_filter_nothing_passes_gives_no_items(client: TestClient) -> None:
    answer = recommend(client, user_id="u0", k=5, filters={"min_price": 1000.0})
    assert answer["items"] == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exclude_seen_false_lets_seen_items_back(client: TestClient, u0_seen: set[str], strategy: str) -> None:
    answer = recommend(client, user_id="u0", k=ALL_ITEMS, strategy=strategy, filters={"exclude_seen": False})
    assert_ranked(answer, ALL_ITEMS)
    assert u0_seen <= set(ids(answer))
    assert not u0_seen & set(ids(recommend(client, user_id="u0", k=ALL_ITEMS, strategy=strategy)))


# ---- history and similar items --------------------------------------------------------------------------------
def test_history_of_a_trained_user_is_their_training_events(client: TestClient, shop_bundle: Path) -> None:
    answer = ok(client.get("/v1/users/u0/history"))
    assert (answer["user_id"], answer["known_to_model"]) == ("u0", True)
    # The model trained on all but the last event (held out for the test split).
    expected = [(item, action, datetime.fromtimestamp(ts, timezone.utc))
                for item, action, ts in source_events(shop_bundle, "u0")[:-1]]
    got = [(e["item_id"], e["event_type"], datetime.fromisoformat(e["timestamp"])) for e in answer["events"]]
    assert got == expected
    assert {event["source"] for event in answer["events"]} == {"training"}


def test_history_of_an_unknown_user_is_404(client: TestClient) -> None:
    response = client.get("/v1/users/stranger/history")
    assert response.status_code == 404
    assert "'stranger'" in detail(response)


def test_similar_items_leave_the_item_out_and_keep_to_its_category(client: TestClient) -> None:
    answer = ok(client.get("/v1/items/jew0/similar", params={"k": 10}))
    assert answer["item_id"] == "jew0"
    assert_ranked(answer, 10)
    assert "jew0" not in ids(answer)
    assert set(similar(client, "jew0", k=ALL_ITEMS)) == set(CATEGORY) - {"jew0"}  # everything else, once
    shares = [sum(CATEGORY[other] == CATEGORY[item] for other in similar(client, item, k=5)) / 5 for item in CATEGORY]
    assert sum(shares) / len(shares) >= 0.7  # chance: 19/59


def test_similar_items_of_an_unknown_item_is_404(client: TestClient) -> None:
    response = client.get("/v1/items/no-such-item/similar")
    assert response.status_code == 404
    assert "'no-such-item'" in detail(response)


# ---- encode + retrieve ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("user", [{"user_id": "u0"}, {"interactions": JEWELLERY_VIEWS},
                                  {"user_id": "u4", "interactions": KITCHEN_VIEWS}], ids=["user", "raw", "both"])
def test_encode_then_retrieve_reproduces_two_tower(client: TestClient, user: dict[str, Any]) -> None:
    expected = recommend(client, k=10, strategy="two_tower", **user)
    encoded = ok(client.post("/v1/users/encode", json=user))
    assert encoded["model_version"] == expected["model_version"]
    seen = sorted(history_items(client, user["user_id"]) if "user_id" in user else set()) + \
        [view["item_id"] for view in user.get("interactions", [])]
    retrieved = ok(client.post("/v1/retrieve", json={"vector": encoded["vector"], "k": 10, "exclude_items": seen}))
    assert ids(retrieved) == ids(expected)
    assert [item["score"] for item in retrieved["items"]] == pytest.approx(
        [item["score"] for item in expected["items"]], rel=1e-5, abs=1e-6)


def test_retrieve_applies_filters(client: TestClient) -> None:
    vector = ok(client.post("/v1/users/encode", json={"user_id": "u0"}))["vector"]
    answer = ok(client.post("/v1/retrieve", json={"vector": vector, "k": 5, "filters": {"categories": ["Kitchen"]}}))
    assert_ranked(answer, 5)
    assert {CATEGORY[item] for item in ids(answer)} == {"Kitchen"}


def test_encode_without_anything_known_is_refused(client: TestClient) -> None:
    response = client.post("/v1/users/encode", json={"user_id": "stranger", "interactions": [{"item_id": "nope"}]})
    assert response.status_code == 404  # an unknown user and unknown items: nothing the model knows
    assert detail(response).startswith("user_id, interactions:")
    empty = client.post("/v1/users/encode", json={})
    assert empty.status_code == 422 and "give a user_id or at least one interaction" in str(empty.json()["detail"])


def test_retrieve_with_a_vector_of_the_wrong_width_is_refused(client: TestClient) -> None:
    width = len(ok(client.post("/v1/users/encode", json={"user_id": "u0"}))["vector"])
    response = client.post("/v1/retrieve", json={"vector": [0.1] * (width + 1)})
    assert response.status_code == 422
    assert detail(response).startswith("vector:") and str(width) in detail(response)


# ---- probes, metrics, docs ------------------------------------------------------------------------------------
def test_health_and_readiness(client: TestClient, shop_bundle: Path) -> None:
    assert ok(client.get("/healthz")) == {"status": "ok"}
    assert ok(client.get("/readyz")) == {"status": "ready", "model_version": model_version(shop_bundle)}


def test_metrics_count_requests_and_name_the_model(client: TestClient, shop_bundle: Path) -> None:
    recommend(client, user_id="stranger", k=3)  # a fallback
    text = client.get("/metrics").text
    assert 'foryou_request_seconds_count{method="POST",route="/v1/recommendations"}' in text
    assert 'foryou_fallbacks_total{fallback="popular"}' in text
    assert "foryou_events_ingested_total 0.0" in text
    assert f'foryou_model_info{{model_version="{model_version(shop_bundle)}"}} 1.0' in text


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = ok(client.get("/openapi.json"))["paths"]
    for path in ("/v1/recommendations", "/v1/users/{user_id}/history", "/v1/items/{item_id}/similar",
                 "/v1/events", "/v1/items/{item_id}", "/v1/users/encode", "/v1/retrieve", "/v1/admin/reload"):
        assert path in paths


def test_not_ready_while_the_bundle_loads(shop_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    load = ServingState.load

    def held_load(directory: Path) -> ServingState:
        release.wait(30)
        return load(directory)

    monkeypatch.setattr(ServingState, "load", staticmethod(held_load))
    app = create_app(shop_bundle, ServingConfig(), sqlite_url(tmp_path / "store.db"), api_keys=[],
                     load_in_background=True)
    try:
        with TestClient(app) as client:
            assert ok(client.get("/healthz")) == {"status": "ok"}
            assert client.get("/readyz").status_code == 503
            waiting = client.post("/v1/recommendations", json={"user_id": "u0"})
            assert waiting.status_code == 503 and waiting.headers["Retry-After"] == "1"
            assert "/readyz" in detail(waiting)
            release.set()
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert ok(client.get("/readyz"))["model_version"] == model_version(shop_bundle)
            assert len(recommend(client, user_id="u0", k=3)["items"]) == 3
    finally:
        release.set()


def test_timestamps_in_the_future_or_far_past_are_accepted(client: TestClient) -> None:
    moments = [datetime(1, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc) + timedelta(days=3650)]
    views = [{"item_id": "jew1", "timestamp": moment.isoformat()} for moment in moments]
    assert len(recommend(client, interactions=views, k=3)["items"]) == 3

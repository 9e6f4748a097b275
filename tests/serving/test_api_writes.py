"""The write side of the HTTP API: keys on writes, events that change the next answer at once, idempotency,
live item upserts / unavailability / deletes (in every strategy and in similar items, and across a restart on
the same store), and hot reload to a new bundle or refusal of a damaged one. Each test gets a fresh app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.serving.api_client import (
    ALL_ITEMS,
    CATEGORY,
    PERSONAL,
    STRATEGIES,
    WRITE,
    detail,
    history_items,
    ids,
    model_version,
    ok,
    recommend,
    serving,
    similar,
)

NEW_EARRINGS = {"title": "Gold Hoop Earrings 99", "category": "Jewellery", "price": 41.5}
SECOND_VERSION = "shop-second"


@pytest.fixture
def client(shop_bundle: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with serving(shop_bundle, tmp_path / "store.db", bundle_root=str(tmp_path_factory.getbasetemp())) as writer:
        yield writer


def post_events(client: TestClient, *events: dict[str, Any]) -> dict[str, Any]:
    return ok(client.post("/v1/events", json={"events": list(events)}, headers=WRITE))


def put_item(client: TestClient, item_id: str, fields: dict[str, Any], available: bool = True) -> dict[str, Any]:
    return ok(client.put(f"/v1/items/{item_id}", json={"fields": fields, "available": available}, headers=WRITE))


def everywhere(client: TestClient, user_id: str, **filters: Any) -> dict[str, list[str]]:
    """Every strategy's whole ranking of the catalog for a user."""
    return {strategy: ids(recommend(client, user_id=user_id, k=ALL_ITEMS + 5, strategy=strategy, filters=filters))
            for strategy in STRATEGIES}


# ---- keys -----------------------------------------------------------------------------------------------------
WRITES = [("POST", "/v1/events", {"events": [{"user_id": "u0", "item_id": "jew2"}]}),
          ("PUT", "/v1/items/jew2", {"fields": NEW_EARRINGS}),
          ("DELETE", "/v1/items/jew2", None),
          ("POST", "/v1/admin/reload", {})]


@pytest.fixture(scope="module")
def keyless(shop_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app with no API key configured, shared by the refusal tests (none of which may write)."""
    with serving(shop_bundle, tmp_path_factory.mktemp("keyless") / "store.db", api_keys=()) as client:
        yield client


def assert_nothing_written(client: TestClient) -> None:
    """jew2 keeps its bundle title (a PUT would have renamed it), is not deleted, and u0 has no live event."""
    answer = ok(client.get("/v1/items/jew0/similar", params={"k": ALL_ITEMS}))
    titles = {item["item_id"]: item["title"] for item in answer["items"]}
    assert titles.get("jew2") == "Gold Hoop Earrings 2"
    assert "jew2" not in history_items(client, "u0")


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_writes_are_refused_when_no_key_is_configured(keyless: TestClient, method: str, path: str,
                                                      body: Any) -> None:
    response = keyless.request(method, path, json=body, headers=WRITE)
    assert response.status_code == 403
    assert all(hint in detail(response) for hint in ("serving.api_keys", "FORYOU_API_KEYS", "X-API-Key"))
    assert_nothing_written(keyless)


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}], ids=["none", "wrong", "empty"])
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_writes_need_the_right_key(client: TestClient, headers: dict[str, str], method: str, path: str,
                                   body: Any) -> None:
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert "X-API-Key" in detail(response)
    assert_nothing_written(client)


# ---- events ---------------------------------------------------------------------------------------------------
def test_an_event_changes_the_users_next_recommendations_at_once(client: TestClient) -> None:
    before = everywhere(client, "u0")
    top = before["two_tower"][0]
    assert all(top in ranking for ranking in before.values())
    assert post_events(client, {"user_id": "u0", "item_id": top, "event_type": "purchase",
                                "timestamp": "2024-06-01T10:00:00Z"}) == {"stored": 1, "duplicates": 0, "warnings": []}
    after = everywhere(client, "u0")
    assert all(top not in ranking for ranking in after.values())
    assert after["two_tower"] != before["two_tower"][1:]  # the user vector moved, not only the item went
    events = ok(client.get("/v1/users/u0/history"))["events"]
    assert (events[-1]["item_id"], events[-1]["event_type"], events[-1]["source"]) == (top, "purchase", "live")
    assert {event["source"] for event in events[:-1]} == {"training"}


def test_a_new_user_with_events_gets_personal_recommendations(client: TestClient) -> None:
    assert recommend(client, user_id="newcomer", k=5)["fallback"] == "popular"
    views = [f"kit{i}" for i in range(4)]
    post_events(client, *({"user_id": "newcomer", "item_id": item} for item in views))
    history = ok(client.get("/v1/users/newcomer/history"))
    assert history["known_to_model"] is False
    assert [(e["item_id"], e["source"]) for e in history["events"]] == [(item, "live") for item in views]
    for strategy in PERSONAL:
        answer = recommend(client, user_id="newcomer", k=5, strategy=strategy)
        assert answer["fallback"] is None, strategy
        assert not set(ids(answer)) & set(views)
        assert sum(CATEGORY[item] == "Kitchen" for item in ids(answer)) >= 2, (strategy, ids(answer))
    assert set(ids(recommend(client, user_id="newcomer", k=5, strategy="content"))) <= {
        item for item, category in CATEGORY.items() if category == "Kitchen"}


def test_events_are_idempotent_on_event_id(client: TestClient) -> None:
    event = {"user_id": "u0", "item_id": "kit1", "event_id": "order-17"}
    assert post_events(client, event)["stored"] == 1
    assert post_events(client, event) == {"stored": 0, "duplicates": 1, "warnings": []}
    assert post_events(client, {**event, "event_id": "order-18"}, {**event, "event_id": "order-18"}) == \
        {"stored": 1, "duplicates": 1, "warnings": []}
    live = [e for e in ok(client.get("/v1/users/u0/history"))["events"] if e["source"] == "live"]
    assert len(live) == 2


def test_an_event_on_an_unknown_item_is_stored_with_a_warning(client: TestClient) -> None:
    answer = post_events(client, {"user_id": "u0", "item_id": "not-yet-listed"})
    assert answer["stored"] == 1
    assert "'not-yet-listed'" in answer["warnings"][0]
    assert "not-yet-listed" in history_items(client, "u0")


def test_metrics_count_ingested_events(client: TestClient) -> None:
    post_events(client, {"user_id": "u0", "item_id": "kit1", "event_id": "a"}, {"user_id": "u0", "item_id": "kit2"})
    post_events(client, {"user_id": "u0", "item_id": "kit1", "event_id": "a"})
    assert "foryou_events_ingested_total 2.0" in client.get("/metrics").text


# ---- items ----------------------------------------------------------------------------------------------------
def test_a_new_item_is_similar_to_its_category_and_recommendable(client: TestClient) -> None:
    written = put_item(client, "jew99", NEW_EARRINGS)
    assert written == {"item_id": "jew99", "status": "created", "item": {"item_id": "jew99", **NEW_EARRINGS}}
    assert put_item(client, "jew99", NEW_EARRINGS)["status"] == "updated"
    neighbours = similar(client, "jew99", k=5)
    assert sum(CATEGORY[item] == "Jewellery" for item in neighbours) >= 3
    jewellery = [item for item, category in CATEGORY.items() if category == "Jewellery"]
    assert any("jew99" in similar(client, item, k=5) for item in jewellery)
    # A content-only neighbour of jew1 (same category, price 41 vs 41.5) ...
    assert "jew99" in ids(recommend(client, interactions=[{"item_id": "jew1"}], k=3, strategy="content"))
    # ... and in the two-tower index: every unseen Jewellery item of u0 (13) plus the new one.
    ranked = ids(recommend(client, user_id="u0", k=20, strategy="two_tower", filters={"categories": ["Jewellery"]}))
    assert len(ranked) == 14 and "jew99" in ranked


def test_an_unknown_field_is_refused_by_name(client: TestClient) -> None:
    response = client.put("/v1/items/jew99", json={"fields": {**NEW_EARRINGS, "colour": "gold"}}, headers=WRITE)
    assert response.status_code == 422
    assert detail(response).startswith("fields.colour:")
    assert all(name in detail(response) for name in NEW_EARRINGS)  # the accepted ones
    assert client.get("/v1/items/jew99/similar").status_code == 404


def test_an_unavailable_item_leaves_every_answer_until_available_again(client: TestClient) -> None:
    item = "hom3"  # u0 keeps to Jewellery: hom3 is in every ranking of u0's
    assert all(item in ranking for ranking in everywhere(client, "u0").values())
    put_item(client, item, {"title": "Ceramic Vase 3", "category": "Home Decor", "price": 28.0}, available=False)
    assert all(item not in ranking for ranking in everywhere(client, "u0").values())
    assert all(item in ranking for ranking in everywhere(client, "u0", available_only=False).values())
    assert item not in similar(client, "hom4", k=ALL_ITEMS)
    put_item(client, item, {"title": "Ceramic Vase 3", "category": "Home Decor", "price": 28.0})
    assert all(item in ranking for ranking in everywhere(client, "u0").values())
    assert item in similar(client, "hom4", k=ALL_ITEMS)


def test_a_deleted_item_leaves_every_answer(client: TestClient) -> None:
    assert ok(client.delete("/v1/items/hom3", headers=WRITE)) == {"item_id": "hom3", "status": "deleted", "item": None}
    for rankings in (everywhere(client, "u0"), everywhere(client, "u0", available_only=False)):
        assert all("hom3" not in ranking for ranking in rankings.values())
        assert all(len(ranking) == ALL_ITEMS - 1 - len(history_items(client, "u0")) for ranking in rankings.values())
    assert "hom3" not in similar(client, "hom4", k=ALL_ITEMS)
    assert client.get("/v1/items/hom3/similar").status_code == 404
    assert client.delete("/v1/items/hom3", headers=WRITE).status_code == 404
    assert put_item(client, "hom3", {"title": "Ceramic Vase 3", "category": "Home Decor", "price": 28.0})["status"] \
        == "created"
    assert "hom3" in similar(client, "hom4", k=ALL_ITEMS)


def test_deleting_an_unknown_item_is_404(client: TestClient) -> None:
    response = client.delete("/v1/items/no-such-item", headers=WRITE)
    assert response.status_code == 404 and "'no-such-item'" in detail(response)


def test_item_changes_survive_a_restart_on_the_same_store(shop_bundle: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    with serving(shop_bundle, store) as first:
        put_item(first, "jew99", NEW_EARRINGS)
        put_item(first, "hom3", {"title": "Ceramic Vase 3", "category": "Home Decor", "price": 28.0}, available=False)
        ok(first.delete("/v1/items/kit5", headers=WRITE))
        post_events(first, {"user_id": "newcomer", "item_id": "jew99"})
        expected = similar(first, "jew99")
    with serving(shop_bundle, store) as second:
        assert similar(second, "jew99") == expected
        rankings = everywhere(second, "u0")
        assert all("hom3" not in ranking and "kit5" not in ranking for ranking in rankings.values())
        assert "jew99" in rankings["two_tower"]
        assert second.get("/v1/items/kit5/similar").status_code == 404
        assert history_items(second, "newcomer") == {"jew99"}


# ---- reload ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundles(shop_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of the shop bundle: one under another model version, and damaged ones (named by the file hit)."""
    root = tmp_path_factory.mktemp("bundles")

    def copy(name: str) -> Path:
        return Path(shutil.copytree(shop_bundle, root / name))

    def edit_manifest(bundle: Path, **changes: Any) -> None:
        manifest = json.loads((bundle / "bundle.json").read_text())
        (bundle / "bundle.json").write_text(json.dumps({**manifest, **changes}))

    edit_manifest(copy("second"), model_version=SECOND_VERSION)
    for damaged in ("model/two_tower.pt", "index/index.faiss"):
        path = copy(damaged.replace("/", "-")) / damaged
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    (copy("missing") / "content.npy").unlink()
    edit_manifest(copy("old"), bundle_version=1)
    return {path.name: path for path in root.iterdir()}


def test_reload_switches_to_a_new_bundle(client: TestClient, shop_bundle: Path, bundles: dict[str, Path]) -> None:
    first = model_version(shop_bundle)
    put_item(client, "jew99", NEW_EARRINGS)
    answer = ok(client.post("/v1/admin/reload", json={"bundle": str(bundles["second"])}, headers=WRITE))
    assert answer == {"model_version": SECOND_VERSION, "previous_model_version": first}
    assert ok(client.get("/readyz"))["model_version"] == SECOND_VERSION
    assert recommend(client, user_id="u0", k=3)["model_version"] == SECOND_VERSION
    assert f'foryou_model_info{{model_version="{SECOND_VERSION}"}} 1.0' in client.get("/metrics").text
    assert first not in client.get("/metrics").text
    assert "jew99" in similar(client, "jew0", k=ALL_ITEMS + 1)  # live items are applied to the new bundle
    again = ok(client.post("/v1/admin/reload", headers=WRITE))  # no body: the current folder again
    assert again == {"model_version": SECOND_VERSION, "previous_model_version": SECOND_VERSION}


def test_a_reload_reaches_every_process_sharing_the_store(shop_bundle: Path, bundles: dict[str, Path],
                                                         tmp_path: Path) -> None:
    store, root = tmp_path / "shared.db", str(bundles["second"].parent)
    with serving(shop_bundle, store, bundle_root=root) as first, serving(shop_bundle, store) as second:
        ok(first.post("/v1/admin/reload", json={"bundle": str(bundles["second"])}, headers=WRITE))
        other = second.app.state.service  # type: ignore[attr-defined]
        assert other.follow_reloads()  # what its store poller does every second
        assert recommend(second, user_id="u0", k=3)["model_version"] == SECOND_VERSION
        assert not other.follow_reloads()  # applied once
    with serving(shop_bundle, store) as later:  # a worker (re)started afterwards serves the newest reload
        assert not later.app.state.service.follow_reloads()  # type: ignore[attr-defined]
        assert recommend(later, user_id="u0", k=3)["model_version"] == SECOND_VERSION


@pytest.mark.parametrize(("damage", "named"), [("model-two_tower.pt", "model/two_tower.pt"),
                                                ("index-index.faiss", "index/index.faiss"),
                                                ("missing", "content.npy"), ("old", "bundle.json"),
                                                ("no-such-folder", "no-such-folder")])
def test_reload_refuses_a_damaged_bundle_and_keeps_serving(client: TestClient, shop_bundle: Path,
                                                          bundles: dict[str, Path], damage: str, named: str) -> None:
    before = recommend(client, user_id="u0", k=5)
    target = bundles.get(damage, shop_bundle.parent / damage)
    response = client.post("/v1/admin/reload", json={"bundle": str(target)}, headers=WRITE)
    assert response.status_code == (404 if damage == "no-such-folder" else 422)  # no folder, or a broken one
    assert named in detail(response)
    assert ok(client.get("/readyz"))["model_version"] == model_version(shop_bundle)
    assert recommend(client, user_id="u0", k=5) == before

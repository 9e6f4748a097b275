"""Helpers of the HTTP API tests: an app over a bundle driven by a TestClient, and readers of its answers."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tests.serving.shop import item_rows, user_category

from foryou.config import ServingConfig
from foryou.serving.app import create_app
from foryou.serving.store import sqlite_url

KEY = "test-key"
WRITE = {"X-API-Key": KEY}
STAGE = ["reranked_lgbm", "reranked_mlp", "hybrid", "hybrid_rrf"]  # the ranking stage's strategies
STRATEGIES = ["two_tower", "content", "collab", "ease", "item_knn", "popular", *STAGE]  # what the shop bundle serves
PERSONAL = ["two_tower", "content", "collab", "ease", "item_knn"]  # the strategies that read the history
CATEGORY = {item: category for item, _, category, _ in item_rows()}
TITLE = {item: title for item, title, _, _ in item_rows()}
PRICE = {item: price for item, _, _, price in item_rows()}
ALL_ITEMS = len(CATEGORY)


@contextmanager
def serving(bundle: Path, store: Path, api_keys: tuple[str, ...] = (KEY,), store_url: str | None = None,
            **settings: Any) -> Iterator[TestClient]:
    """A loaded app over `bundle` with its SQLite store at `store` (or the database at `store_url`), lifespan
    running; 500s come back as responses (not exceptions) so a test can assert that a bad request is never one."""
    app = create_app(bundle, ServingConfig(**settings), store_url or sqlite_url(store), api_keys=list(api_keys),
                     load_in_background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return dict(response.json())


def recommend(client: TestClient, **body: Any) -> dict[str, Any]:
    return ok(client.post("/v1/recommendations", json=body))


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in answer["items"]]


def similar(client: TestClient, item_id: str, k: int = 10) -> list[str]:
    return ids(ok(client.get(f"/v1/items/{item_id}/similar", params={"k": k})))


def history_items(client: TestClient, user_id: str) -> set[str]:
    return {event["item_id"] for event in ok(client.get(f"/v1/users/{user_id}/history"))["events"]}


def detail(response: Any) -> str:
    """The error's message as one string: field-level errors as 'field: message' lines."""
    found = response.json()["detail"]
    if isinstance(found, list):
        return "\n".join(f"{error['field']}: {error['message']}" for error in found)
    return str(found)


def own_category_share(answer: dict[str, Any], user_id: str) -> float:
    """Share of the answer's items in the category user `u<n>` keeps to."""
    wanted = user_category(int(user_id[1:]))
    return sum(item["category"] == wanted for item in answer["items"]) / len(answer["items"])


def model_version(bundle: Path) -> str:
    return str(json.loads((bundle / "bundle.json").read_text())["model_version"])


def source_events(bundle: Path, user_id: str) -> list[tuple[str, str, int]]:
    """(item_id, action, unix time) of a user in the shop's events.csv (beside the run folder), oldest first."""
    with (bundle.parents[1] / "events.csv").open() as handle:
        rows = [(row["sku"], row["action"], int(row["ts"])) for row in csv.DictReader(handle) if row["user"] == user_id]
    return sorted(rows, key=lambda row: row[2])

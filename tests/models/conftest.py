"""Shared fixtures for model tests: a tiny two-block dataset and the list of recommenders under contract.

Another model joins the contract suite by adding a (name, zero-argument factory) entry to the
RECOMMENDER_FACTORIES literal below (the fixture reads the list when this module is imported).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from foryou.data import schema as S
from foryou.data.dataset import Dataset, Manifest
from foryou.models.base import Recommender
from foryou.models.baselines import ALS, EASE, ItemKNN, MostPop, RecentPop
from foryou.models.two_tower import TwoTower

RecommenderFactory = Callable[[], Recommender]

# (id shown by pytest, factory returning an unfitted model with fixed seed and small, fast settings)
RECOMMENDER_FACTORIES: list[tuple[str, RecommenderFactory]] = [
    ("most_pop", lambda: MostPop()),
    ("recent_pop", lambda: RecentPop(half_life_days=7.0)),
    ("item_knn", lambda: ItemKNN(neighbours=5)),
    ("ease", lambda: EASE(l2=10.0)),
    ("als", lambda: ALS(factors=8, regularization=0.01, alpha=10.0, iterations=5, seed=0)),
    ("two_tower", lambda: TwoTower(model={"embedding_dim": 16, "hidden_dim": 16, "max_history": 8, "num_layers": 1,
                                          "use_text": False},
                                   train={"epochs": 2, "batch_size": 8, "device": "cpu"})),
]

N_USERS, N_ITEMS, BLOCK = 30, 20, 10
START = pd.Timestamp("2024-01-01", tz="UTC")


def build_dataset(
    events: Sequence[tuple[int, int, float]], n_users: int, n_items: int, categories: Sequence[str]
) -> Dataset:
    """A prepared Dataset from (user_idx, item_idx, days after START) events, all in the train split."""
    users, items, days = (np.array(column) for column in zip(*events))
    interactions = pd.DataFrame(
        {
            S.USER_IDX: users.astype(np.int64),
            S.ITEM_IDX: items.astype(np.int64),
            S.TIMESTAMP: START + pd.to_timedelta(days.astype(float), unit="D"),
            S.EVENT_TYPE: S.CLICK,
            S.VALUE: 1.0,
            S.WEIGHT: 1.0,
            S.SPLIT: "train",
            S.COLD_USER: False,
            S.COLD_ITEM: False,
            S.SOURCE_ORDER: np.arange(len(events), dtype=np.int64),
        }
    )
    item_table = pd.DataFrame(
        {
            S.ITEM_IDX: np.arange(n_items),
            S.ITEM_ID: [f"i{index:02d}" for index in range(n_items)],
            "category": list(categories),
            "title": [f"item {index}" for index in range(n_items)],
        }
    )
    user_table = pd.DataFrame(
        {S.USER_IDX: np.arange(n_users), S.USER_ID: [f"u{i:02d}" for i in range(n_users)]}
    )
    manifest = Manifest(
        source="tiny",
        counts={"interactions": len(interactions), "items": n_items, "users": n_users},
        item_fields={"categorical": ["category"], "text": ["title"]},
        user_fields={},
        config={},
        input_hashes={},
    )
    return Dataset(interactions, item_table, user_table, manifest)


def checkerboard_events() -> list[tuple[int, int, float]]:
    """Users 0-14 click 5 of items 0-9 (category A), users 15-29 click 5 of items 10-19 (category B).

    User u clicks items block + (u + j) % 10 for j = 0..4 on day u + j; user 0 clicks item 0 twice.
    """
    events = []
    for user in range(N_USERS):
        block = 0 if user < N_USERS // 2 else BLOCK
        events += [(user, block + (user + j) % BLOCK, float(user + j)) for j in range(5)]
    events.append((0, 0, 40.0))
    return events


@pytest.fixture
def tiny_dataset() -> Dataset:
    categories = ["A"] * BLOCK + ["B"] * BLOCK
    return build_dataset(checkerboard_events(), N_USERS, N_ITEMS, categories)


@pytest.fixture(
    params=[factory for _, factory in RECOMMENDER_FACTORIES], ids=[name for name, _ in RECOMMENDER_FACTORIES]
)
def make_recommender(request: pytest.FixtureRequest) -> RecommenderFactory:
    return request.param

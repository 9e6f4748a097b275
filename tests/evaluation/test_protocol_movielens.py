"""The protocol against the shared reference: MostPop on ml-latest-small must give BASELINES.md's numbers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from foryou.data import schema as S
from foryou.data.dataset import Dataset, Manifest
from foryou.evaluation.protocol import evaluate
from foryou.models.base import Recommender

RATINGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-latest-small" / "ratings.csv"


class MostPop(Recommender):
    """Train events per item, repeats included (the reference's MostPop)."""

    name = "most_pop"

    def _fit(self, dataset: Dataset) -> None:
        self.counts = np.bincount(dataset.interactions[S.ITEM_IDX], minlength=dataset.n_items).astype(np.float32)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(user_idx), len(self.counts)))

    def item_embeddings(self) -> np.ndarray:
        return self.counts[:, None]


def _leave_last_out(ratings: pd.DataFrame) -> Dataset:
    """Each user's last event is test, the one before valid (stable sort on timestamp), the rest train."""
    items = np.sort(ratings["movieId"].unique())
    events = pd.DataFrame({
        S.USER_IDX: pd.factorize(ratings["userId"], sort=True)[0],
        S.ITEM_IDX: np.searchsorted(items, ratings["movieId"]),
        S.TIMESTAMP: ratings["timestamp"],
        S.WEIGHT: 1.0,
    }).sort_values([S.USER_IDX, S.TIMESTAMP], kind="stable")
    from_end = events.groupby(S.USER_IDX).cumcount(ascending=False)
    events[S.SPLIT] = np.select([from_end == 0, from_end == 1], ["test", "valid"], "train")
    n_users = events[S.USER_IDX].max() + 1
    users = pd.DataFrame({S.USER_IDX: range(n_users), S.USER_ID: [str(u) for u in range(n_users)]})
    catalog = pd.DataFrame({S.ITEM_IDX: range(len(items)), S.ITEM_ID: items.astype(str)})
    manifest = Manifest(source="movielens", counts={}, item_fields={}, user_fields={}, config={}, input_hashes={})
    return Dataset(events.reset_index(drop=True), catalog, users, manifest)


@pytest.mark.slow
def test_most_pop_reproduces_reference_numbers() -> None:
    if not RATINGS.exists():
        pytest.skip(f"{RATINGS} not present")
    dataset = _leave_last_out(pd.read_csv(RATINGS))
    model = MostPop().fit(dataset.restricted_to("train", "valid"))
    start = time.perf_counter()
    result = evaluate(model, dataset, "test", ks=(10, 20))
    assert time.perf_counter() - start < 10.0  # 610 users x 9,724 items: well under a second in practice
    # BASELINES.md, movielens-latest-small, MostPop row.
    expected = {"HR@10": 0.0410, "NDCG@10": 0.0189, "MRR@10": 0.0123, "HR@20": 0.0705, "NDCG@20": 0.0263,
                "coverage@10": 0.0125}
    assert {key: round(result.summary[key], 4) for key in expected} == expected
    assert result.summary["users"] == 610

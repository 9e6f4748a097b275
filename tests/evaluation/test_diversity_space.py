"""One diversity space for every strategy, on a hand-built catalog.

Items and their vector field v:  0 (1, 0), 1 (1, 0) identical to 0, 2 (0, 1) orthogonal to both, 3 no vector,
4 (1, 1). Events (train): u1 0, 1, 2; u2 0, 2; u3 0; u0 4; then u0's test event is item 3.
Popularity over train: item 0 (3 users) > item 2 (2) > item 1 (1), so most-popular's top 2 for u0 is [0, 2]:
orthogonal, diversity 1. The ranking-stage strategy below scores [0, 1] highest for u0: identical, diversity 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from foryou.config import FeaturesConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset, Manifest
from foryou.evaluation.diversity_space import diversity_space
from foryou.evaluation.protocol import evaluate
from foryou.models.baselines.popularity import MostPop
from foryou.rerank.protocol import ScoreMatrix

EVENTS = [(1, 0, "train"), (1, 1, "train"), (1, 2, "train"), (2, 0, "train"), (2, 2, "train"), (3, 0, "train"),
          (0, 4, "train"), (0, 3, "test")]
VECTORS = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], None, [1.0, 1.0]]


def _dataset(item_fields: dict[str, list[str]], **columns: list) -> Dataset:
    users, items, splits = zip(*EVENTS)
    interactions = pd.DataFrame({
        S.USER_IDX: np.array(users, np.int64), S.ITEM_IDX: np.array(items, np.int64), S.SPLIT: list(splits),
        S.TIMESTAMP: pd.date_range("2024-01-01", periods=len(EVENTS), freq="h", tz="UTC"),
        S.WEIGHT: np.ones(len(EVENTS)),
    })
    item_table = pd.DataFrame({S.ITEM_IDX: range(5), S.ITEM_ID: [f"i{i}" for i in range(5)], **columns})
    user_table = pd.DataFrame({S.USER_IDX: range(4), S.USER_ID: [f"u{u}" for u in range(4)]})
    manifest = Manifest(source="hand", counts={}, item_fields=item_fields, user_fields={}, config={},
                        input_hashes={})
    return Dataset(interactions, item_table, user_table, manifest)


@pytest.fixture
def dataset() -> Dataset:
    return _dataset({"vector": ["v"]}, v=VECTORS)


def _no_two_tower() -> np.ndarray:
    raise AssertionError("the catalog has content: the two-tower's vectors must not be asked for")


def test_a_baseline_and_a_ranking_stage_strategy_are_measured_in_the_catalog_space(dataset: Dataset) -> None:
    space = diversity_space(dataset, FeaturesConfig(), _no_two_tower)
    assert "vector fields v" in space.description and "4 of 5 items" in space.description
    history = dataset.restricted_to("train", "valid")
    baseline = MostPop().fit(history)
    scores = np.zeros((4, 5), np.float32)
    scores[0] = [5, 4, 1, 0, 0]  # u0 (item 4 seen): [0, 1]
    stage = ScoreMatrix(scores, history)
    measured = {name: evaluate(model, dataset, "test", ks=(2,), item_embeddings=space.vectors)
                for name, model in (("most_pop", baseline), ("reranked", stage))}
    assert measured["most_pop"].ranked[0].tolist() == [0, 2]
    assert measured["reranked"].ranked[0].tolist() == [0, 1]
    assert measured["most_pop"].summary["diversity_embedding@2"] == pytest.approx(1.0)  # orthogonal pair
    assert measured["reranked"].summary["diversity_embedding@2"] == pytest.approx(0.0, abs=1e-6)  # identical


def test_without_a_shared_space_diversity_is_not_measured(dataset: Dataset) -> None:
    history = dataset.restricted_to("train", "valid")
    stage = ScoreMatrix(np.tile(np.array([5, 4, 1, 0, 0], np.float32), (4, 1)), history)
    summary = evaluate(stage, dataset, "test", ks=(2,)).summary
    assert math.isnan(summary["diversity_embedding@2"])  # shown as "—", never a default
    with pytest.raises(NotImplementedError, match="shared"):
        stage.item_embeddings()


def test_a_catalog_without_content_falls_back_to_the_two_tower_vectors() -> None:
    bare = _dataset({})
    tower = np.arange(10, dtype=np.float32).reshape(5, 2)
    space = diversity_space(bare, FeaturesConfig(), lambda: tower)
    assert "two-tower" in space.description
    np.testing.assert_array_equal(space.vectors, tower)


"""LGBMRanker on a synthetic problem where one feature carries the label: it learns it, explains it, saves it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from foryou.errors import NotFittedError
from foryou.evaluation.metrics import ndcg_at_k
from foryou.rerank.lgbm import BIAS, LGBMRanker
from foryou.rerank.ranker import group_sizes

GROUP = 20


def synthetic(n_groups: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """n_groups queries of 20 items; the one item per query with the largest `signal` is relevant, the other
    features are noise (one of them, `noise_rank`, is integer-valued with NaNs like a source's rank)."""
    rng = np.random.default_rng(seed)
    n = n_groups * GROUP
    signal = rng.normal(size=n)
    rank = rng.integers(1, 50, size=n).astype(np.float64)
    rank[rng.random(n) < 0.2] = np.nan
    features = pd.DataFrame({"noise_a": rng.normal(size=n), "signal": signal, "noise_rank": rank})
    groups = np.repeat(np.arange(n_groups), GROUP)
    best = signal.reshape(n_groups, GROUP).argmax(axis=1)
    labels = np.zeros((n_groups, GROUP), np.int64)
    labels[np.arange(n_groups), best] = 1
    return features, labels.ravel(), groups


def held_out_ndcg(scores: np.ndarray, labels: np.ndarray) -> float:
    ranked = np.argsort(-scores.reshape(-1, GROUP), axis=1, kind="stable")
    targets = [np.flatnonzero(row) for row in labels.reshape(-1, GROUP)]
    return float(np.mean(ndcg_at_k(ranked, targets, 10)))


@pytest.fixture(scope="module")
def ranker() -> LGBMRanker:
    train, valid = synthetic(150, seed=0), synthetic(40, seed=1)
    return LGBMRanker(num_boost_round=200, early_stopping_rounds=20, num_threads=1).fit(*train, valid=valid)


def test_learns_the_feature_that_carries_the_label(ranker: LGBMRanker) -> None:
    features, labels, _ = synthetic(60, seed=2)
    learned = held_out_ndcg(ranker.predict(features), labels)
    shuffled = held_out_ndcg(np.random.default_rng(3).normal(size=len(labels)), labels)
    assert learned > 0.9 and shuffled < 0.5
    assert ranker.feature_importance().index[0] == "signal"
    assert ranker.best_score is not None and 1 <= ranker.best_iteration <= 200


def test_contributions_add_up_to_the_score(ranker: LGBMRanker) -> None:
    features, _, _ = synthetic(3, seed=4)
    scores = ranker.predict(features)
    table = ranker.contributions(features)
    assert list(table.columns) == ["noise_a", "signal", "noise_rank", BIAS]
    np.testing.assert_allclose(table.sum(axis=1), scores, rtol=1e-9, atol=1e-9)
    explained = ranker.explain(features)
    np.testing.assert_allclose([sum(value for _, value in row) for row in explained], scores, atol=1e-9)
    first = [value for _, value in explained[0][:-1]]
    assert first == sorted(first, reverse=True) and explained[0][-1][0] == BIAS


def test_save_load_gives_identical_predictions(ranker: LGBMRanker, tmp_path: Path) -> None:
    features, _, _ = synthetic(5, seed=5)
    ranker.save(tmp_path)
    loaded = LGBMRanker.load(tmp_path)
    assert loaded.feature_names == ranker.feature_names and loaded.best_iteration == ranker.best_iteration
    np.testing.assert_array_equal(loaded.predict(features), ranker.predict(features))
    pd.testing.assert_frame_equal(loaded.contributions(features), ranker.contributions(features))


def test_columns_are_matched_by_name(ranker: LGBMRanker) -> None:
    features, _, _ = synthetic(2, seed=6)
    np.testing.assert_array_equal(ranker.predict(features[features.columns[::-1]]), ranker.predict(features))
    with pytest.raises(ValueError, match="signal"):
        ranker.predict(features.drop(columns="signal"))


def test_fit_without_validation_and_errors() -> None:
    features, labels, groups = synthetic(30, seed=7)
    with pytest.raises(NotFittedError):
        LGBMRanker().predict(features)
    fitted = LGBMRanker(num_boost_round=5, num_threads=1).fit(features, labels, groups)
    assert fitted.best_iteration == 5 and fitted.best_score is None
    with pytest.raises(ValueError, match="labels"):
        LGBMRanker(num_threads=1).fit(features, labels[:-1], groups)


def test_group_sizes() -> None:
    np.testing.assert_array_equal(group_sizes(np.array([4, 4, 1, 7, 7, 7])), [2, 1, 3])
    with pytest.raises(ValueError, match="contiguous"):
        group_sizes(np.array([1, 2, 1]))

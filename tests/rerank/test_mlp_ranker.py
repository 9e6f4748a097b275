"""MLPRanker on synthetic problems where one feature, or the user-item vector agreement, carries the label: it
learns either, predicts alike after save/load and across fits with one seed, and rejects bad input by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from foryou.errors import NotFittedError
from foryou.rerank import mlp
from foryou.rerank.mlp import MLPRanker

GROUP = 20


def synthetic(n_groups: int, seed: int, group: int = GROUP) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """n_groups queries of `group` items; the one item per query with the largest `signal` is relevant. The
    noise features are heavy-tailed (`noise_days` up to 1e4, so it is logged) or integer ranks with NaNs."""
    rng = np.random.default_rng(seed)
    n = n_groups * group
    signal = rng.normal(size=n)
    rank = rng.integers(1, 50, size=n).astype(np.float64)
    rank[rng.random(n) < 0.2] = np.nan
    days = rng.exponential(1000.0, size=n)
    features = pd.DataFrame({"noise_days": days, "signal": signal, "noise_rank": rank})
    best = signal.reshape(n_groups, group).argmax(axis=1)
    labels = np.zeros((n_groups, group), np.int64)
    labels[np.arange(n_groups), best] = 1
    return features, labels.ravel(), np.repeat(np.arange(n_groups), group)


def vector_problem(n_groups: int, seed: int, group: int = 10) -> tuple[pd.DataFrame, np.ndarray, np.ndarray,
                                                                       tuple[np.ndarray, np.ndarray]]:
    """Noise features; the relevant item of each query is the one whose vector best agrees with the user's."""
    rng = np.random.default_rng(seed)
    n, dim = n_groups * group, 8
    user = np.repeat(rng.normal(size=(n_groups, dim)), group, axis=0).astype(np.float32)
    item = rng.normal(size=(n, dim)).astype(np.float32)
    best = (user * item).sum(axis=1).reshape(n_groups, group).argmax(axis=1)
    labels = np.zeros((n_groups, group), np.int64)
    labels[np.arange(n_groups), best] = 1
    features = pd.DataFrame({"noise": rng.normal(size=n)})
    return features, labels.ravel(), np.repeat(np.arange(n_groups), group), (user, item)


def top1(scores: np.ndarray, labels: np.ndarray, group: int = GROUP) -> float:
    """Share of queries whose highest-scored row is the relevant one."""
    first = scores.reshape(-1, group).argmax(axis=1)
    return float(labels.reshape(-1, group)[np.arange(len(first)), first].mean())


@pytest.fixture(scope="module")
def ranker() -> MLPRanker:
    train, valid = synthetic(300, seed=0), synthetic(100, seed=1)
    # small problem: fewer, larger steps than the defaults; dropout only blurs the one signal here
    ranker = MLPRanker(hidden=(32, 16), epochs=30, learning_rate=1e-2, batch_groups=64, dropout=0.0)
    return ranker.fit(*train, valid=valid)


def test_learns_the_feature_that_carries_the_label(ranker: MLPRanker) -> None:
    features, labels, _ = synthetic(100, seed=2)
    assert top1(ranker.predict(features), labels) >= 0.9
    assert ranker.best_score is not None and ranker.best_score > 0.9 and 1 <= ranker.best_iteration <= 30
    assert ranker.feature_names == ["noise_days", "signal", "noise_rank"] and not ranker.uses_vectors


def test_learns_from_the_vectors_alone() -> None:
    features, labels, groups, vectors = vector_problem(200, seed=3)
    valid_features, valid_labels, valid_groups, valid_vectors = vector_problem(50, seed=4)
    ranker = MLPRanker(hidden=(32,), epochs=15, learning_rate=1e-2, batch_groups=64, negatives=9)
    ranker.fit(features, labels, groups, valid=(valid_features, valid_labels, valid_groups), vectors=vectors,
               valid_vectors=valid_vectors)
    test_features, test_labels, _, test_vectors = vector_problem(100, seed=5)
    assert ranker.uses_vectors
    assert top1(ranker.predict(test_features, test_vectors), test_labels, group=10) > 0.7  # chance: 0.1


def test_save_load_gives_identical_predictions(ranker: MLPRanker, tmp_path: Path) -> None:
    features, _, _ = synthetic(5, seed=5)
    features.iloc[:7, 2] = np.nan
    ranker.save(tmp_path)
    loaded = MLPRanker.load(tmp_path)
    assert (loaded.feature_names, loaded.best_iteration, loaded.best_score, loaded.hidden) == \
        (ranker.feature_names, ranker.best_iteration, ranker.best_score, (32, 16))
    np.testing.assert_allclose(loaded.predict(features), ranker.predict(features), rtol=1e-6)


def test_save_load_with_vectors(tmp_path: Path) -> None:
    features, labels, groups, vectors = vector_problem(20, seed=6)
    ranker = MLPRanker(hidden=(8,), epochs=2).fit(features, labels, groups, vectors=vectors)
    ranker.save(tmp_path)
    loaded = MLPRanker.load(tmp_path)
    assert loaded.uses_vectors and loaded.vector_dim == 8 and loaded.best_score is None
    expected = ranker.predict(features, vectors)
    np.testing.assert_allclose(loaded.predict(features, vectors), expected, rtol=1e-6)



def test_predicting_in_chunks_gives_the_numbers_of_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    features, labels, groups, vectors = vector_problem(12, seed=10)  # 120 rows
    features["days"] = np.where(np.arange(len(features)) % 3 == 0, np.nan, np.arange(len(features)) * 100.0)
    ranker = MLPRanker(hidden=(8,), epochs=2, batch_groups=4).fit(features, labels, groups, vectors=vectors)
    # the network sees chunks of PREDICT_ROWS rows (its numbers may depend on a call's row count): 8 here
    monkeypatch.setattr(mlp, "PREDICT_ROWS", 8)
    assembled, assemble = [], mlp._assembled

    def counted(matrix: np.ndarray, *rest: Any) -> torch.Tensor:
        assembled.append(len(matrix))
        return assemble(matrix, *rest)

    monkeypatch.setattr(mlp, "_assembled", counted)
    whole = ranker.predict(features, vectors)
    assert len(assembled) == 15 and max(assembled) == 8  # never one (120, width) input matrix
    pieces = [ranker.predict(features.iloc[start:start + 24], (vectors[0][start:start + 24],
                                                               vectors[1][start:start + 24]))
              for start in range(0, len(features), 24)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)

def test_nan_and_huge_values_give_finite_scores(ranker: MLPRanker) -> None:
    features = pd.DataFrame({"noise_days": [np.nan, 1e300, -np.inf, 5.0],
                             "signal": [np.inf, np.nan, -1e308, 0.0],
                             "noise_rank": [np.nan, np.nan, 1e9, np.inf]})
    scores = ranker.predict(features)
    assert scores.dtype == np.float64 and scores.shape == (4,) and np.isfinite(scores).all()


def test_columns_are_matched_by_name(ranker: MLPRanker) -> None:
    features, _, _ = synthetic(2, seed=7)
    np.testing.assert_array_equal(ranker.predict(features[features.columns[::-1]]), ranker.predict(features))
    with pytest.raises(ValueError, match="signal"):
        ranker.predict(features.drop(columns="signal"))


def test_same_seed_same_predictions() -> None:
    features, labels, groups = synthetic(40, seed=8)
    first, second = (MLPRanker(hidden=(16,), epochs=3, batch_groups=8, seed=1).fit(features, labels, groups)
                     for _ in range(2))  # one seed, one fit: torch init, dropout and the sampled negatives
    np.testing.assert_array_equal(first.predict(features), second.predict(features))
    assert first.best_iteration == 3 and first.best_score is None


def test_errors() -> None:
    features, labels, groups, vectors = vector_problem(10, seed=9)
    with pytest.raises(NotFittedError):
        MLPRanker().predict(features)
    with pytest.raises(NotFittedError):
        MLPRanker().save("unused")
    with pytest.raises(ValueError, match="labels"):
        MLPRanker().fit(features, labels[:-1], groups)
    with pytest.raises(ValueError, match="contiguous"):
        MLPRanker().fit(features, labels, groups[::-1].copy() % 3)
    with pytest.raises(ValueError, match="nothing to learn"):
        MLPRanker().fit(features, np.zeros_like(labels), groups)
    with pytest.raises(ValueError, match="valid_vectors"):
        MLPRanker().fit(features, labels, groups, valid=(features, labels, groups), vectors=vectors)
    fitted = MLPRanker(hidden=(4,), epochs=1).fit(features, labels, groups, vectors=vectors)
    with pytest.raises(ValueError, match="with vectors"):
        fitted.predict(features)
    with pytest.raises(ValueError, match="shape"):
        fitted.predict(features, (vectors[0][:, :4], vectors[1][:, :4]))
    plain = MLPRanker(hidden=(4,), epochs=1).fit(features, labels, groups)
    with pytest.raises(ValueError, match="without vectors"):
        plain.predict(features, vectors)

"""`grouped_ndcg`, the NDCG of a scored candidate frame that the rankers early-stop on and the blend is tuned on:
by hand, against `ndcg_at_k` per user, and against scikit-learn's `ndcg_score`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foryou.evaluation.metrics import grouped_ndcg, ndcg_at_k

NAN = float("nan")


def test_grouped_ndcg_by_hand() -> None:
    one = np.zeros(3, dtype=np.int64)
    # the positive first -> 1.0; third -> 1 / log2(4) = 0.5; third with k = 2 -> outside the list -> 0
    assert grouped_ndcg(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 0]), one) == 1.0
    assert grouped_ndcg(np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), one) == pytest.approx(0.5)
    assert grouped_ndcg(np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), one, k=2) == 0.0
    # equal scores keep row order: the positive in row 1 is second -> 1 / log2(3); NaN scores go last
    assert grouped_ndcg(np.ones(3), np.array([0, 1, 0]), one) == pytest.approx(1 / math.log2(3))
    assert grouped_ndcg(np.array([NAN, 0.1]), np.array([0, 1]), np.zeros(2)) == 1.0
    # group 0: positive third -> 0.5; group 1: positive first -> 1.0; group 2 has no positive -> ignored
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.5, 0.4])
    labels = np.array([0, 0, 1, 1, 0, 0, 0])
    groups = np.array([0, 0, 0, 1, 1, 2, 2])
    assert grouped_ndcg(scores, labels, groups) == pytest.approx(0.75)
    # two positives, first and third: (1 + 1/2) / (1 + 1/log2(3))
    assert grouped_ndcg(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1]), one) == pytest.approx(
        1.5 / (1 + 1 / math.log2(3)))


def test_grouped_ndcg_is_ndcg_at_k_per_user() -> None:
    rng = np.random.default_rng(0)
    n_groups, size = 50, 30
    scores = rng.integers(0, 8, n_groups * size).astype(np.float64)  # many ties
    labels = (rng.random(n_groups * size) < 0.05).astype(np.int64)
    groups = np.repeat(rng.permutation(n_groups), size)  # contiguous, in no particular order
    ranked = np.argsort(-scores.reshape(n_groups, size), axis=1, kind="stable")
    targets = [np.flatnonzero(row) for row in labels.reshape(n_groups, size)]
    expected = np.nanmean(ndcg_at_k(ranked, targets, 10))
    assert grouped_ndcg(scores, labels, groups) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_grouped_ndcg_agrees_with_scikit_learn(k: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    n_groups, size = 40, 25
    scores = rng.permutation(n_groups * size).astype(np.float64)  # distinct: sklearn averages tied gains
    labels = (rng.random(n_groups * size) < 0.1).astype(np.int64)
    labels[::size] = 1  # every group has a positive (sklearn scores a group without one 0, we skip it)
    groups = np.repeat(np.arange(n_groups), size)
    expected = metrics.ndcg_score(labels.reshape(n_groups, size), scores.reshape(n_groups, size), k=k)
    assert grouped_ndcg(scores, labels, groups, k) == pytest.approx(expected)


def test_grouped_ndcg_needs_a_positive_and_matching_lengths() -> None:
    with pytest.raises(ValueError, match="positive"):
        grouped_ndcg(np.ones(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="one each"):
        grouped_ndcg(np.ones(3), np.ones(2), np.zeros(2))

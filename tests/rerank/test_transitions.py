"""The transition source: successor shares computed by hand, its cut per item, one history against the batch."""

from __future__ import annotations

import numpy as np
import pytest
from tests.models.conftest import build_dataset

from foryou.data.dataset import Dataset
from foryou.rerank.candidates import recent_items, recent_row
from foryou.rerank.transitions import TransitionSource, successor_matrix

# (user, item, day). u0: 0, 1, 2   u1: 1, 2, 0   u2: 3, 3, 1 (a repeat never follows itself)
THREE_USERS = [(0, 0, 0.0), (0, 1, 1.0), (0, 2, 2.0), (1, 1, 0.0), (1, 2, 1.0), (1, 0, 2.0), (2, 3, 0.0),
               (2, 3, 1.0), (2, 1, 2.0)]


def three_users() -> Dataset:
    return build_dataset(THREE_USERS, n_users=3, n_items=4, categories=["x"] * 4)


def test_successor_shares_by_hand() -> None:
    # gap 2: a next item weighs 1, the one after it 1/2. Followers of 0: 1 (u0, 1) and 2 (u0, 1/2) -> 2/3, 1/3.
    # Of 1: 2 (u0, u1: 1 + 1) and 0 (u1, 1/2) -> 0.8, 0.2. Of 2: 0 (u1: 1) -> 1. Of 3: 1 (u2: 1 + 1/2) -> 1.
    matrix = successor_matrix(three_users().interactions, 4, gap=2)
    expected = np.array([[0, 2 / 3, 1 / 3, 0], [0.2, 0, 0.8, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(matrix.toarray(), expected, rtol=1e-6)
    assert matrix.dtype == np.float32 and matrix.diagonal().sum() == 0 and matrix.has_sorted_indices


def test_a_gap_of_one_counts_the_next_event_only() -> None:
    matrix = successor_matrix(three_users().interactions, 4, gap=1)
    np.testing.assert_allclose(matrix.toarray(), [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])


def test_events_at_one_time_follow_in_file_order() -> None:
    # u0 buys 2 then 0 in one basket (same day): the file order says 2 came first, whatever the item indices say
    dataset = build_dataset([(0, 2, 0.0), (0, 0, 0.0), (0, 1, 1.0)], n_users=1, n_items=3, categories=["x"] * 3)
    matrix = successor_matrix(dataset.interactions, 3, gap=1).toarray()
    assert matrix[2, 0] == 1 and matrix[0, 1] == 1 and matrix[0, 2] == 0


def test_each_item_keeps_its_strongest_successors_with_shares_over_all() -> None:
    # item 0 is followed by 1 twice, by 2 once and by 3 once: kept two -> 1 (1/2) and, of the tied 2 and 3, 2 (1/4)
    events = [(0, 0, 0.0), (0, 1, 1.0), (1, 0, 0.0), (1, 1, 1.0), (2, 0, 0.0), (2, 3, 1.0), (3, 0, 0.0),
              (3, 2, 1.0)]
    dataset = build_dataset(events, n_users=4, n_items=4, categories=["x"] * 4)
    matrix = successor_matrix(dataset.interactions, 4, gap=1, successors=2)
    np.testing.assert_allclose(matrix.toarray()[0], [0, 0.5, 0.25, 0])
    with pytest.raises(ValueError, match="positive"):
        successor_matrix(dataset.interactions, 4, gap=0)


def test_scores_weigh_the_latest_items_first() -> None:
    # u1's last two distinct items: 0 (weight 1), then 2 (weight 0.5): P(. | 0) + 0.5 P(. | 2), seen items excluded
    source = TransitionSource(last_n=2, decay=0.5).fit(three_users())
    following = successor_matrix(three_users().interactions, 4)
    expected = following.toarray()[0] + 0.5 * following.toarray()[2]
    scores = source.scores(np.array([1]))[0]
    np.testing.assert_allclose(scores[expected > 0], expected[expected > 0], rtol=1e-6)
    assert np.isneginf(scores[expected == 0]).all()
    items, _ = source.candidates(np.array([1]), k=4)
    assert set(items[0][items[0] >= 0].tolist()) <= {3}  # 0, 1, 2 are u1's own


def test_one_history_scores_as_the_batch_does_and_the_stored_matrix_serves_them() -> None:
    rng = np.random.default_rng(0)
    events = [(int(user), int(item), float(day)) for day, (user, item) in
              enumerate(zip(rng.integers(0, 20, 400), rng.integers(0, 50, 400)))]
    dataset = build_dataset(events, n_users=20, n_items=50, categories=["x"] * 50)
    source = TransitionSource(last_n=4).fit(dataset)
    assert source.following is not None
    served = TransitionSource.from_matrix(source.following, last_n=4)
    for history in (rng.integers(0, 50, 9), np.array([7, 7, 3])):
        batch = source.scores_recent(recent_row(history, 50, 4, source.decay))[0]
        np.testing.assert_array_equal(served.scores_one(*recent_items(history, 4, served.decay)), batch)
        columns, values = served.sparse_scores(*recent_items(history, 4, served.decay))  # what a request reads
        np.testing.assert_array_equal(columns, np.flatnonzero(np.isfinite(batch)))
        np.testing.assert_array_equal(values, batch[columns])
    assert np.isneginf(served.scores_one(np.zeros(0, np.int64), np.zeros(0, np.float32))).all()

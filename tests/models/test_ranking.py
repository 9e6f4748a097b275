"""top_k: excluded (-inf / NaN) entries never come back, ties follow the fixed tie order."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from foryou.models import ranking
from foryou.models.ranking import SCORE_BATCH_BYTES, sparse_top_k, tie_break_order, top_k, users_per_batch


def test_minus_inf_and_nan_are_never_returned() -> None:
    # regression: np.nan_to_num used to turn -inf into -3.4e38, so excluded items were ranked last, not dropped
    scores = np.array([[3.0, -np.inf, 1.0, np.nan]], dtype=np.float32)
    indices, values = top_k(scores, 4, np.arange(4))
    np.testing.assert_array_equal(indices, [[0, 2, -1, -1]])
    np.testing.assert_array_equal(values, np.array([[3.0, 1.0, -np.inf, -np.inf]], dtype=np.float32))


def test_ties_broken_by_tie_order_not_item_index() -> None:
    # all equal: the order is argsort(tie_order) = [2, 0, 1]
    indices, _ = top_k(np.zeros((1, 3), dtype=np.float32), 3, np.array([1, 2, 0]))
    np.testing.assert_array_equal(indices, [[2, 0, 1]])
    assert sorted(tie_break_order(5)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("sort_select", [ranking.SORT_SELECT, 0])  # a request's row (a sort), a batch (torch)
def test_top_k_matches_a_full_sort_of_each_row(sort_select: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranking, "SORT_SELECT", sort_select)
    rng = np.random.default_rng(0)
    for trial in range(200):
        n_rows, n_items = int(rng.integers(1, 12)), int(rng.integers(1, 40))
        scores = rng.integers(0, 5, size=(n_rows, n_items)).astype(np.float32)  # many ties
        scores[rng.random(scores.shape) < 0.2] = -np.inf
        scores[rng.random(scores.shape) < 0.05] = np.nan
        scores[rng.random(scores.shape) < 0.03] = np.inf
        k, tie = int(rng.integers(0, n_items + 3)), tie_break_order(n_items, seed=trial)
        before = scores.copy()
        indices, values = top_k(scores, k, tie)
        np.testing.assert_array_equal(scores, before)  # the caller's array is not changed
        for row in range(n_rows):
            finite = np.nan_to_num(scores[row], nan=-np.inf, posinf=np.finfo(np.float32).max, neginf=-np.inf)
            ranked = [item for item in np.lexsort((tie, -finite)) if np.isfinite(finite[item])][:k]
            assert indices[row].tolist() == ranked + [-1] * (min(k, n_items) - len(ranked)), (trial, row)
            np.testing.assert_array_equal(values[row][: len(ranked)], finite[ranked])


def test_a_read_only_batch_is_ranked_without_a_warning() -> None:
    # torch warns once per process about a read-only array: a fresh interpreter, so that no earlier test has
    # spent that warning, with warnings as errors
    script = """
import numpy as np
from foryou.models.ranking import tie_break_order, top_k
scores = np.random.default_rng(3).standard_normal((4, 100_000)).astype(np.float32)  # a batch: torch's path
expected = top_k(scores, 10, tie_break_order(100_000))
scores.flags.writeable = False  # e.g. a bundle's stored array
got = top_k(scores, 10, tie_break_order(100_000))
assert (got[0] == expected[0]).all() and (got[0][:, 0] == np.argmax(scores, axis=1)).all()
"""
    finished = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", script], capture_output=True,
                              text=True, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]


def test_sparse_top_k_is_top_k_of_the_rows_with_absent_entries_at_minus_inf() -> None:
    rng = np.random.default_rng(2)
    for trial in range(200):
        n_rows, n_items = int(rng.integers(1, 10)), int(rng.integers(1, 40))
        stored = rng.random((n_rows, n_items)) < 0.4
        values = rng.integers(0, 4, size=(n_rows, n_items)).astype(np.float32)  # many ties, zeros stored
        values[rng.random(values.shape) < 0.05] = np.nan
        values[rng.random(values.shape) < 0.05] = np.inf
        values[rng.random(values.shape) < 0.05] = -np.inf
        rows = sp.csr_matrix((values[stored], np.nonzero(stored)), shape=(n_rows, n_items))
        excluded = sp.csr_matrix(rng.random((n_rows, n_items)) < 0.2)
        allowed = rng.random(n_items) < 0.8
        dense = np.where(stored, values, -np.inf).astype(np.float32)
        dense[excluded.toarray()] = -np.inf
        dense[:, ~allowed] = -np.inf
        k, tie = int(rng.integers(1, n_items + 3)), tie_break_order(n_items, seed=trial)
        got = sparse_top_k(rows, k, tie, excluded, allowed)
        expected = top_k(dense, k, tie)
        np.testing.assert_array_equal(got[0], expected[0], err_msg=str(trial))
        np.testing.assert_array_equal(got[1], expected[1], err_msg=str(trial))
    unsorted = sp.csr_matrix((np.array([1.0, 2.0, 2.0], np.float32), np.array([3, 1, 3]), np.array([0, 3])),
                             shape=(1, 4))  # duplicates add up (item 3: 3.0), as when densified
    assert sparse_top_k(unsorted, 3, np.arange(4))[0].tolist() == [[3, 1, -1]]


@pytest.mark.parametrize("n_items", [5_000, 300_000])
def test_top_k_on_a_wide_catalog_matches_a_full_sort(n_items: int) -> None:
    # wide rows: where a tie crosses the k-th place (co-occurrence counts, a sparse source's zeros) or a row has
    # fewer than k items, the row is read again at its k-th value; the answer must be the full sort's
    rng = np.random.default_rng(1)
    rows = 6 if n_items < 100_000 else 2
    tie = tie_break_order(n_items)
    normal = rng.standard_normal((rows, n_items)).astype(np.float32)
    counts = rng.poisson(0.3, size=(rows, n_items)).astype(np.float32)
    counts[counts == 0] = -np.inf
    sparse = np.full((rows, n_items), -np.inf, dtype=np.float32)
    zeros = np.zeros((rows, n_items), dtype=np.float32)
    for row in range(rows):
        sparse[row, rng.choice(n_items, 3 + 10 * row, replace=False)] = rng.integers(0, 3, 3 + 10 * row)
        zeros[row, rng.choice(n_items, 50 * row, replace=False)] = rng.random(50 * row)
        zeros[row, rng.choice(n_items, 20, replace=False)] = -np.inf  # seen items
    for scores in (normal, counts, sparse, zeros):
        full = [[item for item in np.lexsort((tie, -row)) if np.isfinite(row[item])] for row in scores]
        for k in (1, 10, 50, 300):
            indices, values = top_k(scores, k, tie)
            for row in range(len(scores)):
                ranked = full[row][:k]
                assert indices[row].tolist() == ranked + [-1] * (k - len(ranked)), (k, row)
                np.testing.assert_array_equal(values[row][: len(ranked)], scores[row][ranked])


def test_a_batch_of_scores_stays_within_its_memory_on_any_catalog() -> None:
    assert users_per_batch(3_000) == 1_024 and users_per_batch(100_000) == 1_024
    assert users_per_batch(1_000_000) == 134 and users_per_batch(10**12) == 1
    assert users_per_batch(100_000, most=64) == 64
    for n_items in (131_073, 1_000_000, 7_777_777):
        assert users_per_batch(n_items) * n_items * 4 <= SCORE_BATCH_BYTES

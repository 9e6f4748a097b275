"""Top-k selection with a deterministic tie-break and cosine-ready unit rows, shared by every recommender, the
evaluation and the service."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from foryou.models.sparse_rows import stored_rows

SORT_SELECT = 65_536  # up to this many scores in all, a sort finds each row's k-th value (torch's call costs more)
SCORE_BATCH_BYTES = 512 * 2**20  # one batch of users' float32 scores over the catalog (1,024 users up to 131k items)


def tie_break_order(n_items: int, seed: int = 0) -> np.ndarray:
    """A fixed random rank per item: among equal scores the lower rank wins (never raw id order, which leaks)."""
    order = np.empty(n_items, dtype=np.int64)
    order[np.random.default_rng(seed).permutation(n_items)] = np.arange(n_items)
    return order


def users_per_batch(n_items: int, most: int = 1024) -> int:
    """Users scored against the whole catalog at once: at most `most`, fewer on a wide catalog, so that a batch's
    (users x items) float32 scores stay within SCORE_BATCH_BYTES (with the copy that ranking makes, about twice
    that): 1,024 users at 100,000 items, 134 at 1,000,000 (4 GB a batch otherwise)."""
    return int(max(1, min(most, SCORE_BATCH_BYTES // (4 * max(n_items, 1)))))


def top_k(scores: np.ndarray, k: int, tie_order: np.ndarray, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Best `k` columns of each row of `scores` (b, n), ties broken by `tie_order` (n,).

    Returns (indices (b, min(k, n)) int64, values float32). Entries that are -inf or NaN (excluded items)
    come back as index -1 and value -inf, so a row never holds an excluded item. `overwrite`: the caller's
    float32 `scores` may be changed (it is a copy the caller made), which saves a copy when it holds NaN or +inf.

    Each row's k-th and (k + 1)-th largest values (`_kth_and_next`) settle it when the (k + 1)-th is below the
    k-th: the k columns at or above it are the answer, only their order among equal values is the tie-break's.
    Where a tie crosses the k-th place, or the row has fewer than k items, the row is read again at its k-th
    value. 1,024 users of a 100,000-item catalog, k = 10: ~0.1 ms a row, half what a sampled bound and a loop over
    every row took (benchmarks/results/top_k.md).
    """
    scores = _excluded_as_minus_inf(scores, overwrite)
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    indices = np.full((n_rows, k), -1, dtype=np.int64)
    values = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if k == 0 or n_rows == 0:
        return indices, values
    kth, following, settled_columns = _kth_and_next(scores, k)
    settled = np.isfinite(kth) & (following < kth)  # no tie crosses the k-th place: the k best are those >= kth
    rows = np.flatnonzero(settled)
    columns = settled_columns(rows)
    best = scores[rows[:, None], columns]
    order = np.lexsort((tie_order[columns], -best), axis=1)
    indices[rows] = np.take_along_axis(columns, order, axis=1)
    values[rows] = np.take_along_axis(best, order, axis=1)
    for row in np.flatnonzero(~settled).tolist():
        row_scores = scores[row]
        if np.isfinite(kth[row]):  # a tie at the k-th value: those above it, then the tie-break's first at it
            candidates = _above_then_first_at(row_scores, tie_order, kth[row], k)
        else:  # fewer than k items are not excluded: all of them
            candidates = np.flatnonzero(row_scores > -np.inf)
        chosen = candidates[np.lexsort((tie_order[candidates], -row_scores[candidates]))]
        indices[row, : len(chosen)] = chosen
        values[row, : len(chosen)] = row_scores[chosen]
    return indices, values


def sparse_top_k(rows: sp.csr_matrix, k: int, tie_order: np.ndarray, excluded: sp.csr_matrix | None = None,
                 allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`top_k` of rows whose absent entries are -inf (a CSR of a few candidates per user), read from the stored
    entries alone: the answer `top_k` gives on the dense rows, at the cost of the entries instead of the catalog
    (an evaluation of 200 candidates per user over 100,000 items densified and ranked every row). `excluded`:
    (b, n) sparse rows of items left out (seen); `allowed`: (n,) bool, the items that may rank."""
    rows = sp.csr_matrix(rows)
    if not rows.has_canonical_format:  # duplicates add up, as they do when densified
        rows = rows.copy()
        rows.sum_duplicates()
    n_rows, n_items = rows.shape
    k = min(k, n_items)
    owners = stored_rows(rows)
    items = rows.indices.astype(np.int64)
    values = np.asarray(rows.data, dtype=np.float32)
    kept = values > -np.inf  # also drops NaN: both are excluded, as in `top_k`
    if allowed is not None:
        kept &= np.asarray(allowed, dtype=bool)[items]
    if excluded is not None and excluded.nnz:
        left_out = stored_rows(excluded) * n_items + excluded.indices
        kept &= ~np.isin(owners * n_items + items, left_out)
    owners, items = owners[kept], items[kept]
    values = np.minimum(values[kept], np.finfo(np.float32).max)  # +inf as the largest float, as in `top_k`
    order = np.lexsort((tie_order[items], -values, owners))
    owners, items, values = owners[order], items[order], values[order]
    position = np.arange(len(owners)) - np.searchsorted(owners, owners)  # rank within the row, 0 first
    chosen = position < k
    indices = np.full((n_rows, k), -1, dtype=np.int64)
    best = np.full((n_rows, k), -np.inf, dtype=np.float32)
    indices[owners[chosen], position[chosen]] = items[chosen]
    best[owners[chosen], position[chosen]] = values[chosen]
    return indices, best


def _kth_and_next(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Each row's k-th and (k + 1)-th largest value ((b,) each; -inf past the row's width) and a function that gives
    the k columns at or above the k-th value of rows where no tie crosses it. A batch takes torch's top-k
    selection (a partial sort, threaded over rows); a few scores (a request's row) a sort, which costs less than
    torch's call."""
    n_items = scores.shape[1]
    if scores.size <= SORT_SELECT:
        ordered = np.sort(scores, axis=1)
        following = ordered[:, n_items - k - 1] if k < n_items else np.full(len(scores), -np.inf, np.float32)
        kth = ordered[:, n_items - k]
        return kth, following, lambda rows: np.nonzero(scores[rows] >= kth[rows, None])[1].reshape(len(rows), k)
    with warnings.catch_warnings():  # torch warns on a read-only array (a stored one): top-k only reads it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        selected = torch.topk(torch.from_numpy(scores), min(k + 1, n_items))
    found_values, found_columns = (part.numpy() for part in selected)
    following = found_values[:, k] if k < n_items else np.full(len(scores), -np.inf, np.float32)
    return found_values[:, k - 1], following, lambda rows: found_columns[rows, :k]


def _above_then_first_at(values: np.ndarray, ties: np.ndarray, cut: float, k: int) -> np.ndarray:
    """Positions of the `values` above `cut` (at most their k-th largest); when fewer than k are, also those at it
    whose `ties` (tie-break ranks) come first, k in all; unordered. A sparse source ties most of the catalog at
    zero: only the tied positions that can rank are kept for the sort."""
    chosen = np.flatnonzero(values > cut)
    if len(chosen) >= k:
        return chosen
    tied = np.flatnonzero(values == cut)
    if len(tied) > k - len(chosen):
        tied = tied[np.argpartition(ties[tied], k - len(chosen) - 1)[: k - len(chosen)]]
    return np.concatenate([chosen, tied])


def _excluded_as_minus_inf(scores: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """A C-ordered float32 `scores` with NaN as -inf (excluded) and +inf as the largest float, only read from here
    on: `scores` itself when it holds neither (one read pass: the maximum is NaN or +inf exactly when some entry
    is), else a corrected copy, or the caller's float32 array corrected in place when `overwrite`."""
    found = np.ascontiguousarray(scores, dtype=np.float32)
    if found.max(initial=-np.inf) < np.inf:
        return found
    if found is scores and not overwrite:
        found = found.copy()
    found[np.isnan(found)] = -np.inf
    found[found == np.inf] = np.finfo(np.float32).max
    return found


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: inner product becomes cosine."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

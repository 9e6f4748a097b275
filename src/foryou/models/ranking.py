"""Top-k selection with a deterministic tie-break and cosine-ready unit rows, shared by every recommender, the
evaluation and the service."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from foryou.models.sparse_rows import stored_rows

SAMPLE_STRIDE = 16  # every 16th column bounds a row's k-th value (sparser on a catalog past 262,144 items)
SAMPLE_PER_K = 8  # ... while the sample keeps >= 8 columns per item asked for (else every column is read)
SORT_SELECT = 16_384  # up to this many values a row's k-th largest is read from a sort (`_kth_largest`)
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
    float32 `scores` may be changed (it is a copy the caller made), which saves one copy of the matrix.

    A row's k-th largest value is at least the k-th largest of any subset of its columns, so the k-th value of
    every SAMPLE_STRIDE-th column is a lower bound: only the columns above it are ranked exactly, or, when fewer
    than k are, those and the tie-break's first at it (the k-th value is then the bound). On a catalog of 100,000
    items that reads each row once instead of partitioning all of it; the answer is the same. A sparse source's
    row (most of the catalog tied at zero) costs what a dense row does: 0.2 ms at 100,000 items, where
    partitioning the tied columns took 9 ms (benchmarks/results/top_k.md).
    """
    scores = _excluded_as_minus_inf(scores, overwrite)
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    indices = np.full((n_rows, k), -1, dtype=np.int64)
    values = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if k == 0:
        return indices, values
    bounds = _kth_lower_bounds(scores, k)
    for row in range(n_rows):
        row_scores, bound = scores[row], bounds[row]
        if np.isfinite(bound):  # the k-th value is at least the bound: those above it, or those and the first at it
            candidates = _above_then_first_at(row_scores, tie_order, bound, k)
        else:
            candidates = np.flatnonzero(np.isfinite(row_scores))
        if len(candidates) > k:  # more than k above the bound: the row's exact k-th value among them
            found = row_scores[candidates]
            kth = _kth_largest(found[None, :], k)[0]
            candidates = candidates[_above_then_first_at(found, tie_order[candidates], kth, k)]
        order = np.lexsort((tie_order[candidates], -row_scores[candidates]))[:k]
        chosen = candidates[order]
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


def _kth_lower_bounds(scores: np.ndarray, k: int) -> np.ndarray:
    """(b,) a value <= each row's k-th largest (1 <= k <= n): the k-th largest of every stride-th column, a sample
    of at least SAMPLE_PER_K * k columns (all of them when the catalog is small next to k, which makes it exact)."""
    n_items = scores.shape[1]
    wanted = max(SAMPLE_STRIDE, -(-n_items // SORT_SELECT))  # a wider catalog samples sparser: a sample it can sort
    stride = max(1, min(wanted, n_items // (SAMPLE_PER_K * k)))
    return _kth_largest(scores[:, ::stride], k)


def _kth_largest(values: np.ndarray, k: int) -> np.ndarray:
    """(b,) the k-th largest of each row of `values` (b, m), 1 <= k <= m. numpy's introselect slows ~10-30x on a
    row whose values mostly tie below the k-th (a sparse source's zeros or exclusions: 170 us for 3,000 values,
    8 ms for 100,000), where its SIMD sort does not (10-40 us for 3,000): rows up to SORT_SELECT wide are sorted."""
    width = values.shape[1]
    if width <= SORT_SELECT:
        return np.sort(values, axis=1)[:, width - k]
    return np.partition(values, width - k, axis=1)[:, width - k]


def _excluded_as_minus_inf(scores: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """A float32 `scores` with NaN as -inf (excluded) and +inf as the largest float: a copy unless `overwrite`
    (then the caller's float32 array itself). One read pass and no writes when there is neither: the maximum is
    NaN or +inf exactly when some entry is."""
    scores = np.asarray(scores, dtype=np.float32) if overwrite else np.array(scores, dtype=np.float32)
    if not scores.max(initial=-np.inf) < np.inf:
        scores[np.isnan(scores)] = -np.inf
        scores[scores == np.inf] = np.finfo(np.float32).max
    return scores


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: inner product becomes cosine."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

"""Top-k selection with a deterministic tie-break and cosine-ready unit rows, shared by every recommender, the
evaluation and the service."""

from __future__ import annotations

import numpy as np


def tie_break_order(n_items: int, seed: int = 0) -> np.ndarray:
    """A fixed random rank per item: among equal scores the lower rank wins (never raw id order, which leaks)."""
    order = np.empty(n_items, dtype=np.int64)
    order[np.random.default_rng(seed).permutation(n_items)] = np.arange(n_items)
    return order


def top_k(scores: np.ndarray, k: int, tie_order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best `k` columns of each row of `scores` (b, n), ties broken by `tie_order` (n,).

    Returns (indices (b, min(k, n)) int64, values float32). Entries that are -inf or NaN (excluded items)
    come back as index -1 and value -inf, so a row never holds an excluded item.
    """
    scores = _excluded_as_minus_inf(scores)
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    indices = np.full((n_rows, k), -1, dtype=np.int64)
    values = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if k == 0:
        return indices, values
    kth = np.partition(scores, n_items - k, axis=1)[:, n_items - k]  # each row's k-th largest
    for row in range(n_rows):
        row_scores = scores[row]
        candidates = np.flatnonzero(row_scores >= kth[row]) if np.isfinite(kth[row]) else np.flatnonzero(
            np.isfinite(row_scores)
        )
        order = np.lexsort((tie_order[candidates], -row_scores[candidates]))[:k]
        chosen = candidates[order]
        indices[row, : len(chosen)] = chosen
        values[row, : len(chosen)] = row_scores[chosen]
    return indices, values


def _excluded_as_minus_inf(scores: np.ndarray) -> np.ndarray:
    """A float32 copy of `scores` with NaN as -inf (excluded) and +inf as the largest float; the caller's array is
    not changed. Two read passes and no writes when there is neither (np.nan_to_num made five on every call)."""
    scores = np.array(scores, dtype=np.float32)
    nan, posinf = np.isnan(scores), np.isposinf(scores)
    if nan.any() or posinf.any():
        scores[nan] = -np.inf
        scores[posinf] = np.finfo(np.float32).max
    return scores


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: inner product becomes cosine."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

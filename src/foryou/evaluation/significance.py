"""Paired bootstrap over users: is one model ahead of another beyond the noise of a few hundred users?

Two models scored on the same users give paired per-user metrics (e.g. NDCG@10 from `metrics.ndcg_at_k`);
resampling users (not models) keeps each user's pair together, so the per-user difficulty cancels and the
interval is far tighter than comparing two independent means.
"""

from __future__ import annotations

import numpy as np

# Resample this many users per block so that (block, users) index arrays stay near this many entries.
_BLOCK_ENTRIES = 2_000_000


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Mean of a - b over users, its percentile bootstrap interval and a two-sided bootstrap p-value.

    a, b: (users,) per-user metric of two models on the same users, in the same order, no NaN.
    Returns (mean_diff, low, high, p_value). The p-value is twice the smaller tail of the resampled mean
    differences at 0, with a +1 correction so that it is never exactly 0 from a finite number of resamples.
    Deterministic for a given seed.
    """
    if np.shape(a) != np.shape(b) or np.ndim(a) != 1:
        raise ValueError(f"a and b must be 1-d arrays of the same length, got {np.shape(a)} and {np.shape(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.size == 0:
        raise ValueError("paired_bootstrap needs at least one user")
    if np.isnan(diff).any():
        raise ValueError("a and b must not contain NaN (drop users without a target first)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    means = _resampled_means(diff, n_resamples, np.random.default_rng(seed))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    tail = min(np.count_nonzero(means <= 0.0), np.count_nonzero(means >= 0.0))
    p_value = min(1.0, 2.0 * (tail + 1) / (n_resamples + 1))
    return float(diff.mean()), float(low), float(high), float(p_value)


def _resampled_means(diff: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples,) means of diff over users drawn with replacement, in blocks to bound memory."""
    n = diff.size
    block = max(1, _BLOCK_ENTRIES // n)
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = diff[idx].mean(axis=1)
    return out


def bootstrap_interval(
    values: np.ndarray, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of one model's per-user metric and its percentile bootstrap interval over users: (mean, low, high).

    The paired bootstrap against a model scoring 0 for every user: the same resampling, so the interval of a
    model and the interval of a difference between two models come from one procedure.
    """
    values = np.asarray(values, dtype=np.float64)
    mean, low, high, _ = paired_bootstrap(values, np.zeros_like(values), n_resamples, seed, confidence)
    return mean, low, high

"""Business rules applied after retrieval, to any strategy's ranked candidates: at most n items per category,
and MMR diversification (maximal marginal relevance, Carbonell & Goldstein 1998).

Both only reorder or drop candidates; the caller fetches more candidates than k so that k items remain whenever
k items pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def cap_per_category(order: np.ndarray, categories: Sequence[tuple[str, ...]], limit: int) -> np.ndarray:
    """Positions of `order` kept when at most `limit` items share a category (an item counts against each of
    its categories; items without one are never capped), in the given order."""
    counts: Counter[str] = Counter()
    kept = []
    for position, label in enumerate(order.tolist()):
        own = categories[label]
        if any(counts[category] >= limit for category in own):
            continue
        counts.update(own)
        kept.append(position)
    return np.array(kept, dtype=np.int64)


def mmr_order(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Greedy MMR over candidates with `scores` (n,) and unit `vectors` (n, d): each step takes the candidate
    maximising (1 - diversity) * relevance - diversity * (max cosine to those already taken), relevance being the
    score min-max scaled to [0, 1]. Returns the first min(k, n) positions in the order taken."""
    n = len(scores)
    if n == 0 or diversity <= 0:
        return np.arange(min(k, n), dtype=np.int64)
    spread = float(scores.max() - scores.min())
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(n)
    closest = np.full(n, -np.inf)  # max similarity to the items taken so far
    taken = np.zeros(n, dtype=bool)
    order = []
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        gain = np.where(taken, -np.inf, (1 - diversity) * relevance - diversity * penalty)
        best = int(np.argmax(gain))
        order.append(best)
        taken[best] = True
        closest = np.maximum(closest, vectors @ vectors[best])
    return np.array(order, dtype=np.int64)

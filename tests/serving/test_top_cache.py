"""The per-source cache of a trained user's top items: a kept list answers only what it holds."""

from __future__ import annotations

import numpy as np

from foryou.serving.retrieval import Rules, TopCache, TopK

SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], np.float32)  # labels 0..5, best first


def counting_source(calls: list[tuple[int, tuple[int, ...]]]) -> TopK:
    """A source over SCORES that records each (k, allowed labels) it is asked for."""

    def top(k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append((k, tuple(np.flatnonzero(mask).tolist())))
        labels = np.flatnonzero(mask)[:k]
        return labels, SCORES[labels]
    return top


def test_a_kept_list_serves_a_smaller_k_and_is_recomputed_for_a_larger_one() -> None:
    calls: list[tuple[int, tuple[int, ...]]] = []
    cache, top = TopCache(), counting_source(calls)
    rules = Rules(None, np.array([1]))
    key = ("ease", 7, rules.key())
    labels, _ = cache.top(key, 3, rules.mask(6), top)
    assert labels.tolist() == [0, 2, 3] and calls == [(3, (0, 2, 3, 4, 5))]
    assert cache.top(key, 2, rules.mask(6), top)[0].tolist() == [0, 2] and len(calls) == 1  # kept
    assert cache.top(key, 4, rules.mask(6), top)[0].tolist() == [0, 2, 3, 4] and len(calls) == 2  # more asked
    assert cache.top(key, 3, rules.mask(6), top)[0].tolist() == [0, 2, 3] and len(calls) == 2


def test_a_list_shorter_than_asked_holds_everything_the_source_has() -> None:
    calls: list[tuple[int, tuple[int, ...]]] = []
    cache, top = TopCache(), counting_source(calls)
    rules = Rules(np.array([4, 5]), np.zeros(0, np.int64))
    key = ("item_knn", 1, rules.key())
    assert cache.top(key, 10, rules.mask(6), top)[0].tolist() == [4, 5]
    assert cache.top(key, 50, rules.mask(6), top)[0].tolist() == [4, 5] and len(calls) == 1


def test_other_rules_are_another_entry() -> None:
    calls: list[tuple[int, tuple[int, ...]]] = []
    cache, top = TopCache(), counting_source(calls)
    first, second = Rules(None, np.array([0])), Rules(None, np.array([0, 2]))
    assert first.key() != second.key() and first.key() == Rules(None, np.array([0])).key()
    cache.top(("als", 1, first.key()), 2, first.mask(6), top)
    assert cache.top(("als", 1, second.key()), 2, second.mask(6), top)[0].tolist() == [1, 3] and len(calls) == 2

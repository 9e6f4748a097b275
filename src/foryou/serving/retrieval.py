"""Candidates from named sources for one user under the request's rules: the searches that the single-model
strategies answer with and that the ranking stage merges.

Sources (the ranking stage's names): `two_tower` (user query -> ANN index), `content` (recent items' content
profile -> content index), `als` / `ease` / `item_knn` (the served baselines over the full history; ALS folds it
in), `recent_pop` (recent popularity, ranked once at load), `cooccurrence` (items held together with the
user's last items) and `transitions` (items others chose right after them). Each answers (labels, scores) best
first, or None when it cannot place the user.

A trained user without live events gets the same answer from the baselines, co-occurrence and transitions on every
request with the same rules, so each source's top k under the request's rules is kept (LRU, USER_CACHE entries,
dropped with the state) and serves any later request with those rules for up to that k. A first request computes only
what it returns: the top k under its own rules, not a longer unfiltered list to filter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from foryou.models.ranking import tie_break_order, top_k
from foryou.rerank.candidates import (
    CONTENT_DECAY,
    CooccurrenceSource,
    content_profiles,
    recency_weights,
)
from foryou.rerank.transitions import TRANSITIONS, TransitionSource
from foryou.serving.catalog import rule_mask
from foryou.serving.context import UserContext
from foryou.serving.lru import LruCache
from foryou.serving.state import ServingState

POPULAR = "popular"
RECENT_POP = "recent_pop"
SOURCE_STRATEGY = {"als": "collab"}  # candidate source -> the served strategy whose model it is
Found = tuple[np.ndarray, np.ndarray]  # (labels (n,) int64, scores (n,) float32), best first
TopK = Callable[[int, np.ndarray], Found]  # (k, allowed mask) -> a source's top k
USER_CACHE = 20_000  # (source, user, rules) entries kept


@dataclass
class Rules:
    """A request's business rules over catalog labels: `allowed` (None: every label) minus `denied`."""

    allowed: np.ndarray | None
    denied: np.ndarray
    _masks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _key: bytes | None = field(default=None, repr=False)

    def key(self) -> bytes:
        """A digest of the rules (equal rules, equal key): part of the key of an answer kept between requests."""
        if self._key is None:
            digest = hashlib.blake2b(digest_size=16)
            allowed = b"*" if self.allowed is None else np.asarray(self.allowed, np.int64).tobytes()
            for part in (np.int64(len(allowed)).tobytes(), allowed, np.asarray(self.denied, np.int64).tobytes()):
                digest.update(part)
            self._key = digest.digest()
        return self._key

    def mask(self, n_items: int) -> np.ndarray:
        """(n_items,) bool of the labels a request may receive; built once per size and request."""
        if n_items not in self._masks:
            self._masks[n_items] = rule_mask(n_items, self.allowed, self.denied)
        return self._masks[n_items]


class TopCache:
    """(source, user, rules) -> the source's top items under those rules and the k they were computed for,
    shared by the request threads."""

    def __init__(self, size: int = USER_CACHE) -> None:
        self._entries: LruCache[tuple[np.ndarray, np.ndarray, int]] = LruCache(size)

    def top(self, key: Hashable, k: int, mask: np.ndarray, compute: TopK) -> Found:
        """The top k of `compute` under `mask` (the rules of `key`), from the kept list when it holds them: it was
        computed for at least k, or it holds everything the source had."""
        kept = self._entries.get(key)
        if kept is not None:
            labels, scores, asked = kept
            if k <= asked or len(labels) < asked:
                return labels[:k], scores[:k]
        labels, scores = compute(k, mask)
        self._entries.put(key, (labels, scores, k))
        return labels, scores


class Retrieval:
    """The candidate sources over one `ServingState`; what is fixed per bundle is computed here, once."""

    def __init__(self, state: ServingState, cooccurrence: CooccurrenceSource | None = None,
                 transitions: TransitionSource | None = None) -> None:
        self.state = state
        self.cooccurrence = cooccurrence
        self.transitions = transitions
        fallback = state.bundle.fallback
        scores = fallback.score_histories(sp.csr_matrix((1, fallback.n_items), dtype=np.float32))  # type: ignore[attr-defined]
        labels, values = fallback.rank(scores, fallback.n_items)  # the whole catalog, once: filtered per request
        keep = labels[0] >= 0
        self.popular_labels, self.popular_scores = labels[0][keep], values[0][keep]
        self.popular_row = np.asarray(scores[0], np.float32)  # label -> its score
        self.tie_order = tie_break_order(0 if cooccurrence is None else cooccurrence.n_items)
        self.cache = TopCache()

    def candidates(self, name: str, context: UserContext, k: int, rules: Rules, last_n: int) -> Found | None:
        """Top-k of source `name` for the user; `last_n`: recent items read by co-occurrence and content."""
        if name == "two_tower":
            return self.two_tower(context, k, rules)
        if name == RECENT_POP:
            return self.popular(k, rules)
        if name == "cooccurrence":
            return self.cooccurring(context, k, rules)
        if name == TRANSITIONS:
            return self.following(context, k, rules)
        if name == "content":
            return self.content(context, k, rules, last_n, CONTENT_DECAY)
        if SOURCE_STRATEGY.get(name, name) in self.state.bundle.served:
            return self.served(SOURCE_STRATEGY.get(name, name), context, k, rules)
        return None

    def two_tower(self, context: UserContext, k: int, rules: Rules) -> Found | None:
        vector = context.vector
        return None if vector is None else self.search(self.state.index, vector, k, rules)

    def search(self, index: Any, vector: np.ndarray, k: int, rules: Rules) -> Found:
        """Top-k live labels of `index` by inner product with `vector` (d,), under the rules."""
        labels, scores = index.search(vector[None, :], k, rules.allowed, rules.denied)
        keep = labels[0] >= 0
        return labels[0][keep], scores[0][keep]

    def popular(self, k: int, rules: Rules) -> Found:
        """The recent-popularity ranking computed at load, less what the rules leave out: one mask lookup."""
        passing = rules.mask(self.state.bundle.fallback.n_items)[self.popular_labels]
        chosen = np.flatnonzero(passing)[:k]
        return self.popular_labels[chosen], self.popular_scores[chosen]

    def content(self, context: UserContext, k: int, rules: Rules, last_n: int, decay: float) -> Found | None:
        """Content index search with the user's profile over their `last_n` latest items in that index."""
        index, profile = self.state.content_index, self._profile(context, last_n, decay)
        return None if index is None or profile is None else self.search(index, profile, k, rules)

    def _profile(self, context: UserContext, last_n: int, decay: float) -> np.ndarray | None:
        """The user's content profile over their `last_n` latest items in the content index, once per request;
        None without such an item."""
        index = self.state.content_index
        if index is None:
            return None

        def profile() -> np.ndarray | None:
            assert index is not None
            recent = context.timeline.recent_where(index.contains, last_n)
            if not recent:
                return None
            weights = recency_weights(len(recent), decay)[None, :]
            return content_profiles(weights, index.vectors(np.array(recent, dtype=np.int64)))[0]

        return self._once(f"content:{last_n}:{decay}", context, profile)

    def served(self, strategy: str, context: UserContext, k: int, rules: Rules) -> Found | None:
        """A served baseline (ALS, EASE, ItemKNN): its stored row for a trained user without live events, else
        the scores of the whole history as a raw one (ALS folds it in)."""
        model = self.state.bundle.served[strategy]
        if (context.user is None or context.live) and self._baseline_row(strategy, context) is None:
            return None  # a raw history computes its row on every request anyway: here, once

        def top(m: int, mask: np.ndarray) -> Found:
            row = self._baseline_row(strategy, context)
            assert row is not None
            labels, values = model.rank(row[None, :], m, None, mask)
            keep = labels[0] >= 0
            return labels[0][keep], values[0][keep]

        return self._top(strategy, context, k, rules, model.n_items, top)

    def _baseline_row(self, strategy: str, context: UserContext) -> np.ndarray | None:
        """A served baseline's (n_items,) scores for the user, once per request; None without a history it knows."""
        model = self.state.bundle.served[strategy]

        def row() -> np.ndarray | None:
            if context.user is not None and not context.live:
                return np.asarray(model.score_users(np.array([context.user]))[0], np.float32)
            rows = context.seen[context.seen < model.n_items]
            if len(rows) == 0:
                return None
            history = sp.csr_matrix((np.ones(len(rows), np.float32), rows, [0, len(rows)]), shape=(1, model.n_items))
            return np.asarray(model.score_histories(history)[0], np.float32)  # type: ignore[attr-defined]

        return self._once(strategy, context, row)

    def cooccurring(self, context: UserContext, k: int, rules: Rules) -> Found | None:
        """Items held together with the user's last items (the bundle's co-occurrence source); -inf: none."""
        source, history = self.cooccurrence, context.timeline.labels
        if source is None or not len(history):
            return None
        n = source.n_items

        def top(m: int, mask: np.ndarray) -> Found:
            scores = np.where(mask, self._cooccurrence_row(context), np.float32(-np.inf))
            labels, values = top_k(scores[None, :], min(m, n), self.tie_order, overwrite=True)
            keep = np.isfinite(values[0])
            return labels[0][keep].astype(np.int64), values[0][keep]

        return self._top("cooccurrence", context, k, rules, n, top)

    def _cooccurrence_row(self, context: UserContext) -> np.ndarray:
        """The co-occurrence source's (n_items,) scores of the user's last items, once per request."""
        source = self.cooccurrence
        assert source is not None
        return self._once("cooccurrence", context, lambda: source.scores_one(
            *context.timeline.recent_below(source.n_items, source.last_n, source.decay)))

    def following(self, context: UserContext, k: int, rules: Rules) -> Found | None:
        """Items others chose right after the user's last items (the bundle's transition source), ranked among
        the few it proposes, ties as `top_k` breaks them."""
        source, history = self.transitions, context.timeline.labels
        if source is None or not len(history):
            return None
        n = source.n_items

        def top(m: int, mask: np.ndarray) -> Found:
            labels, scores = self._following(context)
            allowed = mask[labels]
            labels, scores = labels[allowed], scores[allowed]
            order = np.lexsort((self.tie_order[labels], -scores))[:m]
            return labels[order], scores[order]

        return self._top(TRANSITIONS, context, k, rules, n, top)

    def _following(self, context: UserContext) -> Found:
        """The transition source's (items it proposes, sorted; their scores) for the user, once per request."""
        source = self.transitions
        assert source is not None
        return self._once(TRANSITIONS, context, lambda: source.sparse_scores(
            *context.timeline.recent_below(source.n_items, source.last_n, source.decay)))

    def scores_at(self, name: str, context: UserContext, labels: np.ndarray, last_n: int) -> np.ndarray:
        """(n,) float32 score of source `name` for the user at each of `labels`, NaN where it has none: what the
        offline frame's `complete_scores` reads for the merged candidates a source did not propose."""
        labels = np.asarray(labels, np.int64)
        missing = np.full(len(labels), np.nan, dtype=np.float32)
        if name == "two_tower":
            vector = context.vector
            return missing if vector is None else self.state.index.inner_products(vector, labels)
        if name == "content":
            index, profile = self.state.content_index, self._profile(context, last_n, CONTENT_DECAY)
            return missing if index is None or profile is None else index.inner_products(profile, labels)
        if name == RECENT_POP:
            return _at(self.popular_row, labels)
        if name == "cooccurrence":
            has_history = self.cooccurrence is not None and len(context.timeline.labels)
            return _at(self._cooccurrence_row(context), labels) if has_history else missing
        if name == TRANSITIONS:
            if self.transitions is None or not len(context.timeline.labels):
                return missing
            proposed, scores = self._following(context)
            if len(proposed):
                where = np.minimum(np.searchsorted(proposed, labels), len(proposed) - 1)
                hit = proposed[where] == labels
                missing[hit] = scores[where[hit]]
            return missing
        strategy = SOURCE_STRATEGY.get(name, name)
        row = self._baseline_row(strategy, context) if strategy in self.state.bundle.served else None
        return missing if row is None else _at(row, labels)

    @staticmethod
    def _once(name: str, context: UserContext, compute: Callable[[], Any]) -> Any:
        """`compute()` once per request and source (kept in the request's context); callers do not change it."""
        if name not in context.rows:
            context.rows[name] = compute()
        return context.rows[name]

    def _top(self, name: str, context: UserContext, k: int, rules: Rules, n_items: int, top: TopK) -> Found:
        """`top(k, the rules' mask over n_items)`, through the cache for a trained user without live events (fixed
        scores)."""
        mask = rules.mask(n_items)
        if context.user is None or context.live:
            return top(k, mask)
        return self.cache.top((name, context.user, rules.key()), k, mask, top)


def _at(row: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) float32 `row[labels]`, NaN for labels past the row and for non-finite scores (no evidence)."""
    values = np.full(len(labels), np.nan, dtype=np.float32)
    inside = labels < len(row)
    values[inside] = row[labels[inside]]
    values[~np.isfinite(values)] = np.nan
    return values

"""Request -> result: a user's history (trained + live + given) through a strategy, business rules and reasons.

Strategies: `two_tower` (user tower vector -> ANN index), `content` (recent items' content vectors -> content
index), `collab` / `ease` / `item_knn` (those baselines over the full history; ALS folds it in), `popular`
(recent popularity). A strategy that cannot place the user (no usable history) answers with `popular` and says
so in `fallback`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foryou.errors import UnknownIdError
from foryou.serving.catalog import Filters
from foryou.serving.context import UserContext
from foryou.serving.explain import Explainer
from foryou.serving.reranking import StageRanker
from foryou.serving.retrieval import POPULAR, Found, Retrieval, Rules
from foryou.serving.rules import cap_per_category, mmr_order
from foryou.serving.state import Event, ServingState

__all__ = ["POPULAR", "Query", "Recommender", "Result", "UserContext"]  # the service's names for a request
CONTENT_HISTORY = 20  # recent items whose content vectors make the `content` query
CONTENT_STRATEGY_DECAY = 0.5 ** (1 / 5)  # the 5th most recent item weighs half as much as the last one


@dataclass
class Query:
    """One recommendation request, validated."""

    user_id: str | None
    interactions: list[Event]
    k: int
    strategy: str
    filters: Filters = field(default_factory=Filters)
    exclude_seen: bool = True
    explain: bool = False
    seen_event_types: list[str] | None = None  # None: every event type makes an item seen


@dataclass
class Result:
    """Ranked items (dicts ready for the response) and how they were made."""

    strategy: str
    items: list[dict[str, Any]]
    fallback: str | None
    warnings: list[str]
    model_version: str


class Recommender:
    """Answers recommendation, similar-items and retrieval requests from one `ServingState`: the strategies'
    sources through `Retrieval`, the ranking-stage strategies through `StageRanker`, then the rules and reasons."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.explainer = Explainer(state)
        bundle = state.bundle
        self.retrieval = Retrieval(state, bundle.cooccurrence, bundle.transitions)
        self.stage = None
        if bundle.ranking is not None and bundle.cooccurrence is not None:
            self.stage = StageRanker(state, self.retrieval, bundle.ranking, bundle.cooccurrence, self.explainer)

    def context(self, user_id: str | None, live: Sequence[Event], warnings: list[str]) -> UserContext:
        """The user's context; live events on items no catalog knows are dropped and named in `warnings`."""
        catalog = self.state.catalog
        unknown = sorted({event.item_id for event in live if catalog.label(event.item_id) is None})
        if unknown:
            shown = ", ".join(repr(item) for item in unknown[:10])
            warnings.append(f"ignored events on {len(unknown)} unknown item(s): {shown}")
        known_live = [event for event in live if catalog.label(event.item_id) is not None]
        user = self.state.user_index(user_id)
        trained = self.state.trained_labels(user) if user is not None else np.empty(0, np.int64)
        live_labels = np.fromiter((catalog.labels[event.item_id] for event in known_live), np.int64, len(known_live))
        return UserContext(self.state, user, known_live, np.union1d(trained, live_labels))

    def recommend(self, query: Query, context: UserContext) -> Result:
        strategy, fallback = query.strategy, None
        seen = context.seen_by(query.seen_event_types) if query.exclude_seen else None
        rules = self._rules(query.filters, seen)
        fetch = query.k
        stage_reasons = None
        while True:  # with rules that drop or reorder candidates, fetch more until k pass or none are left
            if query.filters.reorders():
                fetch = min(max(4 * fetch, fetch + 50), len(self.state.catalog))
            if self.stage is not None and strategy in self.stage.stage.strategies:
                ranked = self.stage.rank(strategy, context, fetch, rules)
                found = None if ranked is None else (ranked.labels, ranked.scores)
                stage_reasons = None if ranked is None else ranked.explain
            else:
                found = self._run(strategy, context, fetch, rules)
            if found is None:
                strategy, fallback = POPULAR, POPULAR
                found = self.retrieval.popular(fetch, rules)
            labels, scores = self._reorder(*found, query.k, query.filters)
            exhausted = len(found[0]) < fetch or fetch >= len(self.state.catalog)
            if len(labels) >= query.k or exhausted or not query.filters.reorders():
                break
        items = [{**self.state.catalog.describe(label), "rank": rank, "score": float(score)}
                 for rank, (label, score) in enumerate(zip(labels.tolist(), scores.tolist()), 1)]
        if query.explain and stage_reasons is not None:  # reasons from the ranker's own contributions
            for item, explained in zip(items, stage_reasons(labels.tolist())):
                item.update(explained)
        elif query.explain:
            for item, reasons in zip(items, self.explainer.explain(strategy, labels.tolist(), context)):
                item["reasons"] = reasons
        return Result(query.strategy, items, fallback, [], self.state.model_version)

    def _reorder(self, labels: np.ndarray, scores: np.ndarray, k: int,
                 filters: Filters) -> tuple[np.ndarray, np.ndarray]:
        """The category cap, then MMR, over ranked candidates; the first k."""
        if filters.max_per_category is not None:
            kept = cap_per_category(labels, self.state.catalog.categories, filters.max_per_category)
            labels, scores = labels[kept], scores[kept]
        if filters.diversity > 0 and len(labels):
            order = mmr_order(scores, self.state.item_vectors(labels), k, filters.diversity)
            labels, scores = labels[order], scores[order]
        return labels[:k], scores[:k]

    def similar(self, item_id: str, k: int, filters: Filters) -> tuple[np.ndarray, np.ndarray]:
        """Items nearest (cosine of two-tower item vectors) to a live item, the item itself left out."""
        label = self.state.catalog.label(item_id)
        if label is None:
            raise UnknownIdError(f"unknown item id: {item_id!r}")
        vector = self.state.item_vectors(np.array([label]))
        query = np.append(vector[0], np.float32(0.0)).astype(np.float32)  # the index rows end with the bias column
        return self.retrieval.search(self.state.index, query, k, self._rules(filters, np.array([label])))

    def retrieve(self, vector: np.ndarray, k: int, filters: Filters, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for a query vector (as `user_vector` returns) with the business rules applied."""
        return self.retrieval.search(self.state.index, vector, k, self._rules(filters, exclude))

    def user_vector(self, context: UserContext) -> np.ndarray | None:
        """(d + 1,) two-tower query of the user, or None without any trained or live event on a model item."""
        return context.vector

    def _run(self, strategy: str, context: UserContext, k: int, rules: Rules) -> Found | None:
        """A single-model strategy's top-k, or None when it cannot place the user."""
        if strategy == "two_tower":
            return self.retrieval.two_tower(context, k, rules)
        if strategy == "content":
            return self.retrieval.content(context, k, rules, CONTENT_HISTORY, CONTENT_STRATEGY_DECAY)
        if strategy in self.state.bundle.served:
            return self.retrieval.served(strategy, context, k, rules)
        if strategy == POPULAR:
            return self.retrieval.popular(k, rules)
        raise ValueError(f"strategy {strategy!r} has no handler in this bundle")  # never popular in disguise

    def _rules(self, filters: Filters, seen: np.ndarray | None) -> Rules:
        """Category / price rules as allowed labels (None: all); availability and seen items as denied labels."""
        catalog = self.state.catalog
        mask = catalog.allowed(filters)
        allowed = None if mask is None else np.flatnonzero(mask).astype(np.int64)
        parts = [catalog.hidden(filters.available_only)]
        if seen is not None:
            parts.append(seen)
        return Rules(allowed, np.unique(np.concatenate(parts)).astype(np.int64))

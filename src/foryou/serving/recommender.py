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
import scipy.sparse as sp

from foryou.errors import UnknownIdError
from foryou.serving.catalog import Filters, rule_mask
from foryou.serving.explain import Explainer
from foryou.serving.reranking import StageRanker
from foryou.serving.rules import cap_per_category, mmr_order
from foryou.serving.state import Event, ServingState, model_events

CONTENT_HISTORY = 20  # recent items whose content vectors make the `content` query
CONTENT_HALF_LIFE = 5.0  # in events: the 5th most recent item weighs half as much as the last one
POPULAR = "popular"


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


@dataclass
class UserContext:
    """Everything known about the requesting user: trained index, full history, seen labels."""

    state: ServingState
    user: int | None  # the model's user index, when trained on
    live: list[Event]  # stored live events, then the request's own (items the catalog knows)
    seen: np.ndarray  # labels, sorted unique

    @property
    def trained(self) -> list[Event]:
        """The events the model was trained on (read only by explanations and `content`: built on demand)."""
        return self.state.trained_history(self.user) if self.user is not None else []

    @property
    def history(self) -> list[Event]:
        return sorted([*self.trained, *self.live], key=lambda event: event.timestamp)

    def seen_by(self, event_types: Sequence[str] | None) -> np.ndarray:
        """Labels of items the user had with one of `event_types` (None: any), sorted unique."""
        if event_types is None:
            return self.seen
        wanted = {kind.lower() for kind in event_types}
        catalog = self.state.catalog
        labels = [catalog.label(event.item_id) for event in [*self.trained, *self.live]
                  if event.event_type.lower() in wanted]
        return np.unique(np.array([label for label in labels if label is not None], dtype=np.int64))


class Recommender:
    """Answers recommendation, similar-items and retrieval requests from one `ServingState`."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.explainer = Explainer(state)
        bundle = state.bundle
        self.stage = None
        if bundle.ranking is not None and bundle.cooccurrence is not None:
            self.stage = StageRanker(self, bundle.ranking, bundle.cooccurrence)

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
        allowed, denied = self._rules(query.filters, seen)
        fetch = query.k
        stage_reasons = None
        while True:  # with rules that drop or reorder candidates, fetch more until k pass or none are left
            if query.filters.reorders():
                fetch = min(max(4 * fetch, fetch + 50), len(self.state.catalog))
            if self.stage is not None and strategy in self.stage.stage.strategies:
                ranked = self.stage.rank(strategy, context, fetch, allowed, denied)
                found = None if ranked is None else (ranked.labels, ranked.scores)
                stage_reasons = None if ranked is None else ranked.explain
            else:
                found = self._run(strategy, context, fetch, allowed, denied)
            if found is None:
                strategy, fallback = POPULAR, POPULAR
                found = self._popular(fetch, allowed, denied)
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
        allowed, denied = self._rules(filters, np.array([label]))
        return self._search_unit(vector, k, allowed, denied)

    def retrieve(self, vector: np.ndarray, k: int, filters: Filters, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for a query vector (as `user_vector` returns) with the business rules applied."""
        allowed, denied = self._rules(filters, exclude)
        return self.retrieve_labels(self.state.index, vector, k, allowed, denied)

    def user_vector(self, context: UserContext) -> np.ndarray | None:
        """(d + 1,) two-tower query of the user, or None without any trained or live event on a model item.
        A trained user without live events has a fixed vector for this bundle: it is cached."""
        model = self.state.model
        events = [event for event in context.live if event.item_id in model._item_index]
        if context.user is None and not events:
            return None
        if context.user is not None and not events:
            return self.state.trained_user_vector(context.user)
        user_id = None if context.user is None else str(model.user_ids[context.user])  # type: ignore[index]
        return model.user_vector(model_events(events), user_id)

    # ---- strategies --------------------------------------------------------------------------------------------
    def _run(self, strategy: str, context: UserContext, k: int, allowed: np.ndarray | None,
             denied: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if strategy == "two_tower":
            vector = self.user_vector(context)
            return None if vector is None else self.retrieve_labels(self.state.index, vector, k, allowed, denied)
        if strategy == "content":
            return self._content(context, k, allowed, denied)
        if strategy in self.state.bundle.served:
            return self._served(strategy, context, k, allowed, denied)
        return self._popular(k, allowed, denied)

    def retrieve_labels(self, index: Any, vector: np.ndarray, k: int, allowed: np.ndarray | None,
                        denied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, scores = index.search(vector[None, :], k, allowed, denied)
        keep = labels[0] >= 0
        return labels[0][keep], scores[0][keep]

    def _search_unit(self, vector: np.ndarray, k: int, allowed: np.ndarray | None,
                     denied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cosine search: the index holds (vector, bias) rows, so the query gets a 0 for the bias column."""
        query = np.append(vector[0], np.float32(0.0)).astype(np.float32)
        return self.retrieve_labels(self.state.index, query, k, allowed, denied)

    def _content(self, context: UserContext, k: int, allowed: np.ndarray | None,
                 denied: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        index = self.state.content_index
        if index is None:
            return None
        live = set(index.ids().tolist()) if len(context.history) else set()
        labels = [label for event in reversed(context.history)
                  if (label := self.state.catalog.label(event.item_id)) is not None and label in live]
        labels = list(dict.fromkeys(labels))[:CONTENT_HISTORY]
        if not labels:
            return None
        weights = 0.5 ** (np.arange(len(labels)) / CONTENT_HALF_LIFE)
        query = (weights[:, None] * index.vectors(np.array(labels))).sum(axis=0)
        query = (query / max(float(np.linalg.norm(query)), 1e-12)).astype(np.float32)
        return self.retrieve_labels(index, query, k, allowed, denied)

    def _served(self, strategy: str, context: UserContext, k: int, allowed: np.ndarray | None,
                denied: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """A served baseline (ALS, EASE, ItemKNN): its stored row for a trained user without live events, else
        the scores of the whole history as a raw one (ALS folds it in)."""
        model = self.state.bundle.served[strategy]
        if context.user is not None and not context.live:
            scores = model.score_users(np.array([context.user]))
        else:
            rows = context.seen[context.seen < model.n_items]
            if len(rows) == 0:
                return None
            history = sp.csr_matrix((np.ones(len(rows), np.float32), rows, [0, len(rows)]),
                                    shape=(1, model.n_items))
            scores = model.score_histories(history)  # type: ignore[attr-defined]
        return self._rank_catalog(model, scores, k, allowed, denied)

    def _popular(self, k: int, allowed: np.ndarray | None, denied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fallback = self.state.bundle.fallback
        scores = fallback.score_histories(sp.csr_matrix((1, fallback.n_items), dtype=np.float32))  # type: ignore[attr-defined]
        return self._rank_catalog(fallback, scores, k, allowed, denied)

    def _rank_catalog(self, model: Any, scores: np.ndarray, k: int, allowed: np.ndarray | None,
                      denied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over the bundle's catalog rows through the model's shared exclude / filter / top-k path."""
        labels, values = model.rank(scores, k, None, rule_mask(model.n_items, allowed, denied))
        keep = labels[0] >= 0
        return labels[0][keep], values[0][keep]

    def _rules(self, filters: Filters, seen: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
        """(allowed labels or None for all, denied labels): category / price rules, availability, seen items."""
        catalog = self.state.catalog
        mask = catalog.allowed(filters)
        allowed = None if mask is None else np.flatnonzero(mask).astype(np.int64)
        parts = [catalog.hidden(filters.available_only)]
        if seen is not None:
            parts.append(seen)
        return allowed, np.unique(np.concatenate(parts)).astype(np.int64)

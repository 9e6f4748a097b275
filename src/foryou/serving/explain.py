"""Reasons in words for each recommended item, naming real things from the user's own history.

Each item gets its nearest recent history item (cosine of the vectors the strategy searched: two-tower item
vectors, or content vectors for `content`) as "Because you viewed ...", a category reason when the item is in
the category the user chooses most, and "Popular in ..." for popularity answers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from foryou.models.ranking import unit_rows
from foryou.rerank.reasons import verb
from foryou.serving.context import UserContext
from foryou.serving.state import ServingState

RECENT_ITEMS = 20  # history items an explanation may name
MAX_REASONS = 3


class Explainer:
    """Builds the `reasons` of a response's items."""

    def __init__(self, state: ServingState) -> None:
        self.state = state

    def explain(self, strategy: str, labels: list[int], context: UserContext) -> list[list[dict[str, Any]]]:
        """Up to MAX_REASONS reasons per label: {kind, text, item_id (the history item named, if any)}."""
        catalog = self.state.catalog
        if strategy == "popular":
            return [[self._popular(label)] for label in labels]
        index = self.state.content_index if strategy == "content" else self.state.index
        anchors, verbs = self._recent(context, index)
        if not anchors or index is None or not labels:
            return [[self._popular(label)] for label in labels]
        anchor_vectors = unit_rows(_without_bias(index.vectors(np.array(anchors)), strategy))
        item_vectors = unit_rows(_without_bias(index.vectors(np.array(labels)), strategy))
        nearest = (item_vectors @ anchor_vectors.T).argmax(axis=1)
        favourite = self._favourite_category(context)
        reasons = []
        for label, anchor in zip(labels, nearest.tolist()):
            described = catalog.describe(anchors[anchor])
            name = described["title"] or described["item_id"]
            if strategy == "content":
                text = f"Similar to {name}, which you {verbs[anchor]}"
            else:
                text = f"Because you {verbs[anchor]} {name}"
            item_reasons = [{"kind": "content" if strategy == "content" else "history", "text": text,
                             "item_id": described["item_id"]}]
            category = catalog.describe(label)["category"]
            if favourite is not None and category == favourite:
                item_reasons.append({"kind": "category", "text": f"In {category}, the category you choose most",
                                     "item_id": None})
            reasons.append(item_reasons[:MAX_REASONS])
        return reasons

    def _popular(self, label: int) -> dict[str, Any]:
        category = self.state.catalog.describe(label)["category"]
        text = f"Popular in {category}" if category else "Popular right now"
        return {"kind": "popular", "text": text, "item_id": None}

    def _recent(self, context: UserContext, index: Any) -> tuple[list[int], list[str]]:
        """The user's most recent distinct items still in `index`, with the verb of their last event."""
        if index is None:
            return [], []
        timeline = context.timeline
        types = timeline.latest_types()
        anchors = timeline.recent_where(index.contains, RECENT_ITEMS)
        return anchors, [verb(types[label]) for label in anchors]

    def _favourite_category(self, context: UserContext) -> str | None:
        """The category of most of the user's events, when it covers at least two of them."""
        catalog = self.state.catalog
        counts = Counter(catalog.categories[label][0] for label in context.seen.tolist() if catalog.categories[label])
        if not counts:
            return None
        category, count = counts.most_common(1)[0]
        return category if count >= 2 else None


def _without_bias(vectors: np.ndarray, strategy: str) -> np.ndarray:
    """Two-tower index rows end with the bias column, which says nothing about likeness; content rows do not."""
    return vectors if strategy == "content" else vectors[:, :-1]

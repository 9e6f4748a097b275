"""Request -> ranking-stage result: every candidate source over the user's raw history, merged, featured, ranked
by the bundle's ranking stage, and explained from each item's own contributions.

The sources are the service's own searches (the two-tower ANN, the served baselines, recent popularity, the
content index) plus co-occurrence with the user's last items; they run with the request's business rules, so
every candidate already passes them. The candidate frame has the columns the rankers were trained on
(`merge_candidates`), and the features come from `CatalogFeatures` at the request's cut: the later of the
bundle's reference time and the user's last event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from foryou.data import schema as S
from foryou.models.ranking import tie_break_order, top_k, unit_rows
from foryou.models.two_tower import TwoTower
from foryou.rerank.candidates import MERGED_RANK, CooccurrenceSource, merged_columns, recent_row
from foryou.rerank.reasons import (
    CONTENT_ANCHOR,
    COOCCURRENCE_ANCHOR,
    Explanation,
    default_templates,
    explain_items,
    first_value,
)
from foryou.rerank.stage import RERANKED_MLP, RankingStage
from foryou.serving.catalog import rule_mask
from foryou.serving.explain import VERBS
from foryou.serving.state import as_utc

if TYPE_CHECKING:
    from foryou.serving.recommender import Recommender, UserContext

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
NS_LIMIT = np.iinfo(np.int64).max  # nanoseconds since 1970 end in 2262: later (and pre-1678) events are clamped
CONTENT_DECAY = 0.8  # as ContentSource: the j-th most recent item weighs 0.8**j
SOURCE_STRATEGY = {"als": "collab"}  # candidate source -> the served strategy whose model it is
Found = tuple[np.ndarray, np.ndarray]


@dataclass
class Ranked:
    """A ranking-stage answer: labels best first, their scores, and how to explain any subset of them."""

    labels: np.ndarray
    scores: np.ndarray
    explain: Callable[[list[int]], list[dict[str, Any]]] | None  # labels -> {reasons, contributions} per label


class FixedCandidates:
    """One source's answer for the request, as a `CandidateSource` of one user (index 0) for `merge_candidates`."""

    def __init__(self, name: str, labels: np.ndarray, scores: np.ndarray) -> None:
        self.name, self.labels, self.scores = name, labels, scores

    def candidates(self, user_idx: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        items = np.full((1, k), -1, np.int64)
        scores = np.full((1, k), -np.inf, np.float32)
        items[0, :len(self.labels)] = self.labels[:k]
        scores[0, :len(self.labels)] = self.scores[:k]
        return items, scores


class StageRanker:
    """Ranks one request through the bundle's ranking stage, with the recommender's searches as sources."""

    def __init__(self, recommender: Recommender, stage: RankingStage, cooccurrence: CooccurrenceSource) -> None:
        self.recommender = recommender
        self.state = recommender.state
        self.stage = stage
        stage.lgbm.predict_threads = 1  # 200 rows: OpenMP start-up costs more than it saves, and other requests wait
        self.cooccurrence = cooccurrence
        fields = list(stage.catalog.groups)
        self.templates = default_templates(fields[0] if fields else None, fields[1] if len(fields) > 1 else None)
        items = self.state.bundle.items
        self.group_values = {field: items[field].map(first_value).to_numpy(dtype=object)
                             for field in stage.catalog.groups if field in items}

    def rank(self, strategy: str, context: UserContext, k: int, allowed: np.ndarray | None,
             denied: np.ndarray) -> Ranked | None:
        """The top `k` of the merged candidates under `strategy`, or None when no source can place the user."""
        history, stamps = self._history(context)
        per_source = max(self.stage.settings.per_source_k, k)
        user_vector = self.recommender.user_vector(context)
        found = self._sources(context, history, user_vector, per_source, allowed, denied)
        personal = [name for name, (labels, _) in found.items() if len(labels) and name != "recent_pop"]
        if not personal or (strategy == RERANKED_MLP and user_vector is None):
            return None
        fixed = [FixedCandidates(name, *found[name]) for name in self.stage.source_names]
        columns = merged_columns(fixed, np.zeros(1, np.int64), per_source, max(self.stage.settings.candidates, k))
        labels = columns[S.ITEM_IDX]
        cut = max(self.stage.catalog.reference_ns, int(stamps.max(initial=0)) + 1)
        arrays = {**columns, **self.stage.catalog.features(labels, history, stamps, cut)}
        vectors = None
        if strategy == RERANKED_MLP:
            assert user_vector is not None
            vectors = (np.repeat(user_vector[None, :], len(labels), axis=0), self.state.index.vectors(labels))
        scores = self.stage.scores(strategy, arrays, vectors)
        order = np.lexsort((arrays[MERGED_RANK], -scores))[:k]

        def explain(chosen: list[int]) -> list[dict[str, Any]]:
            rows = order[[int(np.flatnonzero(labels[order] == label)[0]) for label in chosen]]
            return self._explain(strategy, arrays, rows, context, history)

        explainable = strategy != RERANKED_MLP  # the MLP's score has no additive split: the generic reasons explain it
        return Ranked(labels[order], scores[order].astype(np.float32), explain if explainable else None)

    # ---- sources ------------------------------------------------------------------------------------------------
    def _sources(self, context: UserContext, history: np.ndarray, user_vector: np.ndarray | None, k: int,
                 allowed: np.ndarray | None, denied: np.ndarray) -> dict[str, Found]:
        recommender, empty = self.recommender, (np.zeros(0, np.int64), np.zeros(0, np.float32))
        found: dict[str, Found] = {}
        for name in self.stage.source_names:
            answer: Found | None = None
            if name == TwoTower.name and user_vector is not None:
                answer = recommender.retrieve_labels(self.state.index, user_vector, k, allowed, denied)
            elif name == "recent_pop":
                answer = recommender._popular(k, allowed, denied)
            elif name == "cooccurrence" and len(history):
                answer = self._cooccurrence(history, k, allowed, denied)
            elif name == "content" and len(history):
                answer = self._content(history, k, allowed, denied)
            elif SOURCE_STRATEGY.get(name, name) in self.state.bundle.served:
                answer = recommender._served(SOURCE_STRATEGY.get(name, name), context, k, allowed, denied)
            found[name] = answer if answer is not None else empty
        return found

    def _cooccurrence(self, history: np.ndarray, k: int, allowed: np.ndarray | None, denied: np.ndarray) -> Found:
        source = self.cooccurrence
        n_items = source.item_counts.shape[0]
        known = history[history < n_items]
        scores = source.scores_recent(recent_row(known, n_items, source.last_n, source.decay))[0]
        return self._top(scores, k, allowed, denied)

    def _content(self, history: np.ndarray, k: int, allowed: np.ndarray | None, denied: np.ndarray) -> Found | None:
        index, content = self.state.content_index, self.state.bundle.content
        if index is None or content is None:
            return None
        known = history[history < len(content)]
        recent = recent_row(known, len(content), self.stage.settings.last_n, CONTENT_DECAY)
        profile = np.asarray(recent @ content, dtype=np.float32)[0]
        if not np.any(profile):
            return None
        return self.recommender.retrieve_labels(index, unit_rows(profile[None, :])[0], k, allowed, denied)

    def _top(self, scores: np.ndarray, k: int, allowed: np.ndarray | None, denied: np.ndarray) -> Found:
        """Top-k of catalog scores under the rules; -inf (no evidence) is never proposed."""
        n = len(scores)
        scores = np.where(rule_mask(n, allowed, denied), scores, -np.inf).astype(np.float32)
        labels, values = top_k(scores[None, :], min(k, n), tie_break_order(n))
        keep = np.isfinite(values[0])
        return labels[0][keep].astype(np.int64), values[0][keep]

    def _history(self, context: UserContext) -> tuple[np.ndarray, np.ndarray]:
        """The user's events as catalog labels and int64 nanoseconds, oldest first."""
        catalog = self.state.catalog
        events = [(label, event.timestamp) for event in context.history
                  if (label := catalog.label(event.item_id)) is not None]
        labels = np.array([label for label, _ in events], dtype=np.int64)
        micros = np.array([(as_utc(moment) - EPOCH) // MICROSECOND for _, moment in events], dtype=object)
        stamps = np.clip(micros, -NS_LIMIT // 1000, NS_LIMIT // 1000).astype(np.int64) * 1000  # years 1..9999 fit
        return labels, stamps

    # ---- explanations -------------------------------------------------------------------------------------------
    def _explain(self, strategy: str, arrays: dict[str, np.ndarray], rows: np.ndarray, context: UserContext,
                 history: np.ndarray) -> list[dict[str, Any]]:
        contributions = self.stage.contributions(strategy, arrays, rows)
        assert contributions is not None
        labels = arrays[S.ITEM_IDX][rows]
        records = [{name: values[row] for name, values in arrays.items()} for row in rows.tolist()]
        anchors = self._anchors(labels, context, history)
        for position, (record, label) in enumerate(zip(records, labels.tolist())):
            for field, values in self.group_values.items():
                record[field] = values[label] if label < len(values) else None
            for name, (anchor_labels, verbs) in anchors.items():
                anchor = anchor_labels[position]
                record[f"{name}_title"] = self._title(anchor) if anchor >= 0 else None
                record[f"{name}_verb"] = verbs[position]
                record[f"{name}_id"] = self.state.catalog.ids[anchor] if anchor >= 0 else None
        explained = explain_items(contributions, records, self.templates)
        return [_as_reasons(explanation, record) for explanation, record in zip(explained, records)]

    def _anchors(self, labels: np.ndarray, context: UserContext,
                 history: np.ndarray) -> dict[str, tuple[list[int], list[str | None]]]:
        """Per item, the recent history item its co-occurrence / content evidence comes from (-1: none)."""
        recent = list(dict.fromkeys(history[::-1].tolist()))[: self.stage.settings.last_n]
        verbs = self._verbs(context)
        out: dict[str, tuple[list[int], list[str | None]]] = {}
        item_users = self.cooccurrence.item_users
        assert item_users is not None
        n = item_users.shape[0]
        known = [label for label in recent if label < n]
        if known:
            counts = (item_users[known] @ item_users[np.minimum(labels, n - 1)].T).toarray()
            counts[:, labels >= n] = 0
            out[COOCCURRENCE_ANCHOR] = _best(counts, known, verbs)
        content = self.state.bundle.content
        if content is not None and known:
            known_content = [label for label in known if label < len(content)]
            similarity = content[known_content] @ content[np.minimum(labels, len(content) - 1)].T
            similarity[:, labels >= len(content)] = 0
            similarity[np.array(known_content)[:, None] == labels[None, :]] = 0
            out[CONTENT_ANCHOR] = _best(similarity, known_content, verbs)
        return out

    def _verbs(self, context: UserContext) -> dict[int, str]:
        """label -> the verb of the user's latest event on it ("bought", "viewed", ...)."""
        verbs = {}
        for event in context.history:
            label = self.state.catalog.label(event.item_id)
            if label is not None:
                verbs[label] = VERBS.get(event.event_type.lower(), "chose")
        return verbs

    def _title(self, label: int) -> str:
        described = self.state.catalog.describe(label)
        return str(described["title"] or described["item_id"])


def _best(scores: np.ndarray, anchors: list[int], verbs: dict[int, str]) -> tuple[list[int], list[str | None]]:
    """Per column, the anchor (row) with the highest positive score, else -1."""
    best = scores.argmax(axis=0)
    found = scores[best, np.arange(scores.shape[1])] > 0
    labels = [anchors[row] if hit else -1 for row, hit in zip(best.tolist(), found.tolist())]
    return labels, [verbs.get(label) if label >= 0 else None for label in labels]


KIND_BY_PREFIX = (("content", "content"), ("user_share_", "category"), ("days_since_", "category"),
                  ("item_pop", "popular"), ("recent_pop", "popular"), ("price", "price"), ("item_age", "new"))


def _as_reasons(explanation: Explanation, record: dict[str, Any]) -> dict[str, Any]:
    """Explanation -> {reasons: [{kind, text, item_id (the history item named), feature}], contributions}."""
    reasons = []
    for text, feature in zip(explanation.reasons, explanation.features):
        kind = next((kind for prefix, kind in KIND_BY_PREFIX if feature.startswith(prefix)), "history")
        if kind == "category" and "brand" in text:
            kind = "brand"
        named = [record.get(f"{anchor}_id") for anchor in (COOCCURRENCE_ANCHOR, CONTENT_ANCHOR)
                 if record.get(f"{anchor}_title") and str(record[f"{anchor}_title"]) in text]
        reasons.append({"kind": kind, "text": text, "item_id": named[0] if named else None, "feature": feature})
    contributions = [{"feature": name, "value": value} for name, value in explanation.contributions]
    return {"reasons": reasons, "contributions": contributions}

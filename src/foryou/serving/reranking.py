"""Request -> ranking-stage result: every candidate source for the user, merged, featured, ranked by the bundle's
ranking stage, and explained from each item's own contributions.

The sources come through `Retrieval` (the same searches the single-model strategies answer with) under the
request's business rules, so every candidate already passes them. The candidate columns are the ones the rankers
were trained on (`merged_columns`), and the features come from `CatalogFeatures` at the request's cut: the later
of the bundle's reference time and the user's last event. Everything per request is numpy over at most
`candidates` rows; what is fixed per bundle (item fields, titles, reason templates) is read once here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from foryou.data import schema as S
from foryou.models.ranking import tie_break_order
from foryou.rerank.candidates import CooccurrenceSource
from foryou.rerank.features import feature_matrix
from foryou.rerank.lgbm import LGBMRanker
from foryou.rerank.merge import MERGED_RANK, merge_lists
from foryou.rerank.reasons import (
    ANCHORS,
    Explanation,
    anchor_fields,
    default_templates,
    explain_items,
    first_value,
    history_anchors,
)
from foryou.rerank.stage import RERANKED_LGBM, RERANKED_MLP, RankingStage
from foryou.serving.context import UserContext
from foryou.serving.explain import Explainer
from foryou.serving.lru import LruCache
from foryou.serving.retrieval import RECENT_POP, Found, Retrieval, Rules
from foryou.serving.state import ServingState

MEMO_ROWS = 100_000  # feature rows whose LightGBM contributions are kept (~0.5 KB each with the key)
ANSWERS = 20_000  # kept answers of trained users (their top rows only: ~5 KB each at k=10)


@dataclass
class Ranked:
    """A ranking-stage answer: labels best first, their scores, and how to explain any subset of them."""

    labels: np.ndarray
    scores: np.ndarray
    explain: Callable[[list[int]], list[dict[str, Any]]]  # labels -> {reasons[, contributions]} per label


class ContributionMemo:
    """LightGBM's exact contributions (TreeSHAP, ~0.25 ms a row on the demo) are a pure function of a row's
    features, and a trained user's rows repeat from request to request: each row's table is kept (LRU, MEMO_ROWS
    rows, dropped with the state)."""

    def __init__(self, lgbm: LGBMRanker, size: int = MEMO_ROWS) -> None:
        self.lgbm = lgbm
        self._rows: LruCache[np.ndarray] = LruCache(size)

    def contributions(self, rows: dict[str, np.ndarray]) -> list[list[tuple[str, float]]]:
        """Per row of `rows` (feature columns, any others ignored), its (feature, contribution) pairs."""
        chosen = {name: rows[name] for name in self.lgbm.feature_names}
        keys = [row.tobytes() for row in feature_matrix(chosen, self.lgbm.feature_names)]
        found = {key: table for key in keys if (table := self._rows.get(key)) is not None}
        missing = [position for position, key in enumerate(keys) if key not in found]
        if missing:
            table = self.lgbm.contribution_table({name: values[missing] for name, values in chosen.items()})
            for position, contributions in zip(missing, table):
                found[keys[position]] = contributions
                self._rows.put(keys[position], contributions)
        return self.lgbm.ranked_contributions(np.stack([found[key] for key in keys]))


class StageRanker:
    """Ranks one request through the bundle's ranking stage, over the candidates `Retrieval` finds."""

    def __init__(self, state: ServingState, retrieval: Retrieval, stage: RankingStage,
                 cooccurrence: CooccurrenceSource, generic: Explainer) -> None:
        self.state = state
        self.retrieval = retrieval
        self.generic = generic  # the reasons of the MLP ranker, whose score has no additive split
        self.stage = stage
        stage.lgbm.predict_threads = 1  # 200 rows: OpenMP start-up costs more than it saves, and other requests wait
        self.cooccurrence = cooccurrence
        fields = list(stage.catalog.groups)
        self.memo = ContributionMemo(stage.lgbm)
        self.answers: LruCache[Ranked] = LruCache(ANSWERS)
        self.tie_order = tie_break_order(len(state.catalog))
        self.templates = default_templates(fields[0] if fields else None, fields[1] if len(fields) > 1 else None)
        items = state.bundle.items
        self.group_values = {field: items[field].map(first_value).to_numpy(dtype=object)
                             for field in stage.catalog.groups if field in items}

    def rank(self, strategy: str, context: UserContext, k: int, rules: Rules) -> Ranked | None:
        """The top `k` of the merged candidates under `strategy`, or None when no source can place the user. A
        trained user without live events gets the same answer until the catalog or the rules change: it is kept."""
        key = None
        if context.user is not None and not context.live:
            key = (strategy, context.user, k, rules.key(), self.state.item_sequence, len(self.state.catalog))
            kept = self.answers.get(key)
            if kept is not None:
                return kept
        ranked = self._rank(strategy, context, k, rules)
        if key is not None and ranked is not None:
            self.answers.put(key, ranked)
        return ranked

    def _rank(self, strategy: str, context: UserContext, k: int, rules: Rules) -> Ranked | None:
        learned = strategy in (RERANKED_LGBM, RERANKED_MLP)  # the hybrids read the sources' columns alone
        arrays = self.candidates(context, k, rules, featured=learned)
        if arrays is None or (strategy == RERANKED_MLP and context.vector is None):
            return None
        labels = arrays[S.ITEM_IDX]
        vectors = None
        if strategy == RERANKED_MLP:
            assert context.vector is not None
            vectors = (np.broadcast_to(context.vector, (len(labels), len(context.vector))),
                       self.state.index.vectors(labels))
        parts = self.stage.parts(strategy, arrays)
        scores = self.stage.scores(strategy, arrays, vectors, parts)
        order = np.lexsort((arrays[MERGED_RANK], -scores))[:k]
        if strategy == RERANKED_MLP:  # its score has no additive split: the generic reasons explain it
            return Ranked(labels[order], scores[order].astype(np.float32), Explanations(
                lambda chosen: [(_reason_pairs(reasons), None)
                                for reasons in self.generic.explain(strategy, chosen, context)]))
        top = {name: values[order] for name, values in arrays.items()}
        if not learned:  # the features of the answer's rows only, for their reasons: a row's own, whatever else ranks
            top.update(self._features(top[S.ITEM_IDX], context))
        blended = None if strategy == RERANKED_LGBM else self.stage.contributions(strategy, arrays, order, parts)
        row_of = {label: row for row, label in enumerate(top[S.ITEM_IDX].tolist())}
        return Ranked(top[S.ITEM_IDX], scores[order].astype(np.float32), Explanations(
            lambda chosen: self.explain(strategy, top, np.array([row_of[label] for label in chosen], np.int64),
                                        context, blended)))

    def candidates(self, context: UserContext, k: int, rules: Rules,
                   featured: bool = True) -> dict[str, np.ndarray] | None:
        """The user's merged candidates (columns as the offline frame's: ids, per-source score (on every row the
        source scores, when the stage reads complete scores) and rank, merged rank, features at the request's cut
        unless not `featured`), or None when no source but popularity proposes anything."""
        per_source = max(self.stage.settings.per_source_k, k)
        found = self._sources(context, per_source, rules)
        if not any(len(labels) for name, (labels, _) in found.items() if name != RECENT_POP):
            return None
        lists = {name: (np.zeros(len(found[name][0]), np.int64), found[name][0], found[name][1],
                        np.arange(1, len(found[name][0]) + 1, dtype=np.int32)) for name in self.stage.source_names}
        columns = merge_lists(lists, dict.fromkeys(lists, per_source), max(self.stage.settings.candidates, k),
                              tie_order=self._tie_order(len(self.state.catalog)))
        if self.stage.complete_scores:
            self._complete_scores(columns, context)
        return {**columns, **self._features(columns[S.ITEM_IDX], context)} if featured else columns

    def _complete_scores(self, columns: dict[str, np.ndarray], context: UserContext) -> None:
        """Each source's score on the merged rows it did not propose, where it has one (as the offline frame's
        `complete_scores`): read from what the source computed for its own top k in this request."""
        labels = columns[S.ITEM_IDX]
        for name in self.stage.source_names:
            values = columns[f"{name}_score"]
            missing = np.isnan(values)
            if missing.any():
                values[missing] = self.retrieval.scores_at(name, context, labels[missing], self.stage.settings.last_n)

    def _features(self, labels: np.ndarray, context: UserContext) -> dict[str, np.ndarray]:
        """The ranking features of `labels` for the user, at the request's cut: the later of the bundle's reference
        time and the user's last event."""
        timeline = context.timeline
        cut = max(self.stage.catalog.reference_ns, int(timeline.ns.max(initial=0)) + 1)
        return self.stage.catalog.features(labels, timeline.labels, timeline.ns, cut)

    def _tie_order(self, n_items: int) -> np.ndarray:
        """The merge's last tie-break over the whole catalog, drawn once per catalog size (a permutation of 1M
        items takes ~0.1 s): the same for every request, as it is for every user of the offline frame."""
        if len(self.tie_order) != n_items:
            self.tie_order = tie_break_order(n_items)
        return self.tie_order

    def _sources(self, context: UserContext, k: int, rules: Rules) -> dict[str, Found]:
        """Every source's top-k for the user, in the stage's source order (empty where a source has nothing)."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        last_n = self.stage.settings.last_n
        return {name: self.retrieval.candidates(name, context, k, rules, last_n) or empty
                for name in self.stage.source_names}

    def explain(self, strategy: str, top: dict[str, np.ndarray], rows: np.ndarray, context: UserContext,
                blended: list[list[tuple[str, float]]] | None) -> list[KeptReasons]:
        """{reasons, contributions} of `rows` of the answer's `top` candidates; `blended`: the hybrids' per-row
        contributions of every top row (None: LightGBM's, computed here for `rows` only)."""
        if blended is None:
            contributions = self.memo.contributions({name: values[rows] for name, values in top.items()})
        else:
            contributions = [blended[row] for row in rows.tolist()]
        labels = top[S.ITEM_IDX][rows]
        columns = {name: values[rows].tolist() for name, values in top.items()}  # plain values, one pass a column
        records = [dict(zip(columns, row)) for row in zip(*columns.values())]
        assert self.cooccurrence.item_users is not None
        timeline = context.timeline
        transitions = self.retrieval.transitions
        anchors = history_anchors(labels, timeline.recent(self.stage.settings.last_n), self.cooccurrence.item_users,
                                  self.state.bundle.content, transitions.following if transitions else None,
                                  self.cooccurrence.pairs)
        for record, fields in zip(records, anchor_fields(anchors, self._describe, timeline.latest_types())):
            record.update(fields)
        for record, label in zip(records, labels.tolist()):
            for field, values in self.group_values.items():
                record[field] = values[label] if label < len(values) else None
        explained = explain_items(contributions, records, self.templates)
        return [_as_reasons(explanation, record) for explanation, record in zip(explained, records)]

    def _describe(self, label: int) -> tuple[str, str]:
        """(item id, title) of a history item a reason names; the id when it has no title."""
        described = self.state.catalog.describe(label)
        return described["item_id"], str(described["title"] or described["item_id"])


class Explanations:
    """The reasons of one ranked answer's items, computed for the labels asked and kept with the answer: a kept
    answer's repeat costs no explanation work. `explain(labels)` computes them (holding only the answer's top rows,
    not every candidate) in the kept form: tuples of plain values, which the cyclic garbage collector stops
    tracking: thousands of kept answers add nothing to the walk of a full collection (as dicts they did, and every
    such walk stalled the server for tens of milliseconds). The response's dicts are made from them per call."""

    def __init__(self, explain: Callable[[list[int]], list[KeptReasons]]) -> None:
        self.explain = explain
        self.done: dict[int, KeptReasons] = {}

    def __call__(self, labels: list[int]) -> list[dict[str, Any]]:
        missing = [label for label in labels if label not in self.done]
        if missing:
            self.done.update(zip(missing, self.explain(missing)))
        return [_given(self.done[label]) for label in labels]


# (reasons, each as its dict's (key, value) pairs; (feature, contribution) pairs, or None where the score has none)
KeptReasons = tuple[tuple[tuple[tuple[str, Any], ...], ...], tuple[tuple[str, float], ...] | None]


def _reason_pairs(reasons: list[dict[str, Any]]) -> tuple[tuple[tuple[str, Any], ...], ...]:
    return tuple(tuple(reason.items()) for reason in reasons)


def _given(kept: KeptReasons) -> dict[str, Any]:
    """The kept form as the response's fresh dicts and lists ({reasons[, contributions]}), which a caller may change."""
    reasons, contributions = kept
    given: dict[str, Any] = {"reasons": [dict(pairs) for pairs in reasons]}
    if contributions is not None:
        given["contributions"] = [{"feature": name, "value": value} for name, value in contributions]
    return given


KIND_BY_PREFIX = (("content", "content"), ("user_share_", "category"), ("days_since_", "category"),
                  ("item_pop", "popular"), ("recent_pop", "popular"), ("price", "price"), ("item_age", "new"))
ANCHOR_KEYS = tuple((f"{anchor}_title", f"{anchor}_id") for anchor in ANCHORS)


@lru_cache(maxsize=1024)
def _kind(feature: str) -> str:
    """The kind of reason a feature gives (its prefix's), "history" for the sources' own columns."""
    return next((kind for prefix, kind in KIND_BY_PREFIX if feature.startswith(prefix)), "history")


def _as_reasons(explanation: Explanation, record: dict[str, Any]) -> KeptReasons:
    """Explanation -> the kept form of {reasons: [{kind, text, item_id (the history item named), feature}],
    contributions: [{feature, value}]}."""
    reasons = []
    for text, feature in zip(explanation.reasons, explanation.features):
        kind = _kind(feature)
        if kind == "category" and "brand" in text:
            kind = "brand"
        named = [record.get(id_key) for title_key, id_key in ANCHOR_KEYS
                 if record.get(title_key) and str(record[title_key]) in text]
        reasons.append((("kind", kind), ("text", text), ("item_id", named[0] if named else None),
                        ("feature", feature)))
    return tuple(reasons), tuple(explanation.contributions)

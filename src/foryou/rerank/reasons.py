"""Plain-words reasons for a ranked item, from its own feature contributions and the things they point at.

A `Reason` is a sentence template per feature ("Because you {cooccurrence_anchor_verb} {cooccurrence_anchor_title}")
with an optional condition on the item's values. `explain_items` walks an item's positive contributions, largest
first, and keeps up to 3 distinct sentences whose placeholders all name something real; a reason whose thing is
missing (no anchor, no category) is skipped, never written vaguely. `history_anchors` finds, for each candidate,
the item of the user's recent history that the co-occurrence / transition / content evidence comes from, and `verb` names the
user's event on it: the service's ranking stage and the generic explanations both read these, so what the tests
check is what is served.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from foryou.data import schema as S
from foryou.models.sparse_rows import csr_entries, csr_rows
from foryou.rerank.features import (
    ITEM_AGE,
    ITEM_POP_ALL,
    PRICE_DISTANCE,
    PRICE_RATIO,
    days_since_name,
    item_pop_name,
    user_share_name,
)

COOCCURRENCE_ANCHOR = "cooccurrence_anchor"
CONTENT_ANCHOR = "content_anchor"
TRANSITION_ANCHOR = "transition_anchor"
ANCHORS = (COOCCURRENCE_ANCHOR, TRANSITION_ANCHOR, CONTENT_ANCHOR)
VERBS = {S.VIEW: "viewed", S.CLICK: "clicked", S.SAVE: "saved", "like": "liked", "cart": "added to your cart",
         S.ADD_TO_CART: "added to your cart", "addtocart": "added to your cart", S.PURCHASE: "bought",
         "buy": "bought", "transaction": "bought", S.RATING: "rated", "rate": "rated", "review": "reviewed"}
USUAL_PRICE_BAND = (2 / 3, 1.5)


@dataclass(frozen=True)
class Reason:
    """A sentence with {placeholders} filled from the item's row; `condition(row)` must hold for it to apply."""

    sentence: str
    condition: Callable[[Mapping[str, Any]], bool] | None = None
    placeholders: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # parsed once: a request renders a few dozen sentences
        names = tuple(name for _, name, _, _ in string.Formatter().parse(self.sentence) if name)
        object.__setattr__(self, "placeholders", names)


@dataclass
class Explanation:
    """reasons: up to 3 sentences; features: the feature behind each; contributions: every (feature, value)."""

    reasons: list[str]
    features: list[str]
    contributions: list[tuple[str, float]] = field(default_factory=list)


def explain_items(contributions: Sequence[Sequence[tuple[str, float]]],
                  rows: pd.DataFrame | Sequence[Mapping[str, Any]], templates: Mapping[str, Reason | str],
                  max_reasons: int = 3, min_contribution: float = 0.0) -> list[Explanation]:
    """contributions[i]: item i's (feature, contribution) pairs (e.g. `LGBMRanker.explain`); rows (n, ...): that
    item's features and context (`anchor_fields`, the item's fields), same order, as a frame or one mapping per item.
    Returns one Explanation per item."""
    if len(contributions) != len(rows):
        raise ValueError(f"{len(contributions)} contribution lists for {len(rows)} rows")
    reasons = {name: Reason(value) if isinstance(value, str) else value for name, value in templates.items()}
    records = rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else list(rows)
    return [_explain_one(list(pairs), record, reasons, max_reasons, min_contribution)
            for pairs, record in zip(contributions, records)]


def _explain_one(pairs: list[tuple[str, float]], row: Mapping[str, Any], templates: Mapping[str, Reason],
                 max_reasons: int, min_contribution: float) -> Explanation:
    sentences: list[str] = []
    features: list[str] = []
    for name, value in sorted(pairs, key=lambda pair: -pair[1]):
        if len(sentences) >= max_reasons or value <= min_contribution:
            break
        reason = templates.get(name)
        sentence = _render(reason, row) if reason is not None else None
        if sentence is not None and sentence not in sentences:
            sentences.append(sentence)
            features.append(name)
    return Explanation(sentences, features, [(name, float(value)) for name, value in pairs])


def _render(reason: Reason, row: Mapping[str, Any]) -> str | None:
    """The filled sentence, or None when the condition fails or a placeholder has no real value."""
    if reason.condition is not None and not reason.condition(row):
        return None
    values = {name: row.get(name) for name in reason.placeholders}
    if any(not _present(value) for value in values.values()):
        return None
    return reason.sentence.format(**values)


def _present(value: Any) -> bool:
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):  # float32 NaN too
        return False
    return not (isinstance(value, str) and not value.strip())


def _between(column: str, low: float, high: float) -> Callable[[Mapping[str, Any]], bool]:
    def check(row: Mapping[str, Any]) -> bool:
        value = row.get(column)
        return _present(value) and low <= float(value) <= high  # type: ignore[arg-type]

    return check


def _scored_by(source: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda row: _present(row.get(f"{source}_score"))


def default_templates(category_field: str | None = None, brand_field: str | None = None,
                      item_item_sources: Sequence[str] = ("ease", "item_knn")) -> dict[str, Reason]:
    """Feature -> Reason for the features of `ranking_features` and the usual source names. A source's reason
    holds only when it scores the item; placeholders name the item's context (anchor titles and verbs, fields)."""
    bought = f"Because you {{{COOCCURRENCE_ANCHOR}_verb}} {{{COOCCURRENCE_ANCHOR}_title}}"
    similar = f"Similar to {{{CONTENT_ANCHOR}_title}}, which you {{{CONTENT_ANCHOR}_verb}}"
    following = f"Often chosen next after {{{TRANSITION_ANCHOR}_title}}, which you {{{TRANSITION_ANCHOR}_verb}}"
    sources = {"cooccurrence": bought, "content": similar, "als": "Liked by shoppers with similar taste",
               "two_tower": "Picked for you from your history",
               "transitions": following,
               **{name: bought for name in item_item_sources}}
    templates: dict[str, Reason] = {}
    for source, sentence in sources.items():
        for suffix in ("score", "rank"):
            templates[f"{source}_{suffix}"] = Reason(sentence, _scored_by(source))
    where = f" in {{{category_field}}}" if category_field else ""
    templates[item_pop_name(7)] = Reason(f"Popular this week{where}", _between(item_pop_name(7), 1, math.inf))
    templates[item_pop_name(30)] = Reason(f"Popular this month{where}", _between(item_pop_name(30), 1, math.inf))
    templates[ITEM_POP_ALL] = Reason(f"A bestseller{where}", _between(ITEM_POP_ALL, 1, math.inf))
    templates["recent_pop_score"] = Reason(f"Trending now{where}", _scored_by("recent_pop"))
    templates["recent_pop_rank"] = templates["recent_pop_score"]
    in_band = _between(PRICE_RATIO, *USUAL_PRICE_BAND)
    templates[PRICE_RATIO] = templates[PRICE_DISTANCE] = Reason("In your usual price range", in_band)
    templates[ITEM_AGE] = Reason("New this month", _between(ITEM_AGE, 0.0, 30.0))
    if category_field:
        templates[user_share_name(category_field)] = Reason(
            f"You often choose {{{category_field}}}", _between(user_share_name(category_field), 1e-9, 1.0))
        templates[days_since_name(category_field)] = Reason(
            f"You recently looked at {{{category_field}}}", _between(days_since_name(category_field), 0.0, 30.0))
    if brand_field:
        templates[user_share_name(brand_field)] = Reason(
            f"From {{{brand_field}}}, a brand you like", _between(user_share_name(brand_field), 1e-9, 1.0))
    return templates


def verb(event_type: str) -> str:
    """The past tense that names an event in a reason ("Because you bought ..."); "chose" for an unknown type."""
    return VERBS.get(event_type.lower(), "chose")


def history_anchors(candidates: np.ndarray, recent: np.ndarray, item_users: sp.csr_matrix,
                    content: np.ndarray | None = None, following: sp.csr_matrix | None = None,
                    pairs: sp.csr_matrix | None = None) -> dict[str, np.ndarray]:
    """Per candidate label (n,), the item of the user's `recent` history (labels, latest first) its evidence
    comes from, or -1 when no recent item has any: `cooccurrence_anchor`, held together with it by the most users
    (`item_users` (n_items, n_users) binary), `transition_anchor`, the one it most often follows (`following`:
    the transition source's successor matrix) and `content_anchor`, the most similar by cosine of the unit
    `content` vectors (n_items, d), never the candidate itself. Ties go to the most recent item. Items past a
    matrix's rows (added after the bundle) have no evidence in it. A name is absent when nothing can anchor it.
    `pairs`: the co-occurrence source's kept item-pair counts (`CooccurrenceSource.keep_pair_counts`), read
    instead of the users of `item_users` when given."""
    n = item_users.shape[0]
    known = np.asarray(recent, np.int64)
    known = known[known < n]
    if not len(known):
        return {}
    columns = np.minimum(candidates, n - 1)
    counts = shared_users(item_users, known, columns) if pairs is None else csr_entries(pairs, known, columns)
    counts[:, candidates >= n] = 0
    counts[known[:, None] == candidates[None, :]] = 0  # an item bought again is not its own reason
    anchors = {COOCCURRENCE_ANCHOR: _best_anchor(counts, known)}
    if following is not None:
        anchors[TRANSITION_ANCHOR] = _best_anchor(csr_entries(following, known, candidates), known)
    mine = known[known < len(content)] if content is not None else known[:0]
    if content is not None and len(mine):
        similarity = content[mine] @ content[np.minimum(candidates, len(content) - 1)].T
        similarity[:, candidates >= len(content)] = 0
        similarity[mine[:, None] == candidates[None, :]] = 0
        anchors[CONTENT_ANCHOR] = _best_anchor(similarity, mine)
    return anchors


def anchor_fields(anchors: Mapping[str, np.ndarray], describe: Callable[[int], tuple[str, str]],
                  latest_types: Mapping[int, str]) -> list[dict[str, Any]]:
    """Per candidate, what the reason templates read of each anchor (`history_anchors`): `<anchor>_title`,
    `<anchor>_verb` (of the user's latest event on it) and `<anchor>_id`, all None where there is no anchor.
    describe(label) -> (item id, title)."""
    n = len(next(iter(anchors.values()))) if anchors else 0
    fields: list[dict[str, Any]] = [{} for _ in range(n)]
    named: dict[int, tuple[Any, Any, Any]] = {-1: (None, None, None)}  # a few history items anchor every row
    for name, labels in anchors.items():
        title_key, id_key, verb_key = f"{name}_title", f"{name}_id", f"{name}_verb"
        for record, anchor in zip(fields, labels.tolist()):
            if anchor not in named:
                named[anchor] = (*describe(anchor), verb(latest_types[anchor]))
            item_id, title, said = named[anchor]
            record[title_key], record[id_key], record[verb_key] = title, item_id, said
    return fields


def shared_users(item_users: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(len(rows), len(columns)) float64: how many users hold both items, from the binary (n_items, n_users) CSR:
    `item_users[rows] @ item_users[columns].T` by one sort of the rows' users, without scipy's per-call overhead."""
    row_of, row_users = csr_rows(item_users, rows)
    column_of, column_users = csr_rows(item_users, columns)
    order = np.argsort(row_users, kind="stable")
    sorted_users = row_users[order]
    low = np.searchsorted(sorted_users, column_users, side="left")
    matches = np.searchsorted(sorted_users, column_users, side="right") - low
    column = np.repeat(column_of, matches)
    position = np.repeat(low, matches) + np.arange(int(matches.sum())) - np.repeat(np.cumsum(matches) - matches, matches)
    counts = np.zeros((len(rows), len(columns)))
    np.add.at(counts, (row_of[order[position]], column), 1.0)
    return counts


def _best_anchor(scores: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Per column of scores (m anchors, n candidates), the anchor with the highest positive score (the first
    row on ties), else -1."""
    best = scores.argmax(axis=0)
    found = scores[best, np.arange(scores.shape[1])] > 0
    return np.where(found, anchors[best], -1)


def first_value(value: Any) -> Any:
    """The value of a field as text (a list's first element); None when missing."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return str(value[0]) if len(value) else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)

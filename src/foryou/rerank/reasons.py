"""Plain-words reasons for a ranked item, from its own feature contributions and the things they point at.

A `Reason` is a sentence template per feature ("Because you {cooccurrence_anchor_verb} {cooccurrence_anchor_title}")
with an optional condition on the item's values. `explain_items` walks an item's positive contributions, largest
first, and keeps up to 3 distinct sentences whose placeholders all name something real; a reason whose thing is
missing (no anchor, no category) is skipped, never written vaguely. `history_anchors` finds, for each candidate,
the item of the user's recent history that the co-occurrence / content evidence comes from, and
`reason_context` turns indices into titles, verbs and category names.
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
from foryou.data.dataset import Dataset
from foryou.rerank.features import (
    ITEM_AGE,
    ITEM_POP_ALL,
    PRICE_DISTANCE,
    PRICE_RATIO,
    HistoryEnd,
    cut_per_user,
    days_since_name,
    item_pop_name,
    user_share_name,
)

COOCCURRENCE_ANCHOR = "cooccurrence_anchor"
CONTENT_ANCHOR = "content_anchor"
VERBS = {S.PURCHASE: "bought", S.VIEW: "viewed", S.CLICK: "viewed", S.ADD_TO_CART: "added to your cart",
         S.SAVE: "saved", S.RATING: "rated"}
USUAL_PRICE_BAND = (2 / 3, 1.5)


@dataclass(frozen=True)
class Reason:
    """A sentence with {placeholders} filled from the item's row; `condition(row)` must hold for it to apply."""

    sentence: str
    condition: Callable[[Mapping[str, Any]], bool] | None = None


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
    item's features and context columns (`reason_context`), same order, as a frame or as one mapping per item.
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
    names = [name for _, name, _, _ in string.Formatter().parse(reason.sentence) if name]
    values = {name: row.get(name) for name in names}
    if any(not _present(value) for value in values.values()):
        return None
    return reason.sentence.format(**values)


def _present(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return not (isinstance(value, str) and not value.strip())


def _between(column: str, low: float, high: float) -> Callable[[Mapping[str, Any]], bool]:
    def check(row: Mapping[str, Any]) -> bool:
        value = row.get(column)
        return _present(value) and low <= float(value) <= high  # type: ignore[arg-type]

    return check


def _proposed_by(source: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda row: _present(row.get(f"{source}_score"))


def default_templates(category_field: str | None = None, brand_field: str | None = None,
                      item_item_sources: Sequence[str] = ("ease", "item_knn")) -> dict[str, Reason]:
    """Feature -> Reason for the features of `ranking_features` and the usual source names. A source's reason
    holds only when it proposed the item; placeholders name the context columns of `reason_context`."""
    bought = f"Because you {{{COOCCURRENCE_ANCHOR}_verb}} {{{COOCCURRENCE_ANCHOR}_title}}"
    similar = f"Similar to {{{CONTENT_ANCHOR}_title}}, which you {{{CONTENT_ANCHOR}_verb}}"
    sources = {"cooccurrence": bought, "content": similar, "als": "Liked by shoppers with similar taste",
               "two_tower": "Picked for you from your history",
               **{name: bought for name in item_item_sources}}
    templates: dict[str, Reason] = {}
    for source, sentence in sources.items():
        for suffix in ("score", "rank"):
            templates[f"{source}_{suffix}"] = Reason(sentence, _proposed_by(source))
    where = f" in {{{category_field}}}" if category_field else ""
    templates[item_pop_name(7)] = Reason(f"Popular this week{where}", _between(item_pop_name(7), 1, math.inf))
    templates[item_pop_name(30)] = Reason(f"Popular this month{where}", _between(item_pop_name(30), 1, math.inf))
    templates[ITEM_POP_ALL] = Reason(f"A bestseller{where}", _between(ITEM_POP_ALL, 1, math.inf))
    templates["recent_pop_score"] = Reason(f"Trending now{where}", _proposed_by("recent_pop"))
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


def history_anchors(candidates: pd.DataFrame, dataset: Dataset, history_end: HistoryEnd, *, last_n: int = 5,
                    item_vectors: np.ndarray | None = None) -> pd.DataFrame:
    """candidates (n, ...) with user_idx, item_idx -> (n, 4): `cooccurrence_anchor` / `content_anchor` (item_idx
    of the user's last `last_n` distinct items before the cut that co-occurs most with / is most similar to the
    candidate; -1 when none) and `<anchor>_event` (the user's latest event type on it), in the same row order.

    Co-occurrence counts users whose history before the cut holds both items; content uses cosine of
    `item_vectors` (n_items, d), skipped when None.
    """
    users = candidates[S.USER_IDX].to_numpy(np.int64)
    user_cut = cut_per_user(history_end, dataset.n_users, np.unique(users))
    events = dataset.interactions
    stamps = pd.DatetimeIndex(pd.to_datetime(events[S.TIMESTAMP], utc=True)).as_unit("ns").asi8
    before = events[stamps < user_cut[events[S.USER_IDX].to_numpy(np.int64)]]
    recent = _recent_items(before, last_n)
    pairs = pd.DataFrame({"row": np.arange(len(users)), S.USER_IDX: users,
                          S.ITEM_IDX: candidates[S.ITEM_IDX].to_numpy(np.int64)}).merge(recent, on=S.USER_IDX)
    pairs = pairs[pairs[S.ITEM_IDX] != pairs["anchor"]]
    held = sp.csr_matrix((np.ones(len(before), np.float32), (before[S.ITEM_IDX].to_numpy(np.int64),
                                                              before[S.USER_IDX].to_numpy(np.int64))),
                         shape=(dataset.n_items, dataset.n_users))
    held.sum_duplicates()
    held.data[:] = 1.0
    anchor, item = pairs["anchor"].to_numpy(), pairs[S.ITEM_IDX].to_numpy()
    scores = {COOCCURRENCE_ANCHOR: np.asarray(held[anchor].multiply(held[item]).sum(axis=1)).ravel()}
    if item_vectors is not None:
        vectors = np.asarray(item_vectors, np.float32)
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        scores[CONTENT_ANCHOR] = np.einsum("nd,nd->n", unit[anchor], unit[item])
    out = pd.DataFrame(index=candidates.index)
    for name in (COOCCURRENCE_ANCHOR, CONTENT_ANCHOR):
        best = _best_anchor(pairs, scores.get(name), len(users))
        out[name] = best["anchor"].to_numpy(np.int64)
        out[f"{name}_event"] = best[S.EVENT_TYPE].to_numpy(dtype=object)
    return out


def _recent_items(events: pd.DataFrame, last_n: int) -> pd.DataFrame:
    """(user_idx, anchor, event_type): each user's `last_n` most recent distinct items and the latest event type."""
    order = [column for column in (S.USER_IDX, S.TIMESTAMP, S.SOURCE_ORDER) if column in events]
    latest = events.sort_values(order, kind="stable").drop_duplicates([S.USER_IDX, S.ITEM_IDX], keep="last")
    latest = latest[latest.groupby(S.USER_IDX).cumcount(ascending=False) < last_n]
    return pd.DataFrame({S.USER_IDX: latest[S.USER_IDX].to_numpy(np.int64),
                         "anchor": latest[S.ITEM_IDX].to_numpy(np.int64),
                         S.EVENT_TYPE: latest[S.EVENT_TYPE].to_numpy(dtype=object)})


def _best_anchor(pairs: pd.DataFrame, scores: np.ndarray | None, n_rows: int) -> pd.DataFrame:
    """Per candidate row, the anchor with the highest positive score (ties: the lower item_idx); -1 / None."""
    empty = pd.DataFrame({"anchor": np.full(n_rows, -1, np.int64), S.EVENT_TYPE: np.full(n_rows, None, object)})
    if scores is None:
        return empty
    scored = pairs.assign(score=scores)
    scored = scored[scored["score"] > 0].sort_values(["row", "score", "anchor"], ascending=[True, False, True])
    best = scored.drop_duplicates("row").set_index("row")
    empty.loc[best.index, "anchor"] = best["anchor"].to_numpy(np.int64)
    empty.loc[best.index, S.EVENT_TYPE] = best[S.EVENT_TYPE].to_numpy(dtype=object)
    return empty


def reason_context(frame: pd.DataFrame, dataset: Dataset, fields: Sequence[str] = (),
                   title_field: str | None = None) -> pd.DataFrame:
    """frame (n, ...) with item_idx and optional anchor columns -> a copy with, per `fields`, the item's value
    (the first one of a list), and per anchor `<anchor>_title` and `<anchor>_verb` ("bought", "viewed", ...)."""
    out = frame.copy()
    items = dataset.items.set_index(S.ITEM_IDX) if S.ITEM_IDX in dataset.items else dataset.items
    title = title_field or _default_title_field(dataset)
    titles = items[title].reindex(np.arange(dataset.n_items)).to_numpy(dtype=object)
    item_idx = out[S.ITEM_IDX].to_numpy(np.int64)
    for name in fields:
        values = items[name].reindex(np.arange(dataset.n_items)).map(first_value).to_numpy(dtype=object)
        out[name] = values[item_idx]
    for anchor in (COOCCURRENCE_ANCHOR, CONTENT_ANCHOR):
        if anchor not in out:
            continue
        index = out[anchor].to_numpy(np.int64)
        out[f"{anchor}_title"] = np.where(index >= 0, titles[np.maximum(index, 0)], None)
        events = out[f"{anchor}_event"] if f"{anchor}_event" in out else pd.Series(None, index=out.index)
        out[f"{anchor}_verb"] = np.where(index >= 0, events.map(lambda e: VERBS.get(e, "chose")).to_numpy(object),
                                         None)
    return out


def _default_title_field(dataset: Dataset) -> str:
    if "title" in dataset.items:
        return "title"
    text = [name for name in dataset.item_fields.text if name in dataset.items]
    return text[0] if text else S.ITEM_ID


def first_value(value: Any) -> Any:
    """The value of a field as text (a list's first element); None when missing."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return str(value[0]) if len(value) else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)

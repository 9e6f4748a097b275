"""Interpretable ranking features per (user, item) candidate, computed only from events before a cut.

`ranking_features` takes the merged candidate frame (user_idx, item_idx, `<source>_score`, `<source>_rank`, ...)
and adds item popularity, item age, price against the user's usual price, the user's affinity to the item's
category / brand and the user's activity. Every number is computed from the events strictly before the user's
`history_end` (one timestamp for everybody, or one per user), so a ranker trained on the event after the cut
never sees its own label. Everything is vectorised: joins and searchsorted, no Python loop over candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from foryou.data import schema as S
from foryou.data.dataset import Dataset

HistoryEnd: TypeAlias = "pd.Timestamp | datetime | str | pd.Series | Mapping[int, Any]"

NS_PER_DAY = 86_400 * 10**9
ID_COLUMNS = (S.USER_IDX, S.ITEM_IDX)
PRICE_RATIO = "price_ratio"
PRICE_DISTANCE = "price_distance"
ITEM_AGE = "item_age_days"
ITEM_POP_ALL = "item_pop_all"
USER_EVENTS = "user_events"
USER_ITEMS = "user_items"
_NO_HISTORY = np.iinfo(np.int64).min


def item_pop_name(days: int) -> str:
    """Column of the item's event count in the last `days` days before the cut, e.g. item_pop_7d."""
    return f"item_pop_{days}d"


def user_share_name(field: str) -> str:
    """Column of the share of the user's events whose item shares a value of `field` with the candidate."""
    return f"user_share_{field}"


def days_since_name(field: str) -> str:
    """Column of the days since the user last had an event on an item sharing a value of `field`."""
    return f"days_since_{field}"


def ranking_features(
    candidates: pd.DataFrame,
    dataset: Dataset,
    history_end: HistoryEnd,
    *,
    windows_days: Sequence[int] = (7, 30),
    group_fields: Sequence[str] | None = None,
    price_field: str | None = None,
) -> pd.DataFrame:
    """candidates (n, ...) with user_idx, item_idx -> a copy with the feature columns added, same row order.

    Added: item_pop_all, item_pop_<d>d per window (event counts of the item over all users before the cut),
    item_age_days (since the item's first event; NaN without one), price_ratio (item price / median price of the
    user's past items) and price_distance = |log price_ratio| (NaN without a price field or history),
    user_share_<field> and days_since_<field> per group field, user_events and user_items.
    `group_fields` defaults to the first two categorical item fields, `price_field` to the first numeric item
    field whose name contains "price". Only events with timestamp < the user's cut are read.
    """
    missing = [column for column in ID_COLUMNS if column not in candidates]
    if missing:
        raise ValueError(f"candidates need columns {list(ID_COLUMNS)}; missing {missing}")
    out = candidates.copy()
    users = out[S.USER_IDX].to_numpy(np.int64)
    items = out[S.ITEM_IDX].to_numpy(np.int64)
    user_cut = cut_per_user(history_end, dataset.n_users, np.unique(users))
    cuts = user_cut[users]
    events = _event_table(dataset.interactions)
    _add_item_features(out, events, items, cuts, windows_days, dataset.n_items)
    history = events[events["ns"].to_numpy() < user_cut[events[S.USER_IDX].to_numpy()]]
    per_user = history.groupby(S.USER_IDX).agg(n=(S.ITEM_IDX, "size"), distinct=(S.ITEM_IDX, "nunique"))
    n_events = per_user["n"].reindex(users).fillna(0).to_numpy(np.float64)
    out[USER_EVENTS] = n_events
    out[USER_ITEMS] = per_user["distinct"].reindex(users).fillna(0).to_numpy(np.float64)
    price = price_field if price_field is not None else default_price_field(dataset)
    if price is not None:
        _add_price_features(out, history, _item_column(dataset, price), users, items)
    fields = list(group_fields) if group_fields is not None else default_group_fields(dataset)
    for field in fields:
        share, days = _group_affinity(history, item_value_pairs(dataset, field), users, items, cuts, n_events)
        out[user_share_name(field)] = share
        out[days_since_name(field)] = days
    return out


def feature_columns(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """The numeric columns a ranker reads: everything but the ids and `exclude` (e.g. the label)."""
    skip = {*ID_COLUMNS, *exclude}
    return [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]


FeatureRows: TypeAlias = "pd.DataFrame | Mapping[str, np.ndarray]"


def feature_matrix(features: FeatureRows, names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) float64 of the named columns, in that order (NaN kept); a missing one is a ValueError
    naming it. A mapping of column arrays (one request's candidates in the service) skips pandas altogether."""
    missing = [name for name in names if name not in features]
    if missing:
        raise ValueError(f"features lack the column(s) the ranker was fitted on: {missing}")
    if isinstance(features, pd.DataFrame):
        return features[list(names)].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.column_stack([np.asarray(features[name], dtype=np.float64) for name in names])


def default_group_fields(dataset: Dataset) -> list[str]:
    """The first two categorical item fields present in the items table (category, brand, genres, ...)."""
    return [name for name in dataset.item_fields.categorical if name in dataset.items][:2]


def default_price_field(dataset: Dataset) -> str | None:
    """The first numeric item field whose name contains "price", or None."""
    names = [name for name in dataset.item_fields.numeric if "price" in name.lower() and name in dataset.items]
    return names[0] if names else None


def cut_per_user(history_end: HistoryEnd, n_users: int, needed: np.ndarray | None = None) -> np.ndarray:
    """(n_users,) int64 nanoseconds since the epoch: events at or after a user's cut are ignored.

    One timestamp applies to every user; a Series / Mapping user_idx -> timestamp gives one per user, and a
    user absent from it has no history (every `needed` user must be present).
    """
    if isinstance(history_end, (pd.Series, Mapping)):
        given = pd.Series(history_end)
        absent = np.setdiff1d(np.asarray(needed if needed is not None else [], np.int64), given.index.to_numpy())
        if len(absent):
            raise ValueError(f"history_end has no cut for user_idx {absent[:10].tolist()}: give one per candidate user")
        cuts = np.full(n_users, _NO_HISTORY, dtype=np.int64)
        cuts[given.index.to_numpy(np.int64)] = nanoseconds(given)
        return cuts
    return np.full(n_users, nanoseconds(pd.Series([history_end]))[0], dtype=np.int64)


def item_value_pairs(dataset: Dataset, field: str) -> pd.DataFrame:
    """(item_idx, code) rows, one per value of `field` on each item (lists expanded); attrs["values"] names codes."""
    column = _item_column(dataset, field)
    exploded = column.explode()
    exploded = exploded[exploded.notna()].astype(str)
    exploded = exploded[exploded != ""]
    codes, values = pd.factorize(exploded)
    pairs = pd.DataFrame({S.ITEM_IDX: exploded.index.to_numpy(np.int64), "code": codes.astype(np.int64)})
    pairs.attrs["values"] = np.asarray(values, dtype=object)
    return pairs


def _item_column(dataset: Dataset, field: str) -> pd.Series:
    """The item field as an object Series indexed by item_idx 0..n_items-1; a missing field is a ValueError."""
    if field not in dataset.items:
        raise ValueError(f"item field '{field}' is not in the items table; fields: {list(dataset.items.columns)}")
    index = dataset.items[S.ITEM_IDX] if S.ITEM_IDX in dataset.items else pd.RangeIndex(dataset.n_items)
    column = pd.Series(dataset.items[field].to_numpy(dtype=object), index=np.asarray(index, np.int64))
    return column.reindex(np.arange(dataset.n_items))


def nanoseconds(values: pd.Series) -> np.ndarray:
    """Timestamps (any form pandas reads, naive = UTC) as int64 nanoseconds since the epoch."""
    stamps = pd.to_datetime(values, utc=True)
    return pd.DatetimeIndex(stamps).as_unit("ns").asi8.astype(np.int64)


def _event_table(interactions: pd.DataFrame) -> pd.DataFrame:
    """user_idx, item_idx, ns (int64 timestamp) of every event, in the interactions' order."""
    return pd.DataFrame({S.USER_IDX: interactions[S.USER_IDX].to_numpy(np.int64),
                         S.ITEM_IDX: interactions[S.ITEM_IDX].to_numpy(np.int64),
                         "ns": nanoseconds(interactions[S.TIMESTAMP])})


def _add_item_features(out: pd.DataFrame, events: pd.DataFrame, items: np.ndarray, cuts: np.ndarray,
                       windows_days: Sequence[int], n_items: int) -> None:
    """Item popularity before each row's cut (all time and per window) and item age, in place."""
    counter = _CountsBefore(events[S.ITEM_IDX].to_numpy(), events["ns"].to_numpy(), n_items)
    before_cut = counter.count(items, cuts)
    out[ITEM_POP_ALL] = before_cut.astype(np.float64)
    for days in windows_days:
        start = cuts - np.int64(days) * NS_PER_DAY
        out[item_pop_name(days)] = (before_cut - counter.count(items, start)).astype(np.float64)
    first = np.full(n_items, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, events[S.ITEM_IDX].to_numpy(), events["ns"].to_numpy())
    first_seen = first[items]
    out[ITEM_AGE] = np.where(first_seen < cuts, (cuts - first_seen) / NS_PER_DAY, np.nan)


class _CountsBefore:
    """Counts of events of item i strictly before time t, for arrays of (i, t), by one searchsorted.

    Events are keyed item * (T + 1) + dense rank of their timestamp among the T distinct timestamps, so
    "item i before t" is the key range [i * (T + 1), i * (T + 1) + rank(t)).
    """

    def __init__(self, items: np.ndarray, times: np.ndarray, n_items: int) -> None:
        self.times = np.unique(times)
        self.width = np.int64(len(self.times) + 1)
        keys = np.asarray(items, np.int64) * self.width + np.searchsorted(self.times, times, side="left")
        self.keys = np.sort(keys)

    def count(self, items: np.ndarray, before: np.ndarray) -> np.ndarray:
        base = np.asarray(items, np.int64) * self.width
        rank = np.searchsorted(self.times, before, side="left")
        return np.searchsorted(self.keys, base + rank, side="left") - np.searchsorted(self.keys, base, side="left")


def _add_price_features(out: pd.DataFrame, history: pd.DataFrame, price: pd.Series, users: np.ndarray,
                        items: np.ndarray) -> None:
    """price_ratio = item price / median price of the user's past events' items; price_distance = |log ratio|."""
    prices = pd.to_numeric(price, errors="coerce").to_numpy(np.float64)
    paid = pd.Series(prices[history[S.ITEM_IDX].to_numpy()], index=history[S.USER_IDX].to_numpy())
    usual = paid.groupby(level=0).median().reindex(users).to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(usual > 0, prices[items] / usual, np.nan)
        out[PRICE_RATIO] = ratio
        out[PRICE_DISTANCE] = np.abs(np.log(np.where(ratio > 0, ratio, np.nan)))


def _group_affinity(history: pd.DataFrame, pairs: pd.DataFrame, users: np.ndarray, items: np.ndarray,
                    cuts: np.ndarray, n_events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate row: (share of the user's events on items sharing a value with the item, days since the
    latest such event). Several values (a list field): the best one. No shared value: 0 and NaN."""
    seen = history.merge(pairs, on=S.ITEM_IDX)
    stats = seen.groupby([S.USER_IDX, "code"], as_index=False).agg(n=("ns", "size"), last=("ns", "max"))
    rows = pd.DataFrame({"row": np.arange(len(users)), S.USER_IDX: users, S.ITEM_IDX: items})
    joined = rows.merge(pairs, on=S.ITEM_IDX).merge(stats, on=[S.USER_IDX, "code"])
    best = joined.groupby("row").agg(n=("n", "max"), last=("last", "max")).reindex(np.arange(len(users)))
    count = best["n"].fillna(0).to_numpy(np.float64)
    share = np.where(n_events > 0, count / np.maximum(n_events, 1), 0.0)
    last = best["last"].to_numpy(np.float64)
    days = np.where(np.isnan(last), np.nan, (cuts - np.nan_to_num(last)) / NS_PER_DAY)
    return share, days

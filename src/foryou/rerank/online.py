"""The ranking features of one user's candidates from a raw history, as the service computes them per request.

`ranking_features` computes the features of many users offline with joins over the whole log. A request has one
user, a history that may hold events the log never saw, and a 5 ms budget, so the item side is frozen once
(`CatalogFeatures`: popularity and first-seen time at the bundle's reference time, prices, category / brand
codes) and the user side is a few numpy reductions over the history. Both paths give the same numbers for the
same cut (a test holds them together), so the ranker sees in serving what it learned from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.models.sparse_rows import csr_rows
from foryou.rerank.features import (
    ITEM_AGE,
    ITEM_POP_ALL,
    NS_PER_DAY,
    PRICE_DISTANCE,
    PRICE_RATIO,
    USER_EVENTS,
    USER_ITEMS,
    days_since_name,
    default_group_fields,
    default_price_field,
    item_pop_name,
    item_value_pairs,
    nanoseconds,
    user_share_name,
)

NO_EVENT = np.iinfo(np.int64).max


@dataclass
class CatalogFeatures:
    """Item-side inputs of the ranking features, frozen at `reference_ns` (events at or after it are not counted).

    pop_all / pop_windows: event counts before the reference (per window: in the `days` before it); first_ns: the
    item's first event (NO_EVENT without one); price: (n_items,) float64 or None; groups: field -> binary
    (n_items, n_codes) CSR of the item's values of that field (list fields: several codes).
    """

    reference_ns: int
    pop_all: np.ndarray
    pop_windows: dict[int, np.ndarray]
    first_ns: np.ndarray
    price_field: str | None
    price: np.ndarray | None
    groups: dict[str, sp.csr_matrix]

    @property
    def n_items(self) -> int:
        return len(self.pop_all)

    @classmethod
    def from_dataset(cls, dataset: Dataset, reference: pd.Timestamp | None = None,
                     windows_days: Sequence[int] = (7, 30)) -> CatalogFeatures:
        """Frozen from every interaction of `dataset` before `reference` (default: just after its last event), with
        the group and price fields that `ranking_features` picks by default for this dataset."""
        items = dataset.interactions[S.ITEM_IDX].to_numpy(np.int64)
        stamps = nanoseconds(dataset.interactions[S.TIMESTAMP])
        reference_ns = int(stamps.max(initial=0)) + 1 if reference is None else int(nanoseconds(pd.Series([reference]))[0])
        keep = stamps < reference_ns
        items, stamps = items[keep], stamps[keep]
        n = dataset.n_items
        windows = {days: np.bincount(items[stamps >= reference_ns - days * NS_PER_DAY], minlength=n).astype(np.float64)
                   for days in windows_days}
        first = np.full(n, NO_EVENT, dtype=np.int64)
        np.minimum.at(first, items, stamps)
        price_field = default_price_field(dataset)
        price = None
        if price_field is not None:
            column = dataset.items.set_index(S.ITEM_IDX)[price_field].reindex(np.arange(n))
            price = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
        groups = {field: _group_matrix(item_value_pairs(dataset, field), n) for field in default_group_fields(dataset)}
        return cls(reference_ns, np.bincount(items, minlength=n).astype(np.float64), windows, first, price_field,
                   price, groups)

    def features(self, candidates: np.ndarray, history: np.ndarray, history_ns: np.ndarray,
                 cut_ns: int) -> dict[str, np.ndarray]:
        """Feature columns (name -> (n,) float64) of `candidates` (item indices) for a user whose events
        are `history` (item indices) at `history_ns`; only events before `cut_ns` count. Item columns are read at
        the reference time, user columns at `cut_ns`. Items added after the bundle (index >= n_items) have no events,
        price or values here: popularity 0, shares 0, the rest NaN."""
        given = np.asarray(candidates, np.int64)
        known = given < self.n_items  # items added after the bundle: no events, price or values known here
        candidates = np.where(known, given, 0)
        before = (np.asarray(history_ns, np.int64) < cut_ns) & (np.asarray(history, np.int64) < self.n_items)
        history, history_ns = np.asarray(history, np.int64)[before], np.asarray(history_ns, np.int64)[before]
        first = np.where(known, self.first_ns[candidates], NO_EVENT)
        columns = {ITEM_POP_ALL: np.where(known, self.pop_all[candidates], 0.0)}
        columns.update({item_pop_name(days): np.where(known, counts[candidates], 0.0)
                        for days, counts in self.pop_windows.items()})
        columns[ITEM_AGE] = np.where(first < self.reference_ns, (self.reference_ns - first) / NS_PER_DAY, np.nan)
        n_events = float(len(history))
        columns[USER_EVENTS] = np.full(len(candidates), n_events)
        columns[USER_ITEMS] = np.full(len(candidates), float(len(np.unique(history))))
        if self.price is not None:
            columns.update(_price_columns(self.price, history, candidates))
        for field, matrix in self.groups.items():
            share, days = _group_columns(matrix, history, history_ns, candidates, cut_ns, n_events)
            columns[user_share_name(field)] = share
            columns[days_since_name(field)] = days
        user_item = {name: np.where(known, values, 0.0 if name.startswith("user_share_") else np.nan)
                     for name, values in columns.items() if name.startswith(("user_share_", "days_since_", "price_"))}
        return {**columns, **user_item}

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"reference_ns": np.array([self.reference_ns]), "pop_all": self.pop_all,
                                         "first_ns": self.first_ns}
        arrays.update({f"window_{days}": counts for days, counts in self.pop_windows.items()})
        if self.price is not None:
            arrays["price"] = self.price
            arrays["price_field"] = np.array([self.price_field])
        for position, (field, matrix) in enumerate(self.groups.items()):
            arrays[f"group_{position}_name"] = np.array([field])
            arrays.update({f"group_{position}_{part}": getattr(matrix, part) for part in ("data", "indices", "indptr")})
            arrays[f"group_{position}_shape"] = np.array(matrix.shape)
        np.savez(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> CatalogFeatures:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        windows = {int(name.split("_")[1]): arrays[name] for name in arrays if name.startswith("window_")}
        groups = {}
        for position in range(sum(1 for name in arrays if name.endswith("_name") and name.startswith("group_"))):
            key = f"group_{position}"
            groups[str(arrays[f"{key}_name"][0])] = sp.csr_matrix(
                (arrays[f"{key}_data"], arrays[f"{key}_indices"], arrays[f"{key}_indptr"]),
                shape=tuple(arrays[f"{key}_shape"]))
        price_field = str(arrays["price_field"][0]) if "price_field" in arrays else None
        return cls(int(arrays["reference_ns"][0]), arrays["pop_all"], windows, arrays["first_ns"], price_field,
                   arrays.get("price"), groups)


def _group_matrix(pairs: pd.DataFrame, n_items: int) -> sp.csr_matrix:
    """Binary (n_items, n_codes) CSR from (item_idx, code) rows."""
    n_codes = int(pairs["code"].max()) + 1 if len(pairs) else 0
    matrix = sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs[S.ITEM_IDX].to_numpy(np.int64),
                                                               pairs["code"].to_numpy(np.int64))),
                           shape=(n_items, n_codes))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _price_columns(price: np.ndarray, history: np.ndarray, candidates: np.ndarray) -> dict[str, np.ndarray]:
    """price_ratio (candidate price / median price of the history's events) and |log ratio|, as offline."""
    paid = price[history]
    paid = paid[~np.isnan(paid)]
    usual = float(np.median(paid)) if len(paid) else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(usual > 0, price[candidates] / usual, np.nan)
        distance = np.abs(np.log(np.where(ratio > 0, ratio, np.nan)))
    return {PRICE_RATIO: ratio, PRICE_DISTANCE: distance}


def _group_columns(matrix: sp.csr_matrix, history: np.ndarray, history_ns: np.ndarray, candidates: np.ndarray,
                   cut_ns: int, n_events: float) -> tuple[np.ndarray, np.ndarray]:
    """(share of the history's events on the candidate's best shared value, days since the latest such event)."""
    n_codes = matrix.shape[1]
    event_of, event_codes = csr_rows(matrix, history)
    counts = np.bincount(event_codes, minlength=n_codes).astype(np.float64)
    last = np.full(n_codes, -1, dtype=np.int64)
    np.maximum.at(last, event_codes, history_ns[event_of])
    owner, codes = csr_rows(matrix, candidates)
    best_count = np.zeros(len(candidates))
    np.maximum.at(best_count, owner, counts[codes])
    best_last = np.full(len(candidates), -1, dtype=np.int64)
    np.maximum.at(best_last, owner, last[codes])
    share = best_count / n_events if n_events > 0 else np.zeros(len(candidates))
    days = np.where(best_last >= 0, (cut_ns - best_last) / NS_PER_DAY, np.nan)
    return share, days

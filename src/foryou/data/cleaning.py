"""Checks on canonical interactions and duplicate removal: nothing is dropped without being counted.

Malformed rows (null or empty ids, missing timestamps, ratings without a usable value where the rating mode
needs one) go to the quarantine table with a reason; `row` there is the event's `source_order` (0-based
record position in its source). Duplicates are removed by `EventsConfig.dedup`:
  none                 keep everything;
  exact                identical (user, item, event_type, timestamp, value): keep the first in source order;
  same_timestamp       same (user, item, event_type, timestamp): keep the first in source order;
  first_per_user_item  one event per (user, item): the earliest (ties: first in source order).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from foryou.data import schema as S
from foryou.data.schema import QUARANTINE_COLUMNS, empty_quarantine

DEDUP_KEYS = {
    "exact": [S.USER_ID, S.ITEM_ID, S.EVENT_TYPE, S.TIMESTAMP, S.VALUE],
    "same_timestamp": [S.USER_ID, S.ITEM_ID, S.EVENT_TYPE, S.TIMESTAMP],
    "first_per_user_item": [S.USER_ID, S.ITEM_ID],
}


def _empty_ids(values: pd.Series) -> np.ndarray:
    text = values.astype("str").str.strip()
    return (values.isna() | (text == "") | (text.str.lower() == "nan")).to_numpy(dtype=bool)


def validate_interactions(interactions: pd.DataFrame, file: str,
                          rating_value_required: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows, quarantine records of the others); each bad row is quarantined once, first reason found."""
    value = interactions[S.VALUE].to_numpy(dtype=np.float64)
    is_rating = (interactions[S.EVENT_TYPE] == S.RATING).to_numpy(dtype=bool)
    checks = [
        (_empty_ids(interactions[S.USER_ID]), "empty user_id"),
        (_empty_ids(interactions[S.ITEM_ID]), "empty item_id"),
        (interactions[S.TIMESTAMP].isna().to_numpy(dtype=bool), "missing timestamp"),
    ]
    if rating_value_required:
        checks.append((is_rating & ~np.isfinite(value), "rating without a finite value"))
    bad = np.zeros(len(interactions), dtype=bool)
    parts = []
    for mask, reason in checks:
        fresh = mask & ~bad
        if fresh.any():
            parts.append(_records(interactions.loc[fresh], file, reason))
        bad |= fresh
    quarantine = pd.concat(parts, ignore_index=True) if parts else empty_quarantine()
    return interactions.loc[~bad].reset_index(drop=True), quarantine


def _records(rows: pd.DataFrame, file: str, reason: str) -> pd.DataFrame:
    raw = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return pd.DataFrame({
        "file": file,
        "row": rows[S.SOURCE_ORDER].to_numpy(dtype=np.int64),
        "reason": reason,
        "raw": [json.dumps(record, default=str, ensure_ascii=False) for record in raw],
    }, columns=list(QUARANTINE_COLUMNS))


def deduplicate(interactions: pd.DataFrame, policy: str) -> tuple[pd.DataFrame, int]:
    """(interactions without duplicates under `policy`, rows removed); the kept rows keep their order."""
    if policy == "none":
        return interactions, 0
    if policy not in DEDUP_KEYS:
        raise ValueError(f"unknown dedup policy '{policy}'; use one of none, {', '.join(DEDUP_KEYS)}")
    order = [S.TIMESTAMP, S.SOURCE_ORDER] if policy == "first_per_user_item" else [S.SOURCE_ORDER]
    ranked = interactions.sort_values(order, kind="stable")
    duplicated = ranked.duplicated(DEDUP_KEYS[policy], keep="first")
    keep = pd.Series(~duplicated.to_numpy(), index=ranked.index).reindex(interactions.index)
    kept = interactions.loc[keep.to_numpy()].reset_index(drop=True)
    return kept, int(duplicated.sum())

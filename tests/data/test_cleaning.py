"""Validation of canonical interactions (quarantine with reasons) and the four dedup policies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from foryou.data import schema as S
from foryou.data.cleaning import deduplicate, validate_interactions

T1, T2 = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC")


def frame(rows: list[tuple]) -> pd.DataFrame:
    """(user, item, timestamp, event_type, value) rows in source order."""
    result = pd.DataFrame(rows, columns=[S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.EVENT_TYPE, S.VALUE])
    result[S.TIMESTAMP] = pd.to_datetime(result[S.TIMESTAMP], utc=True)
    result[S.SOURCE_ORDER] = np.arange(len(result), dtype=np.int64)
    return result


def test_malformed_rows_are_quarantined_with_reasons() -> None:
    log = frame([("u", "a", T1, "click", np.nan), (None, "a", T1, "click", np.nan), ("u", " ", T1, "click", 1.0),
                 ("u", "b", None, "click", 1.0), ("u", "c", T2, "rating", np.nan), ("", None, None, "x", 1.0)])
    kept, quarantine = validate_interactions(log, "events.csv", rating_value_required=True)
    assert kept[S.ITEM_ID].tolist() == ["a"]
    # The last row has three problems: only the first (empty user_id) is reported, once.
    assert list(zip(quarantine["row"], quarantine["reason"])) == [
        (1, "empty user_id"), (5, "empty user_id"), (2, "empty item_id"), (3, "missing timestamp"),
        (4, "rating without a finite value")]
    assert (quarantine["file"] == "events.csv").all()
    assert json.loads(quarantine["raw"].iloc[0])[S.ITEM_ID] == "a"
    assert len(kept) + len(quarantine) == len(log)


def test_rating_without_value_is_fine_when_not_needed() -> None:
    kept, quarantine = validate_interactions(frame([("u", "c", T2, "rating", np.nan)]), "f")
    assert len(kept) == 1 and quarantine.empty


# Rows: 0 (u,a,click,T1,1) 1 (u,a,click,T1,1) exact copy; 2 (u,a,click,T1,2) other value;
# 3 (u,a,view,T1,1) other type; 4 (u,a,click,T2,1) later; 5 (u,b,click,T2,1).
DUPES = frame([("u", "a", T1, "click", 1.0), ("u", "a", T1, "click", 1.0), ("u", "a", T1, "click", 2.0),
               ("u", "a", T1, "view", 1.0), ("u", "a", T2, "click", 1.0), ("u", "b", T2, "click", 1.0)])


@pytest.mark.parametrize(("policy", "kept_rows"), [
    ("none", [0, 1, 2, 3, 4, 5]),
    ("exact", [0, 2, 3, 4, 5]),            # row 1 is an exact copy of row 0
    ("same_timestamp", [0, 3, 4, 5]),      # rows 1, 2 share (u, a, click, T1) with row 0
    ("first_per_user_item", [0, 5]),       # one event per (user, item): the earliest, first in file order
])
def test_dedup_policies(policy: str, kept_rows: list[int]) -> None:
    kept, removed = deduplicate(DUPES, policy)
    assert kept[S.SOURCE_ORDER].tolist() == kept_rows
    assert removed == len(DUPES) - len(kept_rows)


def test_first_per_user_item_keeps_earliest_not_first_in_file() -> None:
    # The later event comes first in the file; the earliest (row 1) is kept.
    kept, removed = deduplicate(frame([("u", "a", T2, "click", 1.0), ("u", "a", T1, "view", 1.0)]),
                                "first_per_user_item")
    assert kept[S.SOURCE_ORDER].tolist() == [1] and removed == 1


def test_unknown_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown dedup policy 'latest'"):
        deduplicate(DUPES, "latest")

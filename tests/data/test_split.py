"""Splits: hand-computed assignments, tie-breaking by source order, cold flags, and a no-leakage property."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foryou.data import schema as S
from foryou.data.split import (
    global_time_split,
    leave_last_out_split,
    split_interactions,
    temporal_ratio_split,
)
from foryou.errors import ConfigError

DAY0 = pd.Timestamp("2024-01-01", tz="UTC")


def events(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(user, item, day) rows in source order."""
    return pd.DataFrame({
        S.USER_ID: [r[0] for r in rows], S.ITEM_ID: [r[1] for r in rows],
        S.TIMESTAMP: [DAY0 + pd.Timedelta(days=r[2]) for r in rows],
        S.EVENT_TYPE: "click", S.VALUE: np.nan, S.SOURCE_ORDER: np.arange(len(rows), dtype=np.int64),
    })


def assignment(result: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(u, i): s for u, i, s in zip(result[S.USER_ID], result[S.ITEM_ID], result[S.SPLIT])}


def test_leave_last_out_known_answer() -> None:
    # u1 has 4 events (days 3,1,2,4 in file order) -> by time: a(1) b(2) c(3) d(4): a,b train, c valid, d test.
    # u2 has 2 events -> x train, y test (no valid). u3 has 1 event -> train only.
    log = events([("u1", "c", 3), ("u1", "a", 1), ("u1", "b", 2), ("u1", "d", 4),
                  ("u2", "y", 5), ("u2", "x", 1), ("u3", "z", 2)])
    result = leave_last_out_split(log)
    assert assignment(result) == {
        ("u1", "a"): "train", ("u1", "b"): "train", ("u1", "c"): "valid", ("u1", "d"): "test",
        ("u2", "x"): "train", ("u2", "y"): "test", ("u3", "z"): "train"}
    assert len(result) == len(log)


def test_ties_on_timestamp_are_broken_by_source_order() -> None:
    # All three events on day 1: the file order p, q, r decides -> p train, q valid, r test.
    result = leave_last_out_split(events([("u", "p", 1), ("u", "q", 1), ("u", "r", 1)]))
    assert assignment(result) == {("u", "p"): "train", ("u", "q"): "valid", ("u", "r"): "test"}
    # Reversing the source order reverses the assignment.
    reversed_log = events([("u", "r", 1), ("u", "q", 1), ("u", "p", 1)])
    assert assignment(leave_last_out_split(reversed_log)) == {
        ("u", "r"): "train", ("u", "q"): "valid", ("u", "p"): "test"}


def test_temporal_ratio_known_answer() -> None:
    # 10 events at 0.7/0.1/0.2: floor(10*0.2)=2 test, floor(10*0.1)=1 valid, 7 train.
    # 4 events: floor(4*0.2)=floor(0.8)=0 test, floor(4*0.1)=0 valid, 4 train.
    # 1 event: train.
    log = events([("a", f"i{d}", d) for d in range(10)] + [("b", f"j{d}", d) for d in range(4)]
                 + [("c", "k", 0)])
    result = temporal_ratio_split(log, (0.7, 0.1, 0.2))
    splits = result.groupby(S.USER_ID)[S.SPLIT].apply(list).to_dict()
    assert splits["a"] == ["train"] * 7 + ["valid"] + ["test"] * 2
    assert splits["b"] == ["train"] * 4
    assert splits["c"] == ["train"]


def test_temporal_ratio_keeps_one_train_event() -> None:
    # ratios 0/0.5/0.5 on 2 events: floor(1)=1 test, floor(1)=1 valid leaves 0 train -> valid gives one back.
    result = temporal_ratio_split(events([("a", "x", 1), ("a", "y", 2)]), (0.0, 0.5, 0.5))
    assert result[S.SPLIT].tolist() == ["train", "test"]


def test_global_time_split_and_cold_flags() -> None:
    # cut day 5, valid_cut day 3: days 0-2 train, 3-4 valid, >= 5 test.
    # u2 only has events from day 3 on -> cold user; item "new" never appears in train -> cold item.
    log = events([("u1", "a", 0), ("u1", "b", 2), ("u1", "a", 3), ("u1", "new", 5),
                  ("u2", "a", 4), ("u2", "b", 6)])
    result = global_time_split(log, datetime(2024, 1, 6), datetime(2024, 1, 4))
    assert result[S.SPLIT].tolist() == ["train", "train", "valid", "test", "valid", "test"]
    assert result[S.COLD_USER].tolist() == [False, False, False, False, True, True]
    assert result[S.COLD_ITEM].tolist() == [False, False, False, True, False, False]


def test_global_time_event_at_cut_is_test() -> None:
    result = global_time_split(events([("u", "a", 0), ("u", "b", 5)]), datetime(2024, 1, 6))
    assert result[S.SPLIT].tolist() == ["train", "test"]


def test_global_time_rejects_valid_cut_after_time_cut() -> None:
    with pytest.raises(ConfigError, match="valid_cut .* must not be after split.time_cut"):
        global_time_split(events([("u", "a", 0)]), datetime(2024, 1, 2), datetime(2024, 1, 3))


def test_split_interactions_needs_time_cut_for_global_time() -> None:
    with pytest.raises(ConfigError, match="split.time_cut is required"):
        split_interactions(events([("u", "a", 0)]), "global_time")


def test_per_user_split_cold_flags_items_only_seen_in_evaluation() -> None:
    # u1: a(train) b(valid) c(test); u2: a(train) c(test). c is never in train -> cold item in test.
    result = leave_last_out_split(events([("u1", "a", 0), ("u1", "b", 1), ("u1", "c", 2),
                                          ("u2", "a", 0), ("u2", "c", 1)]))
    test_rows = result[result[S.SPLIT] == "test"]
    assert test_rows[S.COLD_ITEM].tolist() == [True, True]
    assert not result[S.COLD_USER].any()


logs = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "u4"]), st.sampled_from(["a", "b", "c", "d", "e"]),
                          st.integers(0, 6)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows=logs, strategy=st.sampled_from(["leave_last_out", "temporal_ratio", "global_time"]))
def test_splits_never_leak(rows: list[tuple[str, str, int]], strategy: str) -> None:
    log = events(rows)
    result = split_interactions(log, strategy, (0.6, 0.2, 0.2), datetime(2024, 1, 5), datetime(2024, 1, 4))
    assert len(result) == len(log) and set(result[S.SPLIT]) <= {"train", "valid", "test"}
    ranked = result.sort_values([S.TIMESTAMP, S.SOURCE_ORDER], kind="stable").index
    order = pd.Series(np.arange(len(result)), index=ranked).reindex(result.index)  # rank by (time, source order)
    train = result[S.SPLIT] == "train"
    if strategy == "global_time":
        latest_train = order[train].max() if train.any() else -1
        assert (order[~train] > latest_train).all()
    else:
        for _, user in result.assign(order=order).groupby(S.USER_ID):
            is_train = user[S.SPLIT] == "train"
            assert is_train.any()  # every user keeps >= 1 train event
            assert (user.loc[~is_train, "order"] > user.loc[is_train, "order"].max()).all()
            valid, test = user[user[S.SPLIT] == "valid"], user[user[S.SPLIT] == "test"]
            if len(valid) and len(test):
                assert valid["order"].max() < test["order"].min()
    evaluation = result[~train]
    train_users, train_items = set(result.loc[train, S.USER_ID]), set(result.loc[train, S.ITEM_ID])
    assert (evaluation[S.COLD_USER] == ~evaluation[S.USER_ID].isin(train_users)).all()
    assert (evaluation[S.COLD_ITEM] == ~evaluation[S.ITEM_ID].isin(train_items)).all()
    assert not result.loc[train, [S.COLD_USER, S.COLD_ITEM]].to_numpy().any()

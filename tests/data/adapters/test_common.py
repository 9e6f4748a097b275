"""Shared adapter helpers and the quarantine helper: id cleaning, screening order, row numbers, options."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from foryou.data.adapters.common import (
    AdapterOptions,
    canonical_event_types,
    clean_ids,
    keep_last_per_id,
    most_frequent,
    parse_options,
    screen_rows,
)
from foryou.data.quarantine import concat_quarantine, quarantine_rows
from foryou.errors import ConfigError


def test_clean_ids() -> None:
    assert clean_ids(pd.Series([17850.0, np.nan])).tolist()[0] == "17850"
    assert clean_ids(pd.Series([" 007 ", "", None, "12.0", "A1"], dtype=object)).isna().tolist() == [
        False, True, True, False, False]
    assert clean_ids(pd.Series([" 007 ", "12.0", "A1"])).tolist() == ["007", "12", "A1"]


def test_quarantine_row_numbers_and_raw() -> None:
    frame = pd.DataFrame({"a": ["x", None, "z"], "b": [1.0, np.nan, 3.0]})
    rows = quarantine_rows(frame, frame["a"].isna().to_numpy(), "f.csv", "empty a")
    # record 1 (0-based) of a CSV with a header is file row 1 + 2 = 3
    assert rows.values.tolist() == [["f.csv", 3, "empty a", json.dumps({"a": None, "b": None})]]
    assert quarantine_rows(frame, [True, False, False], "f.jsonl", "r", first_row=1)["row"].tolist() == [1]
    assert concat_quarantine([rows.iloc[0:0]]).empty


def test_screen_rows_uses_first_reason_once() -> None:
    frame = pd.DataFrame({"a": [None, "y", None]})
    ok, bad = screen_rows(frame, [(frame["a"].isna(), "first"), (pd.Series([True, True, False]), "second")],
                          "f.csv")
    assert ok.tolist() == [False, False, False]
    assert bad[["row", "reason"]].values.tolist() == [[2, "first"], [3, "second"], [4, "first"]]


def test_keep_last_and_most_frequent() -> None:
    table, removed = keep_last_per_id(pd.DataFrame({"item_id": ["a", "b", "a"], "v": [1, 2, 3]}))
    assert table.values.tolist() == [["b", 2], ["a", 3]] and removed == 1
    frame = pd.DataFrame({"k": ["x", "x", "x", "y", "y"], "c": ["q", "p", "q", "b", "a"]})
    # x: q twice, p once -> q; y: a and b once each -> the tie goes to "a"
    assert most_frequent(frame, "k", "c").to_dict() == {"x": "q", "y": "a"}


def test_event_aliases() -> None:
    assert canonical_event_types(pd.Series([" AddToCart", "transaction", "view", "Wishlist", "odd"])).tolist() == [
        "add_to_cart", "purchase", "view", "save", "odd"]


def test_parse_options_names_the_key() -> None:
    class Options(AdapterOptions):
        size: int = 1

    assert parse_options(Options, {"size": 3}, "x").size == 3
    with pytest.raises(ConfigError, match=r"data\.options\.size: Input should be a valid integer.*known options: "
                                          r"size"):
        parse_options(Options, {"size": "big"}, "x")

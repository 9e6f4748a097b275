"""Timestamp parsing: units, zones, DST, Excel datetimes, and the mask of unparseable entries."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from foryou.data.timeparse import detect_unit, parse_timestamps


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_unix_seconds_and_ms_by_magnitude() -> None:
    # 964982703 s = 2000-07-30 18:45:03 UTC; the same instant in ms is 964982703000 (> 1e11).
    # Two of the three present entries are numbers, so the column is numeric and "x" is unparseable.
    seconds, bad = parse_timestamps(pd.Series(["964982703", "964982704", "x", None]))
    assert seconds.iloc[0] == utc("2000-07-30 18:45:03") and bad.tolist() == [False, False, True, True]
    millis, _ = parse_timestamps(pd.Series([964982703000, 964982704500]))
    assert millis.tolist() == [utc("2000-07-30 18:45:03"), utc("2000-07-30 18:45:04.5")]
    assert detect_unit(pd.Series([964982703000])) == "ms" and detect_unit(pd.Series(["2020-01-01"])) == "iso"


def test_explicit_unit_overrides_magnitude() -> None:
    # 1000 read as ms is one second after the epoch.
    assert parse_timestamps(pd.Series([1000]), "ms")[0].iloc[0] == utc("1970-01-01 00:00:01")


def test_iso_with_and_without_zone() -> None:
    values = pd.Series(["2011-06-01 10:00:00", "2011-12-01 10:00:00", "2020-01-01T00:00:00Z",
                        "2020-01-01T03:00:00+02:00", "12/1/2010 8:26", "2018-09-20", "", "not a date"],
                       index=range(10, 18))
    parsed, bad = parse_timestamps(values, "auto", "Europe/London")
    assert str(parsed.dtype) == "datetime64[ns, UTC]" and list(parsed.index) == list(range(10, 18))
    assert parsed.tolist()[:6] == [
        utc("2011-06-01 09:00"),   # BST = UTC+1
        utc("2011-12-01 10:00"),   # GMT = UTC+0
        utc("2020-01-01 00:00"),   # explicit Z
        utc("2020-01-01 01:00"),   # explicit +02:00
        utc("2010-12-01 08:26"),   # US-style date, second try
        utc("2018-09-19 23:00"),   # a bare date is local midnight: BST in September, so 23:00 UTC the day before
    ]
    assert bad.tolist() == [False] * 6 + [True, True]


def test_dst_gap_and_overlap_are_resolved_not_rejected() -> None:
    # 2021-03-28 01:30 does not exist in London (clocks jump 01:00 -> 02:00): shifted forward to 02:00 BST = 01:00Z.
    # 2021-10-31 01:30 happens twice: the first (BST, UTC+1) reading is taken = 00:30Z.
    parsed, bad = parse_timestamps(pd.Series(["2021-03-28 01:30", "2021-10-31 01:30"]), "iso", "Europe/London")
    assert parsed.tolist() == [utc("2021-03-28 01:00"), utc("2021-10-31 00:30")] and not bad.any()


def test_datetime_objects_and_datetime_dtype() -> None:
    objects = pd.Series([dt.datetime(2011, 6, 1, 10, 0), None], dtype=object)
    parsed, bad = parse_timestamps(objects, "iso", "Europe/London")
    assert parsed.iloc[0] == utc("2011-06-01 09:00") and bad.tolist() == [False, True]
    typed = pd.Series(pd.to_datetime(["2011-06-01 10:00"]))
    assert parse_timestamps(typed, "auto", "Europe/London")[0].iloc[0] == utc("2011-06-01 09:00")


def test_repeated_values_and_empty_input() -> None:
    parsed, _ = parse_timestamps(pd.Series(["1", "1", "2"] * 3))
    assert parsed.tolist() == [utc("1970-01-01 00:00:01"), utc("1970-01-01 00:00:01"),
                               utc("1970-01-01 00:00:02")] * 3
    empty, _ = parse_timestamps(pd.Series([], dtype=object))
    assert len(empty) == 0 and str(empty.dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_non_numbers_are_unparseable_in_numeric_units(unit) -> None:
    assert parse_timestamps(pd.Series(["12", "2020-01-01"]), unit)[1].tolist() == [False, True]

"""Ranking features on the toy shop (tests/rerank/toy_shop.py), every value computed by hand, and no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.rerank.toy_shop import EVENTS, day, toy_candidates, toy_shop

from foryou.data import schema as S
from foryou.rerank.features import feature_columns, ranking_features

NAN = np.nan
# rows: (u0, i3) (u0, i4) (u1, i2) (u2, i0) (u2, i1); cut = day 10, so u2's day-20 view of i0 is not history.
# Events before day 10 per item: i0 d0 d1 | i1 d3 d8 | i2 d2 d4 d5 | i3 d6 d9 | i4 none.
# Last 7 days = [d3, d10): i0 none, i1 d3 d8, i2 d4 d5, i3 d6 d9. Age = 10 - first day.
# Users: u0 3 events (prices 20 15 30, median 20), u1 4 (20 30 15 40, median 25), u2 2 (15 40, median 27.5).
# Home Decor = Nest = {i2, i3}: u0 has i2 on d2 (1 of 3 events), u1 has i2 d4 and i3 d9 (2 of 4).
EXPECTED = {
    "item_pop_all": [2, 0, 3, 2, 2],
    "item_pop_7d": [2, 0, 2, 0, 2],
    "item_pop_30d": [2, 0, 3, 2, 2],
    "item_age_days": [4, NAN, 8, 10, 7],
    "user_events": [3, 3, 4, 2, 2],
    "user_items": [3, 3, 4, 2, 2],
    "price_ratio": [2.0, NAN, 0.6, 20 / 27.5, 30 / 27.5],
    "user_share_category": [1 / 3, 0, 0.5, 0, 0],
    "days_since_category": [8, NAN, 1, NAN, NAN],
    "user_share_brand": [1 / 3, 0, 0.5, 0, 0],
    "days_since_brand": [8, NAN, 1, NAN, NAN],
}


def test_features_by_hand() -> None:
    candidates = toy_candidates()
    frame = ranking_features(candidates, toy_shop(), day(10))
    for column, expected in EXPECTED.items():
        np.testing.assert_allclose(frame[column].to_numpy(np.float64), expected, err_msg=column)
    np.testing.assert_allclose(frame["price_distance"], np.abs(np.log(EXPECTED["price_ratio"])))
    pd.testing.assert_frame_equal(frame[candidates.columns], candidates)


def test_a_later_event_changes_no_feature() -> None:
    # u2's day-20 view of i0 (the candidate itself): removing it from the log changes nothing at a day-10 cut ...
    before = [event for event in EVENTS if event[2] < 10]
    with_later = ranking_features(toy_candidates(), toy_shop(), day(10))
    without_later = ranking_features(toy_candidates(), toy_shop(before), day(10))
    pd.testing.assert_frame_equal(with_later, without_later)
    # ... while a cut after it sees it: i0 has 3 events, u2 now has 1 of 3 events in Jewellery, 1 day ago
    later = ranking_features(toy_candidates(), toy_shop(), day(21)).iloc[3]
    assert (later["item_pop_all"], later["user_share_category"], later["days_since_category"]) == (3, 1 / 3, 1)


def test_an_event_at_the_cut_is_excluded() -> None:
    # u0's purchase of i1 happens on day 8 exactly: with the cut at day 8 u0 has 2 events, i1 one (d3)
    frame = ranking_features(toy_candidates(), toy_shop(), day(8))
    assert frame["user_events"].tolist()[:2] == [2, 2]
    assert frame["item_pop_all"].iloc[4] == 1


def test_one_cut_per_user() -> None:
    cuts = pd.Series({0: day(10), 1: day(10), 2: day(21)})
    frame = ranking_features(toy_candidates(), toy_shop(), cuts)
    # u0 and u1 as at day 10; u2's rows see day 20: 3 events, i0 popularity 3 (its own view counts for u2's cut)
    np.testing.assert_allclose(frame["user_events"], [3, 3, 4, 3, 3])
    np.testing.assert_allclose(frame["item_pop_all"], [2, 0, 3, 3, 2])


def test_a_missing_cut_is_named() -> None:
    with pytest.raises(ValueError, match=r"user_idx \[2\]"):
        ranking_features(toy_candidates(), toy_shop(), {0: day(10), 1: day(10)})


def test_options_and_feature_columns() -> None:
    frame = ranking_features(toy_candidates(), toy_shop(), day(10), windows_days=(3,), group_fields=["brand"],
                             price_field=None)
    # [d7, d10): i3 d9, i1 d8
    np.testing.assert_allclose(frame["item_pop_3d"], [1, 0, 0, 0, 1])
    assert "user_share_category" not in frame and "user_share_brand" in frame
    columns = feature_columns(frame.assign(label=0), exclude=["label"])
    assert S.USER_IDX not in columns and "label" not in columns and "cooccurrence_rank" in columns


def test_an_unknown_field_is_named() -> None:
    with pytest.raises(ValueError, match="'colour'"):
        ranking_features(toy_candidates(), toy_shop(), day(10), group_fields=["colour"])


def test_multi_valued_field_takes_the_best_value() -> None:
    dataset = toy_shop()
    dataset.items["category"] = [["Jewellery"], ["Jewellery", "Gifts"], ["Home Decor", "Gifts"], ["Home Decor"],
                                 ["Gifts"]]
    frame = ranking_features(toy_candidates(), dataset, day(10), group_fields=["category"])
    # (u0, i4 Gifts): u0's Gifts events are i1 d8 and i2 d2 -> 2 of 3, last 2 days before the cut
    assert frame["user_share_category"].iloc[1] == pytest.approx(2 / 3)
    assert frame["days_since_category"].iloc[1] == pytest.approx(2)

"""Serving computes a request's ranking features itself: they must equal the offline ones at the same cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.rerank.toy_shop import day, toy_candidates, toy_shop

from foryou.data import schema as S
from foryou.rerank.candidates import recent_items_matrix, recent_row
from foryou.rerank.features import feature_columns, nanoseconds, ranking_features
from foryou.rerank.online import CatalogFeatures


def offline_and_online(cut: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    dataset = toy_shop()
    candidates = toy_candidates()[["user_idx", "item_idx"]]
    offline = ranking_features(candidates, dataset, cut)
    catalog = CatalogFeatures.from_dataset(dataset, reference=cut)
    cut_ns = int(nanoseconds(pd.Series([cut]))[0])
    events = dataset.interactions
    rows = []
    for user, group in candidates.groupby(S.USER_IDX, sort=False):
        own = events[events[S.USER_IDX] == user]
        columns = catalog.features(group[S.ITEM_IDX].to_numpy(), own[S.ITEM_IDX].to_numpy(),
                                   nanoseconds(own[S.TIMESTAMP]), cut_ns)
        rows.append(pd.DataFrame(columns, index=group.index))
    return offline, pd.concat(rows).loc[offline.index]


@pytest.mark.parametrize("cut_day", [10.0, 4.5, 30.0])
def test_online_features_equal_the_offline_ones_at_the_same_cut(cut_day: float) -> None:
    offline, online = offline_and_online(day(cut_day))
    names = feature_columns(offline)
    assert sorted(names) == sorted(online.columns)
    pd.testing.assert_frame_equal(online[names], offline[names], check_dtype=False, atol=1e-9)


def test_items_added_after_the_bundle_get_neutral_features() -> None:
    catalog = CatalogFeatures.from_dataset(toy_shop(), reference=day(10))
    cut = int(nanoseconds(pd.Series([day(10)]))[0])
    columns = catalog.features(np.array([1, 7]), np.array([0, 2]), nanoseconds(pd.Series([day(0), day(2)])), cut)
    assert columns["item_pop_all"].tolist() == [2.0, 0.0]  # i1: d3 and d8; the new item: nothing yet
    assert np.isnan(columns["item_age_days"][1]) and np.isnan(columns["price_ratio"][1])
    assert columns["user_share_category"].tolist() == [0.5, 0.0]  # i0 of the history is Jewellery, like i1
    assert columns["user_events"].tolist() == [2.0, 2.0]


def test_a_candidates_features_are_its_own_whatever_else_is_scored() -> None:
    # The service features only the rows a hybrid answers with: each row must read as it does among all candidates.
    catalog = CatalogFeatures.from_dataset(toy_shop(), reference=day(10))
    cut = int(nanoseconds(pd.Series([day(10)]))[0])
    history, stamps = np.array([0, 2, 1, 2]), nanoseconds(pd.Series([day(0), day(2), day(8), day(9)]))
    everything = catalog.features(np.arange(5), history, stamps, cut)
    for subset in (np.array([3]), np.array([4, 0]), np.array([1, 1, 2])):
        alone = catalog.features(subset, history, stamps, cut)
        assert list(alone) == list(everything)
        for name, values in everything.items():
            np.testing.assert_array_equal(alone[name], values[subset], err_msg=name)


def test_catalog_features_round_trip(tmp_path: Path) -> None:
    catalog = CatalogFeatures.from_dataset(toy_shop(), reference=day(10))
    catalog.save(tmp_path / "catalog.npz")
    loaded = CatalogFeatures.load(tmp_path / "catalog.npz")
    cut = int(nanoseconds(pd.Series([day(10)]))[0])
    history, stamps = np.array([0, 2, 1]), nanoseconds(pd.Series([day(0), day(2), day(8)]))
    expected = catalog.features(np.arange(5), history, stamps, cut)
    got = loaded.features(np.arange(5), history, stamps, cut)
    assert loaded.price_field == "price" and list(loaded.groups) == ["category", "brand"]
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values)


def test_recent_row_is_the_recent_items_matrix_row_of_that_history() -> None:
    events = toy_shop().interactions
    matrix = recent_items_matrix(events, 3, 5, last_n=2, decay=0.5)
    for user in range(3):
        own = events[events[S.USER_IDX] == user].sort_values(S.TIMESTAMP)
        row = recent_row(own[S.ITEM_IDX].to_numpy(), 5, last_n=2, decay=0.5)
        np.testing.assert_array_equal(row.toarray(), matrix[user].toarray())
    # a repeated item counts once, at its latest event: [3, 1, 3] -> 3 (weight 1), 1 (weight 0.5)
    assert recent_row(np.array([3, 1, 3]), 5, last_n=3, decay=0.5).toarray().tolist() == [[0, 0.5, 0, 1, 0]]

"""The contract every Recommender honours, run against each factory in conftest.RECOMMENDER_FACTORIES."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foryou.data.dataset import Dataset
from foryou.errors import NotFittedError, UnknownIdError
from foryou.models.base import Recommender

ALL_USERS = [f"u{index:02d}" for index in range(30)]


@pytest.fixture
def fitted(make_recommender, tiny_dataset: Dataset) -> Recommender:
    return make_recommender().fit(tiny_dataset)


def _seen_ids(model: Recommender, user: str) -> set[str]:
    row = model.seen[model.user_indices([user])[0]]  # type: ignore[index]
    return set(model.item_ids[row.indices])  # type: ignore[index]


def test_scores_sorted_descending_and_k_honoured(fitted: Recommender) -> None:
    ids, scores = fitted.recommend(ALL_USERS, k=3)
    assert len(ids) == len(scores) == len(ALL_USERS)
    for row_ids, row_scores in zip(ids, scores):
        assert len(row_ids) == len(row_scores) == 3
        assert np.all(np.diff(row_scores) <= 0)
        assert len(set(row_ids)) == 3


def test_seen_items_excluded_by_default(fitted: Recommender) -> None:
    ids, _ = fitted.recommend(ALL_USERS, k=20)
    for user, row in zip(ALL_USERS, ids):
        assert not _seen_ids(fitted, user) & set(row)


def test_seen_items_allowed_when_not_excluded(fitted: Recommender) -> None:
    ids, scores = fitted.recommend(["u00"], k=20, exclude_seen=False)
    # every score is finite, so the whole catalog (20 items) comes back, the 5 seen ones included
    assert len(ids[0]) == 20
    assert _seen_ids(fitted, "u00") <= set(ids[0])
    assert np.all(np.diff(scores[0]) <= 0)


def test_k_larger_than_catalog_returns_unseen_items_without_padding(fitted: Recommender) -> None:
    ids, scores = fitted.recommend(["u03", "u20"], k=1000)
    for user, row, row_scores in zip(["u03", "u20"], ids, scores):
        # 20 items - 5 seen = 15
        assert len(row) == len(row_scores) == 15
        assert set(row) == set(fitted.item_ids) - _seen_ids(fitted, user)  # type: ignore[arg-type]
        assert np.all(np.isfinite(row_scores))


@pytest.mark.parametrize("bad_k", [0, -1, "10", 2.5, True])
def test_invalid_k_is_a_value_error(fitted: Recommender, bad_k: object) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fitted.recommend(["u00"], k=bad_k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fitted.similar_items(["i00"], k=bad_k)  # type: ignore[arg-type]


def test_unknown_user_is_named(fitted: Recommender) -> None:
    with pytest.raises(UnknownIdError, match="unknown user id.*'nobody'"):
        fitted.recommend(["u00", "nobody"], k=5)


def test_unknown_item_is_named_in_similar_items(fitted: Recommender) -> None:
    with pytest.raises(UnknownIdError, match="unknown item id.*'no-such-item'"):
        fitted.similar_items(["no-such-item"], k=5)


def test_empty_user_list_gives_empty_result(fitted: Recommender) -> None:
    assert fitted.recommend([], k=5) == ([], [])


def test_category_filter_keeps_only_wanted_items(fitted: Recommender) -> None:
    # u00 only saw category A items; asking for B must still return B items only (up to all 10 of them)
    ids, _ = fitted.recommend(["u00", "u20"], k=10, filters={"category": "B"})
    categories = dict(zip(fitted.item_ids, fitted.item_attributes["category"]))  # type: ignore[arg-type]
    for row in ids:
        assert row.size > 0
        assert {categories[item] for item in row} == {"B"}
    ids, _ = fitted.recommend(["u00"], k=10, filters={"item_id": ["i05", "i15", "i00"]})
    assert set(ids[0]) == {"i05", "i15"}  # i00 is seen by u00


def test_unknown_filter_field_is_named(fitted: Recommender) -> None:
    with pytest.raises(ValueError, match="unknown filter field 'colour'"):
        fitted.recommend(["u00"], k=5, filters={"colour": "red"})


def test_similar_items_exclude_the_item_and_are_sorted(fitted: Recommender) -> None:
    ids, scores = fitted.similar_items(["i00", "i15"], k=5)
    for item, row, row_scores in zip(["i00", "i15"], ids, scores):
        assert 0 < len(row) <= 5
        assert item not in set(row)
        assert np.all(np.diff(row_scores) <= 0)


def test_save_load_roundtrip_gives_identical_output(fitted: Recommender, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    loaded = Recommender.load(tmp_path / "model")
    assert type(loaded) is type(fitted)
    for kwargs in ({"k": 7}, {"k": 4, "filters": {"category": ["A"]}}, {"k": 20, "exclude_seen": False}):
        before, after = fitted.recommend(ALL_USERS, **kwargs), loaded.recommend(ALL_USERS, **kwargs)
        for ids_a, ids_b in zip(before[0], after[0]):
            np.testing.assert_array_equal(ids_a, ids_b)
        for scores_a, scores_b in zip(before[1], after[1]):
            np.testing.assert_array_equal(scores_a, scores_b)
    np.testing.assert_array_equal(
        fitted.similar_items(["i03"], 5)[0][0], loaded.similar_items(["i03"], 5)[0][0]
    )


def test_recommend_before_fit_raises(make_recommender) -> None:
    model = make_recommender()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.recommend(["u00"], k=5)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.similar_items(["i00"], k=5)


def test_two_fits_with_same_seed_agree(make_recommender, tiny_dataset: Dataset) -> None:
    first = make_recommender().fit(tiny_dataset).recommend(ALL_USERS, k=5)
    second = make_recommender().fit(tiny_dataset).recommend(ALL_USERS, k=5)
    for ids_a, ids_b in zip(first[0], second[0]):
        np.testing.assert_array_equal(ids_a, ids_b)
    for scores_a, scores_b in zip(first[1], second[1]):
        np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5)

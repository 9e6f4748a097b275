"""Hybrid strategies: scaling, fusion and NDCG by hand, then the blend's tuning, round trip and failure modes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from foryou.errors import NotFittedError
from foryou.rerank.hybrid import (
    HybridBlend,
    normalised_scores,
    reciprocal_rank_fusion,
    source_names,
)

NAN, INF = float("nan"), float("inf")


def two_source_frame() -> pd.DataFrame:
    """u0 has four candidates, u1 two; NaN (and here a non-finite score) = the source did not propose the item."""
    return pd.DataFrame({
        "user_idx": [0, 0, 0, 0, 1, 1],
        "item_idx": [10, 11, 12, 13, 10, 14],
        "a_score": np.array([3.0, 1.0, NAN, 2.0, 5.0, NAN], dtype=np.float32),
        "a_rank": np.array([1, 3, 4, 2, 1, 4], dtype=np.int32),
        "b_score": np.array([2.0, 2.0, -INF, NAN, INF, 7.0], dtype=np.float32),
        "b_rank": np.array([1, 2, 4, 4, 4, 1], dtype=np.int32),
        "merged_rank": [1, 2, 3, 4, 1, 2],
        "extra_score": [0.0] * 6,  # a feature, not a source: it has no extra_rank column
    })


def test_source_names_need_both_columns_in_column_order() -> None:
    assert source_names(two_source_frame()) == ["a", "b"]


def test_normalised_scores_by_hand() -> None:
    frame = two_source_frame()
    # a, u0: proposed 3, 1, 2 -> min 1, max 3 -> (x - 1) / 2; the NaN row -> 0.   u1: one proposed row -> 1.0
    np.testing.assert_allclose(normalised_scores(frame, "a"), [1.0, 0.0, 0.0, 0.5, 1.0, 0.0])
    # b, u0: proposed 2, 2 (equal) -> 1.0 each; -inf and NaN -> 0.   u1: +inf counts as not proposed, 7 alone -> 1.0
    np.testing.assert_allclose(normalised_scores(frame, "b"), [1.0, 1.0, 0.0, 0.0, 0.0, 1.0])


def test_one_users_rows_scale_as_in_a_frame_of_many() -> None:
    # the service scales one request's rows (one user) without grouping: it must agree with the grouped path
    frame = two_source_frame()
    for user in (0, 1):
        own = frame[frame["user_idx"] == user]
        columns = {name: own[name].to_numpy() for name in own}  # the service's column arrays, not a frame
        for source in ("a", "b"):
            np.testing.assert_array_equal(normalised_scores(columns, source),
                                          normalised_scores(frame, source)[frame["user_idx"] == user])


def test_reciprocal_rank_fusion_by_hand() -> None:
    frame = pd.DataFrame({
        "user_idx": [0, 0, 0],
        "item_idx": [1, 2, 3],
        "a_score": [0.9, 0.8, NAN], "a_rank": [1, 2, 4],  # k = 3 per source: rank 4 = not proposed
        "b_score": [0.1, NAN, 0.7], "b_rank": [3, 4, 1],
    })
    np.testing.assert_allclose(reciprocal_rank_fusion(frame), [1 / 61 + 1 / 63, 1 / 62, 1 / 61])
    np.testing.assert_allclose(reciprocal_rank_fusion(frame, ["a"]), [1 / 61, 1 / 62, 0.0])
    np.testing.assert_allclose(reciprocal_rank_fusion(frame, k=1.0), [1 / 2 + 1 / 4, 1 / 3, 1 / 2])


def good_bad_frame() -> pd.DataFrame:
    """Three users with four candidates; "good" scores the positive highest, "bad" lowest (its exact reverse).
    The positive never sits in the first row, so ties broken by row order do not find it. u2 has no positive."""
    positive_row = [1, 3, 2]
    rows = []
    for user, positive in enumerate(positive_row):
        good = [1.0, 2.0, 3.0]
        for row in range(4):
            g = 4.0 if row == positive else good.pop()
            rows.append({"user_idx": user, "item_idx": row, "good_score": g, "good_rank": int(5 - g),
                         "bad_score": -g, "bad_rank": int(g), "label": int(row == positive and user < 2)})
    frame = pd.DataFrame(rows)
    frame["merged_rank"] = frame.groupby("user_idx").cumcount() + 1
    return frame


def test_blend_learns_to_trust_the_good_source() -> None:
    frame = good_bad_frame()
    blend = HybridBlend().fit(frame)
    # normalised, bad = 1 - good, so w_good * good + w_bad * bad ranks the positive first iff w_good > w_bad.
    # Pass 1, good: 0 -> positive last, 0.25 / 0.5 -> last, 1 -> all tie, 2.0 -> first (NDCG 1.0, kept; 4.0 only
    # ties). bad: 0, 0.25, 0.5 tie at 1.0, 2.0 -> all tie, 4.0 -> last: stays 1.0. Pass 2 changes nothing.
    assert blend.weights == {"good": 2.0, "bad": 1.0}
    assert blend.best_score == 1.0
    scores = blend.score(frame)
    first = frame.assign(score=scores).sort_values(["user_idx", "score"], ascending=[True, False], kind="stable")
    assert list(first.groupby("user_idx").head(1)["item_idx"]) == [1, 3, 2]


def test_blend_never_chooses_all_zero_weights() -> None:
    # Alone, "bad" puts the positive last; all-zero weights would tie everything and keep it in row 0 (NDCG 1.0)
    frame = pd.DataFrame({"user_idx": [0, 0, 0], "item_idx": [0, 1, 2], "bad_score": [0.0, 1.0, 2.0],
                          "bad_rank": [3, 2, 1], "label": [1, 0, 0]})
    blend = HybridBlend().fit(frame)
    assert blend.weights == {"bad": 1.0}
    assert blend.best_score == pytest.approx(0.5)


def test_round_trip_gives_identical_scores() -> None:
    frame = good_bad_frame()
    blend = HybridBlend().fit(frame, sources=["good", "bad"], grid=(0.0, 0.5, 3.0), rounds=2)
    loaded = HybridBlend.from_dict(json.loads(json.dumps(blend.to_dict())))
    assert loaded.weights == blend.weights and loaded.best_score == blend.best_score
    np.testing.assert_array_equal(loaded.score(frame), blend.score(frame))


def test_fit_needs_labels_with_a_positive() -> None:
    frame = good_bad_frame()
    with pytest.raises(ValueError, match="label"):
        HybridBlend().fit(frame.drop(columns="label"))
    with pytest.raises(ValueError, match="positive"):
        HybridBlend().fit(frame.assign(label=0))


def test_unknown_sources_are_named() -> None:
    frame = good_bad_frame()
    with pytest.raises(ValueError, match="missing"):
        HybridBlend().fit(frame, sources=["good", "missing"])
    with pytest.raises(ValueError, match="als"):
        HybridBlend({"good": 1.0, "als": 0.5}).score(frame)
    with pytest.raises(ValueError, match="missing"):
        reciprocal_rank_fusion(frame, ["missing"])


def test_unfitted_blend_refuses_to_score() -> None:
    with pytest.raises(NotFittedError):
        HybridBlend().score(good_bad_frame())


def test_parts_add_up_to_the_score_bit_for_bit() -> None:
    # The service scores and explains a hybrid from one set of parts: their sum must be the score, exactly, and a
    # zero weight must add nothing.
    frame = two_source_frame()
    blend = HybridBlend({"a": 0.75, "b": 0.0})
    parts = blend.parts(frame)
    assert list(parts) == ["a"]
    expected = 0.75 * normalised_scores(frame, "a") + 0.0 * normalised_scores(frame, "b")
    np.testing.assert_array_equal(blend.score(frame), expected)
    rrf = np.zeros(len(frame))
    for name in ("a", "b"):
        rrf += reciprocal_rank_fusion(frame, [name])
    np.testing.assert_array_equal(rrf, reciprocal_rank_fusion(frame))

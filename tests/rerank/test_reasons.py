"""Reasons on the toy shop (tests/rerank/toy_shop.py): anchors from the user's history before the cut, sentences
that name real things, and the machine-readable contributions kept beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tests.rerank.toy_shop import TITLES, day, toy_candidates, toy_shop

from foryou.data import schema as S
from foryou.rerank.features import ranking_features
from foryou.rerank.lgbm import BIAS, LGBMRanker
from foryou.rerank.reasons import (
    CONTENT_ANCHOR,
    COOCCURRENCE_ANCHOR,
    Reason,
    default_templates,
    explain_items,
    history_anchors,
    reason_context,
)

# 2-d content vectors: i0, i1 jewellery-like, i2, i3 home-like, i4 in between (closest to i1: cos 0.774)
VECTORS = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [1, 1]], dtype=np.float32)


def context(cut: pd.Timestamp | None = None) -> pd.DataFrame:
    cut = day(10) if cut is None else cut
    dataset = toy_shop()
    candidates = toy_candidates().assign(content_score=[0.1, 0.77, np.nan, np.nan, np.nan])
    frame = ranking_features(candidates, dataset, cut)
    anchors = history_anchors(frame, dataset, cut, item_vectors=VECTORS)
    return reason_context(pd.concat([frame, anchors], axis=1), dataset, fields=["category", "brand"])


def test_anchors_by_hand() -> None:
    # Co-occurrence before day 10 (users holding both): (i3, i2) = 2 > (i3, i0) = (i3, i1) = 1, so u0's anchor for
    # i3 is i2 (viewed); i4 co-occurs with nothing; u1 / i2 ties at 2 with i0, i1, i3 -> the lowest, i0 (viewed);
    # u2 / i0: (i0, i2) = 2 > (i0, i3) = 1 -> i2 (bought); u2 / i1 likewise -> i2.
    rows = context()
    assert rows[COOCCURRENCE_ANCHOR].tolist() == [2, -1, 0, 2, 2]
    verbs = [verb if isinstance(verb, str) else None for verb in rows[f"{COOCCURRENCE_ANCHOR}_verb"]]
    assert verbs == ["viewed", None, "viewed", "bought", "bought"]
    assert rows[f"{CONTENT_ANCHOR}_title"].iloc[1] == "Silver Ring"
    assert rows["category"].tolist() == ["Home Decor", "Clothing", "Home Decor", "Jewellery", "Jewellery"]


def test_anchors_come_from_the_history_before_the_cut() -> None:
    dataset = toy_shop()
    for cut in (day(10), day(21)):
        anchors = history_anchors(toy_candidates(), dataset, cut, item_vectors=VECTORS)
        history = dataset.interactions[dataset.interactions[S.TIMESTAMP] < cut]
        held = set(zip(history[S.USER_IDX], history[S.ITEM_IDX]))
        for name in (COOCCURRENCE_ANCHOR, CONTENT_ANCHOR):
            pairs = zip(toy_candidates()[S.USER_IDX], anchors[name])
            assert all((user, item) in held for user, item in pairs if item >= 0)
    # u2's day-20 view of i0 becomes an anchor only once the cut is after it: (i1, i0) = 2 ties (i1, i2), i0 first
    assert history_anchors(toy_candidates(), dataset, day(10))[COOCCURRENCE_ANCHOR].iloc[4] == 2
    assert history_anchors(toy_candidates(), dataset, day(21))[COOCCURRENCE_ANCHOR].iloc[4] == 0


def test_reasons_name_real_things() -> None:
    rows = context()
    templates = default_templates("category", "brand")
    contributions = [
        # (u2, i0): price ratio 20 / 27.5 is in the band; the rank repeats the score's sentence and is skipped
        [("cooccurrence_score", 0.8), ("cooccurrence_rank", 0.6), ("price_ratio", 0.3), ("item_pop_all", 0.2),
         ("item_age_days", 0.1), ("user_share_category", -0.1), (BIAS, 0.05)],
        # (u0, i4): not proposed by co-occurrence, no price, no event in the last 7 days: only the content reason
        [("cooccurrence_score", 0.9), ("price_ratio", 0.5), ("content_score", 0.4), ("item_pop_7d", 0.3)],
        # (u0, i3): twice u0's usual price, so not "usual"; u0 has 1 of 3 events in Home Decor
        [("price_distance", 0.7), ("user_share_category", 0.2), ("two_tower_score", 0.1)],
    ]
    explanations = explain_items(contributions, rows.iloc[[3, 1, 0]], templates)
    assert explanations[0].reasons == ["Because you bought Linen Cushion", "In your usual price range",
                                       "A bestseller in Jewellery"]
    assert explanations[0].features == ["cooccurrence_score", "price_ratio", "item_pop_all"]
    assert explanations[0].contributions == contributions[0]
    assert explanations[1].reasons == ["Similar to Silver Ring, which you bought"]
    assert explanations[2].reasons == ["You often choose Home Decor"]


def test_plain_string_templates_and_limits() -> None:
    rows = pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0], "d": [4.0], "thing": ["Oak Frame"]})
    templates: dict[str, Reason | str] = {"a": "A {thing}", "b": "B", "c": "C", "d": "D"}
    explanation = explain_items([[("a", 0.4), ("b", 0.3), ("c", 0.2), ("d", 0.1)]], rows, templates)[0]
    assert explanation.reasons == ["A Oak Frame", "B", "C"]
    assert explain_items([[("a", 0.0), ("b", -1.0)]], rows, templates)[0].reasons == []


def test_ranker_contributions_feed_the_reasons() -> None:
    # the toy rows repeated as 40 groups; label: proposed by co-occurrence (rows 0, 2, 3 of each copy)
    rows = context()
    copies = 40
    tiled = pd.concat([rows] * copies, ignore_index=True)
    groups = np.repeat(np.arange(copies), len(rows)) * 10 + np.tile(rows[S.USER_IDX].to_numpy(), copies)
    labels = tiled["cooccurrence_score"].notna().to_numpy(np.int64)
    features = tiled[["cooccurrence_score", "cooccurrence_rank", "item_pop_all", "price_ratio", "user_events"]]
    ranker = LGBMRanker({"min_data_in_leaf": 5}, num_boost_round=10, num_threads=1).fit(features, labels, groups)
    explanations = explain_items(ranker.explain(features.iloc[:5]), rows, default_templates("category", "brand"))
    for explanation, score, anchor in zip(explanations, ranker.predict(features.iloc[:5]),
                                          rows[f"{COOCCURRENCE_ANCHOR}_title"]):
        assert abs(sum(value for _, value in explanation.contributions) - score) < 1e-9
        assert len(explanation.reasons) <= 3 and set(explanation.features) <= set(features.columns)
        named = [title for title in TITLES if any(title in reason for reason in explanation.reasons)]
        assert named in ([], [anchor])
    assert explanations[0].reasons[0] == "Because you viewed Linen Cushion"

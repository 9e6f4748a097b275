"""Reasons on the toy shop (tests/rerank/toy_shop.py): anchors from the user's history before the cut, sentences
that name real things, and the machine-readable contributions kept beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tests.models.conftest import build_dataset
from tests.rerank.toy_shop import TITLES, day, toy_candidates, toy_shop

from foryou.data import schema as S
from foryou.rerank.candidates import CooccurrenceSource
from foryou.rerank.features import ranking_features
from foryou.rerank.lgbm import BIAS, LGBMRanker
from foryou.rerank.reasons import (
    CONTENT_ANCHOR,
    COOCCURRENCE_ANCHOR,
    TRANSITION_ANCHOR,
    Reason,
    anchor_fields,
    default_templates,
    explain_items,
    first_value,
    history_anchors,
    shared_users,
)

# 2-d unit content vectors: i0, i1 jewellery-like, i2, i3 home-like, i4 in between (closest to i1: cos 0.774)
RAW = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [1, 1]], dtype=np.float32)
VECTORS = RAW / np.linalg.norm(RAW, axis=1, keepdims=True)


def anchors_at(cut: pd.Timestamp) -> tuple[dict[str, np.ndarray], list[dict[int, str]]]:
    """history_anchors of each toy candidate from its user's events before `cut` (the service's inputs: the
    user's recent items latest first, the binary item x user matrix), with each user's latest event types."""
    events = toy_shop().interactions
    before = events[events[S.TIMESTAMP] < cut].sort_values(S.TIMESTAMP, kind="stable")
    item_users = sp.csr_matrix((np.ones(len(before)), (before[S.ITEM_IDX], before[S.USER_IDX])), shape=(5, 3))
    item_users.data[:] = 1.0
    candidates = toy_candidates()
    found: dict[str, list[int]] = {COOCCURRENCE_ANCHOR: [], CONTENT_ANCHOR: []}
    types = []
    for user, item in zip(candidates[S.USER_IDX], candidates[S.ITEM_IDX]):
        own = before[before[S.USER_IDX] == user]
        recent = list(dict.fromkeys(own[S.ITEM_IDX].tolist()[::-1]))[:5]
        anchors = history_anchors(np.array([item]), np.array(recent), item_users, VECTORS)
        for name, labels in found.items():
            labels.append(int(anchors[name][0]) if name in anchors else -1)
        types.append(dict(zip(own[S.ITEM_IDX].tolist(), own[S.EVENT_TYPE].tolist())))
    return {name: np.array(labels) for name, labels in found.items()}, types


def context(cut: pd.Timestamp | None = None) -> list[dict[str, object]]:
    """Per toy candidate, what the service hands the templates: features, anchor fields, category and brand."""
    cut = day(10) if cut is None else cut
    dataset = toy_shop()
    candidates = toy_candidates().assign(content_score=[0.1, 0.77, np.nan, np.nan, np.nan])
    frame = ranking_features(candidates, dataset, cut)
    anchors, types = anchors_at(cut)
    rows = []
    for position, record in enumerate(frame.to_dict(orient="records")):
        own = {name: labels[position: position + 1] for name, labels in anchors.items()}
        record.update(anchor_fields(own, lambda label: (f"i{label}", TITLES[label]), types[position])[0])
        item = dataset.items.iloc[int(record[S.ITEM_IDX])]
        rows.append({**record, "category": first_value(item["category"]), "brand": first_value(item["brand"])})
    return rows


def test_anchors_by_hand() -> None:
    # Co-occurrence before day 10 (users holding both), never the candidate itself: u0 / i3: (i2, i3) = 2 >
    # (i1, i3) = (i0, i3) = 1 -> i2 (viewed); i4 co-occurs with nothing; u1 / i2 ties at 2 with i3, i1, i0 -> the
    # most recent, i3 (viewed); u2 / i0: (i2, i0) = 2 > (i3, i0) = 1 -> i2 (bought); u2 / i1 likewise -> i2.
    rows = context()
    assert [row[f"{COOCCURRENCE_ANCHOR}_id"] for row in rows] == ["i2", None, "i3", "i2", "i2"]
    assert [row[f"{COOCCURRENCE_ANCHOR}_verb"] for row in rows] == ["viewed", None, "viewed", "bought", "bought"]
    # content, u0 / i4: cos(i1, i4) = 1.1 / (1.005 * 1.414) = 0.774 > cos(i2, i4) = cos(i0, i4) = 0.707
    assert rows[1][f"{CONTENT_ANCHOR}_title"] == "Silver Ring"
    assert [row["category"] for row in rows] == ["Home Decor", "Clothing", "Home Decor", "Jewellery", "Jewellery"]


def test_anchors_come_from_the_recent_history() -> None:
    for cut in (day(10), day(21)):
        anchors, types = anchors_at(cut)
        for name in (COOCCURRENCE_ANCHOR, CONTENT_ANCHOR):
            assert all(anchor in held for anchor, held in zip(anchors[name].tolist(), types) if anchor >= 0)
    # u2's day-20 view of i0 becomes an anchor only once the cut is after it: (i1, i0) = 2 ties (i1, i2), and
    # i0 is the more recent
    assert anchors_at(day(10))[0][COOCCURRENCE_ANCHOR][4] == 2
    assert anchors_at(day(21))[0][COOCCURRENCE_ANCHOR][4] == 0


def test_items_added_after_the_bundle_and_the_candidate_itself_are_never_anchors() -> None:
    item_users = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=np.float32))
    anchors = history_anchors(np.array([1, 7, 0]), np.array([1, 0]), item_users, np.eye(3, dtype=np.float32))
    # candidate 1: anchor 1 is itself, (0, 1) = 2 users -> 0; candidate 7 is past the matrices -> -1;
    # candidate 0: (1, 0) = 2 users -> 1. Content: orthogonal unit vectors, no positive cosine -> -1 everywhere
    assert anchors[COOCCURRENCE_ANCHOR].tolist() == [0, -1, 1]
    assert anchors[CONTENT_ANCHOR].tolist() == [-1, -1, -1]


def test_the_transition_anchor_is_the_recent_item_the_candidate_most_often_follows() -> None:
    item_users = sp.csr_matrix(np.ones((4, 2), dtype=np.float32))
    # P(. | 0) = [0, 0.2, 0.8, 0], P(. | 1) = [0.5, 0, 0.5, 0], P(. | 3) = [0, 0.9, 0, 0]
    following = sp.csr_matrix(np.array([[0, 0.2, 0.8, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 0], [0, 0.9, 0, 0]],
                                        dtype=np.float32))
    anchors = history_anchors(np.array([2, 1, 3, 0, 9]), np.array([1, 0]), item_users, following=following)
    # 2 follows 0 (0.8) more than 1 (0.5); 1 follows 0 only (3 is not recent); nothing leads to 3; 0 follows 1
    # (0 itself is recent but never its own anchor); 9 is past the matrix
    assert anchors[TRANSITION_ANCHOR].tolist() == [0, 0, -1, 1, -1]
    assert TRANSITION_ANCHOR not in history_anchors(np.array([2]), np.array([1, 0]), item_users)


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
    explanations = explain_items(contributions, [rows[3], rows[1], rows[0]], templates)
    assert explanations[0].reasons == ["Because you bought Linen Cushion", "In your usual price range",
                                       "A bestseller in Jewellery"]
    assert explanations[0].features == ["cooccurrence_score", "price_ratio", "item_pop_all"]
    assert explanations[0].contributions == contributions[0]
    assert explanations[1].reasons == ["Similar to Silver Ring, which you bought"]
    assert explanations[2].reasons == ["You often choose Home Decor"]


def test_a_transition_reason_names_the_item_it_follows_or_is_not_given() -> None:
    templates = default_templates()
    proposed = {"transitions_score": 0.4, "transitions_rank": 1}
    anchored = {**proposed, f"{TRANSITION_ANCHOR}_title": "Gold Hoop Earrings 3", f"{TRANSITION_ANCHOR}_verb": "bought"}
    unanchored = {**proposed, f"{TRANSITION_ANCHOR}_title": None, f"{TRANSITION_ANCHOR}_verb": None}
    contributions = [[("transitions_score", 0.5)]] * 2
    explained = explain_items(contributions, pd.DataFrame([anchored, unanchored]), templates)
    assert explained[0].reasons == ["Often chosen next after Gold Hoop Earrings 3, which you bought"]
    assert explained[1].reasons == []  # no anchor: the reason is skipped, never written vaguely


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
    tiled = pd.concat([pd.DataFrame(rows)] * copies, ignore_index=True)
    groups = np.repeat(np.arange(copies), len(rows)) * 10 + np.tile([row[S.USER_IDX] for row in rows], copies)
    labels = tiled["cooccurrence_score"].notna().to_numpy(np.int64)
    features = tiled[["cooccurrence_score", "cooccurrence_rank", "item_pop_all", "price_ratio", "user_events"]]
    ranker = LGBMRanker({"min_data_in_leaf": 5}, num_boost_round=10, num_threads=1).fit(features, labels, groups)
    explanations = explain_items(ranker.explain(features.iloc[:5]), rows, default_templates("category", "brand"))
    for explanation, score, anchor in zip(explanations, ranker.predict(features.iloc[:5]),
                                          [row[f"{COOCCURRENCE_ANCHOR}_title"] for row in rows]):
        assert abs(sum(value for _, value in explanation.contributions) - score) < 1e-9
        assert len(explanation.reasons) <= 3 and set(explanation.features) <= set(features.columns)
        named = [title for title in TITLES if any(title in reason for reason in explanation.reasons)]
        assert named in ([], [anchor])
    assert explanations[0].reasons[0] == "Because you viewed Linen Cushion"


def test_shared_users_is_the_sparse_product() -> None:
    rng = np.random.default_rng(0)
    item_users = sp.csr_matrix((rng.random((30, 50)) < 0.2).astype(np.float32))
    rows, columns = np.array([3, 0, 3, 29]), np.array([1, 3, 7, 0, 0])
    expected = (item_users[rows] @ item_users[columns].T).toarray()
    np.testing.assert_array_equal(shared_users(item_users, rows, columns), expected)
    # by hand: items 0 and 1 share users 0 and 1; item 2 holds nobody
    small = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=np.float32))
    assert shared_users(small, np.array([0, 2]), np.array([1, 0])).tolist() == [[2, 2], [0, 0]]


def test_anchors_from_kept_pair_counts_are_the_anchors_from_the_users() -> None:
    # the service reads the co-occurrence source's kept item-pair counts instead of every holder of the items:
    # the same anchors (ties to the most recent item included), candidates past the matrix and recent repeats too
    rng = np.random.default_rng(2)
    events = [(int(user), int(item), float(day)) for day, (user, item) in
              enumerate(zip(rng.integers(0, 30, 400), np.minimum(rng.zipf(1.3, 400) - 1, 39)))]
    source = CooccurrenceSource(last_n=5).fit(build_dataset(events, 30, 40, ["x"] * 40))
    assert source.pairs is not None and source.item_users is not None
    compared = 0
    for _ in range(40):
        recent = rng.choice(40, int(rng.integers(1, 6)), replace=False)
        candidates = np.append(rng.choice(40, 25, replace=False), [40, 3])
        from_users = history_anchors(candidates, recent, source.item_users)
        from_pairs = history_anchors(candidates, recent, source.item_users, pairs=source.pairs)
        np.testing.assert_array_equal(from_pairs[COOCCURRENCE_ANCHOR], from_users[COOCCURRENCE_ANCHOR])
        compared += int((from_users[COOCCURRENCE_ANCHOR] >= 0).sum())
    assert compared > 100  # most candidates have an anchor: the comparison is not of empty answers


def test_a_source_that_did_not_propose_the_item_gives_no_reason() -> None:
    # the served feature rows are float32: a missing source score is a float32 NaN, not a Python float
    templates = default_templates()
    missing, proposed = {"als_score": np.float32("nan")}, {"als_score": np.float32(0.7)}
    condition = templates["als_score"].condition
    assert condition is not None and not condition(missing) and condition(proposed)

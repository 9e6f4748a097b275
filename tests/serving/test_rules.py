"""The post-retrieval business rules: exact small cases computed by hand, then through the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.serving.api_client import CATEGORY, ids, ok, recommend, serving

from foryou.serving.rules import cap_per_category, mmr_order


def test_category_cap_keeps_the_first_items_of_each_category_in_order() -> None:
    categories = [("a",), ("a",), ("b",), ("a",), (), ("a", "b"), ("b",)]
    order = np.array([0, 1, 2, 3, 4, 5, 6])
    # a: 0, 1 kept, 3 dropped (a full); b: 2 kept; 4 has no category; 5 is a and b (a full); 6 is the 2nd b
    assert cap_per_category(order, categories, 2).tolist() == [0, 1, 2, 4, 6]
    # reversed, one per category: 6 (b) kept, 5 (a, b) dropped as b is full, 4 kept, 3 (a) kept, 2, 1, 0 dropped
    assert cap_per_category(order[::-1], categories, 1).tolist() == [0, 2, 3]


def test_mmr_without_diversity_keeps_the_score_order() -> None:
    scores = np.array([3.0, 2.0, 1.0])
    vectors = np.eye(3)
    assert mmr_order(scores, vectors, 2, 0.0).tolist() == [0, 1]


def test_mmr_skips_a_near_duplicate_when_diversity_weighs() -> None:
    # items 0 and 1 point the same way; 2 is orthogonal and scores a bit lower
    scores = np.array([1.0, 0.95, 0.9])
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # step 1: relevance (1, 0.5, 0) -> item 0. step 2 at diversity 0.5: item 1 gains 0.5*0.5 - 0.5*1 = -0.25,
    # item 2 gains 0.5*0 - 0.5*0 = 0 -> item 2, then item 1
    assert mmr_order(scores, vectors, 3, 0.5).tolist() == [0, 2, 1]
    assert mmr_order(scores, vectors, 3, 0.1).tolist() == [0, 1, 2]  # 0.9*0.5 - 0.1 = 0.35 > 0


def test_rules_hold_for_every_strategy_and_k_is_honoured(shop_bundle: Path, tmp_path: Path) -> None:
    with serving(shop_bundle, tmp_path / "store.db") as client:
        strategies = ok(client.get("/v1/catalog"))["strategies"]
        for strategy in strategies:
            answer = recommend(client, user_id="u0", k=6, strategy=strategy, filters={"max_per_category": 2})
            got = ids(answer)
            assert len(got) == 6  # three categories x 2
            counts: dict[str, int] = {}
            for item in got:
                counts[CATEGORY[item]] = counts.get(CATEGORY[item], 0) + 1
            assert max(counts.values()) <= 2, (strategy, counts)
            diverse = recommend(client, user_id="u0", k=10, strategy=strategy, filters={"diversity": 0.7})
            assert len(ids(diverse)) == 10


def test_seen_event_types_let_bought_items_come_back(shop_bundle: Path, tmp_path: Path) -> None:
    with serving(shop_bundle, tmp_path / "store.db") as client:
        history = ok(client.get("/v1/users/u0/history"))["events"]
        bought = {e["item_id"] for e in history if e["event_type"] == "purchase"}
        viewed_only = {e["item_id"] for e in history} - bought
        everything = recommend(client, user_id="u0", k=60, strategy="popular")
        assert not set(ids(everything)) & (bought | viewed_only)
        rebuy = recommend(client, user_id="u0", k=60, strategy="popular", filters={"seen_event_types": ["view"]})
        assert bought <= set(ids(rebuy)) and not set(ids(rebuy)) & viewed_only

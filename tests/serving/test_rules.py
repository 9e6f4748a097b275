"""The post-retrieval business rules: exact small cases computed by hand, then through the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.serving.api_client import CATEGORY, ids, ok, recommend, serving

from foryou.serving.rules import cap_per_category, mmr_order
from foryou.serving.state import ServingState


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


def test_mmr_by_hand_four_items() -> None:
    # scores 1, 0.9, 0.8, 0.2 -> relevance (x - 0.2) / 0.8 = 1, 0.875, 0.75, 0; v1 duplicates v0, v2 = (0.6, 0.8)
    # leans to v3 = (0, 1). Diversity 0.5: step 1 takes 0 (gain 0.5). Step 2, max cosine to {0} = 1, 1, 0.6, 0:
    # gains 0.4375 - 0.5 = -0.0625, 0.375 - 0.3 = 0.075, 0 - 0 = 0 -> 2. Step 3, max cosine to {0, 2} = 1, 1, 0.8:
    # gains -0.0625 and 0 - 0.4 = -0.4 -> 1, then 3. Diversity 0.9: step 2 gains 0.0875 - 0.9, 0.075 - 0.54, 0
    # -> 3; step 3, max cosine to {0, 3} = 1, 0.8: gains -0.8125 and 0.075 - 0.72 = -0.645 -> 2, then 1.
    scores = np.array([1.0, 0.9, 0.8, 0.2])
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    assert mmr_order(scores, vectors, 4, 0.5).tolist() == [0, 2, 1, 3]
    assert mmr_order(scores, vectors, 4, 0.9).tolist() == [0, 3, 2, 1]
    assert mmr_order(scores, vectors, 2, 0.9).tolist() == [0, 3]


def test_rules_hold_for_every_strategy_and_k_is_honoured(shop_bundle: Path, tmp_path: Path) -> None:
    state = ServingState.load(shop_bundle)
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
            # diversity reorders the candidates the service fetches for it (k=10: 60) as MMR over their scores and
            # unit two-tower vectors says, and here it does change the plain order
            diverse = ids(recommend(client, user_id="u0", k=10, strategy=strategy, filters={"diversity": 0.7}))
            plain = recommend(client, user_id="u0", k=60, strategy=strategy)["items"]
            labels = np.array([state.catalog.label(item["item_id"]) for item in plain])
            scores = np.array([item["score"] for item in plain])
            expected = labels[mmr_order(scores, state.item_vectors(labels), 10, 0.7)]
            assert diverse == [state.catalog.ids[label] for label in expected], strategy
            assert diverse != [item["item_id"] for item in plain[:10]], strategy


def test_seen_event_types_let_bought_items_come_back(shop_bundle: Path, tmp_path: Path) -> None:
    with serving(shop_bundle, tmp_path / "store.db") as client:
        history = ok(client.get("/v1/users/u0/history"))["events"]
        bought = {e["item_id"] for e in history if e["event_type"] == "purchase"}
        viewed_only = {e["item_id"] for e in history} - bought
        everything = recommend(client, user_id="u0", k=60, strategy="popular")
        assert not set(ids(everything)) & (bought | viewed_only)
        rebuy = recommend(client, user_id="u0", k=60, strategy="popular", filters={"seen_event_types": ["view"]})
        assert bought <= set(ids(rebuy)) and not set(ids(rebuy)) & viewed_only

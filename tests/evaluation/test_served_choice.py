"""The served strategy: the best on validation unless a simpler one is within noise of it (cases worked by hand)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from foryou.evaluation.served_choice import TIERS, choose_served

USERS = pd.RangeIndex(50)
BASE = pd.Series(np.linspace(0.0, 0.9, 50), index=USERS)


def means(users: dict[str, pd.Series]) -> dict[str, float]:
    return {name: float(values.mean()) for name, values in users.items()}


def test_a_lead_that_flips_sign_from_user_to_user_goes_to_the_simpler_strategy() -> None:
    # hybrid - two_tower per user: +1 on 1, -1 on 2, +0.1 on 3, 0 on 4: mean +0.025, but a resample of 4
    # users can be all user 2 (mean -1), so the 95% interval spans 0: two_tower (tier 2 < 3) is served.
    users = {"hybrid": pd.Series([1.0, 0.0, 0.6, 0.0]), "two_tower": pd.Series([0.0, 1.0, 0.5, 0.0]),
             "popular": pd.Series([0.0, 0.0, 0.0, 0.0])}
    choice = choose_served(["two_tower", "popular", "hybrid"], means(users), users)
    assert (choice.chosen, choice.best_on_validation, choice.versus) == ("two_tower", "hybrid", "hybrid")
    assert choice.test is not None and choice.test.difference.mean == pytest.approx(0.025)
    assert choice.test.difference.low < 0 < choice.test.difference.high and not choice.test.beyond_noise


def test_a_lead_on_every_user_keeps_the_top_and_records_it_beyond_noise() -> None:
    # hybrid is 0.2 above two_tower for each of 50 users: every resampled mean difference is 0.2.
    users = {"two_tower": BASE, "hybrid": BASE + 0.2, "ease": BASE - 0.1}
    choice = choose_served(["two_tower", "ease", "hybrid"], means(users), users)
    assert (choice.chosen, choice.versus) == ("hybrid", "two_tower")  # versus: the runner-up
    meta = choice.as_meta()
    assert meta["difference"] == pytest.approx(0.2) and meta["interval"] == pytest.approx([0.2, 0.2])
    assert meta["beyond_noise"] is True and meta["users"] == 50 and meta["p_value"] == pytest.approx(2 / 2001)
    json.dumps(meta, allow_nan=False)


def test_the_best_of_the_simpler_strategies_within_noise_is_served_not_the_simplest() -> None:
    # reranked_mlp leads two_tower (tier 2) and ease (tier 1) by noise only: user 0 gains, user 1 loses.
    # reranked_lgbm and hybrid are of its tier (the ranking stage's), so never preferred; two_tower is the best
    # simpler one, not ease, the simplest.
    users = {"reranked_mlp": BASE.copy(), "reranked_lgbm": BASE - 0.001, "hybrid": BASE.copy(),
             "two_tower": BASE.copy(), "ease": BASE.copy()}
    users["reranked_mlp"].iloc[0] += 0.5
    users["hybrid"].iloc[1] += 0.45
    users["two_tower"].iloc[1] += 0.3
    users["ease"].iloc[1] += 0.2
    order = ["ease", "two_tower", "hybrid", "reranked_lgbm", "reranked_mlp"]
    assert choose_served(order, means(users), users).chosen == "two_tower"
    del users["two_tower"]  # unmeasured per user: never tested, so the next simpler one is
    assert choose_served(order, means(users), users).chosen == "ease"


def test_a_simpler_strategy_behind_beyond_noise_is_not_served() -> None:
    # reranked_mlp - reranked_lgbm: +0.5 on user 0 only, so a resample without user 0 (probability
    # (49/50)^50 = 0.36) has difference 0: within noise, but of the same tier. ease is 0.1 behind on every user.
    users = {"reranked_mlp": BASE + 0.05, "reranked_lgbm": BASE + 0.05, "ease": BASE - 0.05}
    users["reranked_mlp"].iloc[0] += 0.5
    choice = choose_served(["ease", "reranked_lgbm", "reranked_mlp"], means(users), users)
    assert choice.chosen == "reranked_mlp" and choice.versus == "reranked_lgbm"
    assert choice.test is not None and choice.test.difference.low == 0.0 and not choice.test.beyond_noise


def test_without_per_user_scores_it_is_the_best_mean_earlier_first_on_a_tie() -> None:
    scores = {"two_tower": 0.12, "ease": 0.12, "popular": 0.02, "hybrid": 0.11}
    choice = choose_served(["two_tower", "ease", "popular", "hybrid"], scores)
    assert (choice.chosen, choice.versus, choice.test) == ("two_tower", "ease", None)
    assert choice.as_meta()["users"] == 0
    assert choose_served(["ease", "two_tower"], scores).chosen == "ease"
    assert choose_served(["item_knn", "popular"], scores).chosen == "popular"  # only the measured compete
    with pytest.raises(ValueError, match="no strategy"):
        choose_served(["item_knn"], scores)


def test_tiers_follow_the_documented_order() -> None:
    assert TIERS["popular"] < TIERS["ease"] == TIERS["collab"] == TIERS["item_knn"] < TIERS["two_tower"]
    assert TIERS["two_tower"] < TIERS["hybrid"] == TIERS["hybrid_rrf"] == TIERS["reranked_lgbm"] \
        == TIERS["reranked_mlp"]
    assert TIERS["reranked_lgbm"] == TIERS["reranked_mlp"]

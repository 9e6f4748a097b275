"""Which strategy a bundle serves by default: the best on validation, unless a simpler one is within noise of it.

With a few hundred validation users the best mean NDCG@10 is often ahead by chance, and the ranking stage's
strategies are the most optimistic there (the rerankers stop early on those very users and the hybrid blends
are fitted on them). So the top strategy is compared, user by user (a paired bootstrap), with each simpler one;
when one of them is not behind beyond noise, the best such simpler strategy is served instead. Order of
simplicity (`TIERS`): popular < baselines (item_knn, ease, collab) and content < two_tower < the ranking stage
(hybrids and rerankers, one tier: each is fitted or stopped on the validation users, so none is less optimistic
there than the others, and all are served as fast); strategies of one tier are not preferred over each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from foryou.evaluation.comparisons import PairedTest, paired_test

TIERS: dict[str, int] = {
    "popular": 0,
    "item_knn": 1, "ease": 1, "collab": 1, "content": 1,
    "two_tower": 2,
    "hybrid": 3, "hybrid_rrf": 3, "reranked_lgbm": 3, "reranked_mlp": 3,
}
UNKNOWN_TIER = max(TIERS.values()) + 1  # a strategy not listed counts as the most complex


@dataclass(frozen=True)
class ServedChoice:
    """The decision and its evidence: `chosen` against `versus` (the top strategy when a simpler one was chosen,
    else the runner-up by validation mean), `test` = paired test of top minus the other on validation users."""

    chosen: str
    best_on_validation: str
    versus: str | None
    test: PairedTest | None
    rule: str

    def as_meta(self) -> dict[str, Any]:
        """JSON-ready record for the bundle manifest (NaN-free: absent numbers are None)."""
        test = self.test
        numbers: dict[str, Any] = {"difference": None, "interval": None, "p_value": None, "users": 0,
                                   "beyond_noise": None}
        if test is not None and test.users > 0:
            numbers = {"difference": test.difference.mean, "interval": [test.difference.low, test.difference.high],
                       "p_value": test.p_value, "users": test.users, "beyond_noise": test.beyond_noise}
        return {"chosen": self.chosen, "best_on_validation": self.best_on_validation, "versus": self.versus,
                "rule": self.rule, **numbers}


def tier(strategy: str) -> int:
    return TIERS.get(strategy, UNKNOWN_TIER)


def choose_served(strategies: Sequence[str], validation_ndcg: Mapping[str, float],
                  users: Mapping[str, pd.Series] | None = None, seed: int = 0) -> ServedChoice:
    """The served strategy among the measured `strategies` (validation NDCG@10 means; the earlier one on a tie).

    `users`: per-user validation NDCG@10 (index: user_idx) per strategy; a strategy without it is never tested,
    so with no `users` this is the plain best on validation.
    """
    measured = [name for name in strategies if name in validation_ndcg]
    if not measured:
        raise ValueError(f"no strategy among {list(strategies)} has a validation score")
    users = users or {}
    ranked = sorted(measured, key=lambda name: -validation_ndcg[name])  # stable: ties keep the given order
    top, others = ranked[0], ranked[1:]
    if top in users:
        for name in others:
            if tier(name) < tier(top) and name in users:
                tied = paired_test(users[top], users[name], seed)
                if tied.users > 0 and tied.difference.low <= 0:
                    return ServedChoice(name, top, top, tied, f"{top} is not ahead of the simpler {name} beyond "
                                                              "noise: the simpler one is served")
    runner_up = others[0] if others else None
    test = (paired_test(users[top], users[runner_up], seed)
            if runner_up is not None and top in users and runner_up in users else None)
    rule = ("no simpler strategy within noise: the best on validation is served" if test is not None else
            "the best on validation is served (no per-user scores to test it)")
    return ServedChoice(top, top, runner_up, test, rule)

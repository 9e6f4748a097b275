"""benchmarks/defaults.py reads a bundle manifest: the served strategy's test row is found under its model's name
(collab is als, popular is recent_pop) and the floor is the reference when one is given, else the best baseline."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks.defaults import SharedSet, score


def manifest(default: str) -> dict[str, Any]:
    ndcg = {"two_tower": 0.30, "als": 0.25, "ease": 0.20, "most_pop": 0.05, "recent_pop": 0.04, "hybrid": 0.32}
    return {"default_strategy": default,
            "validation_ndcg": {"two_tower": 0.31, "collab": 0.26, "popular": 0.03, "hybrid": 0.33},
            "test_metrics": {name: {"NDCG@10": value} for name, value in ndcg.items()}}


def test_collab_is_scored_as_als_against_the_best_baseline() -> None:
    outcome = score("toy", manifest("collab"), 1.0, None)
    assert (outcome.served_valid_ndcg, outcome.served_test_ndcg) == (0.26, 0.25)
    assert (outcome.best_baseline, outcome.best_baseline_test_ndcg) == ("als", 0.25)
    assert outcome.ratio_to_baseline == 1.0 and outcome.floor_met  # served == best baseline meets the floor


def test_popular_is_scored_as_recent_pop_and_misses_the_floor() -> None:
    outcome = score("toy", manifest("popular"), 1.0, None)
    assert outcome.served_test_ndcg == 0.04
    assert outcome.ratio_to_baseline == pytest.approx(0.16)  # 0.04 / 0.25
    assert outcome.floor_met is False


def test_shared_sets_are_held_to_the_reference() -> None:
    reference = SharedSet("config.yaml", "folder", "SASRec-own-CE", 0.40)
    outcome = score("toy", manifest("hybrid"), 1.0, reference)
    assert outcome.ratio_to_baseline == 1.28  # 0.32 / 0.25
    assert outcome.ratio_to_reference == 0.8 and outcome.floor_met is False  # 0.32 / 0.40

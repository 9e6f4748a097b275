"""benchmarks/defaults.py reads a bundle manifest: the served strategy's test row is found under its model's name
(collab is als, popular is recent_pop) and the floor is 1.10x the reference when one is given, else 1.10x the
strongest of the baselines and the SASRec reference on the same split; seeds are summarised as mean and spread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from benchmarks import defaults
from benchmarks.defaults import FLOOR, Outcome, ReferenceScore, SharedSet, reference_score, score, summarise
from benchmarks.sasrec_reference import ReferenceResult

from foryou.data import schema as S


def manifest(default: str) -> dict[str, Any]:
    ndcg = {"two_tower": 0.30, "als": 0.25, "ease": 0.20, "most_pop": 0.05, "recent_pop": 0.04, "hybrid": 0.32}
    return {"default_strategy": default,
            "validation_ndcg": {"two_tower": 0.31, "collab": 0.26, "popular": 0.03, "hybrid": 0.33},
            "test_metrics": {name: {"NDCG@10": value} for name, value in ndcg.items()},
            "served_choice": {"best_on_validation": "hybrid", "beyond_noise": False}}


def sasrec(test_ndcg: float) -> ReferenceScore:
    return ReferenceScore.of(ReferenceResult(0.2, 7, 17, {"NDCG@10": test_ndcg}, 3.0, 1.0))


def test_collab_is_scored_as_als_against_the_best_baseline() -> None:
    outcome = score("toy", manifest("collab"), 1.0, None)
    assert (outcome.served_valid_ndcg, outcome.served_test_ndcg) == (0.26, 0.25)
    assert (outcome.best_baseline, outcome.best_baseline_test_ndcg) == ("als", 0.25)
    assert outcome.ratio_to_baseline == 1.0 and outcome.floor_met is False  # equal to the best is below 1.10x
    assert (outcome.strongest, outcome.best_on_validation, outcome.beyond_noise) == ("als", "hybrid", False)


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


def test_the_sasrec_reference_is_the_bar_when_it_is_stronger_than_every_baseline() -> None:
    outcome = score("toy", manifest("hybrid"), 1.0, None, sasrec(0.28), seed=2)
    assert (outcome.strongest, outcome.strongest_test_ndcg, outcome.seed) == ("sasrec_reference", 0.28, 2)
    assert outcome.ratio_to_strongest == pytest.approx(1.143) and outcome.floor_met  # 0.32 / 0.28 >= 1.10
    weaker = score("toy", manifest("hybrid"), 1.0, None, sasrec(0.20))
    assert weaker.strongest == "als" and weaker.ratio_to_strongest == 1.28  # 0.32 / 0.25
    assert score("toy", manifest("two_tower"), 1.0, None, sasrec(0.28)).floor_met is False  # 0.30 / 0.28 = 1.07


def test_seeds_are_summarised_by_mean_and_sample_spread() -> None:
    runs = [score("toy", manifest("hybrid"), 1.0, None, sasrec(value), seed) for seed, value in
            enumerate((0.28, 0.30, 0.32))]  # ratios 0.32 / 0.28, 0.32 / 0.30, 0.32 / 0.32
    (row,) = summarise([*runs, Outcome("toy", "failed (exit code 1)", 1.0, seed=3)])
    assert row["seeds"] == [0, 1, 2] and row["strongest_test_ndcg"]["mean"] == pytest.approx(0.30)
    assert row["strongest_test_ndcg"]["sd"] == pytest.approx(0.02)  # sample sd of 0.28, 0.30, 0.32
    assert row["ratio"]["mean"] == pytest.approx((1.143 + 1.067 + 1.0) / 3)
    assert row["ratio_range"] == [1.0, 1.143]
    assert row["ratio"]["mean"] < FLOOR and row["floor_met"] is False  # one seed above 1.10x is not enough


def test_the_reference_is_refitted_unless_its_split_and_seed_are_the_ones_kept(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = tmp_path / "output" / "prepared"
    prepared.mkdir(parents=True)
    events = pd.DataFrame({S.USER_IDX: [0, 0, 1], S.ITEM_IDX: [1, 2, 1], S.SPLIT: ["train", "valid", "test"],
                           S.TIMESTAMP: pd.to_datetime([1, 2, 3], unit="D", utc=True)})
    events.to_parquet(prepared / "interactions.parquet")
    fits: list[int] = []

    def fit(dataset: Any, seed: int = 0) -> ReferenceResult:
        fits.append(seed)
        return ReferenceResult(0.2, 7, 17, {"NDCG@10": [0.1, 0.2, 0.3][len(fits) - 1]}, 3.0, 1.0)

    monkeypatch.setattr(defaults, "run_reference", fit)
    monkeypatch.setattr(defaults.Dataset, "load", staticmethod(lambda path: None))
    first, reused = reference_score(tmp_path, seed=0)
    assert (first.test_ndcg, first.seconds, reused) == (0.1, 4.0, False)
    assert reference_score(tmp_path, seed=0) == (first, True) and fits == [0]  # kept: not refitted
    assert reference_score(tmp_path, seed=1)[0].test_ndcg == 0.2 and fits == [0, 1]  # another seed
    events.assign(**{S.ITEM_IDX: [1, 2, 2]}).to_parquet(prepared / "interactions.parquet")
    assert reference_score(tmp_path, seed=1) == (ReferenceScore(0.2, 0.3, 7, 1e-3, 4.0), False)  # another split

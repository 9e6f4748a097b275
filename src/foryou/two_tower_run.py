"""The two-tower's part of a run: early-stop it on validation NDCG@10 (or take the search's best), refit it on
train + valid for the best epoch count, and save or load it with how that count was chosen (training.json).
`foryou train` (and `python -m foryou.train`) is this alone; `foryou evaluate` and `foryou pipeline` (workflow.py)
build on it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.evaluation.protocol import validation_ndcg
from foryou.models.base import Recommender
from foryou.models.two_tower import TwoTower
from foryou.stages import timed_stage
from foryou.training.callbacks import EpochRecord
from foryou.tuning.search import TuneResult

logger = logging.getLogger(__name__)

TWO_TOWER_DIR = "two_tower"


@dataclass
class TrainedTwoTower:
    """The two-tower model refitted on train + validation, with how its epoch count was chosen."""

    model: TwoTower
    best_epoch: int
    tuning_history: list[EpochRecord]
    tuning_seconds: float
    fit_seconds: float
    tuned: TwoTower | None = None  # fitted on train at its best epoch: the ranking stage's train-window source


def train_two_tower(config: RunConfig, dataset: Dataset, progress: bool = True,
                    searched: TuneResult | None = None) -> TrainedTwoTower:
    """Early-stop on validation NDCG@10 (fit on train), then refit on train + valid for the best epoch count.
    A search's best two-tower (fitted on train with these settings) stands in for the first fit."""

    def build(epochs: int) -> TwoTower:
        return TwoTower.from_config(config, epochs, progress)

    start = time.perf_counter()
    if searched is not None and searched.two_tower is not None and searched.metric == "NDCG@10":
        tuned = searched.two_tower
        tuning_seconds = searched.seconds
    else:
        with timed_stage("two-tower fit on train (early stopping on valid)"):
            tuned = _closing_tracker(build(config.train.epochs).fit(dataset.restricted_to("train"),
                                                                    validate=validation_ndcg(dataset)))
        tuning_seconds = time.perf_counter() - start
    best = max(tuned.history, key=lambda record: record.valid_ndcg or 0.0)
    logger.info("best validation NDCG@10 %.4f at epoch %d; refitting on train + valid", best.valid_ndcg, best.epoch)
    start = time.perf_counter()
    with timed_stage(f"two-tower refit on train + valid ({best.epoch} epochs)"):
        model = _closing_tracker(build(best.epoch).fit(dataset.restricted_to("train", "valid")))
    return TrainedTwoTower(model, best.epoch, list(tuned.history), tuning_seconds, time.perf_counter() - start,
                           tuned)


def _closing_tracker(model: TwoTower) -> TwoTower:
    """End the MLflow run of one fit (its per-epoch curves are logged); test metrics go to their own run."""
    if model.tracker is not None:
        model.tracker.close()
    return model


def save_trained(trained: TrainedTwoTower, output_dir: Path) -> Path:
    directory = output_dir / TWO_TOWER_DIR
    trained.model.save(directory)
    summary = {"best_epoch": trained.best_epoch, "tuning_seconds": trained.tuning_seconds,
               "fit_seconds": trained.fit_seconds, "tuning_history": [vars(record) for record in trained.tuning_history]}
    (directory / "training.json").write_text(json.dumps(summary, indent=2))
    return directory


def load_trained(output_dir: Path) -> TrainedTwoTower | None:
    directory = output_dir / TWO_TOWER_DIR
    if not (directory / "training.json").exists():
        return None
    summary = json.loads((directory / "training.json").read_text())
    model = Recommender.load(directory)
    assert isinstance(model, TwoTower)
    history = [EpochRecord(**record) for record in summary["tuning_history"]]
    return TrainedTwoTower(model, summary["best_epoch"], history, summary["tuning_seconds"], summary["fit_seconds"])

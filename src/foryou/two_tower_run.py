"""The two-tower's part of a run: three fits, each later one warm-started from the one before, and saving or
loading the result with how its epoch counts were chosen (training.json). `foryou train` (and `python -m
foryou.train`) is this alone; `foryou evaluate` and `foryou pipeline` (workflow.py) build on it.

  1. the window fit: train minus each user's last train event (`train_minus_last_event`), early-stopped on
     validation NDCG@10 (validation events come after everything it sees). The ranking stage learns from those
     held-out events, so this fit, the source of its training features, must never see them: it starts from
     random weights. On a small log whose config names no user tower, it is fitted once per tower of
     `user_tower_choices` and the best on validation is kept: the later fits and the served model use that tower;
  2. the tuned fit: train, warm-started from 1 for at most FINE_TUNE_EPOCHS epochs, early-stopped on validation
     (the count is chosen there). The model the strategies are chosen with on validation;
  3. the served fit: train + valid, warm-started from 2 for 2's chosen count.

Only 1 trains from scratch: the later fits add one or two events per user to what their start has learnt.
A search's best model (fitted on train from scratch) stands in for 2 but saw the stage's labels, so with a search
the ranking stage fits 1 itself and 3 is a fresh fit, both for the search's best epoch count.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.evaluation.protocol import validation_ndcg
from foryou.models.base import Recommender
from foryou.models.two_tower import TwoTower
from foryou.rerank.protocol import train_minus_last_event
from foryou.stages import timed_stage
from foryou.training.callbacks import EpochRecord
from foryou.tuning.search import TuneResult
from foryou.tuning.shape import DataShape, user_tower_choices

logger = logging.getLogger(__name__)

TWO_TOWER_DIR = "two_tower"
FINE_TUNE_EPOCHS = 2  # most epochs of a warm-started fit on train (what validation chooses from; measured on the demo)


@dataclass
class TrainedTwoTower:
    """The served two-tower (fitted on train + valid) and the fits before it, with how their epochs were chosen."""

    model: TwoTower
    best_epoch: int  # epochs of the early-stopped fit from scratch
    tuning_history: list[EpochRecord]  # the fit on train, each epoch with its validation NDCG@10
    tuning_seconds: float  # the fits before the served one
    fit_seconds: float  # the served fit
    tuned: TwoTower | None = None  # fitted on train: the strategies' source when they are chosen on validation
    window: TwoTower | None = None  # fitted on train minus each user's last train event: the stage's labels unseen
    window_history: list[EpochRecord] = field(default_factory=list)  # the early-stopped window fit's epochs
    tower_scores: dict[str, float] = field(default_factory=dict)  # user tower -> its window fit's best validation
    # NDCG@10, when the run chose among several (`user_tower_choices`)

    def summary(self) -> str:
        """One line: the best validation NDCG@10 of the fit on train, the epoch counts, the seconds."""
        best = max(record.valid_ndcg or 0.0 for record in self.tuning_history)
        return (f"best validation NDCG@10 {best:.4f} (fitted on train), {self.best_epoch} epochs from scratch; the "
                f"served fit: {self.model.train_config.epochs} epochs on train + valid ({self.tuning_seconds:.0f} s "
                f"before it, {self.fit_seconds:.0f} s)")


def train_two_tower(config: RunConfig, dataset: Dataset, progress: bool = True,
                    searched: TuneResult | None = None) -> TrainedTwoTower:
    """The three fits of the module docstring: window, tuned (warm from the window), served (warm from tuned)."""
    if searched is not None and searched.two_tower is not None and searched.metric == "NDCG@10":
        return _refit_searched(config, dataset, searched.two_tower, searched.seconds, progress)
    start = time.perf_counter()
    validate = validation_ndcg(dataset)
    window_data = train_minus_last_event(dataset)
    towers = user_tower_choices(config, DataShape.of(dataset))
    windows = {}
    for tower in towers:
        named = f" ({tower} user tower)" if len(towers) > 1 else ""
        with timed_stage(f"two-tower fit{named} on train minus each user's last train event (early stopping on valid)"):
            windows[tower] = _fit(TwoTower.from_config(with_user_tower(config, tower), progress=progress),
                                  window_data, validate)
    tower_scores = {tower: _best(model.history).valid_ndcg or 0.0 for tower, model in windows.items()}
    chosen = max(tower_scores, key=lambda tower: tower_scores[tower])  # the first on a tie
    if len(towers) > 1:
        logger.info("user tower chosen on validation: %s (best NDCG@10 of each window fit: %s)", chosen,
                    ", ".join(f"{tower} {score:.4f}" for tower, score in tower_scores.items()))
    window, config = windows[chosen], with_user_tower(config, chosen)
    most = min(FINE_TUNE_EPOCHS, config.train.epochs)
    with timed_stage(f"two-tower fine-tune on train, warm from it (at most {most} epochs, chosen on valid)"):
        tuned = _fit(TwoTower.from_config(config, most, progress), dataset.restricted_to("train"), validate,
                     warm_start=window)
    epochs = _best(tuned.history).epoch
    tuning_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with timed_stage(f"two-tower fine-tune on train + valid, warm from it ({epochs} epochs)"):
        model = _fit(TwoTower.from_config(config, epochs, progress), dataset.restricted_to("train", "valid"),
                     warm_start=tuned)
    return TrainedTwoTower(model, _best(window.history).epoch, list(tuned.history), tuning_seconds,
                           time.perf_counter() - start, tuned, window, list(window.history),
                           tower_scores if len(towers) > 1 else {})


def with_user_tower(config: RunConfig, tower: str) -> RunConfig:
    """`config` with `model.user_tower` set to `tower` (what a run that chose it on validation records)."""
    return config.model_copy(update={"model": config.model.model_copy(update={"user_tower": tower})})


def _refit_searched(config: RunConfig, dataset: Dataset, tuned: TwoTower, search_seconds: float,
                    progress: bool) -> TrainedTwoTower:
    """The search's best model on train is the tuned fit; it saw the stage's labels, so no window fit starts
    from it (the ranking stage fits its own) and the served fit starts from scratch for its best epoch count."""
    epochs = _best(tuned.history).epoch
    start = time.perf_counter()
    with timed_stage(f"two-tower refit on train + valid ({epochs} epochs)"):
        model = _fit(TwoTower.from_config(config, epochs, progress), dataset.restricted_to("train", "valid"))
    return TrainedTwoTower(model, epochs, list(tuned.history), search_seconds, time.perf_counter() - start, tuned)


def _best(history: list[EpochRecord]) -> EpochRecord:
    return max(history, key=lambda record: record.valid_ndcg or 0.0)


def _fit(model: TwoTower, data: Dataset, validate: Callable[[TwoTower], float] | None = None,
         warm_start: TwoTower | None = None) -> TwoTower:
    """`model` fitted, its MLflow run (per-epoch curves) ended: test metrics go to their own run."""
    model.fit(data, validate=validate, warm_start=warm_start)
    if model.tracker is not None:
        model.tracker.close()
    return model


def save_trained(trained: TrainedTwoTower, output_dir: Path) -> Path:
    directory = output_dir / TWO_TOWER_DIR
    trained.model.save(directory)
    summary = {"best_epoch": trained.best_epoch, "tuning_seconds": trained.tuning_seconds,
               "fit_seconds": trained.fit_seconds, "tuning_history": [vars(record) for record in trained.tuning_history],
               "window_history": [vars(record) for record in trained.window_history],
               "tower_scores": trained.tower_scores}
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
    window_history = [EpochRecord(**record) for record in summary.get("window_history", [])]
    return TrainedTwoTower(model, summary["best_epoch"], history, summary["tuning_seconds"], summary["fit_seconds"],
                           window_history=window_history, tower_scores=summary.get("tower_scores", {}))

"""`foryou tune`: an optuna search over the two-tower and the baselines within a time budget, on validation.

Every trial fits on the train split and is scored on the validation split (test is never read). The baselines
share `tune.baseline_share` of the budget (each family its part), the two-tower gets the rest: TPE sampling,
the configured settings as the first trial, weak runs pruned epoch by epoch (median rule) through the trainer's
validation hook, and the trial that is running when the budget ends is cut there and scored on its best epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml

from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.evaluation.plots import trials_over_time
from foryou.evaluation.protocol import validation_metric
from foryou.models.registry import build_baselines
from foryou.models.two_tower import TwoTower
from foryou.training.callbacks import use_tracking
from foryou.tuning.space import (
    baseline_start,
    suggest_baseline,
    suggest_two_tower,
    two_tower_start,
    with_params,
)

logger = logging.getLogger(__name__)

TUNED_CONFIG = "tuned.yaml"
BASELINE_TRIALS = 8  # per family: their spaces are one to three numbers
PRUNE_AFTER_EPOCHS = 3


class BudgetSpent(Exception):
    """Raised from the validation hook when the budget ends in the middle of a two-tower trial."""


@dataclass
class TrialRecord:
    family: str
    number: int
    state: str  # complete | pruned | cut (by the budget)
    value: float
    params: dict[str, Any]
    epochs: int
    seconds: float
    finished_s: float  # since the search began


@dataclass
class TuneResult:
    """The chosen settings as a complete config, every trial, and the best two-tower fitted on train."""

    config: RunConfig
    trials: list[TrialRecord]
    seconds: float
    two_tower: TwoTower | None = None  # the best trial's model (early-stopped on validation, best weights)

    def best(self) -> dict[str, TrialRecord]:
        return best_per_family(self.trials)

    def table(self) -> pd.DataFrame:
        """Report table: per family the number of trials, how they ended, the best value and its settings."""
        rows = []
        for family, record in self.best().items():
            states = pd.Series([r.state for r in self.trials if r.family == family]).value_counts()
            rows.append({"family": family, "trials": int(states.sum()),
                         "pruned / cut": f"{states.get('pruned', 0)} / {states.get('cut', 0)}",
                         f"best valid {self.metric}": f"{record.value:.4f}",
                         "best settings": ", ".join(f"{key}={_short(value)}" for key, value in record.params.items())})
        return pd.DataFrame(rows)

    @property
    def metric(self) -> str:
        return self.config.tune.metric

    def sections(self) -> dict[str, pd.DataFrame]:
        heading = (f"Search ({len(self.trials)} trials in {self.seconds / 60:.1f} min, chosen on validation "
                   f"{self.metric}; best trial per family)")
        return {heading: self.table()}

    def images(self, directory: Path) -> dict[str, Path]:
        """The trials-over-time plot, written into `directory`."""
        frame = pd.DataFrame([vars(record) for record in self.trials])
        path = trials_over_time(frame, self.metric, directory / "tuning_trials.png")
        return {"search: trials over time": path}


def best_per_family(records: list[TrialRecord]) -> dict[str, TrialRecord]:
    """The best trial of each family (the earlier one on a tie)."""
    best: dict[str, TrialRecord] = {}
    for record in records:
        if record.family not in best or record.value > best[record.family].value:
            best[record.family] = record
    return best


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def run_search(config: RunConfig, dataset: Dataset, progress: bool = False) -> TuneResult:
    """Search within `config.tune.budget` (required) and return the chosen settings (test split untouched)."""
    budget = config.tune.budget_seconds
    if budget is None:
        raise ValueError("tune.budget is not set: say how long the search may take, e.g. --budget 10m")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.monotonic()
    search = _Search(config, dataset, start, progress)
    with _mlflow_parent(config):
        families = [name for name in config.tune.families
                    if name != "two_tower" and name in config.baselines.enabled]
        for index, family in enumerate(families):
            share = config.tune.baseline_share * budget / len(families)
            search.baseline(family, deadline=start + share * (index + 1))
        if "two_tower" in config.tune.families:
            search.two_tower(deadline=start + budget)
    chosen = with_params(config, {key: value for record in best_per_family(search.records).values()
                                  for key, value in record.params.items()})
    chosen = chosen.model_copy(update={"tune": chosen.tune.model_copy(update={"budget": None})})
    result = TuneResult(chosen, search.records, time.monotonic() - start)
    best_tower = result.best().get("two_tower")
    if best_tower is not None and best_tower.state == "complete":  # else the chosen settings were cut short
        result.two_tower = search.best_model
    for name, record in result.best().items():
        logger.info("tune: best %s valid %s %.4f after %d trials: %s", name, config.tune.metric, record.value,
                    sum(r.family == name for r in search.records), record.params)
    return result


class _Search:
    """The studies of one search and what they found."""

    def __init__(self, config: RunConfig, dataset: Dataset, start: float, progress: bool) -> None:
        self.config, self.dataset, self.start, self.progress = config, dataset, start, progress
        self.score = validation_metric(dataset, config.tune.metric)
        self.train = dataset.restricted_to("train")
        self.records: list[TrialRecord] = []
        self.best_model: TwoTower | None = None
        self.best_value = float("-inf")

    def _study(self, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
        sampler = optuna.samplers.TPESampler(seed=self.config.tune.seed, n_startup_trials=4)
        return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

    def baseline(self, family: str, deadline: float) -> None:
        """Fit-and-score trials of one baseline until its share of the budget or BASELINE_TRIALS is spent."""
        study = self._study()
        study.enqueue_trial(baseline_start(family, self.config))

        def objective(trial: optuna.Trial) -> float:
            began = time.monotonic()
            params = suggest_baseline(trial, family, self.config)
            model = build_baselines(with_params(self.config, params).baselines.model_copy(
                update={"enabled": [family]}), spark=self.config.spark)[family]
            value = self.score(model.fit(self.train))
            self._record(family, trial.number, "complete", value, params, 0, began)
            return value

        # the first trial always runs, so every family has a measured value even on a tiny budget
        study.optimize(objective, n_trials=BASELINE_TRIALS, timeout=max(deadline - time.monotonic(), 1e-3))

    def two_tower(self, deadline: float) -> None:
        """TPE over the two-tower space; a trial below the median of earlier ones at the same epoch is pruned."""
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=PRUNE_AFTER_EPOCHS)
        study = self._study(pruner)
        study.enqueue_trial(two_tower_start(self.config))

        def objective(trial: optuna.Trial) -> float:
            began = time.monotonic()
            params = suggest_two_tower(trial, self.config)
            model = TwoTower.from_config(with_params(self.config, params), progress=self.progress, mlflow=False)
            scores: list[float] = []
            try:
                model.fit(self.train, validate=self._hook(trial, scores, deadline))
            except optuna.TrialPruned:
                self._record("two_tower", trial.number, "pruned", max(scores), params, len(scores), began)
                raise
            except BudgetSpent:
                study.stop()
                self._record("two_tower", trial.number, "cut", max(scores), params, len(scores), began)
                return max(scores)
            value = max(scores)
            if value > self.best_value:  # keep the fitted best: the pipeline need not fit it again
                self.best_model, self.best_value = model, value
            self._record("two_tower", trial.number, "complete", value, params, len(scores), began)
            return value

        study.optimize(objective, n_trials=self.config.tune.trials,
                       timeout=max(deadline - time.monotonic(), 1e-3))

    def _hook(self, trial: optuna.Trial, scores: list[float], deadline: float) -> Callable[[TwoTower], float]:
        """The trainer's per-epoch validation: records the score, then prunes or stops at the deadline."""

        def validate(model: TwoTower) -> float:
            value = self.score(model)
            scores.append(value)
            trial.report(value, len(scores))
            if time.monotonic() >= deadline:
                raise BudgetSpent
            if trial.should_prune():
                raise optuna.TrialPruned
            return value

        return validate

    def _record(self, family: str, number: int, state: str, value: float, params: dict[str, Any], epochs: int,
                began: float) -> None:
        now = time.monotonic()
        record = TrialRecord(family, number, state, float(value), params, epochs, now - began, now - self.start)
        self.records.append(record)
        logger.info("tune %s #%d %s: valid %s %.4f (%.0f s)", family, number, state, self.config.tune.metric,
                    value, now - began)
        if self.config.tracking.mlflow:
            import mlflow

            with mlflow.start_run(run_name=f"{family}-{number}", nested=True):
                mlflow.log_params({**params, "family": family, "state": state})
                mlflow.log_metrics({"valid_metric": float(value), "epochs": epochs, "seconds": now - began})


@contextmanager
def _mlflow_parent(config: RunConfig) -> Iterator[None]:
    """One parent MLflow run for the search; each trial is a child run."""
    if not config.tracking.mlflow:
        yield
        return
    import mlflow

    use_tracking(config.tracking)
    with mlflow.start_run(run_name=f"{config.name}-tune"):
        mlflow.log_params({"budget": config.tune.budget, "metric": config.tune.metric,
                           "families": ",".join(config.tune.families)})
        yield


def write_tuned_config(result: TuneResult, directory: Path) -> Path:
    """The chosen settings as a complete YAML: `foryou pipeline` on it reproduces the run without a search."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TUNED_CONFIG
    header = (f"# written by `foryou tune` in {result.seconds:.0f} s ({len(result.trials)} trials, chosen on "
              f"validation {result.metric}); every setting is explicit\n")
    path.write_text(header + yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False))
    return path

"""Run-level orchestration behind the CLI: prepare -> train -> evaluate -> report -> bundle.

Evaluation follows one protocol everywhere: settings are chosen on the validation split (models fitted on
train), the chosen model is refitted on train + validation, and the test split is evaluated once.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset, write_prepared
from foryou.evaluation.protocol import EvaluationResult, evaluate, item_user_counts
from foryou.evaluation.report import ModelReport, write_report
from foryou.models.base import Recommender
from foryou.models.baselines.popularity import MostPop
from foryou.models.registry import build_baselines
from foryou.models.two_tower import TwoTower
from foryou.training.callbacks import EpochRecord, use_tracking

logger = logging.getLogger(__name__)

DATA_SECTIONS = ("data", "events", "filters", "split", "features")
TWO_TOWER_DIR = "two_tower"


@dataclass
class TrainedTwoTower:
    """The two-tower model refitted on train + validation, with how its epoch count was chosen."""

    model: TwoTower
    best_epoch: int
    tuning_history: list[EpochRecord]
    tuning_seconds: float
    fit_seconds: float


def load_or_prepare(config: RunConfig, progress: bool = True) -> Dataset:
    """The prepared dataset of this config: reused when its manifest was made from the same data settings."""
    directory = config.prepared_dir
    if (directory / "manifest.json").exists():
        dataset = Dataset.load(directory)
        wanted = json.loads(config.model_dump_json(include=set(DATA_SECTIONS)))
        if {key: dataset.manifest.config.get(key) for key in DATA_SECTIONS} == wanted:
            logger.info("reusing prepared dataset in %s", directory)
            return dataset
    result = prepare_dataset(config, progress=progress)
    write_prepared(result, directory)
    return result.dataset


def train_two_tower(config: RunConfig, dataset: Dataset, progress: bool = True) -> TrainedTwoTower:
    """Early-stop on validation NDCG@10 (fit on train), then refit on train + valid for the best epoch count."""

    def build(epochs: int) -> TwoTower:
        return TwoTower(model=config.model, loss=config.loss, train=config.train.model_copy(update={"epochs": epochs}),
                        features=config.features, tracking=config.tracking, progress=progress)

    start = time.perf_counter()
    tuned = _closing_tracker(build(config.train.epochs).fit(dataset.restricted_to("train"), validation=dataset))
    tuning_seconds = time.perf_counter() - start
    best = max(tuned.history, key=lambda record: record.valid_ndcg or 0.0)
    logger.info("best validation NDCG@10 %.4f at epoch %d; refitting on train + valid", best.valid_ndcg, best.epoch)
    start = time.perf_counter()
    model = _closing_tracker(build(best.epoch).fit(dataset.restricted_to("train", "valid")))
    return TrainedTwoTower(model, best.epoch, list(tuned.history), tuning_seconds, time.perf_counter() - start)


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


def popularity_fallback(dataset: Dataset) -> Recommender:
    """What the bundle answers with when the main model cannot place a user: popularity on train + valid."""
    return MostPop().fit(dataset.restricted_to("train", "valid"))


def fit_baselines(config: RunConfig, dataset: Dataset) -> dict[str, tuple[Recommender, float]]:
    """Every enabled baseline fitted on train + valid with its configured settings, with its fit seconds."""
    fitted = {}
    train_valid = dataset.restricted_to("train", "valid")
    for name, model in build_baselines(config.baselines).items():
        start = time.perf_counter()
        model.fit(train_valid)
        fitted[name] = (model, time.perf_counter() - start)
    return fitted


def evaluate_and_report(
    config: RunConfig, dataset: Dataset, trained: TrainedTwoTower, baselines: dict[str, tuple[Recommender, float]]
) -> tuple[list[ModelReport], Path]:
    """Test-split evaluation of every model side by side, written as report.md / report.html in output_dir."""
    def test_metrics(model: Recommender) -> EvaluationResult:
        options = config.evaluation
        return evaluate(model, dataset, "test", ks=options.ks, batch_size=options.batch_size,
                        activity_buckets=options.activity_buckets)

    tower_params = {"user_tower": config.model.user_tower, "best_epoch": trained.best_epoch,
                    "dat": config.model.dat.enabled, "loss": config.loss.kind}
    reports = [ModelReport(TwoTower.name, test_metrics(trained.model),
                           trained.fit_seconds, tower_params)]
    for name, (model, seconds) in baselines.items():
        reports.append(ModelReport(name, test_metrics(model), seconds, model.params()))
    history = [{"epoch": r.epoch, "loss": r.loss, "valid_NDCG@10": r.valid_ndcg} for r in trained.tuning_history]
    markdown_path, _ = write_report(
        config.output_dir, reports, title=f"foryou report: {config.name}",
        dataset_summary={"users": dataset.n_users, "items": dataset.n_items, **dataset.manifest.counts},
        training_history={TwoTower.name: history},
        embeddings={TwoTower.name: trained.model.item_embeddings()},
        item_popularity=item_user_counts(dataset.events("train", "valid"), dataset.n_items),
    )
    log_test_metrics(config, reports, markdown_path)
    return reports, markdown_path


def log_test_metrics(config: RunConfig, reports: list[ModelReport], report_path: Path) -> None:
    """One MLflow run per evaluation with every model's test metrics and the report as artifacts."""
    if not config.tracking.mlflow:
        return
    import mlflow

    use_tracking(config.tracking)
    with mlflow.start_run(run_name=f"{config.name}-evaluate"):
        for report in reports:
            metrics: dict[str, Any] = {f"{report.name}.{key.replace('@', '_at_')}": value
                                       for key, value in report.result.summary.items() if _is_number(value)}
            mlflow.log_metrics(metrics)
        for path in report_path.parent.glob("report.*"):
            mlflow.log_artifact(str(path))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)  # NaN is not a metric value

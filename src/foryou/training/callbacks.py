"""Trainer callbacks: per-epoch history, early stopping with the best weights kept, MLflow logging.

Each callback sees the end of every epoch; the trainer asks `should_stop` after each one.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from foryou.config import TrackingConfig

logger = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    """What one epoch produced: mean training loss, validation NDCG@10 (None without validation), seconds of
    training, and how many batches this process stepped (0 in records saved before it was kept)."""

    epoch: int
    loss: float
    valid_ndcg: float | None
    seconds: float
    batches: int = 0


class Callback:
    """Hooks called by the trainer; the default does nothing, subclasses override what they need."""

    should_stop = False

    def on_train_start(self, module: nn.Module) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, module: nn.Module, record: EpochRecord) -> None:
        """Called after every epoch (and its validation)."""

    def on_train_end(self, module: nn.Module) -> None:
        """Called once after the last epoch, also when stopped early."""


class EarlyStopping(Callback):
    """Stops after `patience` epochs without a better validation NDCG@10 and restores the best weights."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_score = float("-inf")
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.should_stop = False

    def on_epoch_end(self, module: nn.Module, record: EpochRecord) -> None:
        if record.valid_ndcg is None:
            return
        if record.valid_ndcg > self.best_score:
            self.best_score, self.best_epoch = record.valid_ndcg, record.epoch
            self.best_state = copy.deepcopy(module.state_dict())
        elif record.epoch - self.best_epoch >= self.patience:
            logger.info("early stopping at epoch %d: best NDCG@10 %.4f at epoch %d", record.epoch, self.best_score,
                        self.best_epoch)
            self.should_stop = True

    def on_train_end(self, module: nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


class MLflowCallback(Callback):
    """Logs params at the start and loss / valid NDCG@10 / seconds per epoch into an MLflow run (offline store).

    The run stays open after training (`run_id`) so the caller can log final metrics and artifacts; call
    `close()` when done.
    """

    def __init__(self, tracking: TrackingConfig, params: dict[str, Any], run_name: str | None = None) -> None:
        self.tracking, self.params, self.run_name = tracking, params, run_name
        self.run_id: str | None = None

    def on_train_start(self, module: nn.Module) -> None:
        import mlflow

        use_tracking(self.tracking)
        run = mlflow.start_run(run_name=self.run_name)
        self.run_id = run.info.run_id
        mlflow.log_params({key: str(value)[:500] for key, value in self.params.items()})

    def on_epoch_end(self, module: nn.Module, record: EpochRecord) -> None:
        import mlflow

        metrics = {"train_loss": record.loss, "epoch_seconds": record.seconds}
        if record.valid_ndcg is not None:
            metrics["valid_ndcg_at_10"] = record.valid_ndcg
        mlflow.log_metrics(metrics, step=record.epoch)

    def log_final(self, metrics: dict[str, float], artifacts: list[Path] | None = None) -> None:
        """Final metrics and artifact files of the caller, into the same run."""
        import mlflow

        mlflow.log_metrics(metrics)
        for path in artifacts or []:
            mlflow.log_artifact(str(path))

    def close(self) -> None:
        import mlflow

        if self.run_id is not None and mlflow.active_run() is not None:
            mlflow.end_run()


def use_tracking(tracking: TrackingConfig) -> None:
    """Point MLflow at the configured store and experiment (plain paths: a local file store, works offline)."""
    import mlflow

    uri = _tracking_uri(tracking.tracking_uri)
    if uri.startswith("file:"):
        # MLflow 3 refuses its file store unless opted in; a local store is what works offline without a server
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(tracking.experiment)


def _tracking_uri(uri: str) -> str:
    """Plain paths become absolute file: URIs, so the store is local and works offline."""
    if "://" in uri or uri.startswith("file:"):
        return uri
    return Path(uri).resolve().as_uri()

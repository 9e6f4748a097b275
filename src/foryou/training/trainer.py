"""The training loop, model-agnostic: AdamW (SparseAdam for sparse tables), seeds, device and threads, AMP on
CUDA, weight averaging, progress (bars with an ETA on a terminal, one line per epoch elsewhere), callbacks.

The model supplies three callables: `batches(epoch)` yields batches, `step_loss(batch)` returns the loss
tensor of one batch, `validate()` returns validation NDCG@10 (or is None: train exactly `epochs` epochs).

Under torchrun (a world of N processes, see `distributed`) every rank runs this same loop: it takes every N-th
of `batches(epoch)` (the model makes them 1/N of its batch size, so a step's total batch is unchanged), the
loss runs through DistributedDataParallel (gradients averaged over ranks), rank 0 alone validates, and its
score and stop decision are broadcast so that every rank keeps the same history and stops at the same epoch.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sized
from typing import Any

import numpy as np
import torch
from torch import nn

from foryou import progress
from foryou.config import TrainConfig
from foryou.training import distributed
from foryou.training.averaging import WeightAverage
from foryou.training.callbacks import Callback, EarlyStopping, EpochRecord

logger = logging.getLogger(__name__)


def resolve_device(config: TrainConfig) -> torch.device:
    """`auto`: CUDA when available, else CPU; asking for `cuda` without a GPU is an error."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def seed_everything(seed: int) -> None:
    """Seed every generator a fit draws from, and make torch use deterministic kernels: on CPU some backward
    passes otherwise add across threads in a varying order, so two fits of one seed differed in the last bits, and
    the rankers trained on their scores by up to 0.0015 test NDCG@10 (same epoch time on the demo, measured). On
    CUDA an op without a deterministic kernel warns instead of failing."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class Optimizers:
    """Several optimizers stepped as one: the training loop sees a single `zero_grad` / `step`."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()


def build_optimizer(module: nn.Module, config: TrainConfig) -> Optimizers:
    """AdamW with embedding tables in their own group without weight decay; tables built with `sparse=True`
    (a gradient of only the rows a step read) get SparseAdam, which updates those rows alone, so that a step
    on a large catalog costs its batch rather than a pass over the whole table."""
    tables = [m for m in module.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    sparse_ids = {id(m.weight) for m in tables if m.sparse}
    dense_table_ids = {id(m.weight) for m in tables if not m.sparse}
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) in dense_table_ids], "weight_decay": 0.0},
        {"params": [p for p in params if id(p) not in dense_table_ids | sparse_ids],
         "weight_decay": config.weight_decay},
    ]
    optimizers: list[torch.optim.Optimizer] = []
    if any(g["params"] for g in groups):
        optimizers.append(torch.optim.AdamW([g for g in groups if g["params"]], lr=config.learning_rate))
    sparse = [p for p in params if id(p) in sparse_ids]
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=config.learning_rate))
    return Optimizers(optimizers)


class Trainer:
    """Runs epochs until `epochs` or early stopping; keeps the history of every epoch."""

    def __init__(self, config: TrainConfig, callbacks: list[Callback] | None = None, progress: bool = True) -> None:
        self.config = config
        self.callbacks = list(callbacks or [])
        self.world = distributed.current_world()
        self.progress = progress and self.world.is_main
        self.history: list[EpochRecord] = []
        self.device = resolve_device(config)
        if self.device.type == "cuda" and self.world.size > 1:
            self.device = torch.device("cuda", self.world.local_rank)
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)

    def fit(self, module: nn.Module, batches: Callable[[int], Iterable[Any]], step_loss: Callable[[Any], torch.Tensor],
            validate: Callable[[], float] | None = None) -> list[EpochRecord]:
        """Train `module` in place; with `validate`, early-stop on it and end with the best weights."""
        callbacks = list(self.callbacks)
        if validate is not None:
            callbacks.append(EarlyStopping(self.config.patience))
        optimizer = build_optimizer(module, self.config)
        average = WeightAverage(module, self.config.weight_average) if self.config.weight_average > 0 else None
        if self.world.size > 1:
            step_loss = distributed.data_parallel(module, step_loss, self.device)
        for callback in callbacks:
            callback.on_train_start(module)
        epochs = progress.bar(total=self.config.epochs, desc="epochs (at most)", unit="epoch",
                              enabled=self.progress, leave=True)
        started = time.perf_counter()
        try:
            for epoch in range(1, self.config.epochs + 1):
                record = self._epoch(module, optimizer, epoch, batches, step_loss, validate, average)
                self.history.append(record)
                self._report(epochs, record, time.perf_counter() - started)
                for callback in callbacks:
                    callback.on_epoch_end(module, record)  # sees the averaged weights: those are the model
                stop = distributed.broadcast(any(callback.should_stop for callback in callbacks))  # rank 0 decides
                if stop or epoch == self.config.epochs:
                    break
                if average is not None:
                    average.swap_out(module)
        finally:
            epochs.close()
            for callback in callbacks:
                callback.on_train_end(module)
        return self.history

    def _report(self, epochs: Any, record: EpochRecord, elapsed: float) -> None:
        """The finished epoch on the epochs bar (terminal) or as one line (log file), with the time left at
        most (at the pace so far, validation included; early stopping may end sooner)."""
        valid = "-" if record.valid_ndcg is None else f"{record.valid_ndcg:.4f}"
        epochs.set_postfix(loss=f"{record.loss:.4f}", valid_ndcg=valid)
        epochs.update()
        left = progress.remaining(elapsed, len(self.history), self.config.epochs)
        progress.line(f"epoch {record.epoch}/{self.config.epochs}: {record.batches} batches in {record.seconds:.1f} s, "
                      f"loss {record.loss:.4f}, valid NDCG@10 {valid}; at most {left} left", self.progress)

    def _epoch(self, module: nn.Module, optimizer: Optimizers, epoch: int,
               batches: Callable[[int], Iterable[Any]], step_loss: Callable[[Any], torch.Tensor],
               validate: Callable[[], float] | None, average: WeightAverage | None) -> EpochRecord:
        """One pass over the batches; ends with the averaged weights (if any) in `module`, validated."""
        start, total, count = time.perf_counter(), 0.0, 0
        module.train()
        items = batches(epoch)
        steps = math.ceil(len(items) / self.world.size) if isinstance(items, Sized) else None
        bar = progress.bar(distributed.shard(items, self.world), total=steps,
                           desc=f"epoch {epoch}/{self.config.epochs}", unit="batch", enabled=self.progress)
        for batch in bar:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                loss = step_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(module)
            total, count = total + float(loss.detach()), count + 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        seconds = time.perf_counter() - start
        module.eval()
        if average is not None:
            average.swap_in(module)
        with torch.no_grad():
            valid = float(validate()) if validate is not None and self.world.is_main else None
        valid = distributed.broadcast(valid)
        record = EpochRecord(epoch, distributed.mean_over_ranks(total / max(count, 1)), valid, seconds, count)
        logger.info("epoch %d: loss %.4f, valid NDCG@10 %s, %.1f s", epoch, record.loss,
                    "-" if valid is None else f"{valid:.4f}", seconds)
        return record

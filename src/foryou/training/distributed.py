"""Data-parallel training over torch.distributed: the process group torchrun describes, and what the loop needs.

`torchrun --nproc_per_node=N` starts N processes and sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous
address; `init_process_group` reads them (gloo on CPU, NCCL on CUDA, one GPU per process). Without torchrun
(or with N = 1) there is no process group and every helper acts as one process: rank 0 of a world of 1.

The training loop wraps the model in DistributedDataParallel (`data_parallel`), shards the batches (`shard`),
agrees on validation and early stopping (`broadcast`), and the retrieval task gathers every process's in-batch
positives as negatives (`gather_batch`).
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_autograd
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from foryou.errors import ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: rank in 0..size-1, local_rank = GPU on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that validates, logs to MLflow and writes files."""
        return self.rank == 0


def init_process_group(device_type: str) -> World:
    """Join the process group torchrun set up (env:// rendezvous); a world of 1 when not launched by torchrun.

    device_type "cuda": NCCL, and this process uses GPU LOCAL_RANK; anything else: gloo.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    world = World(dist.get_rank(), dist.get_world_size(), local_rank)
    logger.info("process %d of %d (%s backend)", world.rank, world.size, dist.get_backend())
    return world


def current_world() -> World:
    """The world of the initialised process group, or a world of 1 without one."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def destroy_process_group() -> None:
    """Leave the process group (no-op without one); call once at the end of the process."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (no-op without a process group)."""
    if current_world().size > 1:
        dist.barrier()


def broadcast(value: T, src: int = 0) -> T:
    """Rank `src`'s `value` (any picklable object) on every process, e.g. a validation score or a stop decision."""
    if current_world().size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def mean_over_ranks(value: float) -> float:
    """The mean of a float across processes (e.g. each process's mean training loss)."""
    world = current_world()
    if world.size == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        total = total.cuda()
    dist.all_reduce(total)
    return float(total) / world.size


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """batch_size / world_size: each process's share, so a step's total batch equals a one-process run's."""
    if batch_size % world_size:
        raise ConfigError(f"train.batch_size {batch_size} is not divisible by the {world_size} training processes: "
                          f"each process trains on batch_size / {world_size} windows per step; set train.batch_size "
                          f"to a multiple of {world_size}")
    return batch_size // world_size


def shard(items: Iterable[T], world: World) -> Iterator[T]:
    """Rank r's items r, r + N, r + 2N, ... of `items`, which must come in the same order on every rank.

    Every rank must take the same number of steps (each step's gradient sync is a collective), so a last round
    of fewer than N items is padded by repeating its first ones (as DistributedSampler pads): the shards are
    disjoint except for those repeats, and together they cover every item.
    """
    round_: list[T] = []
    for item in items:
        round_.append(item)
        if len(round_) == world.size:
            yield round_[world.rank]
            round_ = []
    if round_:
        yield round_[world.rank % len(round_)]


class _LossModule(nn.Module):
    """`forward(batch)` = `step_loss(batch)`: gives DDP a forward to hook whatever methods the loss calls."""

    def __init__(self, module: nn.Module, step_loss: Callable[[Any], Tensor]) -> None:
        super().__init__()
        self.module = module
        self.step_loss = step_loss

    def forward(self, batch: Any) -> Tensor:
        return self.step_loss(batch)


def data_parallel(module: nn.Module, step_loss: Callable[[Any], Tensor],
                  device: torch.device) -> Callable[[Any], Tensor]:
    """`step_loss` run through DistributedDataParallel over `module`: backward averages the gradients over ranks.

    The model computes its loss from several module methods rather than one forward, so DDP wraps a module
    whose forward is the step's loss (the parameters are `module`'s own, shared, not copied). The graph is
    static (the same parameters are used at every step), which also allows parameters a loss leaves unused (the
    item bias under sampled softmax). Buffers are equal on every rank (built from the same data): synced once,
    not re-broadcast each step.
    """
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(_LossModule(module, step_loss), device_ids=device_ids, static_graph=True,
                                   **_no_buffer_sync())


def _no_buffer_sync() -> dict[str, Any]:
    """DDP's option that stops re-broadcasting buffers each step (renamed in torch 2.13; torch >= 2.2 supported)."""
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def gather_batch(targets: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor, int]:
    """Every process's batch positives: targets (n,) and their vectors (n, d) -> (m,), (m, d), in rank order,
    and the row where this process's own start. Gradients flow back to each process's vectors (autograd
    all_gather), so a loss using other ranks' positives as negatives trains their towers too. Batches may
    differ in size: they are padded to the largest for the collective and cut back after."""
    world = current_world()
    if world.size == 1:
        return targets, vectors, 0
    count = torch.tensor([len(targets)], device=vectors.device)
    counts_list = [torch.zeros_like(count) for _ in range(world.size)]
    dist.all_gather(counts_list, count)
    counts = [int(value) for value in counts_list]
    longest = max(counts)
    padded_targets = torch.zeros(longest, dtype=targets.dtype, device=targets.device)
    padded_targets[:len(targets)] = targets
    target_parts = [torch.empty_like(padded_targets) for _ in range(world.size)]
    dist.all_gather(target_parts, padded_targets)
    padded_vectors = torch.cat([vectors, vectors.new_zeros(longest - len(vectors), *vectors.shape[1:])])
    with warnings.catch_warnings():  # deprecated in torch 2.13 for a private API; the public one serves >= 2.2
        warnings.simplefilter("ignore", FutureWarning)
        vector_parts = dist_autograd.all_gather(padded_vectors)
    all_targets = torch.cat([part[:size] for part, size in zip(target_parts, counts, strict=True)])
    all_vectors = torch.cat([part[:size] for part, size in zip(vector_parts, counts, strict=True)])
    return all_targets, all_vectors, sum(counts[:world.rank])

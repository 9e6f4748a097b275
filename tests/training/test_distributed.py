"""Data-parallel pieces without torchrun: sharding, batch size, the gathered-negatives loss, and two gloo
processes (torch.multiprocessing.spawn) for gradients, the trainer under DDP, and rank-0-only writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from write_audit import watch_writes

from foryou.config import LossConfig, TrainConfig, load_config
from foryou.errors import ConfigError
from foryou.models.sequences import Histories, training_batches
from foryou.tasks.retrieval import RetrievalTask
from foryou.training import distributed
from foryou.training.distributed import World, gather_batch, per_rank_batch_size, shard
from foryou.training.trainer import Trainer

COUNTS = np.array([1, 2, 3, 4, 5, 6, 7, 8])  # item popularity for the retrieval task


def test_shards_are_disjoint_and_cover_the_epoch() -> None:
    # 8 batches over 2 ranks: 0, 2, 4, 6 and 1, 3, 5, 7
    assert [list(shard(range(8), World(rank, 2))) for rank in (0, 1)] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    # 7 over 3: the last round [6] is short, so every rank repeats 6 and all take 3 steps
    assert [list(shard(range(7), World(rank, 3))) for rank in range(3)] == [[0, 3, 6], [1, 4, 6], [2, 5, 6]]
    assert list(shard(range(5), World())) == [0, 1, 2, 3, 4]


def test_training_batches_sharded_over_ranks_cover_every_user_once() -> None:
    # 12 users with 3 events each; last window per user: 12 windows, 3 per rank batch -> 4 batches, 2 rounds
    indptr = np.arange(0, 37, 3)
    histories = Histories(indptr, np.arange(36) % 5, np.ones(36, np.int64), np.ones(36, np.float32),
                          np.arange(36, dtype=np.float64))

    def users_of(rank: int) -> list[int]:
        rng = np.random.default_rng(7)  # the same seed on every rank: the same shuffled batches
        batches = training_batches(histories, 4, per_rank_batch_size(6, 2), rng)
        return [int(user) for batch in shard(batches, World(rank, 2)) for user in batch.users]

    first, second = users_of(0), users_of(1)
    assert len(first) == len(second) == 6 and not set(first) & set(second)
    assert sorted(first + second) == list(range(12))


def test_batch_size_must_divide_over_processes() -> None:
    assert per_rank_batch_size(32, 4) == 8
    with pytest.raises(ConfigError, match="train.batch_size 33 is not divisible by the 2 training processes"):
        per_rank_batch_size(33, 2)


def test_without_torchrun_everything_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_process_group("cpu") == World() and World().is_main
    assert distributed.broadcast("x") == "x" and distributed.mean_over_ranks(1.5) == 1.5
    targets, vectors = torch.tensor([1, 2]), torch.ones(2, 3)
    assert gather_batch(targets, vectors) == (targets, vectors, 0)


def _task(gather: Any = None, seed: int = 3) -> RetrievalTask:
    return RetrievalTask(LossConfig(kind="sampled_softmax", num_negatives=4, temperature=0.5), COUNTS, seed, gather)


def test_gathered_loss_in_a_world_of_one_equals_sampled_softmax() -> None:
    torch.manual_seed(0)
    queries, catalog, targets = torch.randn(5, 3), torch.randn(8, 3), torch.tensor([0, 3, 3, 7, 1])
    weights = torch.rand(5)
    expected = _task().sampled_softmax(queries, targets, lambda items: catalog[items], weights)
    actual = _task(gather_batch).sampled_softmax(queries, targets, lambda items: catalog[items], weights)
    torch.testing.assert_close(actual, expected)


def test_gathered_positives_give_the_rows_their_global_batch_loss() -> None:
    # A stand-in gather that puts 2 rows of "rank 0" before ours: our 3 rows' loss must equal the one-process
    # loss over all 5 rows with the other rows weighted 0 (same candidates, same labels, same logQ counts).
    torch.manual_seed(0)
    queries, catalog, targets = torch.randn(5, 3), torch.randn(8, 3), torch.tensor([2, 5, 5, 0, 6])

    def gather(own: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor, int]:
        return torch.cat([targets[:2], own]), torch.cat([catalog[targets[:2]], vectors]), 2

    ours = _task(gather).sampled_softmax(queries[2:], targets[2:], lambda items: catalog[items])
    whole = _task().sampled_softmax(queries, targets, lambda items: catalog[items], torch.tensor([0, 0, 1, 1, 1.0]))
    torch.testing.assert_close(ours, whole)


def _spawn(body: Callable[..., None], tmp_path: Path, *args: Any) -> None:
    """Run body(*args) in 2 gloo processes (file rendezvous in tmp_path); a failure in either fails the test."""
    mp.spawn(_process, args=(str(tmp_path / "rendezvous"), body, *args), nprocs=2, join=True)


def _process(rank: int, rendezvous: str, body: Callable[..., None], *args: Any) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        body(*args)
    finally:
        dist.destroy_process_group()


def _gathered_gradients() -> None:
    """Rank 0 has 3 rows, rank 1 has 5 (padding is exercised), an item is a positive on both ranks. Gradients
    averaged over the ranks (what DDP does) must equal one process's over all 8 rows, each rank's rows
    weighted 1 / its row count (the mean of the two ranks' means)."""
    torch.manual_seed(0)
    queries, catalog = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    targets, sizes = torch.tensor([1, 4, 4, 0, 4, 7, 2, 1]), [3, 5]
    rank = dist.get_rank()
    rows = slice(0, 3) if rank == 0 else slice(3, 8)
    _task(gather_batch).sampled_softmax(queries[rows], targets[rows], lambda items: catalog[items]).backward()
    grads = [queries.grad.clone(), catalog.grad.clone()]  # type: ignore[union-attr]
    for grad in grads:
        dist.all_reduce(grad)
        grad /= 2
    weights = torch.tensor([1 / sizes[0]] * 3 + [1 / sizes[1]] * 5)
    queries.grad = catalog.grad = None
    _task().sampled_softmax(queries, targets, lambda items: catalog[items], weights).backward()
    torch.testing.assert_close(grads[0], queries.grad)
    torch.testing.assert_close(grads[1], catalog.grad)


def test_gathered_negatives_give_one_process_gradients(tmp_path: Path) -> None:
    _spawn(_gathered_gradients, tmp_path)


def _regression_batches() -> list[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    return [(x[i:i + 4], y[i:i + 4]) for i in range(0, 32, 4)]


def _fit_regression(batches: list[tuple[Tensor, Tensor]], scores: list[float] | None) -> tuple[nn.Module, Trainer]:
    torch.manual_seed(0)
    module = nn.Linear(3, 1)
    config = TrainConfig(epochs=5, patience=2, learning_rate=0.05, device="cpu")
    trainer = Trainer(config, progress=False)
    remaining = iter(scores or [])

    def validate() -> float:
        assert distributed.current_world().is_main, "only rank 0 validates"
        return next(remaining)

    trainer.fit(module, lambda epoch: batches, lambda batch: ((module(batch[0]).squeeze(-1) - batch[1]) ** 2).mean(),
                validate if scores is not None else None)
    return module, trainer


SCORES = [0.1, 0.5, 0.2, 0.3, 0.4]  # best at epoch 2, patience 2: stop after epoch 4


def _trainer_under_ddp(out: str) -> None:
    """Both ranks stop after epoch 4 (rank 1 never validates) and save their weights."""
    rank = dist.get_rank()
    module, trainer = _fit_regression(_regression_batches(), SCORES if rank == 0 else [])
    assert [record.valid_ndcg for record in trainer.history] == [0.1, 0.5, 0.2, 0.3]
    torch.save(module.state_dict(), f"{out}/rank{rank}.pt")


def test_trainer_under_ddp_matches_one_process_and_stops_together(tmp_path: Path) -> None:
    # 2 ranks x every other batch of 4 = one process on batches of 8 (equal sizes: the mean of means is the mean)
    _spawn(_trainer_under_ddp, tmp_path, str(tmp_path))
    states = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    batches = _regression_batches()
    merged = [(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(batches[::2], batches[1::2])]
    reference, trainer = _fit_regression(merged, SCORES)
    assert len(trainer.history) == 4
    for state in states:
        torch.testing.assert_close(state, reference.state_dict())


EVENTS_PER_USER, USERS, ITEMS = 8, 24, 12


def _write_events(path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,timestamp"]
    for user in range(USERS):
        for day, item in enumerate(rng.integers(0, ITEMS, EVENTS_PER_USER)):
            lines.append(f"u{user},i{item},2024-01-{day + 1:02d}")
    path.write_text("\n".join(lines) + "\n")


def _train_with_write_audit(config_path: str, watched: str) -> None:
    """Run `foryou.train.train` on both ranks; rank 1 records every write under `watched`."""
    from foryou import train

    writes: list[str] = []
    if dist.get_rank() == 1:
        watch_writes([watched], writes.append)
    world = distributed.current_world()
    train.train(load_config(config_path), world, progress=False)
    assert not writes, f"rank {world.rank} wrote {writes}"


@pytest.mark.slow
def test_two_processes_train_and_only_rank_0_writes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_events(tmp_path / "events.csv")
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"name: tiny\noutput_dir: {run}\ndata:\n  source: generic\n  interactions:\n    path: {tmp_path / 'events.csv'}\n"
        f"model: {{use_text: false, embedding_dim: 8, hidden_dim: 8, max_history: 4, user_tower: mean}}\n"
        f"loss: {{kind: sampled_softmax, num_negatives: 4}}\n"
        f"train: {{epochs: 2, batch_size: 8, device: cpu, num_threads: 1}}\n"
        f"tracking: {{tracking_uri: {run / 'mlruns'}}}\n"
        f"features: {{cache_dir: {run / 'cache'}}}\n")
    _spawn(_train_with_write_audit, tmp_path, str(config), str(run))
    assert (run / "two_tower" / "training.json").exists() and (run / "prepared" / "manifest.json").exists()
    runs = [path for path in (run / "mlruns").rglob("meta.yaml") if path.parent.parent.name != "mlruns"]
    assert len(runs) == 2  # rank 0's tuning fit and refit; rank 1 logs nothing

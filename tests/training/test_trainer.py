"""The training loop: loss goes down, early stopping restores the best weights, MLflow logs offline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from foryou import progress
from foryou.config import TrackingConfig, TrainConfig
from foryou.models.sequences import Histories, training_batches
from foryou.training.callbacks import EarlyStopping, EpochRecord, MLflowCallback
from foryou.training.trainer import Trainer, build_optimizer, resolve_device


def _regression() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    return nn.Linear(3, 1), [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]


def _mse(module: nn.Module):  # type: ignore[no-untyped-def]
    return lambda batch: ((module(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()


def test_loss_goes_down_and_history_is_kept() -> None:
    module, data = _regression()
    trainer = Trainer(TrainConfig(epochs=5, learning_rate=0.05, device="cpu"), progress=False)
    history = trainer.fit(module, lambda epoch: data, _mse(module))
    assert [record.epoch for record in history] == [1, 2, 3, 4, 5]
    assert history[-1].loss < history[0].loss
    assert all(record.valid_ndcg is None and record.seconds >= 0 for record in history)


def test_early_stopping_restores_best_weights() -> None:
    # validation scores 0.1, 0.5, 0.2, 0.3, 0.4: best at epoch 2; patience 2 stops after epoch 4 (4 - 2 >= 2)
    module, data = _regression()
    scores = iter([0.1, 0.5, 0.2, 0.3, 0.4])
    snapshots: list[torch.Tensor] = []

    def validate() -> float:
        snapshots.append(module.weight.detach().clone())
        return next(scores)

    trainer = Trainer(TrainConfig(epochs=5, patience=2, learning_rate=0.05, device="cpu"), progress=False)
    history = trainer.fit(module, lambda epoch: data, _mse(module), validate)
    assert [record.valid_ndcg for record in history] == [0.1, 0.5, 0.2, 0.3]
    torch.testing.assert_close(module.weight.detach(), snapshots[1])


def test_early_stopping_ignores_epochs_without_validation() -> None:
    stopper = EarlyStopping(patience=1)
    stopper.on_epoch_end(nn.Linear(1, 1), EpochRecord(1, 1.0, None, 0.0))
    assert not stopper.should_stop and stopper.best_state is None


def test_embedding_tables_get_no_weight_decay() -> None:
    module = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    optimizer = build_optimizer(module, TrainConfig(weight_decay=0.1))
    [adamw] = optimizer.optimizers
    decays = sorted((group["weight_decay"], sum(p.numel() for p in group["params"])) for group in adamw.param_groups)
    assert decays == [(0.0, 40), (0.1, 10)]  # embedding 10 x 4; linear 4 x 2 + 2


def test_a_sparse_table_updates_only_the_rows_a_step_read() -> None:
    table, head = nn.Embedding(10, 4, sparse=True), nn.Linear(4, 1)
    optimizer = build_optimizer(nn.ModuleList([table, head]), TrainConfig(weight_decay=0.1))
    assert [type(o).__name__ for o in optimizer.optimizers] == ["AdamW", "SparseAdam"]
    before_table, before_head = table.weight.detach().clone(), head.weight.detach().clone()
    head(table(torch.tensor([2, 7, 7]))).sum().backward()
    optimizer.step()
    changed = (table.weight.detach() != before_table).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [2, 7]
    assert not torch.equal(head.weight.detach(), before_head)
    optimizer.zero_grad()
    assert table.weight.grad is None and head.weight.grad is None


def test_device_auto_and_unavailable_cuda() -> None:
    assert resolve_device(TrainConfig(device="cpu")).type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device(TrainConfig(device="auto")).type == "cpu"
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device(TrainConfig(device="cuda"))


def test_mlflow_callback_logs_offline(tmp_path: Path) -> None:
    import mlflow

    module, data = _regression()
    store = tmp_path / "mlruns"
    callback = MLflowCallback(TrackingConfig(tracking_uri=str(store), experiment="test"), {"train.epochs": 2})
    trainer = Trainer(TrainConfig(epochs=2, device="cpu"), callbacks=[callback], progress=False)
    trainer.fit(module, lambda epoch: data, _mse(module), lambda: 0.25)
    artifact = tmp_path / "note.txt"
    artifact.write_text("hello")
    callback.log_final({"test_ndcg_at_10": 0.3}, [artifact])
    callback.close()
    run = mlflow.get_run(callback.run_id)  # type: ignore[arg-type]
    assert run.data.params["train.epochs"] == "2"
    assert run.data.metrics["valid_ndcg_at_10"] == 0.25 and run.data.metrics["test_ndcg_at_10"] == 0.3
    history = mlflow.MlflowClient().get_metric_history(callback.run_id, "train_loss")  # type: ignore[arg-type]
    assert [metric.step for metric in history] == [1, 2]
    assert store.exists()


def test_weight_average_is_validated_and_training_resumes_from_the_raw_weights() -> None:
    # one weight pulled towards 10; three steps per epoch. Validation must see the moving average of the weights
    # after steps 1..3 (seeded with the first, then after n updates w <- d w + (1 - d) new with d = min(0.5,
    # (1 + n) / (10 + n)): 2/11, then 3/12), and step 4 must start from step 3's raw weight.
    module = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(module.weight)
    before_step: list[float] = []

    def loss(batch: int) -> torch.Tensor:
        before_step.append(float(module.weight.detach()))
        return (module.weight.sum() - 10.0) ** 2

    validated: list[float] = []

    def validate() -> float:
        validated.append(float(module.weight))
        return -len(validated)  # first epoch best: early stopping keeps the averaged weights of epoch 1

    config = TrainConfig(epochs=2, patience=5, learning_rate=0.5, weight_average=0.5, device="cpu")
    Trainer(config, progress=False).fit(module, lambda epoch: range(3), loss, validate)
    after = before_step[1:4]  # weights after steps 1, 2 and 3
    expected = after[0]
    for decay, value in zip([2 / 11, 3 / 12], after[1:]):
        expected = decay * expected + (1 - decay) * value
    assert validated[0] == pytest.approx(expected)
    assert after[-1] != pytest.approx(expected)  # the average differs from the raw weights step 4 started from
    assert float(module.weight) == pytest.approx(expected)  # the best epoch's averaged weights are the result


def test_without_weight_average_the_last_weights_are_validated() -> None:
    module = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(module.weight)
    validated: list[float] = []

    def validate() -> float:
        validated.append(float(module.weight))
        return 0.0

    config = TrainConfig(epochs=1, learning_rate=0.5, device="cpu")
    Trainer(config, progress=False).fit(module, lambda epoch: range(3), lambda b: (module.weight.sum() - 10.0) ** 2,
                                        validate)
    assert validated == [pytest.approx(float(module.weight))] and validated[0] > 0


def test_off_a_terminal_each_epoch_is_one_plain_line(capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's captured stderr is not a terminal, like `make demo > log`: no bar, no carriage return.
    module, data = _regression()
    Trainer(TrainConfig(epochs=3, learning_rate=0.05, device="cpu"), progress=True).fit(module, lambda e: data,
                                                                                          _mse(module))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert re.fullmatch(r"epoch 1/3: 4 batches in \d+\.\d s, loss \d+\.\d{4}, valid NDCG@10 -; at most \d+ s left",
                        lines[0])
    assert lines[-1].endswith("at most 0 s left")


def test_on_a_terminal_bars_have_a_total_and_an_eta(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    module, data = _regression()
    Trainer(TrainConfig(epochs=2, learning_rate=0.05, device="cpu"), progress=True).fit(module, lambda e: data,
                                                                                          _mse(module))
    err = capsys.readouterr().err
    # 4 batches of 8: the epoch's bar counts against a total of 4, with an ETA slot (elapsed<left)
    assert re.search(r"epoch 1/2: +\d+%\|[^|]*\| \d/4 \[\d\d:\d\d<", err)
    assert re.search(r"epochs \(at most\): +100%\|[^|]*\| 2/2 \[", err)
    assert "epoch 1/2: loss" not in err  # the bars say it: no plain lines on a terminal


def test_the_two_towers_batches_know_how_many_they_are() -> None:
    # 5 users with 3 events each: one window per user (whole_history off), batches of 2 -> 3 batches.
    histories = Histories(np.arange(0, 16, 3), np.arange(15) % 4, np.ones(15, np.int64), np.ones(15, np.float32),
                          np.arange(15, dtype=np.float64))
    batches = training_batches(histories, 4, 2, np.random.default_rng(0))
    assert len(batches) == 3 and len(list(batches)) == 3

"""`train_two_tower`: the window fit never sees the ranking stage's labels, each later fit starts from the one
before, and the served fit is on train + valid for the count chosen on validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from tests.models.test_two_tower import tiny_dataset

from foryou.config import RunConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.models.two_tower import TwoTower
from foryou.rerank.protocol import holdout_last_train_event
from foryou.two_tower_run import FINE_TUNE_EPOCHS, load_trained, save_trained, train_two_tower

KEY = [S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP]


def _events(data: Dataset) -> set[tuple[int, int, pd.Timestamp]]:
    return set(data.interactions[KEY].itertuples(index=False, name=None))


def test_each_fit_starts_from_the_one_before_and_the_window_never_sees_the_stage_labels(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    dataset = tiny_dataset()
    config = RunConfig.model_validate({
        "data": {"source": "movielens", "path": "x"}, "tracking": {"mlflow": False},
        "model": {"embedding_dim": 16, "hidden_dim": 16, "max_history": 8, "num_layers": 1, "use_text": False,
                  "user_tower": "transformer"},
        "train": {"epochs": 4, "patience": 2, "batch_size": 4, "device": "cpu"}})
    calls: list[tuple[TwoTower, Dataset, bool, TwoTower | None]] = []
    original = TwoTower.fit

    def spy(self: TwoTower, data: Dataset, validate: Callable[[TwoTower], float] | None = None,
            warm_start: TwoTower | None = None) -> TwoTower:
        calls.append((self, data, validate is not None, warm_start))
        return original(self, data, validate, warm_start)

    monkeypatch.setattr(TwoTower, "fit", spy)
    trained = train_two_tower(config, dataset, progress=False)

    (window, window_data, window_validated, first), (tuned, tuned_data, tuned_validated, second), \
        (served, served_data, served_validated, third) = calls
    labels = holdout_last_train_event(dataset)[1]
    train = _events(dataset.restricted_to("train"))
    stage_labels = set(labels[KEY].itertuples(index=False, name=None))
    assert stage_labels and stage_labels <= train
    assert first is None and _events(window_data) == train - stage_labels  # from scratch, on no label
    assert second is window and _events(tuned_data) == train
    assert third is tuned and _events(served_data) == _events(dataset.restricted_to("train", "valid"))
    assert (window_validated, tuned_validated, served_validated) == (True, True, False)
    assert (trained.window, trained.tuned, trained.model) == (window, tuned, served)
    assert len(window.history) == trained.best_epoch + 2 or len(window.history) == config.train.epochs
    assert len(tuned.history) == FINE_TUNE_EPOCHS
    chosen = max(tuned.history, key=lambda record: record.valid_ndcg or 0.0).epoch
    assert served.train_config.epochs == len(served.history) == chosen
    assert trained.tuning_history == tuned.history and trained.window_history == window.history

    save_trained(trained, tmp_path)
    loaded = load_trained(tmp_path)
    assert loaded is not None and loaded.window_history == window.history and loaded.best_epoch == trained.best_epoch
    assert trained.tower_scores == loaded.tower_scores == {}  # a named tower: nothing chosen


@pytest.mark.parametrize("better", ["transformer", "attention"])
def test_unnamed_user_tower_is_chosen_on_validation_and_every_later_fit_uses_it(
        better: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    dataset = tiny_dataset()
    config = RunConfig.model_validate({
        "data": {"source": "movielens", "path": "x"}, "tracking": {"mlflow": False},
        "model": {"embedding_dim": 16, "hidden_dim": 16, "max_history": 8, "num_layers": 1, "use_text": False},
        "train": {"epochs": 2, "patience": 1, "batch_size": 4, "device": "cpu"}})
    fitted: list[tuple[str, bool]] = []  # (user tower, warm-started) per fit
    original = TwoTower.fit

    def spy(self: TwoTower, data: Dataset, validate: Callable[[TwoTower], float] | None = None,
            warm_start: TwoTower | None = None) -> TwoTower:
        fitted.append((self.model_config.user_tower, warm_start is not None))
        return original(self, data, validate, warm_start)

    def by_tower(data: Dataset) -> Callable[[TwoTower], float]:  # validation that prefers `better`'s tower
        return lambda model: 0.3 if model.model_config.user_tower == better else 0.1

    monkeypatch.setattr(TwoTower, "fit", spy)
    monkeypatch.setattr("foryou.two_tower_run.validation_ndcg", by_tower)
    trained = train_two_tower(config, dataset, progress=False)

    assert fitted == [("transformer", False), ("attention", False), (better, True), (better, True)]
    assert trained.tower_scores == {"transformer": 0.3 if better == "transformer" else 0.1,
                                    "attention": 0.3 if better == "attention" else 0.1}
    assert trained.window is not None and trained.tuned is not None
    assert {trained.window.model_config.user_tower, trained.tuned.model_config.user_tower,
            trained.model.model_config.user_tower} == {better}
    save_trained(trained, tmp_path)
    loaded = load_trained(tmp_path)
    assert loaded is not None and loaded.tower_scores == trained.tower_scores
    assert loaded.model.model_config.user_tower == better

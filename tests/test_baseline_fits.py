"""The baselines' fits in a second process while the two-tower trains (baseline_fits.py): the same models as
fitted here, the cores shared and given back, a dead or abandoned second process handled, and the pipeline's
answers unchanged by where its baselines were fitted."""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.serving.shop import write_shop

from foryou import baseline_fits, workflow
from foryou.baseline_fits import BaselineFits, PendingBaselineFits, fit_baselines_on_windows
from foryou.config import RunConfig, load_config
from foryou.data.dataset import Dataset
from foryou.models.base import Recommender
from foryou.models.registry import build_baselines
from foryou.rerank.protocol import train_minus_last_event


def _with_loss(config: RunConfig, kind: str) -> RunConfig:
    return config.model_copy(update={"loss": config.loss.model_copy(update={"kind": kind})})


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, Dataset]:
    """The test shop with a sampled-softmax two-tower: the runs whose baselines may go to a second process."""
    root = tmp_path_factory.mktemp("shop")
    config = _with_loss(load_config(write_shop(root)), "sampled_softmax").model_copy(update={"output_dir": root / "run"})
    return config, workflow.load_or_prepare(config, progress=False)


@pytest.fixture
def any_log_in_a_second_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(baseline_fits, "PARALLEL_MIN_EVENTS", 0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # what the suite had, whatever the test left


def _scores(model: Recommender, n_users: int) -> np.ndarray:
    scores = model.score_users(np.arange(n_users))
    return scores.toarray() if hasattr(scores, "toarray") else np.asarray(scores)


def _same_fits(first: BaselineFits, second: BaselineFits, n_users: int) -> None:
    assert list(first.train_valid) == list(second.train_valid)
    for name, (model, seconds) in first.train_valid.items():
        assert seconds >= 0 and model.params() == second.train_valid[name][0].params()
        np.testing.assert_allclose(_scores(model, n_users), _scores(second.train_valid[name][0], n_users), rtol=1e-6)
    for mine, theirs in ((first.train, second.train), (first.window, second.window)):
        assert list(mine) == list(theirs)
        for name, model in mine.items():
            np.testing.assert_allclose(_scores(model, n_users), _scores(theirs[name], n_users), rtol=1e-6)


def test_the_second_process_fits_what_this_process_fits_and_gives_the_cores_back(
        shop: tuple[RunConfig, Dataset], any_log_in_a_second_process: None) -> None:
    config, dataset = shop
    here = fit_baselines_on_windows(config, dataset)
    torch.set_num_threads(2)
    with PendingBaselineFits(config, dataset, threads=2) as pending:
        assert pending.in_second_process and torch.get_num_threads() == 1  # one core for the fits till taken
        there = pending.result()
        assert torch.get_num_threads() == 2  # their result taken: the core is back
    _same_fits(here, there, dataset.n_users)
    assert set(here.train) == {"item_knn", "ease", "als"} & set(config.baselines.enabled)
    for name, model in there.window.items():  # fitted without each user's last train event, the stage's labels
        without_labels = build_baselines(config.baselines)[name].fit(train_minus_last_event(dataset))
        np.testing.assert_allclose(_scores(model, dataset.n_users), _scores(without_labels, dataset.n_users), rtol=1e-6)
        assert not np.allclose(_scores(model, dataset.n_users), _scores(there.train[name], dataset.n_users))


def test_a_small_log_or_one_thread_fits_here_when_asked(shop: tuple[RunConfig, Dataset]) -> None:
    config, dataset = shop
    assert len(dataset.events("train")) < baseline_fits.PARALLEL_MIN_EVENTS
    for threads in (1, 2):
        pending = PendingBaselineFits(config, dataset, threads=threads)
        assert not pending.in_second_process
        _same_fits(pending.result(), fit_baselines_on_windows(config, dataset), dataset.n_users)


def test_one_thread_or_a_full_softmax_never_starts_a_second_process(shop: tuple[RunConfig, Dataset],
                                                                    any_log_in_a_second_process: None) -> None:
    config, dataset = shop
    assert not PendingBaselineFits(config, dataset, threads=1).in_second_process
    assert not PendingBaselineFits(_with_loss(config, "full_softmax"), dataset, threads=2).in_second_process


def test_a_dead_second_process_is_an_error_that_says_what_to_do(
        shop: tuple[RunConfig, Dataset], any_log_in_a_second_process: None) -> None:
    config, dataset = shop
    torch.set_num_threads(2)
    with PendingBaselineFits(config, dataset, threads=2) as pending:
        [process] = [child for child in multiprocessing.active_children() if child.name == "foryou-baseline-fits"]
        process.kill()
        with pytest.raises(RuntimeError, match="died .*train.num_threads: 1"):
            pending.result()
    assert torch.get_num_threads() == 2  # given back on the way out


def test_leaving_early_stops_the_second_process(shop: tuple[RunConfig, Dataset],
                                                any_log_in_a_second_process: None) -> None:
    config, dataset = shop
    with pytest.raises(KeyboardInterrupt), PendingBaselineFits(config, dataset, threads=2):
        raise KeyboardInterrupt  # the two-tower's training interrupted
    assert not [child for child in multiprocessing.active_children() if child.name == "foryou-baseline-fits"]


def test_the_pipeline_answers_the_same_wherever_its_baselines_were_fitted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    shop = _with_loss(load_config(write_shop(tmp_path)), "sampled_softmax")
    config = shop.model_copy(update={"train": shop.train.model_copy(update={"num_threads": 2})})
    threads = torch.get_num_threads()

    def run(where: str) -> workflow.PipelineResult:
        torch.set_num_threads(2)
        with caplog.at_level(logging.INFO, logger="foryou.stages"):
            result = workflow.run_pipeline(config.model_copy(update={"output_dir": tmp_path / where}), progress=False)
        torch.set_num_threads(threads)
        return result

    here = run("here")
    assert "second process" not in caplog.text
    monkeypatch.setattr(baseline_fits, "PARALLEL_MIN_EVENTS", 0)
    there = run("there")
    assert "stage waiting for the baselines' fits (second process)" in caplog.text
    assert there.validation_ndcg == pytest.approx(here.validation_ndcg, rel=1e-9)
    assert there.default_strategy == here.default_strategy
    for mine, theirs in zip(there.evaluation.reports, here.evaluation.reports, strict=True):
        assert mine.name == theirs.name
        assert json.dumps(mine.result.summary, default=str) == json.dumps(theirs.result.summary, default=str)

"""The time-budgeted search: validation only, the chosen settings written back whole, budget cuts, pruning."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from foryou.cli import app
from foryou.config import load_config
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset
from foryou.errors import ConfigError
from foryou.evaluation import protocol
from foryou.models.two_tower import TwoTower
from foryou.tuning.search import (
    PRUNE_AFTER_EPOCHS,
    TUNED_CONFIG,
    TrialRecord,
    _Search,
    best_per_family,
    run_search,
    write_tuned_config,
)
from foryou.tuning.space import two_tower_start, with_params


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two taste groups of 12 items; 50 users with 6-9 purchases each."""
    root = tmp_path_factory.mktemp("tune")
    rng = np.random.default_rng(0)
    lines = ["user,sku,ts"]
    for user in range(50):
        offset = 0 if user % 2 == 0 else 12
        for step, item in enumerate(rng.choice(12, 6 + user % 4, replace=False)):
            lines.append(f"u{user},i{offset + item},{1_700_000_000 + 3600 * step}")
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    (root / "items.csv").write_text("sku,title,side\n" + "".join(
        f"i{item},item {item},{'left' if item < 12 else 'right'}\n" for item in range(24)))
    path = root / "run.yaml"
    path.write_text(f"""
name: tune-test
output_dir: {root / 'run'}
data:
  source: generic
  interactions: {{path: {root / 'events.csv'}, columns: {{user_id: user, item_id: sku, timestamp: ts}},
                  event_type: purchase}}
  items: {{path: {root / 'items.csv'}, columns: {{item_id: sku}}, categorical: [side]}}
model: {{use_text: false, embedding_dim: 16}}
train: {{epochs: 4}}
tracking: {{mlflow: true, tracking_uri: {root / 'mlruns'}, experiment: tune-test}}
""")
    return path


@pytest.fixture(scope="module")
def dataset(shop: Path) -> Dataset:
    return prepare_dataset(load_config(shop), progress=False).dataset


def test_budget_is_required_and_parsed(shop: Path, dataset: Dataset) -> None:
    assert load_config(shop, ["tune.budget=10m"]).tune.budget_seconds == 600
    assert load_config(shop, ["tune.budget=45"]).tune.budget_seconds == 45
    with pytest.raises(ConfigError, match="tune.budget"):
        load_config(shop, ["tune.budget=soon"])
    with pytest.raises(ValueError, match="tune.budget is not set"):
        run_search(load_config(shop), dataset)


def test_search_reads_validation_only_and_writes_back_what_won(
        shop: Path, dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits: list[str] = []
    evaluate = protocol.evaluate

    def recording(model: Any, data: Dataset, split: str = "test", **options: Any) -> Any:
        splits.append(split)
        return evaluate(model, data, split, **options)

    monkeypatch.setattr(protocol, "evaluate", recording)
    config = load_config(shop, ["tune.budget=12s", "tune.trials=3"])
    result = run_search(config, dataset)
    assert splits and set(splits) == {"valid"}  # the test split is never read
    families = {record.family for record in result.trials}
    assert families == {"ease", "item_knn", "als", "two_tower"}
    assert sum(record.family == "two_tower" for record in result.trials) <= 3
    for record in result.best().values():
        assert with_params(result.config, record.params) == result.config  # the winner's settings are the config's
    assert result.config.tune.budget is None  # the written config runs without a second search
    path = write_tuned_config(result, tmp_path)
    assert path.name == TUNED_CONFIG
    assert load_config(path) == result.config


def test_best_per_family_keeps_the_highest_value_and_the_earlier_trial_on_a_tie() -> None:
    def record(family: str, number: int, value: float) -> TrialRecord:
        return TrialRecord(family, number, "complete", value, {"n": number}, 0, 0.0, 0.0)

    records = [record("ease", 0, 0.2), record("als", 0, 0.1), record("ease", 1, 0.3), record("als", 1, 0.3),
               record("ease", 2, 0.3), record("als", 2, 0.05)]
    # ease: 0.2 < 0.3 (#1) = 0.3 (#2), so #1, the earlier of the tie; als: 0.1 < 0.3 (#1) > 0.05, so #1
    assert {family: r.number for family, r in best_per_family(records).items()} == {"ease": 1, "als": 1}


def test_first_trial_is_the_configured_settings_and_a_spent_budget_cuts_it(shop: Path, dataset: Dataset) -> None:
    config = load_config(shop, ["tune.budget=0.001s", "tune.families=[two_tower]", "train.epochs=50"])
    result = run_search(config, dataset)
    (trial,) = result.trials  # the deadline passed during the first epoch: one trial, cut after it
    assert trial.state == "cut" and trial.epochs == 1
    assert trial.params == two_tower_start(config)
    assert result.two_tower is None  # a cut trial's weights are not a finished fit
    assert result.config.model_dump(exclude={"tune"}) == config.model_dump(exclude={"tune"})


def test_the_search_prunes_a_weak_trial_after_the_warmup_and_only_that_one(
        shop: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # Validation score per epoch of four trials: two strong ones set the median (0.55), then a weak one, which
    # the median rule may stop only from epoch PRUNE_AFTER_EPOCHS on, then a strong one that must run to the end.
    curves = iter([[0.5] * 6, [0.6] * 6, [0.1] * 6, [0.7] * 6])
    epoch_scores: list[float] = []

    def fit(model: TwoTower, data: Dataset, validate: Any) -> TwoTower:  # six epochs of the trainer's hook
        epoch_scores[:] = next(curves)
        for _ in range(6):
            validate(model)
        return model

    monkeypatch.setattr(TwoTower, "fit", fit)
    config = load_config(shop, ["tune.trials=4", "tune.families=[two_tower]", "tracking.mlflow=false"])
    search = _Search(config, dataset, start=time.monotonic(), progress=False)
    search.score = lambda model: epoch_scores.pop(0)
    search.two_tower(deadline=time.monotonic() + 600)
    assert [(r.state, r.epochs, r.value) for r in search.records] == [
        ("complete", 6, 0.5), ("complete", 6, 0.6), ("pruned", PRUNE_AFTER_EPOCHS, 0.1), ("complete", 6, 0.7)]
    assert search.best_value == 0.7


def test_cli_tune_logs_a_parent_run_with_a_child_per_trial(shop: Path) -> None:
    result = CliRunner().invoke(app, ["tune", str(shop), "--budget", "6s", "--set", "tune.trials=2",
                                      "--set", "tracking.experiment=tune-cli", "-q"])
    assert result.exit_code == 0, result.output
    config = load_config(shop)
    tuned = load_config(config.output_dir / TUNED_CONFIG)
    assert tuned.tune.budget is None
    import mlflow

    mlflow.set_tracking_uri(f"file:{config.tracking.tracking_uri}")
    runs = mlflow.search_runs(experiment_names=["tune-cli"])
    parents = runs[runs["tags.mlflow.runName"] == "tune-test-tune"]
    assert len(parents) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]]
    assert len(children) >= 4 and set(children["params.family"]) >= {"ease", "item_knn", "als", "two_tower"}
    for family, names in {"ease": ["ease_l2"], "item_knn": ["item_knn_neighbours"],
                          "als": ["als_factors", "als_regularization", "als_alpha"]}.items():
        # the written config holds the settings of one of the family's best logged trials
        runs_of = children[children["params.family"] == family]
        best = runs_of[runs_of["metrics.valid_metric"] == runs_of["metrics.valid_metric"].max()]
        written = tuple(str(getattr(tuned.baselines, name)) for name in names)
        assert written in set(zip(*(best[f"params.baselines.{name}"] for name in names))), family


def test_pipeline_with_a_budget_trains_what_the_search_chose(shop: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    result = CliRunner().invoke(app, ["pipeline", str(shop), "--budget", "8s", "-q",
                                      "--set", f"output_dir={output}", "--set", "tracking.mlflow=false",
                                      "--set", "tune.trials=2"])
    assert result.exit_code == 0, result.output
    tuned = load_config(output / TUNED_CONFIG)
    meta = json.loads((output / "bundle" / "bundle.json").read_text())
    bundled = meta["config"]
    for section in ("model", "loss", "train", "baselines"):  # the bundle was trained with the chosen settings
        assert bundled[section] == tuned.model_dump(mode="json")[section], section
    report = (output / "report.md").read_text()
    assert "## Search (" in report and "tuning_trials.png" in report and (output / "tuning_trials.png").exists()
    assert f"served by default: {meta['default_strategy']}" in " ".join(result.output.split())  # rich wraps lines

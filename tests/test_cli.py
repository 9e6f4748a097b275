"""The validate / prepare commands through typer's CliRunner: reports, written files, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foryou.cli import app
from foryou.data.dataset import Dataset

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

EVENTS = ("user_id,item_id,timestamp\n"
          "u1,a,2024-01-01\nu1,b,2024-01-02\nu1,c,2024-01-03\n"
          "u2,a,2024-01-01\nu2,b,2024-01-02\nu2,c,2024-01-03\nu2,b,oops\n")


def tiny_config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "events.csv").write_text(EVENTS)
    config = tmp_path / "tiny.yaml"
    config.write_text(f"name: tiny\noutput_dir: {tmp_path / 'run'}\n"
                      f"data:\n  source: generic\n  interactions:\n    path: {tmp_path / 'events.csv'}\n{extra}")
    return config


def test_validate_prints_report_and_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tiny_config(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Data report: generic" in result.output and "unparseable timestamp" in result.output
    assert not (tmp_path / "run").exists()


def test_prepare_writes_dataset_with_overrides(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    result = runner.invoke(app, ["prepare", str(tiny_config(tmp_path)), "--out", str(out), "-q",
                                 "--set", "split.strategy=temporal_ratio"])
    assert result.exit_code == 0, result.output
    dataset = Dataset.load(out)
    # 6 valid events, 3 per user: floor(3*0.2)=0 test, floor(3*0.1)=0 valid -> all train.
    assert len(dataset.interactions) == 6 and set(dataset.interactions["split"]) == {"train"}
    assert dataset.manifest.config["split"]["strategy"] == "temporal_ratio"
    assert json.loads((out / "report.json").read_text())["counts"]["interactions"] == 6
    assert (out / "quarantine.csv").read_text().count("unparseable timestamp") == 1


def test_prepare_default_out_is_prepared_dir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare", str(tiny_config(tmp_path)), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "prepared" / "manifest.json").exists()


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tiny_config(tmp_path, "filters:\n  min_users: 3\n"))])
    assert result.exit_code == 2
    assert "error: filters.min_users: unknown key" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["prepare", str(tiny_config(tmp_path)), "--set", "train.epochs=many"])
    assert result.exit_code == 2 and "train.epochs" in result.output


def test_data_error_exits_2_with_the_message(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, "filters:\n  min_user_interactions: 50\n")
    result = runner.invoke(app, ["validate", str(config), "-q"])
    assert result.exit_code == 2
    assert "error: filter min_user_interactions=50 (pass 1) removed every remaining interaction" in result.output


def test_validate_demo_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["validate", "configs/demo.yaml", "-q"])
    assert result.exit_code == 0, result.output
    assert "rows without CustomerID" in result.output and "purchase" in result.output

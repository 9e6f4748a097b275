"""`prepare --engine spark` gives the pandas engine's tables, manifest, quarantine and report, row for row.

Each case prepares the same config with both engines and compares everything `write_prepared` would write.
The cases cover both ways in (a generic CSV / Parquet read by Spark, a named adapter read on the driver), every
split strategy, the dedup policies, iterative filters (one case over several rounds), the rating threshold and
the quarantine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.spark_required import require_spark
from typer.testing import CliRunner

from foryou.cli import app
from foryou.config import RunConfig, config_from_dict, load_config
from foryou.data import schema as S
from foryou.data.prepare import PrepareResult, prepare_dataset
from foryou.errors import EmptyDatasetError

require_spark()

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared" / "data"
SPARK = {"master": "local[2]", "shuffle_partitions": 4}
runner = CliRunner()


def on_spark(config: RunConfig, **conf: str) -> RunConfig:
    spark_config = config.model_copy(deep=True)
    spark_config.data.engine = "spark"
    spark_config.spark = spark_config.spark.model_validate({**SPARK, "conf": conf})
    return spark_config


def both_engines(config: RunConfig) -> tuple[PrepareResult, PrepareResult]:
    return prepare_dataset(config, progress=False), prepare_dataset(on_spark(config), progress=False)


def assert_same(pandas_result: PrepareResult, spark_result: PrepareResult) -> None:
    for table in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(pandas_result.dataset, table), getattr(spark_result.dataset, table))
    pd.testing.assert_frame_equal(pandas_result.quarantine, spark_result.quarantine)
    expected, got = pandas_result.dataset.manifest, spark_result.dataset.manifest
    assert got.steps == expected.steps and got.counts == expected.counts
    assert got.input_hashes == expected.input_hashes and got.item_fields == expected.item_fields
    assert spark_result.report == pandas_result.report


def generic_fixture(**sections: Any) -> RunConfig:
    directory = FIXTURES / "generic"
    return config_from_dict({"data": {
        "source": "generic", "timezone": "Europe/Berlin",
        "interactions": {"path": str(directory / "events.csv"), "columns": {
            "user_id": "uid", "item_id": "sku", "timestamp": "ts", "event_type": "action", "value": "qty"}},
        "items": {"path": str(directory / "items.jsonl.gz"), "columns": {"item_id": "sku"}, "text": ["name"],
                  "categorical": ["tags"], "numeric": ["price"], "vector": ["emb"], "list_separator": "|"},
        "users": {"path": str(directory / "users.parquet"), "columns": {"user_id": "uid"},
                  "categorical": ["segment"], "numeric": ["age"]}}, **sections})


def test_generic_csv_with_malformed_rows_catalog_and_users() -> None:
    pandas_result, spark_result = both_engines(generic_fixture(split={"strategy": "temporal_ratio"}))
    assert len(pandas_result.quarantine) == 5  # the fixture's five bad rows, each with its reason
    assert_same(pandas_result, spark_result)


def generated_log(path: Path, rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A log with repeats, same-timestamp duplicates, ratings, a few malformed rows and power-law items."""
    rng = np.random.default_rng(seed)
    items = np.minimum(rng.zipf(1.6, rows), 300)
    frame = pd.DataFrame({
        "who": rng.integers(0, 150, rows).astype(str),
        "what": [f"i{item}" for item in items],
        "when": 1_700_000_000 + rng.integers(0, 30 * 86_400, rows) // 3600 * 3600,
        "kind": rng.choice(["view", "addtocart", "purchase", "rating"], rows),
        "stars": rng.integers(1, 6, rows).astype(float)})
    frame.loc[[5, 17], "who"] = None
    frame.loc[[9], "stars"] = np.nan
    frame = pd.concat([frame, frame.iloc[:200]], ignore_index=True)  # exact duplicates later in the file
    if path.suffix == ".parquet":
        frame["when"] = pd.to_datetime(frame["when"], unit="s", utc=True)
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return frame


def generated_config(path: Path, **sections: Any) -> RunConfig:
    return config_from_dict({"data": {"source": "generic", "interactions": {
        "path": str(path), "columns": {"user_id": "who", "item_id": "what", "timestamp": "when",
                                       "event_type": "kind", "value": "stars"}}}, **sections})


@pytest.mark.parametrize(("suffix", "sections"), [
    (".csv", {"split": {"strategy": "leave_last_out"}, "events": {"dedup": "exact"},
              "filters": {"min_item_interactions": 3, "min_user_interactions": 5, "iterative": True}}),
    (".csv", {"split": {"strategy": "global_time", "valid_cut": "2023-11-30", "time_cut": "2023-12-07"},
              "events": {"dedup": "first_per_user_item", "rating_mode": "threshold", "rating_threshold": 4}}),
    (".parquet", {"split": {"strategy": "temporal_ratio", "ratios": [0.6, 0.2, 0.2]},
                  "events": {"dedup": "same_timestamp", "rating_mode": "weight"},
                  "filters": {"min_item_interactions": 2, "min_user_interactions": 3, "iterative": False}}),
], ids=["csv-leave-last-out-kcore", "csv-global-time-threshold", "parquet-temporal-ratio"])
def test_generated_logs_every_split_dedup_and_filter(tmp_path: Path, suffix: str, sections: dict[str, Any]) -> None:
    path = tmp_path / f"events{suffix}"
    generated_log(path)
    pandas_result, spark_result = both_engines(generated_config(path, **sections))
    assert pandas_result.dataset.manifest.counts["test"] > 0
    assert_same(pandas_result, spark_result)


def test_iterative_filters_over_several_rounds(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    generated_log(path)
    config = generated_config(path, split={"strategy": "leave_last_out"}, events={"dedup": "exact"},
                              filters={"min_item_interactions": 8, "min_user_interactions": 18, "iterative": True})
    pandas_result, spark_result = both_engines(config)
    # Each filter removes rows in passes 1 to 3 (the users' removals thin the items and back); pass 4 is stable.
    removed = [step["removed"] for step in pandas_result.dataset.manifest.steps if step["step"].startswith("min_")]
    assert [count > 0 for count in removed] == [True] * 6 + [False] * 2
    assert_same(pandas_result, spark_result)


def test_a_log_read_in_many_partitions_keeps_file_order(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    generated_log(path)
    config = generated_config(path, events={"dedup": "none"})
    # ~16 KB splits: the file is read as a dozen partitions, whose record numbers must follow on in file order
    many = prepare_dataset(on_spark(config, **{"spark.sql.files.maxPartitionBytes": "16384"}), progress=False)
    assert_same(prepare_dataset(config, progress=False), many)
    assert many.dataset.interactions[S.SOURCE_ORDER].max() == len(pd.read_csv(path)) - 1


def test_named_adapter_read_on_the_driver() -> None:
    config = config_from_dict({"data": {"source": "uci_online_retail",
                                        "path": str(FIXTURES / "uci_online_retail" / "online_retail.csv.gz")},
                               "filters": {"min_user_interactions": 2}})
    assert_same(*both_engines(config))


def test_filters_that_remove_everything_fail_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    generated_log(path, rows=200)
    config = generated_config(path, filters={"min_user_interactions": 10_000})
    messages = []
    for engine_config in (config, on_spark(config)):
        with pytest.raises(EmptyDatasetError) as error:
            prepare_dataset(engine_config, progress=False)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and "min_user_interactions" in messages[0]


def test_cli_engine_flag_writes_the_same_files(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    generated_log(path, rows=400)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(generated_config(path).model_dump(mode="json", exclude_defaults=True)))
    written = {}
    for engine in ("pandas", "spark"):
        result = runner.invoke(app, ["prepare", str(config), "--engine", engine, "--out", str(tmp_path / engine),
                                     "-q", "--set", "spark.master=local[2]"])
        assert result.exit_code == 0, result.output
        written[engine] = tmp_path / engine
    for table in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(*(pd.read_parquet(folder / f"{table}.parquet") for folder in written.values()))
    for name in ("quarantine.csv", "report.json"):
        assert (written["pandas"] / name).read_bytes() == (written["spark"] / name).read_bytes()
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in written.values()]
    assert [manifest["config"]["data"].pop("engine") for manifest in manifests] == ["pandas", "spark"]
    assert manifests[0] == manifests[1]


def test_cli_unknown_engine_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    generated_log(path, rows=50)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(generated_config(path).model_dump(mode="json", exclude_defaults=True)))
    result = runner.invoke(app, ["prepare", str(config), "--engine", "dask"])
    assert result.exit_code == 2 and "data.engine" in result.output and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize(("config_file", "folder"), [("movielens.yaml", "movielens-latest-small"),
                                                     ("uci.yaml", "uci-online-retail"),
                                                     ("movielens_generic.yaml", "movielens-latest-small")])
def test_shared_datasets(config_file: str, folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (SHARED / folder).exists():
        pytest.skip(f"../shared/data/{folder} is not here")
    monkeypatch.chdir(ROOT)  # the benchmark configs name the shared data relative to the repository root
    assert_same(*both_engines(load_config(ROOT / "benchmarks" / "configs" / config_file)))

"""`prepare_dataset` end to end on tiny in-memory and on-disk sources: counts add up, files round-trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from foryou.config import RunConfig, config_from_dict
from foryou.data import engine as engine_module
from foryou.data import prepare as prepare_module
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.data.prepare import inspect_dataset, prepare_dataset, write_prepared
from foryou.data.schema import FieldRoles, SourceTables
from foryou.errors import ConfigError, DataFileError, EmptyDatasetError, MissingColumnError

DAY = pd.Timestamp("2024-01-01", tz="UTC")


def source_tables() -> SourceTables:
    """u1: a b c d (days 0-3), u2: a b c (days 0-2) + exact duplicate of (u2, c), u3: a (day 0), a bad row.

    Items table: a, b, c (c listed twice: duplicate catalog id), z (no events), no row for d.
    """
    rows = [("u1", "a", 0), ("u1", "b", 1), ("u1", "c", 2), ("u1", "d", 3), ("u2", "a", 0), ("u2", "b", 1),
            ("u2", "c", 2), ("u2", "c", 2), ("u3", "a", 0), ("u3", "", 1)]
    interactions = pd.DataFrame({
        S.USER_ID: [r[0] for r in rows], S.ITEM_ID: [r[1] for r in rows],
        S.TIMESTAMP: [DAY + pd.Timedelta(days=r[2]) for r in rows], S.EVENT_TYPE: "purchase",
        S.VALUE: 1.0, S.SOURCE_ORDER: np.arange(len(rows), dtype=np.int64)})
    items = pd.DataFrame({S.ITEM_ID: ["a", "b", "c", "c", "z"], "title": ["A", "", "old C", "C", "Z"],
                          "price": [1.0, 2.0, 3.0, 3.5, 9.0]})
    users = pd.DataFrame({S.USER_ID: ["u1", "u2"], "country": ["FR", "DE"]})
    return SourceTables(interactions, items, users, FieldRoles(text=["title"], numeric=["price"]),
                        FieldRoles(categorical=["country"]), dropped={"rows of test rule": 4}, inputs=[])


def config(**sections: Any) -> RunConfig:
    return config_from_dict({"data": {"source": "movielens", "path": "unused"}, **sections})


@pytest.fixture
def fake_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "get_adapter", lambda source: lambda data_config: source_tables())


@pytest.mark.usefixtures("fake_adapter")
def test_prepare_known_answer() -> None:
    result = prepare_dataset(config(filters={"min_user_interactions": 2}), progress=False)
    data = result.dataset
    # bad row quarantined (1), duplicate (u2, c, day 2) removed by same_timestamp (1), u3 has 1 event < 2 (1).
    # Left: u1 a b c d -> a b train, c valid, d test; u2 a b c -> a train, b valid, c test.
    assert data.user_ids.tolist() == ["u1", "u2"] and data.item_ids.tolist() == ["a", "b", "c", "d"]
    assert data.interactions[S.SPLIT].tolist() == ["train", "train", "valid", "test", "train", "valid", "test"]
    assert data.interactions[S.ITEM_IDX].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert list(data.interactions.columns) == list(prepare_module.INTERACTION_OUTPUT)
    # Items: c keeps its last catalog row, d has no metadata (empty row), z is never used.
    assert data.items["title"].tolist()[:3] == ["A", "", "C"] and pd.isna(data.items["title"].iloc[3])
    counts = data.manifest.counts
    assert (counts["items_without_metadata"], counts["catalog_items_without_interactions"],
            counts["duplicate_catalog_ids"]) == (1, 1, 1)
    report = result.report
    assert report["items_without_text"] == 2  # b (empty title) and d (no row)
    assert report["quarantined_by_reason"] == {"empty item_id": 1}
    assert report["dropped_by_rule"]["source: rows of test rule"] == 4
    # Train items are {a, b}: test rows u1-d and u2-c are cold, valid row u1-c is cold, u2-b is not.
    assert report["cold"]["test"]["cold_item_rows"] == 2 and report["cold"]["valid"]["cold_item_rows"] == 1
    assert report["cold"]["test"]["cold_items"] == 2 and report["cold"]["test"]["cold_user_rows"] == 0
    assert data.users["country"].tolist() == ["FR", "DE"]


@pytest.mark.usefixtures("fake_adapter")
def test_nothing_is_lost() -> None:
    result = prepare_dataset(config(filters={"min_user_interactions": 2}), progress=False)
    counts, steps = result.dataset.manifest.counts, result.dataset.manifest.steps
    removed_after_source = sum(s["removed"] for s in steps if not s["step"].startswith("source:"))
    # 10 source rows = 7 kept + 1 quarantined + 1 duplicate + 1 filtered.
    assert counts["source_interactions"] == 10
    assert counts["interactions"] + removed_after_source == counts["source_interactions"]
    assert len(result.quarantine) == 1


@pytest.mark.usefixtures("fake_adapter")
def test_everything_filtered_names_the_filter() -> None:
    with pytest.raises(EmptyDatasetError, match="min_user_interactions=9"):
        prepare_dataset(config(filters={"min_user_interactions": 9}), progress=False)


@pytest.mark.usefixtures("fake_adapter")
def test_everything_below_rating_threshold_names_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = source_tables()
    tables.interactions[S.EVENT_TYPE] = "rating"  # every value is 1.0 < 4
    monkeypatch.setattr(engine_module, "get_adapter", lambda source: lambda data_config: tables)
    with pytest.raises(EmptyDatasetError, match=r"events.rating_threshold=4.0 removed every interaction \(9 "):
        prepare_dataset(config(events={"rating_mode": "threshold"}), progress=False)


@pytest.mark.usefixtures("fake_adapter")
def test_field_role_overrides() -> None:
    result = inspect_dataset(config(features={"text_fields": [], "numeric_fields": ["price"]}), progress=False)
    assert result.dataset.item_fields.text == [] and result.dataset.manifest.input_hashes == {}
    with pytest.raises(ConfigError, match=r"features.text_fields: 'colour' not in the items table"):
        inspect_dataset(config(features={"text_fields": ["colour"]}), progress=False)


@pytest.mark.usefixtures("fake_adapter")
def test_round_trip(tmp_path: Path) -> None:
    result = prepare_dataset(config(), progress=False)
    write_prepared(result, tmp_path)
    loaded = Dataset.load(tmp_path)
    for name in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(result.dataset, name))
    assert loaded.manifest == result.dataset.manifest
    assert len(pd.read_csv(tmp_path / "quarantine.csv")) == 1 and (tmp_path / "report.json").exists()


def write_generic(tmp_path: Path, text: str) -> RunConfig:
    events = tmp_path / "events.csv"
    events.write_text(text)
    return config_from_dict({"data": {"source": "generic", "interactions": {"path": str(events)}},
                             "split": {"strategy": "temporal_ratio"}})


def test_generic_source_with_malformed_rows_and_hashes(tmp_path: Path) -> None:
    cfg = write_generic(tmp_path, "user_id,item_id,timestamp\nu1,a,2024-01-01\nu1,b,not a date\n"
                                  "u1,c,2024-01-03\n,d,2024-01-04\n")
    result = prepare_dataset(cfg, progress=False)
    assert len(result.dataset.interactions) == 2 and len(result.quarantine) == 2
    hashes = result.dataset.manifest.input_hashes
    assert list(hashes) == [str(tmp_path / "events.csv")] and len(next(iter(hashes.values()))) == 64


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    cfg = write_generic(tmp_path, "user_id,item_id\nu1,a\n")
    with pytest.raises(MissingColumnError, match=r"timestamp.*events\.csv|events\.csv.*timestamp"):
        prepare_dataset(cfg, progress=False)


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    cfg = config_from_dict({"data": {"source": "generic",
                                     "interactions": {"path": str(tmp_path / "absent.csv")}}})
    with pytest.raises(DataFileError, match="absent.csv"):
        prepare_dataset(cfg, progress=False)

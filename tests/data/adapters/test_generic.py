"""Generic adapter: mapped columns, event aliases, zones, quarantine, items/users fields, and its error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from adapter_testing import FIXTURES, utc

from foryou.config import DataConfig, TableMapping
from foryou.data.adapters import generic
from foryou.errors import ConfigError, DataFileError, MissingColumnError

DIR = FIXTURES / "generic"
EVENTS = TableMapping(path=DIR / "events.csv", columns={"user_id": "uid", "item_id": "sku", "timestamp": "ts",
                                                        "event_type": "action", "value": "qty"})
ITEMS = TableMapping(path=DIR / "items.jsonl.gz", columns={"item_id": "sku"}, text=["name"], categorical=["tags"],
                     numeric=["price"], vector=["emb"], list_separator="|")
USERS = TableMapping(path=DIR / "users.parquet", columns={"user_id": "uid"}, categorical=["segment"],
                     numeric=["age"])


def load(**kwargs):
    return generic.load(DataConfig(source="generic", timezone="Europe/Paris", **kwargs))


@pytest.fixture(scope="module")
def tables():
    return load(interactions=EVENTS, items=ITEMS, users=USERS)


def test_events(tables) -> None:
    events = tables.interactions
    assert events["user_id"].tolist() == ["u1", "u1", "u2", "u4"]
    assert events["item_id"].tolist() == ["A", "A", "B", "00123"]  # leading zeros kept
    # addtocart, transaction and like are aliases of the canonical names.
    assert events["event_type"].tolist() == ["view", "add_to_cart", "purchase", "save"]
    # "10:05+02:00" is 08:05 UTC; naive "12:00" is Paris time (UTC+1 in March) = 11:00 UTC.
    assert events["timestamp"].tolist() == [utc("2024-03-01 10:00"), utc("2024-03-01 08:05"),
                                            utc("2024-03-01 11:00"), utc("2024-03-02 09:00")]
    assert np.isnan(events["value"].iloc[0]) and events["value"].tolist()[1:3] == [1.0, 2.0]
    assert events["source_order"].tolist() == [0, 1, 2, 7]


def test_quarantine(tables) -> None:
    quarantine = tables.quarantine
    rows = quarantine[["file", "row", "reason"]].values.tolist()
    events, items = str(DIR / "events.csv"), str(DIR / "items.jsonl.gz")
    assert rows == [[events, 5, "empty item id (sku)"], [events, 6, "unparseable timestamp (ts)"],
                    [events, 7, "non-numeric value (qty)"], [events, 8, "empty event type (action)"],
                    [items, 3, "empty item_id (sku)"]]  # JSON lines count records from 1
    assert json.loads(quarantine["raw"].iloc[1])["ts"] == "yesterday"


def test_items(tables) -> None:
    items = tables.items.set_index("item_id")
    assert list(items.index) == ["B", "A", "00123"]  # A twice: the last record wins
    assert items.loc["A", "name"] == "Red mug v2" and items.loc["A", "tags"] == ["kitchen", "red"]
    assert items.loc["A", "price"] == 5.0 and np.isnan(items.loc["B", "price"])
    assert items.loc["B", "emb"] == [0.3, 0.4] and items.loc["00123", "emb"] is None
    assert items.loc["00123", "tags"] == []
    assert tables.dropped == {"non-numeric values in items column 'price' (set to NaN)": 1,
                              "duplicate item_ids in items.jsonl.gz (last kept)": 1,
                              "non-numeric values in users column 'age' (set to NaN)": 0,
                              "duplicate user_ids in users.parquet (last kept)": 0}
    assert tables.item_fields.to_dict() == {"text": ["name"], "categorical": ["tags"], "numeric": ["price"],
                                            "vector": ["emb"]}


def test_users(tables) -> None:
    users = tables.users.set_index("user_id")
    assert users.loc["u1", "segment"] == "gold" and users.loc["u2", "age"] == 45.0
    assert tables.user_fields.categorical == ["segment"] and tables.user_fields.numeric == ["age"]
    assert tables.inputs == [str(DIR / "events.csv"), str(DIR / "items.jsonl.gz"), str(DIR / "users.parquet")]


def test_constant_event_type_and_default_names(tmp_path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"user_id": 7, "item_id": 12, "timestamp": 1700000000000}\n')
    events = load(interactions=TableMapping(path=path, event_type="purchase")).interactions
    # 1,700,000,000,000 > 1e11 so it is read as milliseconds: 2023-11-14 22:13:20 UTC.
    assert events.iloc[0][["user_id", "item_id", "event_type"]].tolist() == ["7", "12", "purchase"]
    assert events["timestamp"].iloc[0] == utc("2023-11-14 22:13:20")


def test_missing_column_message_lists_columns() -> None:
    mapping = EVENTS.model_copy(update={"columns": {**EVENTS.columns, "timestamp": "time"}})
    with pytest.raises(MissingColumnError, match=r"interactions file .*events\.csv has no column 'time' \(mapped "
                                                 r"to timestamp\); columns present: uid, sku, ts, action, qty"):
        load(interactions=mapping)


def test_missing_item_field() -> None:
    mapping = ITEMS.model_copy(update={"text": ["title"]})
    with pytest.raises(MissingColumnError, match=r"items file .*items\.jsonl\.gz has no column 'title' "
                                                 r"\(mapped to item field\)"):
        load(interactions=EVENTS, items=mapping)


def test_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"data\.interactions\.columns\.usr: unknown canonical name"):
        load(interactions=TableMapping(path=DIR / "events.csv", columns={"usr": "uid"}))
    with pytest.raises(DataFileError, match=r"data\.interactions\.path: cannot tell the format of .*events\.xml"):
        load(interactions=TableMapping(path=tmp_path / "events.xml"))
    with pytest.raises(DataFileError, match=r"input file .*absent\.csv does not exist"):
        load(interactions=TableMapping(path=tmp_path / "absent.csv"))


def test_wrong_format_and_bad_vector(tmp_path) -> None:
    path = tmp_path / "events.parquet"
    path.write_text("user,item\n")
    with pytest.raises(DataFileError, match=r"events\.parquet is not a readable Parquet file"):
        load(interactions=TableMapping(path=path))
    items = tmp_path / "items.csv"
    items.write_text("item_id,emb\nA,not a vector\n")
    with pytest.raises(DataFileError, match=r"vector column 'emb' holds 'not a vector', expected a list"):
        load(interactions=EVENTS, items=TableMapping(path=items, vector=["emb"]))

"""Plush adapter: three event files with two column spellings, catalog with brand join, quarantine, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from adapter_testing import FIXTURES, data_config, utc

from foryou.data.adapters import plush
from foryou.errors import DataFileError, MissingColumnError

PLUSH = FIXTURES / "plush"


@pytest.fixture(scope="module")
def tables():
    return plush.load(data_config("plush", PLUSH, timezone="Europe/Paris"))


def test_events(tables) -> None:
    events = tables.interactions
    assert events["event_type"].tolist() == ["purchase", "purchase", "click", "click", "click", "save"]
    assert events[["user_id", "item_id"]].values.tolist() == [["u1", "101"], ["u2", "102"], ["u1", "101"],
                                                              ["u1", "102"], ["u3", "103"], ["u1", "102"]]
    # buy_click has 2 rows, product_click 4, so save.csv's first row is source_order 2 + 4 = 6.
    assert events["source_order"].tolist() == [0, 1, 2, 3, 5, 6]
    # 1682931600 s = 2023-05-01 09:00 UTC; naive "12:00" in Paris (CEST, UTC+2) = 10:00 UTC.
    assert events["timestamp"].tolist()[2:] == [utc("2023-05-01 09:00"), utc("2023-05-01 09:01"),
                                                utc("2023-05-01 09:03:20"), utc("2023-05-01 10:00")]
    assert events["timestamp"].iloc[0] == utc("2023-05-01 10:00")


def test_quarantine(tables) -> None:
    rows = tables.quarantine[["file", "row", "reason"]].values.tolist()
    assert rows == [[str(PLUSH / "dresses.json"), 3, "empty id"],
                    [str(PLUSH / "product_click.csv"), 4, "empty productId"],
                    [str(PLUSH / "save.csv"), 3, "unparseable timestamp"]]
    assert json.loads(tables.quarantine["raw"].iloc[0])["name"] == "Ghost dress"


def test_items(tables) -> None:
    items = tables.items.set_index("item_id")
    assert sorted(items.index) == ["101", "102", "103"]
    assert items.loc["101", "title"] == "Linen wrap dress (restock)" and items.loc["101", "price"] == 79.9
    assert items.loc["101", "brand"] == "Maison Lin" and items.loc["102", "brand"] == "Soie"
    assert items.loc["102", "price"] == 129.0  # "129.00" as text
    assert np.isnan(items.loc["103", "price"])  # "call us"
    assert pd.isna(items.loc["103", "brand"])
    assert tables.dropped == {
        "brand ids in dresses.json not found in brands.json (brand left empty)": 1,  # brand 9
        "non-numeric prices in dresses.json (set to NaN)": 1,
        "duplicate item ids in dresses.json (last kept)": 1,
    }
    assert tables.item_fields.categorical == ["brand", "colour", "category"]


def test_json_lines_catalog_and_brand_array(tmp_path) -> None:
    (tmp_path / "save.csv").write_text("user_id,item_id,timestamp\nu1,7,1682931600\n")
    (tmp_path / "dresses.json").write_text('{"product_id": "7", "title": "Tea dress", "brand": "b1"}\n')
    (tmp_path / "brands.json").write_text('[{"id": "b1", "name": "Rose"}]')
    tables = plush.load(data_config("plush", tmp_path))
    assert tables.items[["item_id", "title", "brand"]].values.tolist() == [["7", "Tea dress", "Rose"]]
    assert tables.interactions["event_type"].tolist() == ["save"]


def test_errors(tmp_path) -> None:
    with pytest.raises(DataFileError, match=r"has no event file; expected one or more of buy_click\.csv"):
        plush.load(data_config("plush", tmp_path))
    (tmp_path / "save.csv").write_text("user,item,when\n")
    with pytest.raises(MissingColumnError, match=r"save\.csv needs the columns user_id,item_id,timestamp"):
        plush.load(data_config("plush", tmp_path))
    (tmp_path / "save.csv").write_text("user_id,item_id,timestamp\n")
    (tmp_path / "dresses.json").write_text('[{"sku": 1}]')
    with pytest.raises(MissingColumnError, match=r"dresses\.json has no item id key \(one of id, item_id, "
                                                 r"product_id\); keys present: sku"):
        plush.load(data_config("plush", tmp_path))
    (tmp_path / "dresses.json").write_text('[{"id": 1, "brand_id": 1}]')
    (tmp_path / "brands.json").write_text('["Rose"]')
    with pytest.raises(DataFileError, match=r"brands\.json: expected an object of brand id -> name"):
        plush.load(data_config("plush", tmp_path))

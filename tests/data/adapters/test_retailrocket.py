"""Retailrocket adapter: event mapping, latest property values across parts, category tree, quarantine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from adapter_testing import FIXTURES, data_config, utc

from foryou.data.adapters import retailrocket
from foryou.errors import ConfigError, DataFileError, MissingColumnError

RR = FIXTURES / "retailrocket"


@pytest.fixture(scope="module")
def tables():
    return retailrocket.load(data_config("retailrocket", RR, options={"properties": ["790"]}))


def test_events(tables) -> None:
    events = tables.interactions
    assert events["event_type"].tolist() == ["view", "view", "add_to_cart", "purchase", "view"]
    assert events["user_id"].tolist() == ["257597", "992329", "111016", "111016", "111016"]
    assert events["item_id"].iloc[4] == "00512"
    # 1433221332117 ms = 2015-06-02 05:02:12.117 UTC
    assert events["timestamp"].iloc[0] == utc("2015-06-02 05:02:12.117")
    assert events["source_order"].tolist() == [0, 1, 2, 3, 6]
    assert events["value"].isna().all()


def test_quarantine(tables) -> None:
    rows = tables.quarantine[["file", "row", "reason"]].values.tolist()
    assert rows == [[str(RR / "events.csv"), 6, "empty visitorid"],
                    [str(RR / "events.csv"), 7, "unparseable timestamp"],
                    [str(RR / "item_properties_part2.csv"), 4, "unparseable timestamp"]]


def test_latest_property_values(tables) -> None:
    items = tables.items.set_index("item_id")
    # 355908: categoryid 1338 then 1277 (later) -> 1277; available 1 (part1) then 0 (part2, later) -> 0.
    assert items.loc["355908", ["category", "available", "790", "parent_category"]].tolist() == [
        "1277", 0.0, "n5000.000", "1016"]
    # 248676: categoryid 1277 (part1) and 1300 (part2) at the same time -> the later row, part2, wins.
    assert items.loc["248676", "category"] == "1300"
    assert np.isnan(items.loc["248676", "available"])  # "yes" is not a number
    assert pd.isna(items.loc["248676", "parent_category"])  # 1300 is a root category
    assert "888" not in items.columns  # hashed properties are kept only when named
    assert tables.dropped == {"non-numeric 'available' property values (set to NaN)": 1}
    assert tables.item_fields.categorical == ["category", "790", "parent_category"]
    assert tables.item_fields.numeric == ["available"]
    assert len(tables.inputs) == 4


def test_events_only_folder(tmp_path) -> None:
    (tmp_path / "events.csv").write_text((RR / "events.csv").read_text())
    tables = retailrocket.load(data_config("retailrocket", tmp_path))
    assert tables.items is None and len(tables.interactions) == 5


def test_errors(tmp_path) -> None:
    with pytest.raises(DataFileError, match=r"has none of the expected files: events\.csv"):
        retailrocket.load(data_config("retailrocket", tmp_path))
    (tmp_path / "events.csv").write_text("timestamp,visitorid,itemid\n")
    with pytest.raises(MissingColumnError, match=r"events\.csv has no column 'event'"):
        retailrocket.load(data_config("retailrocket", tmp_path))
    with pytest.raises(ConfigError, match=r"data\.options\.properties: Input should be a valid list"):
        retailrocket.load(data_config("retailrocket", RR, options={"properties": "790"}))

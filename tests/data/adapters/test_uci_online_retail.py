"""UCI Online Retail adapter: rules, collapsing, quarantine, items/users, XLSX, and the full-file protocol counts."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from adapter_testing import FIXTURES, SHARED_DATA, data_config, utc

from foryou.data.adapters import uci_online_retail
from foryou.data.adapters.uci_online_retail import CANCELLED, COLLAPSED, NO_CUSTOMER, NON_POSITIVE
from foryou.errors import ConfigError, DataFileError, MissingColumnError

CSV = FIXTURES / "uci_online_retail" / "online_retail.csv.gz"


@pytest.fixture(scope="module")
def tables():
    return uci_online_retail.load(data_config("uci_online_retail", CSV, timezone="Europe/London"))


def test_rules_are_counted(tables) -> None:
    # 14 data lines: line 6 cancelled, line 7 no CustomerID, line 9 Quantity 0, lines 10-13 malformed;
    # lines 2 and 4 are the same (customer, StockCode, invoice) and collapse into one event.
    assert tables.dropped == {NO_CUSTOMER: 1, CANCELLED: 1, NON_POSITIVE: 1, COLLAPSED: 1}
    assert len(tables.interactions) == 6


def test_events(tables) -> None:
    events = tables.interactions
    assert list(events.columns) == ["user_id", "item_id", "timestamp", "event_type", "value", "source_order"]
    assert events["user_id"].tolist() == ["17850", "17850", "17850", "13047", "13047", "12583"]
    assert events["item_id"].tolist() == ["85123A", "71053", "22633", "85123A", "85123A", "22633"]
    assert events["value"].tolist() == [8.0, 6.0, 6.0, 3.0, 4.0, 12.0]  # 6 + 2 summed on the first
    assert events["source_order"].tolist() == [0, 1, 3, 6, 12, 13]
    assert set(events["event_type"]) == {"purchase"}
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    # London is UTC+0 in December and UTC+1 (BST) in June.
    assert events["timestamp"].iloc[0] == utc("2010-12-01 08:26")
    assert events["timestamp"].iloc[3] == utc("2011-06-01 09:00")


def test_quarantine(tables) -> None:
    quarantine = tables.quarantine
    assert quarantine["row"].tolist() == [10, 11, 12, 13]
    assert quarantine["reason"].tolist() == [
        "non-numeric Quantity", "unparseable InvoiceDate", "non-numeric UnitPrice", "empty StockCode"]
    assert set(quarantine["file"]) == {str(CSV)}
    assert json.loads(quarantine["raw"].iloc[2])["UnitPrice"] == "£1.85"


def test_items_and_users(tables) -> None:
    items = tables.items.set_index("item_id")
    assert sorted(items.index) == ["22633", "71053", "85123A"]
    # 85123A kept prices 2.55, 2.55, 2.95, 3.15 -> median (2.55 + 2.95) / 2 = 2.75; 22633: (1.85 + 2.10) / 2.
    assert items.loc["85123A", "price"] == pytest.approx(2.75)
    assert items.loc["22633", "price"] == pytest.approx(1.975)
    # WHITE ... appears on 3 kept lines, CREAM ... on 1.
    assert items.loc["85123A", "description"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert tables.item_fields.text == ["description"] and tables.item_fields.numeric == ["price"]
    users = tables.users.set_index("user_id")["country"]
    # 13047 bought once from France and once from the United Kingdom: the tie goes to the first alphabetically.
    assert users.to_dict() == {"12583": "France", "13047": "France", "17850": "United Kingdom"}
    assert tables.user_fields.categorical == ["country"]
    assert tables.inputs == [str(CSV)]


def test_xlsx() -> None:
    tables = uci_online_retail.load(data_config("uci_online_retail", FIXTURES / "uci_online_retail" /
                                                "online_retail.xlsx", timezone="Europe/London"))
    events = tables.interactions
    assert events[["user_id", "item_id", "value"]].values.tolist() == [["17850", "85123A", 8.0],
                                                                      ["13047", "22633", 3.0]]
    assert events["timestamp"].tolist() == [utc("2010-12-01 08:26"), utc("2011-06-01 09:00")]
    assert tables.dropped[NO_CUSTOMER] == 1 and tables.dropped[CANCELLED] == 1


def test_missing_column_names_column_and_file(tmp_path) -> None:
    path = tmp_path / "retail.csv"
    path.write_text("InvoiceNo,StockCode,Description,Quantity,UnitPrice,CustomerID,Country\n")
    with pytest.raises(MissingColumnError, match=r"retail\.csv has no column 'InvoiceDate'"):
        uci_online_retail.load(data_config("uci_online_retail", path))


def test_missing_file_and_bad_option(tmp_path) -> None:
    with pytest.raises(DataFileError, match="nope.csv does not exist"):
        uci_online_retail.load(data_config("uci_online_retail", tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match="data.options.min_quantity: unknown option"):
        uci_online_retail.load(data_config("uci_online_retail", CSV, options={"min_quantity": 2}))


def test_xlsx_that_is_not_a_workbook(tmp_path) -> None:
    path = tmp_path / "retail.xlsx"
    path.write_text("not a workbook")
    with pytest.raises(DataFileError, match="retail.xlsx is not a readable Excel workbook"):
        uci_online_retail.load(data_config("uci_online_retail", path))


@pytest.mark.slow
def test_full_file_reproduces_protocol_counts() -> None:
    path = SHARED_DATA / "uci-online-retail" / "online_retail.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    start = time.perf_counter()
    tables = uci_online_retail.load(data_config("uci_online_retail", path, timezone="Europe/London"))
    elapsed = time.perf_counter() - start
    dropped = tables.dropped
    # 541,909 raw rows - 135,080 without CustomerID - 8,905 cancelled - 0 non-positive = 397,924 lines.
    assert 541_909 - dropped[NO_CUSTOMER] - dropped[CANCELLED] - dropped[NON_POSITIVE] == 397_924
    assert len(tables.quarantine) == 0
    assert len(tables.interactions) == 387_875 == 397_924 - dropped[COLLAPSED]
    assert tables.interactions["user_id"].nunique() == 4_339
    assert tables.interactions["item_id"].nunique() == 3_665
    assert len(tables.items) == 3_665 and len(tables.users) == 4_339
    assert pd.Series(tables.interactions["timestamp"]).is_monotonic_increasing
    assert elapsed < 10

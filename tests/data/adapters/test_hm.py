"""H&M adapter: string article ids, date-only times in a zone, source order, mean prices, customers."""

from __future__ import annotations

import numpy as np
import pytest
from adapter_testing import FIXTURES, data_config, utc

from foryou.data.adapters import hm
from foryou.errors import DataFileError, MissingColumnError

HM = FIXTURES / "hm"
C1 = "00000dbacae5abe5e23885899a1fa44253a17956c6d1c3d25f88aa139fdfc657"


@pytest.fixture(scope="module")
def tables():
    return hm.load(data_config("hm", HM, timezone="Europe/Stockholm"))


def test_events(tables) -> None:
    events = tables.interactions
    assert events["item_id"].tolist() == ["0663713001", "0541518023", "0505221004", "0663713001", "0541518023"]
    assert events["user_id"].iloc[0] == C1
    assert set(events["event_type"]) == {"purchase"}
    assert events["value"].iloc[0] == pytest.approx(0.0508305084745762)
    # Midnight in Stockholm (CEST, UTC+2 in September) is 22:00 UTC the day before; December is CET (UTC+1).
    assert events["timestamp"].iloc[0] == utc("2018-09-19 22:00")
    assert events["timestamp"].iloc[4] == utc("2018-11-30 23:00")
    assert events["source_order"].tolist() == [0, 1, 2, 3, 7]  # the tie-breaker within a day


def test_quarantine(tables) -> None:
    assert tables.quarantine[["row", "reason"]].values.tolist() == [
        [6, "non-numeric price"], [7, "unparseable t_dat"], [8, "empty customer_id"]]


def test_articles(tables) -> None:
    items = tables.items.set_index("item_id")
    assert list(items.index) == ["0663713001", "0541518023", "0505221004", "0111111001"]
    # Mean price over kept purchases: (0.0508305084745762 + 0.0491525423728813) / 2 = 0.04999152542372875
    assert items.loc["0663713001", "price"] == pytest.approx(0.04999152542372875)
    assert items.loc["0505221004", "price"] == pytest.approx(0.0152372881355932)  # the "abc" row is quarantined
    assert np.isnan(items.loc["0111111001", "price"])
    assert items.loc["0505221004", "detail_desc"] == "Jumper in soft knit with ribbing."  # last row wins
    assert items.loc["0663713001", "garment_group_name"] == "Under-, Nightwear"
    assert tables.item_fields.text == ["prod_name", "detail_desc"] and tables.item_fields.numeric == ["price"]
    assert "colour_group_name" in tables.item_fields.categorical
    assert tables.dropped == {"rows without article_id in articles.csv": 0,
                              "duplicate article ids in articles.csv (last kept)": 1,
                              "rows without customer_id in customers.csv": 0,
                              "duplicate customer ids in customers.csv (last kept)": 0}


def test_customers(tables) -> None:
    users = tables.users.set_index("user_id")
    assert users.loc[C1].tolist() == ["ACTIVE", "NONE", 49.0]
    assert np.isnan(users["age"].iloc[2])
    assert tables.user_fields.categorical == ["club_member_status", "fashion_news_frequency"]


def test_errors(tmp_path) -> None:
    with pytest.raises(DataFileError, match=r"has none of the expected files: transactions_train\.csv"):
        hm.load(data_config("hm", tmp_path))
    (tmp_path / "transactions_train.csv").write_text("t_dat,customer_id,price\n")
    (tmp_path / "articles.csv").write_text("article_id\n")
    with pytest.raises(MissingColumnError, match=r"transactions_train\.csv has no column 'article_id'"):
        hm.load(data_config("hm", tmp_path))

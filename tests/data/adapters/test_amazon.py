"""Amazon Reviews adapter: 2018 and 2023 releases, file location rules, meta parsing, quarantine, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from adapter_testing import FIXTURES, data_config, utc

from foryou.data.adapters import amazon
from foryou.errors import ConfigError, DataFileError, MissingColumnError

AMAZON = FIXTURES / "amazon"


def load(path, **options):
    return amazon.load(data_config("amazon", path, options=options))


def test_2018_events_and_quarantine() -> None:
    tables = load(AMAZON / "2018")
    events = tables.interactions
    assert events[["user_id", "item_id", "value"]].values.tolist() == [
        ["A1", "0000000001", 5.0], ["A2", "0000000001", 3.0], ["A1", "B2", 4.0]]  # asin keeps its zeros
    # unixReviewTime is in seconds: 1472688000 = 2016-09-01 00:00 UTC, 1500000000 = 2017-07-14 02:40 UTC.
    assert events["timestamp"].tolist() == [utc("2016-09-01"), utc("2016-09-02"), utc("2017-07-14 02:40")]
    assert events["source_order"].tolist() == [0, 1, 4]
    assert tables.quarantine[["row", "reason"]].values.tolist() == [[3, "non-numeric overall"],
                                                                    [4, "empty reviewerID"]]
    assert json.loads(tables.quarantine["raw"].iloc[0])["overall"] == "five"


def test_2018_meta() -> None:
    tables = load(AMAZON / "2018")
    items = tables.items.set_index("item_id")
    # asin 0000000001 appears twice in meta: the last record ("$1,299.00") wins.
    assert items.loc["0000000001", "title"] == "Face Cream (new)"
    assert items.loc["0000000001", "price"] == 1299.0
    assert np.isnan(items.loc["B2", "price"]) and np.isnan(items.loc["B3", "price"])  # "" and leaked CSS
    assert items.loc["B2", "description"] == "Shiny." and items.loc["B2", "categories"] == []
    assert items.loc["B3", "brand"] == "Shiny" and items.loc["B3", "categories"] == ["Beauty"]
    assert tables.dropped == {
        "meta rows without asin in meta_Luxury_Beauty.json.gz": 0,
        "meta prices that are not a number in meta_Luxury_Beauty.json.gz (set to NaN)": 1,  # the CSS, not ""
        "duplicate item ids in meta_Luxury_Beauty.json.gz (last kept)": 1,
    }
    assert tables.item_fields.to_dict() == {"text": ["title", "description"],
                                            "categorical": ["brand", "categories"], "numeric": ["price"],
                                            "vector": []}


def test_2023() -> None:
    tables = load(AMAZON / "2023")
    events = tables.interactions
    assert events["item_id"].tolist() == ["P01", "P02"]  # parent_asin, not asin
    # 1588687728923 ms = 2020-05-05 14:08:48.923 UTC
    assert events["timestamp"].iloc[0] == utc("2020-05-05 14:08:48.923")
    assert tables.quarantine[["row", "reason"]].values.tolist() == [[3, "unparseable timestamp"]]
    items = tables.items.set_index("item_id")
    assert items.loc["P01"][["brand", "categories", "price", "features", "description"]].tolist() == [
        "OilCo", ["Beauty", "Hair"], 9.5, "Argan 100 ml", "Smooth hair."]
    assert tables.item_fields.text == ["title", "description", "features"]


def test_reviews_file_path_finds_sibling_meta(tmp_path) -> None:
    tables = load(AMAZON / "2023" / "All_Beauty.jsonl")
    assert tables.inputs[1].endswith("meta_All_Beauty.jsonl")
    shutil.copy(AMAZON / "2023" / "All_Beauty.jsonl", tmp_path / "reviews.jsonl")
    alone = load(tmp_path / "reviews.jsonl")
    assert alone.items is None and len(alone.interactions) == 2


def test_several_reviews_files_need_the_option(tmp_path) -> None:
    for name in ("All_Beauty.jsonl", "meta_All_Beauty.jsonl"):
        shutil.copy(AMAZON / "2023" / name, tmp_path / name)
    shutil.copy(AMAZON / "2018" / "Luxury_Beauty.json.gz", tmp_path / "Luxury_Beauty.json.gz")
    with pytest.raises(ConfigError, match=r"data\.options\.reviews: .* several candidate files "
                                          r"\(All_Beauty\.jsonl, Luxury_Beauty\.json\.gz\)"):
        load(tmp_path)
    assert len(load(tmp_path, reviews="All_Beauty.jsonl").interactions) == 2


def test_errors(tmp_path) -> None:
    bad = tmp_path / "reviews.jsonl"
    bad.write_text('{"user": "a", "item": "b"}\n')
    with pytest.raises(DataFileError, match=r"reviews\.jsonl is not an Amazon reviews file: expected the columns "
                                            r"of one release \(2018: reviewerID, asin, overall, unixReviewTime"):
        load(bad)
    bad.write_text('{"reviewerID": "a", "asin": "b", "overall": 5}\n')
    with pytest.raises(MissingColumnError, match=r"reviews\.jsonl has no column 'unixReviewTime'"):
        load(bad)
    with pytest.raises(DataFileError, match=r"nowhere does not exist"):
        load(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"data\.options\.metadata: unknown option"):
        load(AMAZON / "2018", metadata="x")

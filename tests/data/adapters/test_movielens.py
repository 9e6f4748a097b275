"""MovieLens adapter: the three layouts, quarantine, genres/year/tags, user features, and ml-latest-small counts."""

from __future__ import annotations

import json
import time

import pytest
from adapter_testing import FIXTURES, SHARED_DATA, data_config, utc

from foryou.data.adapters import movielens
from foryou.errors import ConfigError, DataFileError, MissingColumnError

ML = FIXTURES / "movielens"


def load(folder):
    return movielens.load(data_config("movielens", folder))


@pytest.fixture(scope="module")
def latest():
    return load(ML / "ml-latest-small")


def test_latest_events(latest) -> None:
    events = latest.interactions
    # Data lines 2, 3, 4 and 8 are valid; 5 (rating 'abc'), 6 (no userId), 7 (bad timestamp) are not.
    assert events["user_id"].tolist() == ["1", "1", "2", "3"]
    assert events["item_id"].tolist() == ["1", "3", "1", "4"]
    assert events["value"].tolist() == [4.0, 4.5, 5.0, 2.0]
    assert events["source_order"].tolist() == [0, 1, 2, 6]
    assert set(events["event_type"]) == {"rating"}
    assert events["timestamp"].tolist() == [utc("2000-07-30 18:45:03"), utc("2000-07-30 18:20:47"),
                                            utc("2015-10-24 19:29:54"), utc("2015-10-24 19:30:00")]


def test_latest_quarantine(latest) -> None:
    quarantine = latest.quarantine
    assert quarantine["row"].tolist() == [5, 6, 7]
    assert quarantine["reason"].tolist() == ["non-numeric rating", "empty userId", "unparseable timestamp"]
    assert json.loads(quarantine["raw"].iloc[0]) == {"userId": "2", "movieId": "2", "rating": "abc",
                                                     "timestamp": "1445714995"}


def test_latest_items(latest) -> None:
    items = latest.items.set_index("item_id")
    assert list(items.index) == ["1", "3", "4", "2"]  # movie 2 appears twice: the last row wins
    assert latest.dropped == {"duplicate movie ids in movies.csv (last kept)": 1}
    assert items.loc["2", "title"] == "Jumanji (1996)" and items.loc["2", "year"] == 1996.0
    assert items.loc["3", "genres"] == ["Comedy", "Romance"]
    assert items.loc["4", "genres"] == []  # "(no genres listed)"
    assert items["year"].isna().tolist() == [False, False, True, False]
    # "Pixar" repeats "pixar" (case-insensitive): the first spelling is kept.
    assert items.loc["1", "tags"] == "pixar, fun" and items.loc["3", "tags"] == "moldy"
    assert latest.item_fields.text == ["title", "tags"]
    assert latest.item_fields.categorical == ["genres"] and latest.item_fields.numeric == ["year"]
    assert latest.users is None
    assert [p.rsplit("/", 1)[1] for p in latest.inputs] == ["ratings.csv", "movies.csv", "tags.csv"]


def test_100k() -> None:
    tables = load(ML / "ml-100k")
    assert tables.interactions["user_id"].tolist() == ["196", "186", "22"]
    assert tables.interactions["timestamp"].iloc[0] == utc("1997-12-04 15:55:49")
    assert tables.quarantine[["row", "reason"]].values.tolist() == [[4, "non-numeric rating"]]  # no header
    items = tables.items.set_index("item_id")
    assert items.loc["242", "genres"] == ["Comedy"]
    assert items.loc["302", "genres"] == ["Crime", "Film-Noir", "Mystery", "Thriller"]
    assert items.loc["51", "title"] == "Légende (1995)"  # latin-1 decoded
    assert items.loc["51", "genres"] == ["Drama", "Romance", "War", "Western"]
    users = tables.users.set_index("user_id")
    assert users.loc["186"].tolist() == ["F", "executive", 39.0]
    assert tables.user_fields.categorical == ["gender", "occupation"] and tables.user_fields.numeric == ["age"]
    assert "tags" not in tables.items.columns and tables.item_fields.text == ["title"]


def test_1m() -> None:
    tables = load(ML / "ml-1m")
    events = tables.interactions
    assert events[["user_id", "item_id", "value"]].values.tolist() == [["1", "1193", 5.0], ["1", "661", 3.0],
                                                                      ["2", "1193", 4.0]]
    assert events["timestamp"].iloc[2] == utc("2000-12-31 21:33:33")
    items = tables.items.set_index("item_id")
    assert items.loc["661", "genres"] == ["Animation", "Children's", "Musical"]
    assert items.loc["2", "title"] == "Café au Lait (1993)" and items.loc["2", "year"] == 1993.0
    assert tables.users.set_index("user_id").loc["2"].tolist() == ["M", "16", 56.0]


def test_errors(tmp_path) -> None:
    with pytest.raises(DataFileError, match="is not a MovieLens folder: expected ratings.csv"):
        load(tmp_path)
    with pytest.raises(DataFileError, match="must be a folder"):
        load(ML / "ml-1m" / "ratings.dat")
    (tmp_path / "ratings.csv").write_text("userId,movieId,score,timestamp\n1,2,3,4\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(MissingColumnError, match=r"ratings\.csv has no column 'rating'; columns present: "
                                                 "userId, movieId, score, timestamp"):
        load(tmp_path)
    with pytest.raises(ConfigError, match="data.options.variant: unknown option"):
        movielens.load(data_config("movielens", ML / "ml-1m", options={"variant": "1m"}))


@pytest.mark.slow
def test_ml_latest_small_counts() -> None:
    folder = SHARED_DATA / "movielens-latest-small"
    if not folder.exists():
        pytest.skip(f"{folder} not available")
    start = time.perf_counter()
    tables = load(folder)
    elapsed = time.perf_counter() - start
    events = tables.interactions
    assert len(events) == 100_836 and len(tables.quarantine) == 0
    assert events["user_id"].nunique() == 610 and events["item_id"].nunique() == 9_724
    assert len(tables.items) == 9_742
    assert elapsed < 5

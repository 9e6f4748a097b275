"""Activity filters: the k-core fixed point, the one-pass reference protocol, counts, and the empty case.

The loop runs on the pandas engine here; tests/data/spark/test_spark_filters.py runs it on Spark.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from foryou.config import FiltersConfig
from foryou.data import filters as filters_module
from foryou.data import schema as S
from foryou.data.filters import FilterStep
from foryou.data.pandas_engine import PandasEngine
from foryou.errors import EmptyDatasetError


def pairs(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({S.USER_ID: [u for u, _ in rows], S.ITEM_ID: [i for _, i in rows],
                         S.SOURCE_ORDER: np.arange(len(rows))})


def filters(**options: int | bool) -> FiltersConfig:
    return FiltersConfig.model_validate(options)


def filter_min_interactions(log: pd.DataFrame, config: FiltersConfig) -> tuple[pd.DataFrame, list[FilterStep]]:
    return filters_module.filter_min_interactions(log, len(log), config, PandasEngine())


# u1: a b c; u2: a b c; u3: a d. Items: a=3, b=2, c=2, d=1.
LOG = pairs([("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u3", "a"),
             ("u3", "d")])


def test_one_pass_protocol_items_then_users() -> None:
    # min item 2 removes d (1 row); then u3 has 1 event < 3 -> removed (1 row). a is left with 2 events.
    kept, steps = filter_min_interactions(LOG, filters(min_item_interactions=2, min_user_interactions=3,
                                                       iterative=False))
    assert sorted(kept[S.USER_ID].unique()) == ["u1", "u2"]
    assert [(s.name, s.removed_rows, s.removed_entities, s.remaining_rows) for s in steps] == [
        ("min_item_interactions=2", 1, 1, 7), ("min_user_interactions=3", 1, 1, 6)]


def test_iteration_matters() -> None:
    # u1: a b c, u2: a b c, u3: a b c d, u4: d e  (items a=3 b=3 c=3 d=2 e=1); min item 2, min user 3.
    log = pairs([("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u2", "c"),
                 ("u3", "a"), ("u3", "b"), ("u3", "c"), ("u3", "d"), ("u4", "d"), ("u4", "e")])
    config = {"min_item_interactions": 2, "min_user_interactions": 3}
    # One pass: e goes (1 event) -> u4 has 1 event -> goes. d is left with 1 event (below 2).
    once, _ = filter_min_interactions(log, filters(**config, iterative=False))
    assert once[S.ITEM_ID].value_counts()["d"] == 1
    # Fixed point: pass 2 removes d (u3 keeps a b c = 3 events); pass 3 removes nothing.
    core, steps = filter_min_interactions(log, filters(**config, iterative=True))
    assert sorted(core[S.ITEM_ID].unique()) == ["a", "b", "c"] and len(core) == 9
    assert [s.removed_rows for s in steps] == [1, 1, 1, 0, 0, 0]
    assert (core[S.ITEM_ID].value_counts() >= 2).all() and (core[S.USER_ID].value_counts() >= 3).all()


def test_everything_removed_names_the_filter() -> None:
    with pytest.raises(EmptyDatasetError, match=r"filter min_user_interactions=5 \(pass 1\) removed every "
                                                r"remaining interaction \(8 rows of 3 users\)"):
        filter_min_interactions(LOG, filters(min_user_interactions=5))
    with pytest.raises(EmptyDatasetError, match=r"min_item_interactions=4 removed .* \(8 rows of 4 items\)"):
        filter_min_interactions(LOG, filters(min_item_interactions=4, iterative=False))


def test_defaults_keep_everything() -> None:
    kept, steps = filter_min_interactions(LOG, filters())
    assert len(kept) == len(LOG) and all(s.removed_rows == 0 for s in steps)

"""The filter loop over the Spark engine's primitive, on a known answer (tests/data/test_filters.py's rules)."""

from __future__ import annotations

import pandas as pd
from tests.data.test_filters import filters, pairs
from tests.spark_required import require_spark

from foryou.config import SparkConfig
from foryou.data import schema as S
from foryou.data.filters import filter_min_interactions
from foryou.data.spark.engine import SparkEngine

require_spark()


def test_iteration_reaches_the_fixed_point_on_spark() -> None:
    # u1: a b c, u2: a b c, u3: a b c d, u4: d d e  (13 rows; items a=3 b=3 c=3 d=3 e=1); min item 2, min user 3.
    # Pass 1 removes e (1 row), then u4's two d rows (1 user); pass 2 removes u3's d (1 row); pass 3 nothing.
    log = pairs([("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u2", "c"),
                 ("u3", "a"), ("u3", "b"), ("u3", "c"), ("u3", "d"), ("u4", "d"), ("u4", "d"), ("u4", "e")])
    engine = SparkEngine(SparkConfig(master="local[2]", shuffle_partitions=4))
    events = engine.spark.createDataFrame(log.astype({S.USER_ID: object, S.ITEM_ID: object}))
    core, steps = filter_min_interactions(events, len(log), filters(min_item_interactions=2,
                                                                    min_user_interactions=3), engine)
    assert [(s.removed_rows, s.removed_entities, s.remaining_rows) for s in steps] == [
        (1, 1, 12), (2, 1, 10), (1, 1, 9), (0, 0, 9), (0, 0, 9), (0, 0, 9)]
    kept = pd.DataFrame(core.select(S.USER_ID, S.ITEM_ID).toPandas())
    assert sorted(kept[S.ITEM_ID].unique()) == ["a", "b", "c"] and len(kept) == 9 == engine.count(core)

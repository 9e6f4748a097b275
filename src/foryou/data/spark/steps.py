"""The whole-log steps of `prepare` as Spark jobs: dedup, the activity filters' primitive, splits.

Each function takes and returns a DataFrame of events (`source.EVENT_COLUMNS`, timestamps in int64 ns UTC);
the rules and their tie-breaks are those documented in `foryou.data.cleaning`, `filters` and `split`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from foryou.config import SplitConfig
from foryou.data import schema as S
from foryou.data.cleaning import DEDUP_KEYS
from foryou.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TRAIN, VALID, TEST = S.SPLITS


def deduplicate(events: DataFrame, policy: str) -> DataFrame:
    """One event per duplicate group under `policy`: the first in source order (or the earliest in time)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if policy == "none":
        return events
    order = [S.TIMESTAMP, S.SOURCE_ORDER] if policy == "first_per_user_item" else [S.SOURCE_ORDER]
    window = Window.partitionBy(*DEDUP_KEYS[policy]).orderBy(*order)
    return events.withColumn("__n", F.row_number().over(window)).filter(F.col("__n") == 1).drop("__n")


def drop_rare(events: DataFrame, key: str, minimum: int) -> tuple[DataFrame, int, int]:
    """(events whose `key` occurs at least `minimum` times, rows removed, keys removed)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    rare = events.groupBy(key).count().filter(F.col("count") < minimum).persist()
    keys, rows = rare.agg(F.count("*"), F.coalesce(F.sum("count"), F.lit(0))).collect()[0]
    if keys:
        events = events.join(F.broadcast(rare.select(key)) if keys < 100_000 else rare.select(key),
                             key, "left_anti").persist(StorageLevel.MEMORY_AND_DISK)
    rare.unpersist()
    return events, int(rows), int(keys)


def split_events(events: DataFrame, config: SplitConfig) -> DataFrame:
    """`events` with split, cold_user and cold_item (see `foryou.data.split` for each strategy's rule)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if config.strategy == "global_time":
        if config.time_cut is None:
            raise ConfigError("split.time_cut is required when split.strategy is 'global_time'")
        cut = _nanoseconds(config.time_cut)
        start = _nanoseconds(config.valid_cut) if config.valid_cut is not None else cut
        if start > cut:
            raise ConfigError(f"split.valid_cut ({config.valid_cut}) must not be after split.time_cut "
                              f"({config.time_cut})")
        time = F.col(S.TIMESTAMP)
        split = F.when(time >= cut, TEST).when(time >= start, VALID).otherwise(TRAIN)
    else:
        history = Window.partitionBy(S.USER_ID)
        events = (events.withColumn("__position", F.row_number().over(
                      history.orderBy(S.TIMESTAMP, S.SOURCE_ORDER)) - 1)
                  .withColumn("__count", F.count("*").over(history)))
        split = (_leave_last_out(F.col("__position"), F.col("__count")) if config.strategy == "leave_last_out"
                 else _temporal_ratio(F.col("__position"), F.col("__count"), config.ratios))
    events = events.withColumn(S.SPLIT, split).drop("__position", "__count")
    return _cold_flags(events)


def _leave_last_out(position: Column, count: Column) -> Column:
    from pyspark.sql import functions as F

    from_end = count - 1 - position
    return (F.when((from_end == 0) & (count >= 2), TEST).when((from_end == 1) & (count >= 3), VALID)
            .otherwise(TRAIN))


def _temporal_ratio(position: Column, count: Column, ratios: tuple[float, float, float]) -> Column:
    from pyspark.sql import functions as F

    n_test = F.floor(count * ratios[2] + 1e-9)
    n_valid = F.floor(count * ratios[1] + 1e-9)
    short = F.greatest(n_test + n_valid - (count - 1), F.lit(0))
    from_valid = F.least(short, n_valid)
    n_valid, n_test = n_valid - from_valid, n_test - (short - from_valid)
    n_train = count - n_valid - n_test
    return F.when(position < n_train, TRAIN).when(position < n_train + n_valid, VALID).otherwise(TEST)


def _cold_flags(events: DataFrame) -> DataFrame:
    """cold_user / cold_item: an evaluation event whose user / item has no train event."""
    from pyspark.sql import functions as F

    train = events.filter(F.col(S.SPLIT) == TRAIN)
    for key, flag in ((S.USER_ID, S.COLD_USER), (S.ITEM_ID, S.COLD_ITEM)):
        known = train.select(key).distinct().withColumn("__known", F.lit(True))
        events = (events.join(known, key, "left")
                  .withColumn(flag, (F.col(S.SPLIT) != TRAIN) & F.col("__known").isNull()).drop("__known"))
    return events


def _nanoseconds(moment: object) -> int:
    stamp = pd.Timestamp(moment)
    return int((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).value)

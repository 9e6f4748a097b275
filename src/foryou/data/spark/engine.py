"""The Spark engine of `prepare`: the table operations as Spark jobs, the split events collected on the driver."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from foryou.config import RunConfig, SparkConfig, SplitConfig
from foryou.data import schema as S
from foryou.data.engine import CleanSource
from foryou.data.spark import steps
from foryou.data.spark.session import spark_session
from foryou.data.spark.source import read_source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class SparkEngine:
    """`PrepareEngine` over Spark DataFrames on `config.master`; the tables each step keeps are persisted
    (memory and disk), since the pipeline counts them and the next step reads them again."""

    name = "spark"

    def __init__(self, config: SparkConfig) -> None:
        self.spark = spark_session(config)

    def read(self, config: RunConfig) -> CleanSource[DataFrame]:
        from pyspark import StorageLevel

        source = read_source(self.spark, config)
        source.events = source.events.persist(StorageLevel.MEMORY_AND_DISK)
        return source

    def count(self, events: DataFrame) -> int:
        return events.count()

    def deduplicate(self, events: DataFrame, policy: str) -> DataFrame:
        from pyspark import StorageLevel

        return steps.deduplicate(events, policy).persist(StorageLevel.MEMORY_AND_DISK)

    def drop_rare(self, events: DataFrame, key: str, minimum: int) -> tuple[DataFrame, int, int]:
        return steps.drop_rare(events, key, minimum)

    def split(self, events: DataFrame, config: SplitConfig) -> pd.DataFrame:
        return _collect(steps.split_events(events, config))


def _collect(events: DataFrame) -> pd.DataFrame:
    """The split events on the driver, with the pandas engine's dtypes, in (user, time, source order) order."""
    frame = cast(pd.DataFrame, events.orderBy(S.USER_ID, S.TIMESTAMP, S.SOURCE_ORDER).toPandas())
    return frame.assign(**{
        S.TIMESTAMP: pd.to_datetime(frame[S.TIMESTAMP].to_numpy(np.int64), unit="ns", utc=True),
        S.VALUE: frame[S.VALUE].astype(np.float64),
        S.WEIGHT: frame[S.WEIGHT].astype(np.float32),
        S.SOURCE_ORDER: frame[S.SOURCE_ORDER].astype(np.int64),
        S.COLD_USER: frame[S.COLD_USER].astype(bool),
        S.COLD_ITEM: frame[S.COLD_ITEM].astype(bool)})

"""Source rows to cleaned, weighted events as a Spark DataFrame, with everything set aside on the way.

A generic CSV or Parquet interactions table is read by Spark and parsed partition by partition with the row
functions the pandas engine runs too (the generic adapter's parser, `foryou.data.engine.clean_and_weigh`), so a
log larger than one machine's memory never passes through pandas whole. Every other source (the named adapters,
JSON lines) is read and cleaned on the driver exactly as the pandas engine reads it (`engine.read_on_driver`),
and handed to Spark for the steps that need the whole log.

Timestamps travel as int64 nanoseconds since the epoch (UTC): exact, and free of Spark's microsecond rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from foryou.config import DataConfig, RunConfig, TableMapping
from foryou.data import schema as S
from foryou.data.adapters import generic
from foryou.data.engine import CleanSource, clean_and_weigh, read_on_driver
from foryou.data.quarantine import concat_quarantine
from foryou.data.schema import QUARANTINE_COLUMNS, empty_quarantine
from foryou.data.timeparse import TimestampUnit, detect_unit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EVENT_COLUMNS = (S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.EVENT_TYPE, S.VALUE, S.WEIGHT, S.SOURCE_ORDER)
# One schema for everything a partition gives back; `kind` says which part a row belongs to.
ROW_SCHEMA = ("kind string, user_id string, item_id string, timestamp long, event_type string, value double, "
              "weight float, source_order long, file string, row long, reason string, raw string, count long")
EVENT, SOURCE_QUARANTINE, CLEAN_QUARANTINE, BELOW_THRESHOLD = "event", "source", "clean", "below"
RECORD = "__record"
_ROW_BITS = 33  # monotonically_increasing_id(): partition index above bit 33, row within the partition below


def read_source(spark: SparkSession, config: RunConfig) -> CleanSource[DataFrame]:
    """Read, parse, clean and weigh the interactions of `config.data` (see the module docstring)."""
    data = config.data
    mapping = data.interactions
    if data.source == "generic" and mapping is not None:
        fmt = generic.checked_format("interactions", mapping, S.ITEM_ID)
        if fmt in ("csv", "parquet"):
            return _read_in_spark(spark, config, mapping, fmt)
    return _read_on_driver(spark, config)


def _read_on_driver(spark: SparkSession, config: RunConfig) -> CleanSource[DataFrame]:
    source = read_on_driver(config)
    frame = spark.createDataFrame(_as_rows(EVENT, source.events), ROW_SCHEMA).select(*EVENT_COLUMNS)
    return CleanSource(frame, source.tables, source.source_rows, source.clean_quarantine, source.below_threshold)


def _read_in_spark(spark: SparkSession, config: RunConfig, mapping: TableMapping,
                   fmt: str) -> CleanSource[DataFrame]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    raw = (spark.read.csv(str(mapping.path), header=True, sep=mapping.csv_separator, escape='"', inferSchema=False)
           if fmt == "csv" else spark.read.parquet(str(mapping.path)))
    zoned = [field.name for field in raw.schema.fields if isinstance(field.dataType, TimestampType)]
    unit = _timestamp_unit(raw, mapping)
    raw = _with_record_numbers(raw)
    data, file, first_row = config.data, str(mapping.path), generic.first_record_row(fmt)

    def parse(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            batch = batch.set_index(RECORD).rename_axis(None)
            for column in zoned:  # Spark hands zoned timestamps over as naive UTC
                batch[column] = batch[column].dt.tz_localize("UTC")
            yield from _partition_rows(batch, mapping, data, config, (file, first_row, unit))

    rows = raw.mapInPandas(parse, ROW_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    side = cast(pd.DataFrame, rows.filter(F.col("kind") != EVENT).toPandas())
    parsed = side[side["kind"] == SOURCE_QUARANTINE]
    tables = generic.with_entities(data, _NO_EVENTS, _quarantine(parsed))
    clean = _quarantine(side[side["kind"] == CLEAN_QUARANTINE])
    below = int(side.loc[side["kind"] == BELOW_THRESHOLD, "count"].sum())
    events = rows.filter(F.col("kind") == EVENT).select(*EVENT_COLUMNS)
    return CleanSource(events, tables, int(raw.count()) - len(parsed), clean, below)


def _partition_rows(batch: pd.DataFrame, mapping: TableMapping, data: DataConfig, config: RunConfig,
                    where: tuple[str, int, TimestampUnit]) -> Iterator[pd.DataFrame]:
    file, first_row, unit = where
    parsed, source_bad = generic.parse_interaction_rows(batch, mapping, data.timezone, first_row, unit)
    events, clean_bad, below = clean_and_weigh(parsed, file, config)
    yield _as_rows(EVENT, events)
    yield _as_rows(SOURCE_QUARANTINE, source_bad)
    yield _as_rows(CLEAN_QUARANTINE, clean_bad)
    yield _as_rows(BELOW_THRESHOLD, pd.DataFrame({"count": [below]}))


def _with_record_numbers(raw: DataFrame) -> DataFrame:
    """`raw` with RECORD: the 0-based position of each record in file order (partitions read in order)."""
    from pyspark.sql import functions as F

    tagged = raw.withColumn("__id", F.monotonically_increasing_id())
    tagged = tagged.withColumn("__part", F.shiftright("__id", _ROW_BITS))
    sizes = cast(pd.DataFrame, tagged.groupBy("__part").count().toPandas()).sort_values("__part")
    sizes["__offset"] = sizes["count"].cumsum() - sizes["count"]
    offsets = tagged.sparkSession.createDataFrame(sizes[["__part", "__offset"]])
    within = F.col("__id").bitwiseAND((1 << _ROW_BITS) - 1)
    return (tagged.join(F.broadcast(offsets), "__part")
            .withColumn(RECORD, F.col("__offset") + within).drop("__id", "__part", "__offset"))


def _timestamp_unit(raw: DataFrame, mapping: TableMapping) -> TimestampUnit:
    """The mapping's unit, or under "auto" the unit the pandas engine would detect, from a sample of values."""
    if mapping.timestamp_unit != "auto":
        return mapping.timestamp_unit
    column = mapping.columns.get(S.TIMESTAMP, S.TIMESTAMP)
    if column not in raw.columns:
        return "auto"  # the row parser reports the missing column
    sample = cast(pd.DataFrame, raw.select(column).dropna().distinct().limit(10_000).toPandas())[column]
    return detect_unit(pd.Series(sample.to_numpy(dtype=object)))


_ROW_COLUMNS = [part.split(" ")[0] for part in ROW_SCHEMA.split(", ")]
_STRING_COLUMNS = [part.split(" ")[0] for part in ROW_SCHEMA.split(", ") if part.endswith(" string")]
_NO_EVENTS = pd.DataFrame(columns=list(S.INTERACTION_COLUMNS))


def _as_rows(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Events or quarantine records as ROW_SCHEMA rows (the other part's columns empty)."""
    rows = frame.reindex(columns=_ROW_COLUMNS)
    rows["kind"] = kind
    if kind == EVENT:
        rows[S.TIMESTAMP] = frame[S.TIMESTAMP].astype("datetime64[ns, UTC]").astype(np.int64)
    # pyspark's Arrow writer takes numpy-backed columns only (not pandas 3's Arrow-backed strings)
    return rows.astype({column: object for column in _STRING_COLUMNS})


def _quarantine(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return empty_quarantine()
    records = rows.loc[:, list(QUARANTINE_COLUMNS)].astype({"row": np.int64})
    return concat_quarantine([records])

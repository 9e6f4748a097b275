"""`prepare` on Spark: the pandas engine's steps, counts and manifest, with the heavy steps run as Spark jobs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from foryou.config import RunConfig
from foryou.data import schema as S
from foryou.data.prepare import STAGES, PrepareResult, field_roles, index_events, record_step, source_steps
from foryou.data.quarantine import concat_quarantine
from foryou.data.report import build_report
from foryou.data.spark import steps as spark_steps
from foryou.data.spark.session import spark_session
from foryou.data.spark.source import read_source
from foryou.errors import EmptyDatasetError
from foryou.progress import bar as progress_bar

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def prepare_with_spark(config: RunConfig, progress: bool = True) -> PrepareResult:
    """What `prepare_dataset` gives, computed on `config.spark.master` (nothing is written)."""
    from pyspark import StorageLevel

    spark = spark_session(config.spark)
    bar = progress_bar(total=len(STAGES), desc="prepare (spark)", unit="step", enabled=progress)
    steps: list[dict[str, Any]] = []

    def advance(stage: str, rows: int | None = None) -> None:
        bar.set_postfix_str(stage)
        bar.update(1)
        if rows is not None:
            logger.info("%s: %d interactions", stage, rows)

    try:
        source = read_source(spark, config)
        tables = source.tables
        source_steps(tables, steps, source.source_rows)
        fields = field_roles(tables, config.features)
        advance("read source", source.source_rows)
        events = source.events.persist(StorageLevel.MEMORY_AND_DISK)
        weighted = events.count()
        _record_cleaning(steps, config, source.source_rows, len(source.clean_quarantine), source.below_threshold,
                         weighted)
        advance("clean", weighted + source.below_threshold)
        advance("weights", weighted)
        events = spark_steps.deduplicate(events, config.events.dedup).persist(StorageLevel.MEMORY_AND_DISK)
        kept = events.count()
        record_step(steps, f"duplicates (dedup={config.events.dedup})", weighted - kept, kept)
        advance("dedup", kept)
        events, filter_steps = spark_steps.filter_min_interactions(events, kept, config.filters)
        for step in filter_steps:
            record_step(steps, step.name, step.removed_rows, step.remaining_rows)
        advance("filters", filter_steps[-1].remaining_rows)
        frame = _collect(spark_steps.split_events(events, config.split))
        advance("split", len(frame))
        dataset = index_events(frame, tables, source.source_rows, fields, config, steps, hash_inputs=True)
        advance("index")
    finally:
        bar.close()
    quarantine = concat_quarantine([tables.quarantine, source.clean_quarantine])
    return PrepareResult(dataset, quarantine, build_report(dataset, quarantine))


def _record_cleaning(steps: list[dict[str, Any]], config: RunConfig, parsed: int, malformed: int, below: int,
                     weighted: int) -> None:
    """The cleaning and weighting steps of the manifest, and the pandas engine's errors when nothing is left."""
    cleaned = weighted + below
    record_step(steps, "malformed interactions quarantined", malformed, cleaned)
    if cleaned == 0:
        raise EmptyDatasetError(f"no valid interactions: the source gave {parsed} and cleaning quarantined "
                                f"{malformed}")
    threshold = config.events.rating_threshold
    record_step(steps, f"ratings below rating_threshold={threshold}", below, weighted,
                config.events.rating_mode == "threshold")
    if weighted == 0:
        raise EmptyDatasetError(f"events.rating_threshold={threshold} removed every interaction ({below} ratings "
                                "below it); lower the threshold or use events.rating_mode 'all' or 'weight'")


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

"""What `prepare` asks of an engine: the table operations, so that the pipeline is written once.

`foryou.data.prepare` owns the stages, the manifest's step records, the errors and the report; an engine
(`foryou.data.pandas_engine` in this process, `foryou.data.spark.engine` on Spark) only reads and transforms
its own kind of event table (`Events`), and hands the split events back as one pandas frame to be indexed.
Both engines share the row-local steps here (`clean_and_weigh`), so they agree row for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import pandas as pd

from foryou.config import RunConfig, SplitConfig
from foryou.data.adapters import get_adapter
from foryou.data.cleaning import validate_interactions
from foryou.data.schema import SourceTables
from foryou.data.weights import apply_event_weights, value_required

Events = TypeVar("Events")


@dataclass
class CleanSource(Generic[Events]):
    """Valid weighted events and what the row-local steps counted or set aside on the way.

    `tables` holds the catalog tables, field roles, `dropped`, inputs and the source quarantine (its
    `interactions` is left empty: the events are in `events`); `source_rows` counts the adapter's interaction
    rows, `below_threshold` the ratings removed by `events.rating_threshold`.
    """

    events: Events
    tables: SourceTables
    source_rows: int
    clean_quarantine: pd.DataFrame
    below_threshold: int


class PrepareEngine(Protocol[Events]):
    """The table operations of `prepare` on one kind of event table (the rules are those of `cleaning`,
    `filters` and `split`)."""

    name: str

    def read(self, config: RunConfig) -> CleanSource[Events]:
        """Read `config.data`, then clean and weigh its interactions (`clean_and_weigh`)."""
        ...

    def count(self, events: Events) -> int:
        """The number of events."""
        ...

    def deduplicate(self, events: Events, policy: str) -> Events:
        """One event per duplicate group under `events.dedup` (`foryou.data.cleaning`)."""
        ...

    def drop_rare(self, events: Events, key: str, minimum: int) -> tuple[Events, int, int]:
        """(events whose `key` occurs at least `minimum` times, rows removed, keys removed)."""
        ...

    def split(self, events: Events, config: SplitConfig) -> pd.DataFrame:
        """The events with split, cold_user and cold_item (`foryou.data.split`) as one pandas frame, sorted by
        (user_id, timestamp, source_order), in the pandas dtypes of the canonical schema."""
        ...


def clean_and_weigh(events: pd.DataFrame, file: str,
                    config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The row-local steps: (valid weighted events, quarantine records, ratings below the threshold)."""
    valid, bad = validate_interactions(events, file, value_required(config.events))
    weighted, below = apply_event_weights(valid, config.events)
    return weighted, bad, below


def read_on_driver(config: RunConfig) -> CleanSource[pd.DataFrame]:
    """The source's adapter in this process, then `clean_and_weigh` (quarantined rows name the first input)."""
    tables = get_adapter(config.data.source)(config.data)
    file = tables.inputs[0] if tables.inputs else config.data.source
    events, bad, below = clean_and_weigh(tables.interactions, file, config)
    rows = len(tables.interactions)
    tables.interactions = tables.interactions.iloc[:0]
    return CleanSource(events, tables, rows, bad, below)

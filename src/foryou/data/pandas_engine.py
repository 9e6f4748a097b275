"""The pandas engine of `prepare` (the default): every table operation on one DataFrame in this process."""

from __future__ import annotations

import pandas as pd

from foryou.config import RunConfig, SplitConfig
from foryou.data.cleaning import deduplicate
from foryou.data.engine import CleanSource, read_on_driver
from foryou.data.split import split_interactions


class PandasEngine:
    """`PrepareEngine` over pandas DataFrames."""

    name = "pandas"

    def read(self, config: RunConfig) -> CleanSource[pd.DataFrame]:
        return read_on_driver(config)

    def count(self, events: pd.DataFrame) -> int:
        return len(events)

    def deduplicate(self, events: pd.DataFrame, policy: str) -> pd.DataFrame:
        return deduplicate(events, policy)[0]

    def drop_rare(self, events: pd.DataFrame, key: str, minimum: int) -> tuple[pd.DataFrame, int, int]:
        counts = events[key].value_counts()
        rare = counts.index[counts < minimum]
        removed = events[key].isin(rare).to_numpy()
        return events.loc[~removed].reset_index(drop=True), int(removed.sum()), len(rare)

    def split(self, events: pd.DataFrame, config: SplitConfig) -> pd.DataFrame:
        return split_interactions(events, config.strategy, config.ratios, config.time_cut, config.valid_cut)

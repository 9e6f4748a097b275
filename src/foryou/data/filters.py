"""Minimum-activity filters: users and items with too few events carry too little signal to learn or evaluate.

`iterative=True` alternates the item and user filters until neither removes anything (the k-core: every
remaining user and item meets its minimum). `iterative=False` applies the item filter once, then the user
filter once: the reference protocol "drop items with fewer than 2 events, then users with fewer than 3"
(afterwards some items may again fall below their minimum; that is the protocol).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from foryou.config import FiltersConfig
from foryou.data import schema as S
from foryou.errors import EmptyDatasetError


@dataclass
class FilterStep:
    """What one application of one filter removed."""

    name: str
    removed_rows: int
    removed_entities: int
    remaining_rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _apply(frame: pd.DataFrame, key: str, minimum: int, name: str) -> tuple[pd.DataFrame, FilterStep]:
    counts = frame[key].value_counts()
    weak = counts.index[counts < minimum]
    removed = frame[key].isin(weak).to_numpy()
    kept = frame.loc[~removed]
    step = FilterStep(name, int(removed.sum()), len(weak), len(kept))
    if kept.empty:
        raise EmptyDatasetError(
            f"filter {name} removed every remaining interaction ({step.removed_rows} rows of "
            f"{step.removed_entities} {key.split('_')[0]}s); lower filters.min_{key.split('_')[0]}_interactions "
            "or check the data")
    return kept, step


def filter_min_interactions(interactions: pd.DataFrame,
                            config: FiltersConfig) -> tuple[pd.DataFrame, list[FilterStep]]:
    """(interactions that pass the filters, one `FilterStep` per filter application in order).

    Raises EmptyDatasetError naming the filter that removed the last rows.
    """
    if interactions.empty:
        raise EmptyDatasetError("no interactions left before the activity filters; check the data and cleaning")
    frame, steps = interactions, []
    passes = 0
    while True:
        passes += 1
        suffix = f" (pass {passes})" if config.iterative else ""
        frame, item_step = _apply(frame, S.ITEM_ID, config.min_item_interactions,
                                  f"min_item_interactions={config.min_item_interactions}{suffix}")
        frame, user_step = _apply(frame, S.USER_ID, config.min_user_interactions,
                                  f"min_user_interactions={config.min_user_interactions}{suffix}")
        steps += [item_step, user_step]
        if not config.iterative or (item_step.removed_rows == 0 and user_step.removed_rows == 0):
            break
    return frame.reset_index(drop=True), steps

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
        raise emptied_error(step, key)
    return kept, step


def emptied_error(step: FilterStep, key: str) -> EmptyDatasetError:
    """The error for a filter application that left no interaction, naming the setting to lower."""
    entity = key.split("_")[0]
    return EmptyDatasetError(
        f"filter {step.name} removed every remaining interaction ({step.removed_rows} rows of "
        f"{step.removed_entities} {entity}s); lower filters.min_{entity}_interactions or check the data")


def filter_names(config: FiltersConfig, pass_number: int) -> tuple[str, str]:
    """The manifest names of the item and user filter in one pass (numbered when iterative)."""
    suffix = f" (pass {pass_number})" if config.iterative else ""
    return (f"min_item_interactions={config.min_item_interactions}{suffix}",
            f"min_user_interactions={config.min_user_interactions}{suffix}")


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
        item_name, user_name = filter_names(config, passes)
        frame, item_step = _apply(frame, S.ITEM_ID, config.min_item_interactions, item_name)
        frame, user_step = _apply(frame, S.USER_ID, config.min_user_interactions, user_name)
        steps += [item_step, user_step]
        if not config.iterative or (item_step.removed_rows == 0 and user_step.removed_rows == 0):
            break
    return frame.reset_index(drop=True), steps

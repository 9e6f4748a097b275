"""Minimum-activity filters: users and items with too few events carry too little signal to learn or evaluate.

`iterative=True` alternates the item and user filters until neither removes anything (the k-core: every
remaining user and item meets its minimum). `iterative=False` applies the item filter once, then the user
filter once: the reference protocol "drop items with fewer than 2 events, then users with fewer than 3"
(afterwards some items may again fall below their minimum; that is the protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

from foryou.config import FiltersConfig
from foryou.data import schema as S
from foryou.data.engine import Events, PrepareEngine
from foryou.errors import EmptyDatasetError


@dataclass
class FilterStep:
    """What one application of one filter removed."""

    name: str
    removed_rows: int
    removed_entities: int
    remaining_rows: int


def _emptied_error(step: FilterStep, key: str) -> EmptyDatasetError:
    """The error for a filter application that left no interaction, naming the setting to lower."""
    entity = key.split("_")[0]
    return EmptyDatasetError(
        f"filter {step.name} removed every remaining interaction ({step.removed_rows} rows of "
        f"{step.removed_entities} {entity}s); lower filters.min_{entity}_interactions or check the data")


def _filter_names(config: FiltersConfig, pass_number: int) -> tuple[str, str]:
    """The manifest names of the item and user filter in one pass (numbered when iterative)."""
    suffix = f" (pass {pass_number})" if config.iterative else ""
    return (f"min_item_interactions={config.min_item_interactions}{suffix}",
            f"min_user_interactions={config.min_user_interactions}{suffix}")


def filter_min_interactions(events: Events, rows: int, config: FiltersConfig,
                            engine: PrepareEngine[Events]) -> tuple[Events, list[FilterStep]]:
    """(events that pass the filters, one `FilterStep` per filter application in order), on any engine.

    `rows` is the number of `events` (the caller has counted them; on Spark a count is a job). Raises
    EmptyDatasetError naming the filter that removed the last rows.
    """
    if rows == 0:
        raise EmptyDatasetError("no interactions left before the activity filters; check the data and cleaning")
    steps: list[FilterStep] = []
    passes = 0
    while True:
        passes += 1
        item_name, user_name = _filter_names(config, passes)
        events, item_step = _apply(engine, events, rows, S.ITEM_ID, config.min_item_interactions, item_name)
        events, user_step = _apply(engine, events, item_step.remaining_rows, S.USER_ID,
                                   config.min_user_interactions, user_name)
        steps += [item_step, user_step]
        rows = user_step.remaining_rows
        if not config.iterative or (item_step.removed_rows == 0 and user_step.removed_rows == 0):
            return events, steps


def _apply(engine: PrepareEngine[Events], events: Events, rows: int, key: str, minimum: int,
           name: str) -> tuple[Events, FilterStep]:
    kept, removed_rows, removed_keys = engine.drop_rare(events, key, minimum)
    step = FilterStep(name, removed_rows, removed_keys, rows - removed_rows)
    if step.remaining_rows == 0:
        raise _emptied_error(step, key)
    return kept, step

"""Train / valid / test splits: pure functions over canonical interactions.

Every function returns the interactions sorted stably by (user_id, timestamp, source_order) with a `split`
column in {train, valid, test} and boolean `cold_user` / `cold_item` columns: an evaluation row whose user
(item) has no train event. Cold rows are flagged, never dropped; train rows are never cold.
Ties on timestamp are broken by source_order, so splits are reproducible.

Per-user splits put each user's latest events in evaluation, so no valid/test event precedes a train event
of the same user. The global split cuts everyone at the same instant, so no evaluation event precedes any
train event at all (the realistic protocol: the future is unknown to the model).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from foryou.data import schema as S
from foryou.errors import ConfigError

TRAIN, VALID, TEST = S.SPLITS


def sort_events(interactions: pd.DataFrame) -> pd.DataFrame:
    """Interactions sorted stably by (user_id, timestamp, source_order), index reset."""
    return interactions.sort_values([S.USER_ID, S.TIMESTAMP, S.SOURCE_ORDER], kind="stable").reset_index(drop=True)


def _positions(ordered: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(0-based position of each event in its user's history, that user's event count)."""
    group = ordered.groupby(S.USER_ID, sort=False)
    return group.cumcount().to_numpy(), group[S.USER_ID].transform("size").to_numpy()


def leave_last_out_split(interactions: pd.DataFrame) -> pd.DataFrame:
    """Each user's last event -> test, second-to-last -> valid, the rest -> train.

    Users with 2 events: first -> train, last -> test (no valid). Users with 1 event: train only (nothing to
    evaluate without a history).
    """
    ordered = sort_events(interactions)
    position, count = _positions(ordered)
    from_end = count - 1 - position
    split = np.full(len(ordered), TRAIN, dtype=object)
    split[(from_end == 0) & (count >= 2)] = TEST
    split[(from_end == 1) & (count >= 3)] = VALID
    return _finish(ordered, split)


def temporal_ratio_split(interactions: pd.DataFrame,
                         ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> pd.DataFrame:
    """Per user, the oldest events -> train, then valid, the newest -> test, by `ratios` (train, valid, test).

    Counts are rounded down for test and valid (n_test = floor(n * ratio_test), same for valid) and train takes
    the rest, so every user keeps >= 1 train event; e.g. 10 events at 0.7/0.1/0.2 -> 7/1/2, 4 events -> 3/0/1.
    """
    ordered = sort_events(interactions)
    position, count = _positions(ordered)
    n_test = np.floor(count * ratios[2] + 1e-9).astype(np.int64)
    n_valid = np.floor(count * ratios[1] + 1e-9).astype(np.int64)
    # Keep at least one train event: take it back from valid first, then from test.
    short = np.maximum(n_test + n_valid - (count - 1), 0)
    from_valid = np.minimum(short, n_valid)
    n_valid, n_test = n_valid - from_valid, n_test - (short - from_valid)
    n_train = count - n_valid - n_test
    split = np.where(position < n_train, TRAIN, np.where(position < n_train + n_valid, VALID, TEST))
    return _finish(ordered, split.astype(object))


def global_time_split(interactions: pd.DataFrame, time_cut: datetime,
                      valid_cut: datetime | None = None) -> pd.DataFrame:
    """Events before `time_cut` -> train, at or after -> test; with `valid_cut`, [valid_cut, time_cut) -> valid.

    Naive datetimes are read as UTC.
    """
    cut = _utc(time_cut)
    start = _utc(valid_cut) if valid_cut is not None else cut
    if start > cut:
        raise ConfigError(f"split.valid_cut ({start}) must not be after split.time_cut ({cut})")
    ordered = sort_events(interactions)
    ts = ordered[S.TIMESTAMP]
    split = np.where(ts >= cut, TEST, np.where(ts >= start, VALID, TRAIN)).astype(object)
    return _finish(ordered, split)


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _finish(ordered: pd.DataFrame, split: np.ndarray) -> pd.DataFrame:
    is_train = split == TRAIN
    train_users = ordered.loc[is_train, S.USER_ID].unique()
    train_items = ordered.loc[is_train, S.ITEM_ID].unique()
    result = ordered.assign(**{S.SPLIT: split})
    result[S.COLD_USER] = ~is_train & ~ordered[S.USER_ID].isin(train_users).to_numpy()
    result[S.COLD_ITEM] = ~is_train & ~ordered[S.ITEM_ID].isin(train_items).to_numpy()
    return result


def split_interactions(interactions: pd.DataFrame, strategy: str,
                       ratios: tuple[float, float, float] = (0.7, 0.1, 0.2),
                       time_cut: datetime | None = None, valid_cut: datetime | None = None) -> pd.DataFrame:
    """Dispatch on `split.strategy` (leave_last_out, temporal_ratio, global_time)."""
    if strategy == "leave_last_out":
        return leave_last_out_split(interactions)
    if strategy == "temporal_ratio":
        return temporal_ratio_split(interactions, ratios)
    if strategy == "global_time":
        if time_cut is None:
            raise ConfigError("split.time_cut is required when split.strategy is 'global_time'")
        return global_time_split(interactions, time_cut, valid_cut)
    raise ConfigError(f"split.strategy: unknown strategy '{strategy}'")

"""Users' chronological histories as flat arrays, and the padded `History` batches the user towers read.

A `Histories` holds every event of the fitted dataset in (user, time, source order) order, CSR-style, so that
training windows, serving histories and saving all read the same arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import torch

from foryou.data import schema as S
from foryou.models.user_tower import History

EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
SECONDS_PER_DAY = 86_400.0


def to_days(timestamps: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps (datetime64) as float64 days since the epoch."""
    values = pd.to_datetime(pd.Series(np.asarray(timestamps)), utc=True)
    return ((values - EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)


@dataclass
class Histories:
    """indptr (n_users + 1,), then per event: items, event_types (1..), weights, days (float64)."""

    indptr: np.ndarray
    items: np.ndarray
    event_types: np.ndarray
    weights: np.ndarray
    days: np.ndarray

    @classmethod
    def from_events(cls, events: pd.DataFrame, n_users: int, type_index: dict[str, int]) -> Histories:
        """events sorted by (user, time, source order), as a Dataset keeps them."""
        counts = np.bincount(events[S.USER_IDX].to_numpy(), minlength=n_users)
        types = events[S.EVENT_TYPE].astype(str).map(type_index).fillna(len(type_index) + 1)
        return cls(np.concatenate([[0], np.cumsum(counts)]), events[S.ITEM_IDX].to_numpy(np.int64),
                   types.to_numpy(np.int64), events[S.WEIGHT].to_numpy(np.float32), to_days(events[S.TIMESTAMP]))

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def user(self, user: int) -> Histories:
        """A one-user `Histories` of user index `user`'s events."""
        start, end = self.indptr[user], self.indptr[user + 1]
        return Histories(np.array([0, end - start]), self.items[start:end], self.event_types[start:end],
                         self.weights[start:end], self.days[start:end])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ("indptr", "items", "event_types", "weights", "days")}

    def windows(self, users: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Per user its last `length` events: (starts, ends) into the event arrays."""
        ends = self.indptr[users + 1]
        return np.maximum(self.indptr[users], ends - length), ends

    def batch(self, users: np.ndarray, length: int) -> History:
        """Right-padded `History` of each user's last `length` events (what serving encodes)."""
        starts, ends = self.windows(users, length)
        return pad(self, starts, ends)


def pad(histories: Histories, starts: np.ndarray, ends: np.ndarray) -> History:
    """Events [starts[i], ends[i]) of each row, right-padded to the longest row (at least one column)."""
    lengths = ends - starts
    width = max(int(lengths.max(initial=0)), 1)
    offsets = np.arange(width)
    mask = offsets[None, :] < lengths[:, None]
    index = np.where(mask, starts[:, None] + offsets[None, :], 0)
    index = np.minimum(index, max(len(histories.items) - 1, 0))
    if len(histories.items) == 0:
        zeros = np.zeros(mask.shape)
        return _history(zeros.astype(np.int64), zeros.astype(np.int64), zeros, zeros, mask)
    base = histories.days[np.minimum(starts, len(histories.items) - 1)][:, None]
    return _history(np.where(mask, histories.items[index], 0), np.where(mask, histories.event_types[index], 0),
                    np.where(mask, histories.weights[index], 0.0), np.where(mask, histories.days[index] - base, 0.0),
                    mask)


def _history(items: np.ndarray, types: np.ndarray, weights: np.ndarray, days: np.ndarray, mask: np.ndarray) -> History:
    return History(torch.as_tensor(items, dtype=torch.long), torch.as_tensor(types, dtype=torch.long),
                   torch.as_tensor(weights, dtype=torch.float32), torch.as_tensor(days, dtype=torch.float32),
                   torch.as_tensor(mask))


@dataclass
class TrainingBatch:
    """Inputs (b, L) and next-event targets (b, L): targets[i, j] is the event after inputs[i, j] (-1 = none)."""

    users: torch.Tensor
    history: History
    targets: torch.Tensor
    target_weights: torch.Tensor


def training_windows(histories: Histories, max_history: int,
                     whole_history: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, starts, ends) of the training sequences, each at most max_history + 1 events and at least 2.

    Each user's last window comes first; with `whole_history` earlier windows follow, stepping back max_history
    events at a time (consecutive windows share one event), so every event after a user's first is a target
    exactly once per epoch instead of only the last max_history.
    """
    lengths = histories.lengths()
    users = np.flatnonzero(lengths >= 2)
    counts = -(-(lengths[users] - 1) // max_history) if whole_history else np.ones(len(users), dtype=np.int64)
    owners = np.repeat(users, counts)
    steps = np.arange(len(owners)) - np.repeat(np.cumsum(counts) - counts, counts)
    ends = histories.indptr[owners + 1] - steps * max_history
    return owners, np.maximum(histories.indptr[owners], ends - max_history - 1), ends


class TrainingBatches(Iterator[TrainingBatch]):
    """One epoch's shuffled batches, padded as they are drawn; `len` is the epoch's number of batches, so that a
    progress bar has a total and an ETA."""

    def __init__(self, histories: Histories, max_history: int, batch_size: int, rng: np.random.Generator,
                 whole_history: bool = False) -> None:
        self.histories, self.batch_size = histories, batch_size
        self.owners, self.starts, self.ends = training_windows(histories, max_history, whole_history)
        self.order = rng.permutation(len(self.starts))
        self.next_first = 0

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __next__(self) -> TrainingBatch:
        if self.next_first >= len(self.order):
            raise StopIteration
        chunk = self.order[self.next_first:self.next_first + self.batch_size]
        self.next_first += self.batch_size
        inputs = pad(self.histories, self.starts[chunk], self.ends[chunk] - 1)
        targets = pad(self.histories, self.starts[chunk] + 1, self.ends[chunk])
        return TrainingBatch(torch.as_tensor(self.owners[chunk]), inputs,
                             targets.items.masked_fill(~targets.mask, -1), targets.weights)


def training_batches(histories: Histories, max_history: int, batch_size: int, rng: np.random.Generator,
                     whole_history: bool = False) -> TrainingBatches:
    """SASRec-style examples in shuffled batches of `batch_size` windows: every position predicts the next event."""
    return TrainingBatches(histories, max_history, batch_size, rng, whole_history)


def lookup_history(events: Sequence[tuple[str, str, object]], item_index: dict[str, int],
                   type_index: dict[str, int], type_weights: dict[str, float]) -> Histories:
    """One unseen user's (item_id, event_type, timestamp) events, sorted by time, as a one-user `Histories`
    (plain Python and NumPy: the service calls this once per request)."""
    types = [str(event[1]) for event in events]
    unknown_type = len(type_index) + 1
    unknown_weight = float(np.mean(list(type_weights.values()))) if type_weights else 1.0
    days = event_days([event[2] for event in events])
    order = np.argsort(days, kind="stable")
    return Histories(np.array([0, len(events)]),
                     np.fromiter((item_index[event[0]] for event in events), np.int64, len(events))[order],
                     np.array([type_index.get(kind, unknown_type) for kind in types], dtype=np.int64)[order],
                     np.array([type_weights.get(kind, unknown_weight) for kind in types], dtype=np.float32)[order],
                     days[order])


def event_days(timestamps: Sequence[object]) -> np.ndarray:
    """Float64 days since the epoch of any timestamps `to_days` reads; timezone-aware datetimes (what the
    service passes) are converted without pandas."""
    if all(isinstance(moment, datetime) and moment.tzinfo is not None for moment in timestamps):
        seconds = [moment.timestamp() for moment in timestamps]  # type: ignore[attr-defined]
        return np.array(seconds, dtype=np.float64) / SECONDS_PER_DAY
    return to_days(np.array(timestamps, dtype=object)) if len(timestamps) else np.zeros(0)


def concat_histories(first: Histories, then: Histories) -> Histories:
    """Two one-user `Histories` as one, in time order (stable: on equal times `first`'s events come first)."""
    days = np.concatenate([first.days, then.days])
    order = np.argsort(days, kind="stable")
    return Histories(np.array([0, len(days)]), np.concatenate([first.items, then.items])[order],
                     np.concatenate([first.event_types, then.event_types])[order],
                     np.concatenate([first.weights, then.weights])[order], days[order])

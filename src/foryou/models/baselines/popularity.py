"""Popularity baselines: the same ranking for every user, the floor any personalised model must clear.

Both support `score_histories` (the history is ignored: popularity does not depend on the user).
`similar_items` uses each item's column of the binary user-item matrix (co-occurrence cosine), since
"similar by popularity" would mean nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.models.base import Recommender
from foryou.models.baselines.history import check_histories, interaction_item_vectors

SECONDS_PER_DAY = 86_400.0


class _Popularity(Recommender):
    """Scores every item by one popularity vector (n_items,) set by `_fit`."""

    def __init__(self) -> None:
        super().__init__()
        self.popularity: np.ndarray | None = None

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        assert self.popularity is not None
        return np.tile(self.popularity, (len(user_idx), 1))

    def score_histories(self, histories: sp.spmatrix) -> np.ndarray:
        """(b, n_items) scores for users unknown at train time; every row is the popularity vector."""
        rows = check_histories(histories, self.n_items).shape[0]
        assert self.popularity is not None
        return np.tile(self.popularity, (rows, 1))

    def item_embeddings(self) -> np.ndarray:
        self._check_fitted()
        assert self.seen is not None
        return interaction_item_vectors(self.seen)

    def _save_state(self, directory: Path) -> None:
        assert self.popularity is not None
        np.save(directory / "popularity.npy", self.popularity)

    def _load_state(self, directory: Path) -> None:
        self.popularity = np.load(directory / "popularity.npy")


class MostPop(_Popularity):
    """Number of training events per item, repeats included (the reference protocol counts events)."""

    name = "most_pop"

    def _fit(self, dataset: Dataset) -> None:
        counts = np.bincount(dataset.interactions[S.ITEM_IDX].to_numpy(np.int64), minlength=dataset.n_items)
        self.popularity = counts.astype(np.float32)


class RecentPop(_Popularity):
    """Time-decayed event count: an event `age` days before the latest training event weighs 0.5**(age/half_life)."""

    name = "recent_pop"

    def __init__(self, half_life_days: float = 14.0) -> None:
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, got {half_life_days!r}")
        super().__init__()
        self.half_life_days = float(half_life_days)

    def params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life_days}

    def _fit(self, dataset: Dataset) -> None:
        events = dataset.interactions
        seconds = timestamps_in_seconds(events[S.TIMESTAMP])
        age_days = (seconds.max() - seconds) / SECONDS_PER_DAY if len(seconds) else seconds
        weights = np.power(0.5, age_days / self.half_life_days)
        item_idx = events[S.ITEM_IDX].to_numpy(np.int64)
        self.popularity = np.bincount(item_idx, weights=weights, minlength=dataset.n_items).astype(np.float32)


def timestamps_in_seconds(timestamps: pd.Series) -> np.ndarray:
    """Float64 seconds since the epoch from datetime (any unit, tz-aware or not) or numeric epoch seconds."""
    if pd.api.types.is_datetime64_any_dtype(timestamps):
        values = timestamps.dt.tz_convert(None) if getattr(timestamps.dt, "tz", None) else timestamps
        return values.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    return timestamps.to_numpy(dtype=np.float64)

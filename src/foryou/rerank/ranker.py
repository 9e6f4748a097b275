"""What every ranker over the candidate features shares (LightGBM and the MLP): the checked ranking arrays, the
feature matrix in the fitted column order, and the metadata beside the saved weights.

One group (query) is one user's candidates, in contiguous rows; only the order within a group matters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foryou.rerank.features import FeatureRows, feature_matrix

# (features rows, labels (n,), group ids (n,)): the shape of a validation set
RankingSet = tuple[pd.DataFrame, np.ndarray, np.ndarray]


def group_sizes(groups: np.ndarray) -> np.ndarray:
    """Per-row query ids (n,) -> sizes of the consecutive runs, in row order; ids must not reappear later."""
    groups = np.asarray(groups)
    if not len(groups):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    if len(starts) != len(np.unique(groups)):
        raise ValueError("rows of a group (user) must be contiguous: sort the frame by user_idx first")
    return np.diff(np.r_[starts, len(groups)])


def ranking_arrays(features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,), group sizes), checking that they match the feature rows and groups are contiguous."""
    labels = np.asarray(labels)
    if len(labels) != len(features) or len(groups) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels and {len(groups)} group ids")
    return labels, group_sizes(groups)


class FeatureRanker:
    """Base of the rankers: named feature columns, the kept iteration (boosting round or epoch) and its validation
    NDCG, saved as JSON metadata beside the model's own file."""

    meta_file = "ranker.json"

    def __init__(self) -> None:
        self.feature_names: list[str] = []
        self.best_iteration = 0
        self.best_score: float | None = None

    def _matrix(self, features: FeatureRows) -> np.ndarray:
        """(n, f) float64 in the fitted feature order; a missing column is a ValueError naming it."""
        return feature_matrix(features, self.feature_names)

    def _save_meta(self, directory: Path, settings: dict[str, Any]) -> None:
        """Write `meta_file`: feature names, kept iteration and score, plus the ranker's own `settings`."""
        meta = {"feature_names": self.feature_names, "best_iteration": self.best_iteration,
                "best_score": self.best_score, **settings}
        (directory / self.meta_file).write_text(json.dumps(meta, indent=2))

    @classmethod
    def _read_meta(cls, directory: Path) -> dict[str, Any]:
        return dict(json.loads((directory / cls.meta_file).read_text()))

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        self.feature_names = list(meta["feature_names"])
        self.best_iteration = int(meta["best_iteration"])
        self.best_score = None if meta["best_score"] is None else float(meta["best_score"])

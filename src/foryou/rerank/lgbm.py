"""A LightGBM lambdarank ranker over the candidate features, which explains each score by its contributions.

`fit` learns from one group (query) per user, early-stopping on the validation groups' NDCG@10; `predict` gives
raw scores (higher first); `explain` splits each score into per-feature contributions (`pred_contrib`) that,
with the bias, add up to it. Saved as the booster's text model plus a JSON of feature names and settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from typing_extensions import Self

from foryou.errors import NotFittedError
from foryou.rerank.features import FeatureRows, feature_matrix

logger = logging.getLogger(__name__)

BIAS = "bias"
BOOSTER_FILE = "booster.txt"
META_FILE = "ranker.json"
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
}

# (features rows, labels (n,), group ids (n,)): the shape of a validation set
RankingSet = tuple[pd.DataFrame, np.ndarray, np.ndarray]


class LGBMRanker:
    """Lambdarank gradient boosting over named features; one group = one user's candidates (contiguous rows)."""

    def __init__(self, params: Mapping[str, Any] | None = None, num_boost_round: int = 500,
                 early_stopping_rounds: int = 30, eval_at: int = 10, seed: int = 0, num_threads: int = 0) -> None:
        self.params = {**DEFAULT_PARAMS, "eval_at": [eval_at], "seed": seed, "num_threads": num_threads,
                       **dict(params or {})}
        self.num_boost_round = int(num_boost_round)
        self.early_stopping_rounds = int(early_stopping_rounds)
        self.eval_at = int(eval_at)
        self.feature_names: list[str] = []
        self.booster: lgb.Booster | None = None
        self.best_iteration = 0
        self.best_score: float | None = None
        self.predict_threads = 0  # 0: LightGBM's default (all cores); the service scores one request on one

    def fit(self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray,
            valid: RankingSet | None = None) -> Self:
        """features (n, f) numeric columns (all of them are used), labels (n,) int relevance (0 / 1 / ...),
        groups (n,) query ids (e.g. user_idx) whose rows are contiguous. With `valid`, stop when its
        NDCG@eval_at has not improved for `early_stopping_rounds` rounds and keep the best iteration."""
        self.feature_names = [str(column) for column in features.columns]
        train = self._dataset(features, labels, groups)
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if valid is not None:
            valid_sets = [self._dataset(*valid, reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)]
        self.booster = lgb.train(self.params, train, num_boost_round=self.num_boost_round,
                                 valid_sets=valid_sets, valid_names=["valid"][: len(valid_sets)], callbacks=callbacks)
        self.best_iteration = int(self.booster.best_iteration or self.booster.current_iteration())
        if valid is not None:
            self.best_score = float(self.booster.best_score["valid"][f"ndcg@{self.eval_at}"])
            logger.info("lambdarank: best iteration %d, valid NDCG@%d %.4f", self.best_iteration, self.eval_at,
                        self.best_score)
        return self

    def predict(self, features: FeatureRows) -> np.ndarray:
        """(n,) float64 raw scores; compare them only within a group."""
        booster = self._fitted()
        return np.asarray(booster.predict(self._matrix(features), num_iteration=self.best_iteration,
                                          num_threads=self.predict_threads), np.float64)

    def contributions(self, features: FeatureRows) -> pd.DataFrame:
        """(n, f + 1): each feature's contribution to the raw score plus the `bias` column; rows sum to `predict`."""
        index = features.index if isinstance(features, pd.DataFrame) else None
        return pd.DataFrame(self._contributions(features), columns=[*self.feature_names, BIAS], index=index)

    def explain(self, features: FeatureRows) -> list[list[tuple[str, float]]]:
        """Per row, every (feature, contribution) largest first, then (`bias`, value); they sum to the score."""
        table = self._contributions(features)
        values, bias = table[:, :-1], table[:, -1]
        order = np.argsort(-values, axis=1, kind="stable")
        return [[(self.feature_names[j], float(row[j])) for j in ranks] + [(BIAS, float(b))]
                for row, ranks, b in zip(values, order, bias)]

    def _contributions(self, features: FeatureRows) -> np.ndarray:
        booster = self._fitted()
        values = booster.predict(self._matrix(features), num_iteration=self.best_iteration, pred_contrib=True,
                                 num_threads=self.predict_threads)
        return np.asarray(values, np.float64)

    def feature_importance(self, kind: str = "gain") -> pd.Series:
        """Importance per feature ("gain" or "split") over the kept iterations, largest first."""
        booster = self._fitted()
        values = booster.feature_importance(importance_type=kind, iteration=self.best_iteration)
        return pd.Series(values, index=self.feature_names, name=kind).sort_values(ascending=False)

    def save(self, directory: Path | str) -> None:
        """Write booster.txt (the kept iterations) and ranker.json (feature names, settings)."""
        booster = self._fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        booster.save_model(directory / BOOSTER_FILE, num_iteration=self.best_iteration)
        meta = {"feature_names": self.feature_names, "params": self.params, "best_iteration": self.best_iteration,
                "best_score": self.best_score, "num_boost_round": self.num_boost_round,
                "early_stopping_rounds": self.early_stopping_rounds, "eval_at": self.eval_at}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path | str) -> LGBMRanker:
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        ranker = cls(meta["params"], meta["num_boost_round"], meta["early_stopping_rounds"], meta["eval_at"])
        ranker.booster = lgb.Booster(model_file=str(directory / BOOSTER_FILE))
        ranker.feature_names = list(meta["feature_names"])
        ranker.best_iteration = int(meta["best_iteration"])
        ranker.best_score = meta["best_score"]
        return ranker

    def _fitted(self) -> lgb.Booster:
        if self.booster is None:
            raise NotFittedError("LGBMRanker is not fitted: call fit() or load() first")
        return self.booster

    def _matrix(self, features: FeatureRows) -> np.ndarray:
        """(n, f) float64 in the fitted feature order; a missing column is a ValueError naming it."""
        return feature_matrix(features, self.feature_names)

    def _dataset(self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray,
                 reference: lgb.Dataset | None = None) -> lgb.Dataset:
        labels = np.asarray(labels)
        if len(labels) != len(features) or len(groups) != len(features):
            raise ValueError(f"{len(features)} feature rows but {len(labels)} labels and {len(groups)} group ids")
        if list(features.columns) != self.feature_names:
            raise ValueError(f"validation features must have the training columns {self.feature_names}")
        return lgb.Dataset(features.to_numpy(dtype=np.float64, na_value=np.nan), label=labels.astype(np.float64),
                           group=group_sizes(groups), feature_name=self.feature_names, reference=reference,
                           free_raw_data=False)


def group_sizes(groups: np.ndarray) -> np.ndarray:
    """Per-row query ids (n,) -> sizes of the consecutive runs, in row order; ids must not reappear later."""
    groups = np.asarray(groups)
    if not len(groups):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    if len(starts) != len(np.unique(groups)):
        raise ValueError("rows of a group (user) must be contiguous: sort the frame by user_idx first")
    return np.diff(np.r_[starts, len(groups)])

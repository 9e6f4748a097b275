"""Hybrid strategies over the candidate frame: a tuned blend of the sources' scores, and reciprocal rank fusion.

Both read only the per-source columns of `merge_candidates` (`<s>_score`, `<s>_rank`), so they need no training
beyond the blend's few weights: a baseline the learned ranker must beat, and a fallback when it is not fitted.
Raw scores are not comparable across sources (cosines, co-occurrence counts, popularity), so the blend first
min-max scales each source within each user's candidates; the weights are then tuned by coordinate ascent on
NDCG@10 of a labelled (validation) frame. Reciprocal rank fusion needs no tuning at all: it reads only ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import Self

from foryou.data import schema as S
from foryou.errors import NotFittedError
from foryou.evaluation.metrics import grouped_ndcg
from foryou.rerank.features import FeatureRows

logger = logging.getLogger(__name__)

LABEL = "label"  # the held-out target flag, as written by rerank.protocol
DEFAULT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
MIN_GAIN = 1e-12  # a trial weight must beat the current NDCG by more than float noise to be kept


def source_names(frame: FeatureRows) -> list[str]:
    """Names s with both `<s>_score` and `<s>_rank` columns, in column order (so `merged_rank` is not one)."""
    scored = [str(column)[: -len("_score")] for column in frame if str(column).endswith("_score")]
    return [name for name in scored if f"{name}_rank" in frame]


def normalised_scores(frame: FeatureRows, source: str) -> np.ndarray:
    """(n,) float64 in [0, 1]: `<source>_score` min-max scaled over each user's rows the source scores, so
    sources on different scales can be added. 1.0 where a user's scores are all equal (one row included), 0.0
    where the source has no score for the row (NaN or a non-finite score)."""
    values = _score_column(frame, source)
    scored = np.isfinite(values)
    users = np.asarray(frame[S.USER_IDX])
    if len(users) and (users == users[0]).all():  # one user (a request): plain reductions, no grouping
        low = np.full(len(values), values[scored].min(initial=np.inf))
        span = values[scored].max(initial=-np.inf) - low
    else:
        _, user = np.unique(users, return_inverse=True)
        low_per_user = np.full(user.max(initial=-1) + 1, np.inf)
        high_per_user = np.full(len(low_per_user), -np.inf)
        np.minimum.at(low_per_user, user[scored], values[scored])
        np.maximum.at(high_per_user, user[scored], values[scored])
        low = low_per_user[user]
        span = high_per_user[user] - low
    scaled = np.ones(len(values), dtype=np.float64)
    spread = scored & (span > 0)
    scaled[spread] = (values[spread] - low[spread]) / span[spread]
    scaled[~scored] = 0.0
    return scaled


def reciprocal_rank_fusion(frame: FeatureRows, sources: Sequence[str] | None = None, k: float = 60.0) -> np.ndarray:
    """(n,) float64: sum over the sources that score the row (finite `<s>_score`) of 1 / (k + `<s>_rank`).
    Reads ranks only, so it needs neither score scaling nor tuning; k damps the weight of the very top ranks."""
    names = _sources(frame, sources)
    fused = np.zeros(len(frame[S.USER_IDX]), dtype=np.float64)
    for name in names:
        scored = np.isfinite(_score_column(frame, name))
        ranks = np.asarray(frame[f"{name}_rank"], dtype=np.float64)
        fused[scored] += 1.0 / (k + ranks[scored])
    return fused


def added(parts: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """(n,) float64 sum of additive score parts, in their order (a hybrid's score from its `parts`)."""
    total = np.zeros(n, dtype=np.float64)
    for values in parts.values():
        total += values
    return total


class HybridBlend:
    """sum_s w_s * normalised_scores(frame, s): a linear blend of the sources, weights tuned on validation."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self.weights: dict[str, float] = {str(name): float(w) for name, w in (weights or {}).items()}
        self.best_score: float | None = None

    def fit(self, frame: pd.DataFrame, sources: Sequence[str] | None = None, grid: Sequence[float] = DEFAULT_GRID,
            rounds: int = 3) -> Self:
        """Coordinate ascent on NDCG@10 of the labelled `frame`, from every weight at 1.0: per pass, each source
        in turn takes the grid value with the best NDCG (ties keep the current weight); stop after `rounds`
        passes or a pass that changes nothing. All-zero weights are never tried. Tune on validation, not test."""
        if LABEL not in frame:
            raise ValueError(f"the frame has no {LABEL!r} column: fit the blend on a labelled (validation) frame")
        names = _sources(frame, sources)
        judged = frame.groupby(S.USER_IDX, sort=False)[LABEL].transform("max").to_numpy() > 0
        if not judged.any():
            raise ValueError("no user has a positive label in the frame: nothing to tune the weights on")
        columns = np.column_stack([normalised_scores(frame, name) for name in names])[judged]  # (n', n_sources)
        labels = frame[LABEL].to_numpy()[judged]
        groups = frame[S.USER_IDX].to_numpy()[judged]  # users without a positive do not move NDCG: left out
        weights, best = _coordinate_ascent(columns, labels, groups, grid, rounds)
        self.weights = {name: float(w) for name, w in zip(names, weights)}
        self.best_score = float(best)
        logger.info("hybrid blend: weights %s, NDCG@10 %.4f", self.weights, self.best_score)
        return self

    def score(self, frame: FeatureRows) -> np.ndarray:
        """(n,) float64 blend scores; compare them only within a user."""
        return added(self.parts(frame), len(frame[S.USER_IDX]))

    def parts(self, frame: FeatureRows) -> dict[str, np.ndarray]:
        """Each weighted source's share of `score` (name -> (n,) w_s * normalised_scores): they add up to it."""
        if not self.weights:
            raise NotFittedError("HybridBlend has no weights: call fit(frame) or pass weights")
        missing = [name for name in self.weights if f"{name}_score" not in frame]
        if missing:
            raise ValueError(f"the frame lacks the score column(s) of source(s) {missing} the blend weighs")
        return {name: weight * normalised_scores(frame, name) for name, weight in self.weights.items() if weight}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able weights and validation NDCG."""
        return {"weights": dict(self.weights), "best_score": self.best_score}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HybridBlend:
        blend = cls(data["weights"])
        blend.best_score = None if data.get("best_score") is None else float(data["best_score"])
        return blend


def _coordinate_ascent(columns: np.ndarray, labels: np.ndarray, groups: np.ndarray, grid: Sequence[float],
                       rounds: int) -> tuple[np.ndarray, float]:
    """Weights (n_sources,) from all ones, and their NDCG@10 of the blend columns (n, n_sources) @ weights."""
    weights = np.ones(columns.shape[1], dtype=np.float64)
    best = grouped_ndcg(columns @ weights, labels, groups)
    for _ in range(rounds):
        changed = False
        for j in range(len(weights)):
            current, chosen = float(weights[j]), float(weights[j])
            for value in grid:
                trial = weights.copy()
                trial[j] = value
                if value == current or not trial.any():
                    continue
                ndcg = grouped_ndcg(columns @ trial, labels, groups)
                if ndcg > best + MIN_GAIN:
                    best, chosen = ndcg, float(value)
            weights[j] = chosen
            changed = changed or chosen != current
        if not changed:
            break
    return weights, best


def _sources(frame: FeatureRows, sources: Sequence[str] | None) -> list[str]:
    """The requested sources (default: every source of the frame); an absent one is a ValueError naming it."""
    names = source_names(frame) if sources is None else [str(name) for name in sources]
    if not names or len(set(names)) < len(names):
        raise ValueError(f"need distinct sources with <source>_score / <source>_rank columns, got {names}")
    missing = [name for name in names if f"{name}_score" not in frame or f"{name}_rank" not in frame]
    if missing:
        raise ValueError(f"the frame lacks the _score / _rank columns of source(s) {missing}")
    return names


def _score_column(frame: FeatureRows, source: str) -> np.ndarray:
    column = f"{source}_score"
    if column not in frame:
        raise ValueError(f"the frame has no {column!r} column (source {source!r})")
    values = frame[column]
    return values.to_numpy(np.float64, na_value=np.nan) if isinstance(values, pd.Series) else np.asarray(values, np.float64)

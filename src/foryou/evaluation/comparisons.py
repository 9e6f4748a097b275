"""How sure the report is: a bootstrap interval per model and paired tests between models, over the same users.

Every number comes from `significance` (one resampling procedure); this module aligns the per-user metrics of
`EvaluationResult`s by user and shapes the outcome for the report's tables and error bars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from foryou.data import schema as S
from foryou.evaluation.protocol import EvaluationResult
from foryou.evaluation.significance import bootstrap_interval, paired_bootstrap

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A mean over users with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        if np.isnan(self.mean):
            return "—"
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class PairedTest:
    """Mean per-user difference a - b over the users both were scored on, its interval and two-sided p-value."""

    difference: Interval
    p_value: float
    users: int

    def __str__(self) -> str:
        if self.users == 0:
            return "—"
        d = self.difference
        return f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}], p={_p(self.p_value)}"

    @property
    def beyond_noise(self) -> bool:
        """True when the interval of the difference excludes 0."""
        return self.users > 0 and (self.difference.low > 0 or self.difference.high < 0)


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def per_user(result: EvaluationResult, metric: str) -> pd.Series:
    """`metric` per evaluated user (index: user_idx), users without a value dropped."""
    frame = result.per_user
    if metric not in frame:
        raise ValueError(f"the evaluation has no per-user {metric!r}: evaluate with its k")
    return pd.Series(frame[metric].to_numpy(np.float64), index=frame[S.USER_IDX].to_numpy(np.int64)).dropna()


def interval(values: pd.Series, seed: int = 0) -> Interval:
    """The mean of `values` with its bootstrap interval; NaN (shown "—") when there is no user."""
    if values.empty:
        return Interval(np.nan, np.nan, np.nan)
    return Interval(*bootstrap_interval(values.to_numpy(), RESAMPLES, seed, CONFIDENCE))


def paired_test(a: pd.Series, b: pd.Series, seed: int = 0) -> PairedTest:
    """Paired bootstrap of a - b on the users (index) both have; no common user gives an empty test ("—")."""
    common = a.index.intersection(b.index)
    if common.empty:
        return PairedTest(Interval(np.nan, np.nan, np.nan), np.nan, 0)
    mean, low, high, p_value = paired_bootstrap(a.loc[common].to_numpy(), b.loc[common].to_numpy(), RESAMPLES,
                                                seed, CONFIDENCE)
    return PairedTest(Interval(mean, low, high), p_value, len(common))


def intervals(results: Mapping[str, EvaluationResult], metric: str) -> dict[str, Interval]:
    """Model -> the mean of `metric` with its interval (the report's table cells and error bars)."""
    return {name: interval(per_user(result, metric)) for name, result in results.items()}


def paired_table(results: Mapping[str, EvaluationResult], metric: str,
                 references: Mapping[str, str]) -> pd.DataFrame:
    """One row per model: `metric` minus each reference model's, on the same users ("label" -> model name)."""
    values = {name: per_user(result, metric) for name, result in results.items()}
    rows = []
    for name in results:
        row = {"model": name}
        for label, reference in references.items():
            row[f"vs {label}"] = "—" if name == reference else str(paired_test(values[name], values[reference]))
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", *(f"vs {label}" for label in references)])

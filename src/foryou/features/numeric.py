"""Numeric fields (e.g. price): log1p(max(x, 0)) standardised by the fitted mean/std, plus a quantile band.

Missing or non-finite values give 0 with a missing flag of 1 and band 0. Bands 1..n_bands split the fitted
log values at their quantiles (duplicate cut points are merged, so a skewed field can have fewer bands); a value
equal to a cut point goes to the upper band. Statistics use the population std (ddof=0); a constant field gets
std 1 so that it maps to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def log_values(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(log1p(max(x, 0)) with NaN where missing, missing mask) for one column; text that is not a number is missing."""
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = ~np.isfinite(numbers)
    logged = np.log1p(np.maximum(np.where(missing, 0.0, numbers), 0.0))
    return np.where(missing, np.nan, logged), missing


@dataclass
class NumericScaler:
    """Fitted statistics of one numeric field."""

    field: str
    mean: float
    std: float
    cuts: list[float]

    @property
    def n_bands(self) -> int:
        """Number of bands for present values: an embedding needs n_bands + 1 rows (row 0 = missing)."""
        return len(self.cuts) + 1

    @classmethod
    def fit(cls, column: pd.Series, n_bands: int) -> NumericScaler:
        logged, missing = log_values(column)
        present = logged[~missing]
        if present.size == 0:
            return cls(str(column.name), 0.0, 1.0, [])
        std = float(present.std())
        quantiles = np.quantile(present, np.arange(1, n_bands) / n_bands) if n_bands > 1 else np.array([])
        cuts = [float(cut) for cut in np.unique(quantiles)]
        return cls(str(column.name), float(present.mean()), std if std > 0 else 1.0, cuts)

    def transform(self, column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(standardised float32, missing float32 0/1, band int64), each of shape (len(column),)."""
        logged, missing = log_values(column)
        scaled = np.where(missing, 0.0, (np.nan_to_num(logged) - self.mean) / self.std).astype(np.float32)
        bands = 1 + np.searchsorted(np.asarray(self.cuts), np.nan_to_num(logged), side="right")
        bands = np.where(missing, 0, bands).astype(np.int64)
        return scaled, missing.astype(np.float32), bands

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "mean": self.mean, "std": self.std, "cuts": self.cuts}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NumericScaler:
        return cls(str(raw["field"]), float(raw["mean"]), float(raw["std"]), [float(cut) for cut in raw["cuts"]])

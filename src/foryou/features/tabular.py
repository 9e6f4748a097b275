"""Categorical + numeric encoding shared by items and users: fit on one table, transform any table alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from foryou.errors import MissingColumnError
from foryou.features.categorical import CategoricalVocabulary
from foryou.features.numeric import NumericScaler


@dataclass
class FeatureTensors:
    """`TabularFeatures` / `ItemFeatures` as torch tensors on one device (same shapes and meanings)."""

    categorical: dict[str, torch.Tensor]
    numeric: torch.Tensor
    numeric_missing: torch.Tensor
    numeric_bands: torch.Tensor
    text: torch.Tensor | None = None
    vectors: torch.Tensor | None = None


@dataclass
class TabularFeatures:
    """Encoded categorical and numeric fields of n rows.

    categorical: field -> (n, width) int64, 0 = padding, 1 = unknown, 2.. = known values (nn.Embedding with
        `cardinalities[field] + 1` rows and padding_idx=0, or EmbeddingBag with per_sample_weights = ids > 0).
    numeric: (n, f) float32 standardised log1p values, 0 where missing; columns in `numeric_fields` order.
    numeric_missing: (n, f) float32, 1 where the value was missing.
    numeric_bands: (n, f) int64 quantile band 1..band_counts[j], 0 = missing.
    """

    categorical: dict[str, np.ndarray]
    cardinalities: dict[str, int]
    numeric: np.ndarray
    numeric_missing: np.ndarray
    numeric_bands: np.ndarray
    numeric_fields: list[str] = field(default_factory=list)
    band_counts: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.numeric)

    def to_torch(self, device: str | torch.device = "cpu") -> FeatureTensors:
        return FeatureTensors(
            categorical={name: torch.as_tensor(array, device=device) for name, array in self.categorical.items()},
            numeric=torch.as_tensor(self.numeric, device=device),
            numeric_missing=torch.as_tensor(self.numeric_missing, device=device),
            numeric_bands=torch.as_tensor(self.numeric_bands, device=device),
        )


@dataclass
class TabularEncoder:
    """Fitted vocabularies and scalers for the categorical and numeric fields of one table."""

    vocabularies: list[CategoricalVocabulary]
    scalers: list[NumericScaler]

    @classmethod
    def fit(cls, table: pd.DataFrame, categorical: list[str], numeric: list[str], max_categories: int,
            numeric_bands: int, table_name: str) -> TabularEncoder:
        require_columns(table, [*categorical, *numeric], table_name)
        return cls(
            [CategoricalVocabulary.fit(table[name], max_categories) for name in categorical],
            [NumericScaler.fit(table[name], numeric_bands) for name in numeric],
        )

    def transform(self, table: pd.DataFrame, table_name: str) -> TabularFeatures:
        """Encode `table`; a fitted column absent from it is an error, unknown values are not."""
        require_columns(table, [v.field for v in self.vocabularies] + [s.field for s in self.scalers], table_name)
        n = len(table)
        parts = [scaler.transform(table[scaler.field]) for scaler in self.scalers]

        def stack(position: int, dtype: type) -> np.ndarray:
            if not parts:
                return np.zeros((n, 0), dtype=dtype)
            return np.stack([part[position] for part in parts], axis=1).astype(dtype, copy=False)

        return TabularFeatures(
            categorical={v.field: v.transform(table[v.field]) for v in self.vocabularies},
            cardinalities={v.field: v.cardinality for v in self.vocabularies},
            numeric=stack(0, np.float32),
            numeric_missing=stack(1, np.float32),
            numeric_bands=stack(2, np.int64),
            numeric_fields=[scaler.field for scaler in self.scalers],
            band_counts=[scaler.n_bands for scaler in self.scalers],
        )

    def to_dict(self) -> dict[str, Any]:
        return {"categorical": [v.to_dict() for v in self.vocabularies],
                "numeric": [s.to_dict() for s in self.scalers]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TabularEncoder:
        return cls([CategoricalVocabulary.from_dict(v) for v in raw["categorical"]],
                   [NumericScaler.from_dict(s) for s in raw["numeric"]])


def require_columns(table: pd.DataFrame, columns: list[str], table_name: str) -> None:
    absent = [name for name in columns if name not in table.columns]
    if absent:
        raise MissingColumnError(f"the {table_name} table has no column(s) {', '.join(absent)} "
                                 f"(columns: {', '.join(map(str, table.columns))})")

"""Categorical fields (single or multi-valued) as padded index arrays ready for nn.Embedding(padding_idx=0).

Index 0 = padding (no value in that slot), 1 = unknown or rare value, 2.. = the `max_categories` values found in
the most items at fit time (ties broken by the value's text, so fitting is deterministic). A field becomes an
int64 array (n, width): each row lists the item's distinct values in order, then zeros. `width` is the most
values one item had at fit (at least 1, at most MAX_VALUES_PER_ITEM); later rows with more are cut to width.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PADDING, UNKNOWN = 0, 1
MAX_VALUES_PER_ITEM = 64


def cell_values(cell: object) -> list[str]:
    """Distinct values of one cell as strings, in order: None/NaN -> [], "a" -> ["a"], ["a", "b"] -> both."""
    if isinstance(cell, (list, tuple, set, np.ndarray, pd.Series)):
        raw = list(cell)
    elif cell is None or (isinstance(cell, float) and np.isnan(cell)) or cell is pd.NA:
        raw = []
    else:
        raw = [cell]
    values = [str(value).strip() for value in raw if not _is_missing(value)]
    return list(dict.fromkeys(value for value in values if value))


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


@dataclass
class CategoricalVocabulary:
    """Value -> index map of one field; `values[i]` has index i + 2."""

    field: str
    values: list[str]
    width: int

    @property
    def cardinality(self) -> int:
        """Largest index used (unknown + kept values): an embedding needs cardinality + 1 rows (row 0 = padding)."""
        return len(self.values) + 1

    @classmethod
    def fit(cls, column: pd.Series, max_categories: int) -> CategoricalVocabulary:
        """Keep the `max_categories` values present in the most rows of `column`."""
        cells = [cell_values(cell) for cell in column]
        counts = Counter(value for values in cells for value in values)
        ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:max_categories]
        width = min(max((len(values) for values in cells), default=1), MAX_VALUES_PER_ITEM)
        return cls(str(column.name), [value for value, _ in ranked], max(width, 1))

    def transform(self, column: pd.Series) -> np.ndarray:
        """(len(column), width) int64 indices; unseen or rare values -> UNKNOWN, empty slots -> PADDING."""
        index = {value: position + 2 for position, value in enumerate(self.values)}
        out = np.full((len(column), self.width), PADDING, dtype=np.int64)
        for row, cell in enumerate(column):
            ids = [index.get(value, UNKNOWN) for value in cell_values(cell)[: self.width]]
            out[row, : len(ids)] = ids
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "values": self.values, "width": self.width}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CategoricalVocabulary:
        return cls(str(raw["field"]), [str(value) for value in raw["values"]], int(raw["width"]))

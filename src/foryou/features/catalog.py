"""Item features: text (frozen embedding of the item's text fields), categorical, numeric and vector fields.

Fit once on the catalog, then transform any items table (including items added later: unknown categories map
to the unknown index and numeric values use the fitted statistics). The encoder saves to one JSON file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from foryou.config import FeaturesConfig
from foryou.data.schema import FieldRoles
from foryou.errors import DataFileError
from foryou.features.categorical import cell_values
from foryou.features.tabular import FeatureTensors, TabularEncoder, TabularFeatures, require_columns
from foryou.features.text import TextEncoder

ENCODER_FILE = "item_features.json"
TEXT_SEPARATOR = ". "


@dataclass
class ItemFeatures(TabularFeatures):
    """`TabularFeatures` of n items, plus text (n, d_text) float32 unit rows (zero row when the item has no
    text) and vectors (n, d_vec) float32 (the vector fields side by side, zeros where missing), each or None."""

    text: np.ndarray | None = None
    vectors: np.ndarray | None = None

    def to_torch(self, device: str | torch.device = "cpu") -> FeatureTensors:
        tensors = super().to_torch(device)
        tensors.text = None if self.text is None else torch.as_tensor(self.text, device=device)
        tensors.vectors = None if self.vectors is None else torch.as_tensor(self.vectors, device=device)
        return tensors


class ItemFeatureEncoder:
    """Fitted encoding of a catalog's feature fields; `transform` turns an items table into `ItemFeatures`."""

    def __init__(self, text_fields: list[str], tabular: TabularEncoder, vector_dims: dict[str, int]) -> None:
        self.text_fields = text_fields
        self.tabular = tabular
        self.vector_dims = vector_dims

    @classmethod
    def fit(cls, items: pd.DataFrame, roles: FieldRoles, config: FeaturesConfig) -> ItemFeatureEncoder:
        """Learn vocabularies, numeric statistics and vector widths from `items`, using the fields in `roles`."""
        require_columns(items, roles.all(), "items")
        tabular = TabularEncoder.fit(items, roles.categorical, roles.numeric, config.max_categories,
                                     config.numeric_bands, "items")
        vector_dims = {name: _vector_width(items[name]) for name in roles.vector}
        return cls(_title_first(roles.text), tabular, vector_dims)

    def fields(self) -> list[str]:
        """Every items column the encoder reads."""
        tabular = [v.field for v in self.tabular.vocabularies] + [s.field for s in self.tabular.scalers]
        return [*self.text_fields, *tabular, *self.vector_dims]

    def transform(self, items: pd.DataFrame, text_encoder: TextEncoder | None) -> ItemFeatures:
        """Encode `items` row by row; text is None when there is no encoder or no text field."""
        require_columns(items, [*self.text_fields, *self.vector_dims], "items")
        tabular = self.tabular.transform(items, "items")
        text = None
        if text_encoder is not None and self.text_fields:
            text = text_encoder.encode(item_texts(items, self.text_fields), kind="passage")
        vectors = None
        if self.vector_dims:
            vectors = np.concatenate([_stack_vectors(items[name], dim) for name, dim in self.vector_dims.items()],
                                     axis=1)
        return ItemFeatures(**vars(tabular), text=text, vectors=vectors)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        raw = {"text_fields": self.text_fields, "vector_dims": self.vector_dims, **self.tabular.to_dict()}
        (directory / ENCODER_FILE).write_text(json.dumps(raw, indent=1))

    @classmethod
    def load(cls, directory: Path) -> ItemFeatureEncoder:
        path = Path(directory) / ENCODER_FILE
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFileError(f"cannot read the item feature encoder {path}: {exc}") from exc
        return cls(list(raw["text_fields"]), TabularEncoder.from_dict(raw),
                   {str(k): int(v) for k, v in raw["vector_dims"].items()})


def item_texts(items: pd.DataFrame, text_fields: list[str]) -> list[str]:
    """One text per item: its non-empty text values in field order joined by ". " (lists joined the same way)."""
    columns = [items[name].tolist() for name in text_fields]
    return [TEXT_SEPARATOR.join(value for cell in row for value in cell_values(cell)) for row in zip(*columns)]


def item_category_sets(items: pd.DataFrame, field: str) -> list[set[str]]:
    """The set of values of `field` for each item, in row order (empty set when missing), e.g. for diversity."""
    require_columns(items, [field], "items")
    return [set(cell_values(cell)) for cell in items[field]]


def _title_first(fields: list[str]) -> list[str]:
    return sorted(fields, key=lambda name: name != "title")


def _vector_width(column: pd.Series) -> int:
    widths = {len(cell) for cell in column if _is_vector(cell)}
    if len(widths) > 1:
        raise DataFileError(f"vector field '{column.name}' has rows of different lengths: {sorted(widths)}")
    if not widths:
        raise DataFileError(f"vector field '{column.name}' has no vectors")
    return widths.pop()


def _stack_vectors(column: pd.Series, dim: int) -> np.ndarray:
    out = np.zeros((len(column), dim), dtype=np.float32)
    for row, cell in enumerate(column):
        if _is_vector(cell):
            if len(cell) != dim:
                raise DataFileError(f"vector field '{column.name}' row {row} has length {len(cell)}, expected {dim}")
            out[row] = np.asarray(cell, dtype=np.float32)
    return out


def _is_vector(cell: object) -> bool:
    return isinstance(cell, (list, tuple, np.ndarray)) and len(cell) > 0

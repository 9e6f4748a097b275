"""The item tower: content (frozen text embedding, categorical bags, numeric values and bands) + item id, gated.

Item ids are shifted by one inside the tower: id 0 is the unknown id, used for items with no training events
(new items) and, with probability `id_dropout`, for any item during training, so that content alone learns to
give a good vector. The output is L2-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foryou.config import ModelConfig

UNKNOWN_ID = 0


@dataclass
class ItemInputs:
    """Content arrays for the catalog, row i = item_idx i; what the item tower reads besides ids.

    text: (n_items, d_text) float32 frozen text embeddings, or None.
    categorical: one (n_items, max_values) int64 array per field, values 1..cardinality, 0 = padding / unknown.
    cardinalities: number of distinct values per categorical field (excluding 0).
    numeric: (n_items, n_numeric) float32 standardised log-scaled values (0 where missing), or None.
    bands: (n_items, n_numeric) int64 quantile band 1..n_bands, 0 = missing; None when numeric is None.
    """

    n_items: int
    text: np.ndarray | None = None
    categorical: list[np.ndarray] = field(default_factory=list)
    cardinalities: list[int] = field(default_factory=list)
    numeric: np.ndarray | None = None
    bands: np.ndarray | None = None
    n_bands: int = 0

    def __post_init__(self) -> None:
        for name, array in (("text", self.text), ("numeric", self.numeric), ("bands", self.bands)):
            if array is not None and len(array) != self.n_items:
                raise ValueError(f"item inputs '{name}' have {len(array)} rows for {self.n_items} items")
        if len(self.categorical) != len(self.cardinalities):
            raise ValueError("item inputs need one cardinality per categorical field")


@dataclass
class ItemContent:
    """Content tensors of b items, in the layout of `ItemInputs` rows (categorical: one (b, width) per field)."""

    text: Tensor | None
    categorical: list[Tensor]
    numeric: Tensor | None
    bands: Tensor | None

    @classmethod
    def from_inputs(cls, inputs: ItemInputs, device: torch.device) -> ItemContent:
        def tensor(array: np.ndarray | None, dtype: torch.dtype) -> Tensor | None:
            return None if array is None else torch.as_tensor(array, dtype=dtype, device=device)

        return cls(tensor(inputs.text, torch.float32),
                   [torch.as_tensor(values, dtype=torch.long, device=device) for values in inputs.categorical],
                   tensor(inputs.numeric, torch.float32), tensor(inputs.bands, torch.long))


class ItemTower(nn.Module):
    """Encodes item indices (b,) into unit vectors (b, embedding_dim)."""

    ids: Tensor
    text_inputs: Tensor
    text_center: Tensor
    numeric_values: Tensor
    band_values: Tensor

    def __init__(self, inputs: ItemInputs, known: np.ndarray, config: ModelConfig, sparse_ids: bool = False) -> None:
        """`known` (n_items,) bool: items with training events get their own id embedding, others the unknown id;
        `sparse_ids`: the id table's gradient holds only the rows a step read (for steps that read few of them)."""
        super().__init__()
        dim, self.id_dropout = config.embedding_dim, config.id_dropout
        ids = np.where(known, np.arange(1, inputs.n_items + 1), UNKNOWN_ID)
        self.register_buffer("ids", torch.as_tensor(ids, dtype=torch.long), persistent=False)
        self.id_embedding = nn.Embedding(inputs.n_items + 1, dim, sparse=sparse_ids) if config.use_id else None
        self.text = self._text_part(inputs, config)
        self.categorical = nn.ModuleList()
        for position, (values, cardinality) in enumerate(zip(inputs.categorical, inputs.cardinalities)):
            if config.use_categorical:
                self.register_buffer(f"cat_{position}", torch.as_tensor(values, dtype=torch.long), persistent=False)
                self.categorical.append(nn.EmbeddingBag(cardinality + 1, dim, mode="mean", padding_idx=0))
        self.numeric = self.bands = None
        if config.use_numeric and inputs.numeric is not None and inputs.numeric.shape[1] > 0:
            self.register_buffer("numeric_values", torch.as_tensor(inputs.numeric, dtype=torch.float32), persistent=False)
            self.register_buffer("band_values", torch.as_tensor(inputs.bands, dtype=torch.long), persistent=False)
            self.numeric = nn.Linear(inputs.numeric.shape[1], dim)
            self.bands = nn.Embedding((inputs.n_bands + 1) * inputs.numeric.shape[1], dim, padding_idx=0)
        self.has_content = self.text is not None or len(self.categorical) > 0 or self.numeric is not None
        if not self.has_content and self.id_embedding is None:
            raise ValueError("the item tower has nothing to encode: enable model.use_id or give content features")
        self.gate = nn.Linear(2 * dim, dim) if self.has_content and self.id_embedding is not None else None
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=0.1)

    def _text_part(self, inputs: ItemInputs, config: ModelConfig) -> nn.Module | None:
        if not config.use_text or inputs.text is None or inputs.text.shape[1] == 0:
            return None
        text = torch.as_tensor(inputs.text, dtype=torch.float32)
        # Sentence embeddings share one large common direction (e5's pairwise cosines are ~0.9): the MLP reads
        # them centred on the catalog's mean and scaled to unit mean norm, so the differences between items are
        # what it sees from the first step. Both come from the catalog's inputs, so a loaded model recomputes them.
        present = text.abs().sum(1) > 0
        center = text[present].mean(0) if bool(present.any()) else torch.zeros(text.shape[1])
        spread = float((text[present] - center).norm(dim=1).mean()) if bool(present.any()) else 1.0
        self.register_buffer("text_center", center, persistent=False)
        self.text_scale = 1.0 / max(spread, 1e-6)
        # the catalog's inputs are fixed: prepared once here, not on every step of every epoch (a step reads the
        # whole catalog: these passes were ~2% of an epoch with content)
        self.register_buffer("text_inputs", self.text_input(text), persistent=False)
        return nn.Sequential(nn.Linear(inputs.text.shape[1], config.hidden_dim), nn.GELU(),
                             nn.Dropout(config.dropout), nn.Linear(config.hidden_dim, config.embedding_dim))

    def forward(self, items: Tensor, extra: Tensor | None = None) -> Tensor:
        """items (b,) item indices, extra (b, d) or None (added before normalising) -> (b, d) unit vectors."""
        return self._catalog_output(self._catalog_content(items), self.ids[items], extra)

    def all_items(self, extra: Tensor | None = None) -> Tensor:
        """(n_items, embedding_dim): every catalog item, read from the buffers as they are (no per-step copy of
        the frozen text matrix); extra (n_items, d) or None."""
        return self._catalog_output(self._catalog_content(None), self.ids, extra)

    def _catalog_output(self, content: ItemContent, ids: Tensor, extra: Tensor | None) -> Tensor:
        """Catalog rows: their content and tower ids, with id dropout while training."""
        vectors = self._content(content) if self.has_content else None
        if self.training and self.id_dropout > 0 and self.id_embedding is not None:
            ids = ids.masked_fill(torch.rand(ids.shape, device=ids.device) < self.id_dropout, UNKNOWN_ID)
        return self._output(vectors, ids, extra)

    def encode(self, content: ItemContent, ids: Tensor, extra: Tensor | None = None) -> Tensor:
        """Items given by their own content arrays (not catalog rows) and tower ids (b,), where UNKNOWN_ID (0)
        means "no trained id": how items outside the training catalog are encoded -> (b, d) unit vectors."""
        if content.text is not None and self.text is not None:
            content = replace(content, text=self.text_input(content.text))
        return self._output(self._content(content) if self.has_content else None, ids, extra)

    def text_input(self, text: Tensor) -> Tensor:
        """(b, text dim) raw text vectors -> what the text MLP reads: centred and scaled as the catalog's, a
        missing text (all zeros) left at zero."""
        present = (text != 0).any(dim=1, keepdim=True)
        return (text - self.text_center) * (self.text_scale * present)

    def _output(self, content: Tensor | None, ids: Tensor, extra: Tensor | None) -> Tensor:
        vector = self._fused(content, ids)
        return F.normalize(vector if extra is None else vector + extra, dim=-1)

    def _fused(self, content: Tensor | None, ids: Tensor) -> Tensor:
        if self.id_embedding is None:
            return content  # type: ignore[return-value]
        id_vector = self.id_embedding(ids)
        if content is None:
            return id_vector
        # both parts on the unit sphere first, so that only the gate (not the tables' scales) decides the mix
        content, id_vector = F.normalize(content, dim=-1), F.normalize(id_vector, dim=-1)
        gate = torch.sigmoid(self.gate(torch.cat([content, id_vector], dim=-1)))  # type: ignore[misc]
        return gate * content + (1 - gate) * id_vector

    def _catalog_content(self, items: Tensor | None) -> ItemContent:
        """The content arrays of catalog rows `items` (None: every row), read from the tower's buffers."""
        def rows(values: Tensor) -> Tensor:
            return values if items is None else values[items]

        return ItemContent(
            text=rows(self.text_inputs) if self.text is not None else None,
            categorical=[rows(getattr(self, f"cat_{position}")) for position in range(len(self.categorical))],
            numeric=rows(self.numeric_values) if self.numeric is not None else None,
            bands=rows(self.band_values) if self.numeric is not None else None,
        )

    def _content(self, content: ItemContent) -> Tensor:
        """-> (b, embedding_dim): the sum of the text (as `text_input` prepares it), categorical and numeric parts
        (before the gate)."""
        parts = []
        if self.text is not None and content.text is not None:
            parts.append(self.text(content.text))
        for bag, values in zip(self.categorical, content.categorical):
            parts.append(bag(values))
        if self.numeric is not None and self.bands is not None and content.numeric is not None:
            bands = content.bands
            assert bands is not None
            offsets = torch.arange(bands.shape[1], device=bands.device) * (self.bands.num_embeddings // bands.shape[1])
            band_ids = torch.where(bands > 0, bands + offsets, torch.zeros_like(bands))
            parts.append(self.numeric(content.numeric) + self.bands(band_ids).sum(1))
        return torch.stack(parts).sum(0)

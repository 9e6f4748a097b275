"""Item-item kNN on cosine similarity (implicit's CosineRecommender), scores = history @ similarity.

Supports `score_histories`: a new user's score is the sum of the similarities of their items' neighbours.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import CosineRecommender
from implicit.utils import ParameterWarning

from foryou.data.dataset import Dataset
from foryou.models.baselines.history import ItemItemRecommender, interaction_item_vectors


class ItemKNN(ItemItemRecommender):
    """Each item keeps its `neighbours` most cosine-similar items; repeats in the history count once."""

    name = "item_knn"

    def __init__(self, neighbours: int = 50, num_threads: int = 1) -> None:
        if neighbours < 1:
            raise ValueError(f"neighbours must be a positive integer, got {neighbours!r}")
        super().__init__()
        self.neighbours = int(neighbours)
        self.num_threads = int(num_threads)
        self.similarity: sp.csr_matrix | None = None

    def params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "num_threads": self.num_threads}

    def _fit(self, dataset: Dataset) -> None:
        knn = CosineRecommender(K=self.neighbours, num_threads=self.num_threads)
        with warnings.catch_warnings():  # implicit converts its own transposed COO copy and warns about it
            warnings.simplefilter("ignore", ParameterWarning)
            knn.fit(dataset.user_item_matrix(binary=True), show_progress=False)
        self.similarity = sp.csr_matrix(knn.similarity, dtype=np.float32)

    def item_item_factors(self) -> tuple[np.ndarray | sp.spmatrix, ...]:
        assert self.similarity is not None
        return (self.similarity,)

    def item_embeddings(self) -> np.ndarray:
        """Columns of the binary user-item matrix: their cosine is the (untruncated) kNN similarity."""
        self._check_fitted()
        assert self.seen is not None
        return interaction_item_vectors(self.seen)

    def _save_state(self, directory: Path) -> None:
        sp.save_npz(directory / "similarity.npz", self.similarity)

    def _load_state(self, directory: Path) -> None:
        self.similarity = sp.load_npz(directory / "similarity.npz").tocsr()

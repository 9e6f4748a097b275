"""Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) through implicit's CPU ALS.

Fitted on the binary user-item matrix (confidence 1 + alpha per seen pair). Supports `score_histories`
via implicit's `recalculate_user`: one least-squares solve against the fixed item factors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from foryou.data.dataset import Dataset
from foryou.models.base import Recommender
from foryou.models.baselines.history import check_histories


class ALS(Recommender):
    """scores = user_factors @ item_factors.T; item factors are the item embeddings."""

    name = "als"

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 0.01,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        super().__init__()
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.seed = int(seed)
        self.num_threads = int(num_threads)
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None
        self._fold_in: AlternatingLeastSquares | None = None

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def _solver(self) -> AlternatingLeastSquares:
        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.num_threads,
        )

    def _fit(self, dataset: Dataset) -> None:
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; a BLAS pool on top only contends
            solver = self._solver()  # (built inside: implicit checks the BLAS pool when it is constructed)
            solver.fit(dataset.user_item_matrix(binary=True), show_progress=False)
        self.user_factors = np.asarray(solver.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(solver.item_factors, dtype=np.float32)
        self._fold_in = None

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        assert self.user_factors is not None and self.item_factors is not None
        return self.user_factors[user_idx] @ self.item_factors.T

    def score_histories(self, histories: sp.spmatrix) -> np.ndarray:
        """(b, n_items) scores for users unknown at train time: fold their histories in, item factors fixed."""
        matrix = check_histories(histories, self.n_items)
        assert self.item_factors is not None
        if self._fold_in is None:  # one solver per fit: it caches Y^T Y, the bulk of a fold-in's cost
            with threadpool_limits(1, "blas"):
                self._fold_in = self._solver()
            self._fold_in.item_factors = self.item_factors
        vectors = self._fold_in.recalculate_user(np.arange(matrix.shape[0]), matrix)
        return np.asarray(vectors, dtype=np.float32).reshape(matrix.shape[0], -1) @ self.item_factors.T

    def item_embeddings(self) -> np.ndarray:
        self._check_fitted()
        assert self.item_factors is not None
        return self.item_factors

    def _save_state(self, directory: Path) -> None:
        assert self.user_factors is not None and self.item_factors is not None
        np.save(directory / "user_factors.npy", self.user_factors)
        np.save(directory / "item_factors.npy", self.item_factors)

    def _load_state(self, directory: Path) -> None:
        self.user_factors = np.load(directory / "user_factors.npy")
        self.item_factors = np.load(directory / "item_factors.npy")
        self._fold_in = None

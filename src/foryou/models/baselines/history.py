"""Helpers shared by the baselines: validated user histories, interaction-based item vectors, and the base of
models that score a history through an item x item matrix (ItemKNN, EASE)."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import scipy.sparse as sp

from foryou.models.base import Recommender
from foryou.models.sparse_rows import row_product


def check_histories(histories: sp.spmatrix, n_items: int) -> sp.csr_matrix:
    """Binary float32 CSR (b, n_items) of the given histories; a wrong width is a ValueError naming both sizes.

    Repeats count once, so a history scores the same as the binary matrix the model was fitted on.
    """
    matrix = sp.csr_matrix(histories, dtype=np.float32, copy=True)
    if matrix.shape[1] != n_items:
        raise ValueError(f"histories have {matrix.shape[1]} item columns but the model knows {n_items} items")
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def interaction_item_vectors(seen: sp.csr_matrix) -> np.ndarray:
    """(n_items, n_users) float32: each item's column of the binary user-item matrix.

    Their cosine is the item-item co-occurrence cosine that ItemKNN ranks by, so similar_items of models
    without learned item vectors means "bought/watched by the same users". Dense: O(n_items * n_users) memory.
    """
    return np.asarray(seen.T.toarray(), dtype=np.float32)


class ItemItemRecommender(Recommender):
    """Scores = binary history (b, n_items) @ an (n_items, n_items) item-item matrix, kept as the product of one
    or more factors (a sparse EASE's two sparse factors are far smaller than their product); supports
    score_histories."""

    @abstractmethod
    def item_item_factors(self) -> tuple[np.ndarray | sp.spmatrix, ...]:
        """The fitted factors whose product (left to right) is the (n_items, n_items) item-item matrix."""

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        assert self.seen is not None
        factors = self.item_item_factors()
        if len(user_idx) == 1 and 0 <= user_idx[0] < self.seen.shape[0] and len(factors) == 1:
            # a request: the product of the user's stored entries, without building a scipy row
            user = int(user_idx[0])
            start, end = self.seen.indptr[user], self.seen.indptr[user + 1]
            row = row_product(self.seen.indices[start:end], self.seen.data[start:end], factors[0])
            return np.asarray(row[None, :], dtype=np.float32)
        return self._score(self.seen[user_idx])

    def score_histories(self, histories: sp.spmatrix) -> np.ndarray:
        """(b, n_items) scores for users unknown at train time from their item histories (b, n_items)."""
        return self._score(check_histories(histories, self.n_items))

    def _score(self, histories: sp.csr_matrix) -> np.ndarray:
        return dense_product((histories, *self.item_item_factors()))


def dense_product(matrices: tuple[np.ndarray | sp.spmatrix, ...]) -> np.ndarray:
    """The float32 array of the left-to-right product of dense and sparse matrices (sparse while both are).
    One history through one matrix (a request to ItemKNN or a dense EASE) takes `row_product`, the same numbers."""
    product = matrices[0]
    if len(matrices) == 2 and isinstance(product, sp.csr_matrix) and product.shape[0] == 1 and (
            isinstance(matrices[1], (sp.csr_matrix, np.ndarray))):
        return np.asarray(row_product(product.indices, product.data, matrices[1])[None, :], dtype=np.float32)
    for matrix in matrices[1:]:
        product = product @ matrix
    if isinstance(product, (sp.spmatrix, sp.sparray)):
        return np.asarray(product.toarray(), dtype=np.float32)
    return np.asarray(product, dtype=np.float32)

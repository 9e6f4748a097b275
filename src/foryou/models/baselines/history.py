"""Helpers shared by the baselines: validated user histories and interaction-based item vectors."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


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

"""EASE against its closed form on a 3x3 example."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import build_dataset

from foryou.models.baselines import EASE
from foryou.models.baselines.ease import ease_weights


def test_ease_weights_match_closed_form_by_hand() -> None:
    # X = [[1,1,0],[0,1,1],[1,1,1]], lambda = 1
    # X^T X = [[2,2,1],[2,3,2],[1,2,2]]; G = X^T X + I = [[3,2,1],[2,4,2],[1,2,3]]; det(G) = 16
    # P = G^-1 = adj(G)/16 = [[8,-4,0],[-4,8,-4],[0,-4,8]] / 16
    # B_ij = -P_ij / P_jj = -P_ij / 0.5 -> B = [[0, .5, 0], [.5, 0, .5], [0, .5, 0]]
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=np.float32))
    expected = np.array([[0, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0]])
    np.testing.assert_allclose(ease_weights(x, 1.0), expected, atol=1e-6)


def test_ease_weights_match_numpy_inverse_on_random_data() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 12)) < 0.3).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 25.0 * np.eye(12))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(x), 25.0), expected, atol=1e-6)


def test_ease_scores_are_history_times_weights() -> None:
    # same X as above: user 0 saw items 0 and 1 -> scores = B[0] + B[1] = [.5, .5, .5]; item 2 is the only unseen
    dataset = build_dataset(
        [(0, 0, 0), (0, 1, 1), (1, 1, 2), (1, 2, 3), (2, 0, 4), (2, 1, 5), (2, 2, 6)],
        n_users=3,
        n_items=3,
        categories=["x"] * 3,
    )
    model = EASE(l2=1.0).fit(dataset)
    ids, scores = model.recommend(["u00"], k=3)
    assert list(ids[0]) == ["i02"]
    np.testing.assert_allclose(scores[0], [0.5], atol=1e-6)
    np.testing.assert_allclose(
        model.score_histories(sp.csr_matrix([[0.0, 0.0, 3.0]])), [[0, 0.5, 0]], atol=1e-6
    )


def test_ease_rejects_non_positive_lambda() -> None:
    with pytest.raises(ValueError, match="l2 \\(lambda\\) must be positive"):
        EASE(l2=0.0)

"""ItemKNN on the checkerboard: users of block A get block A items, and B likewise."""

import numpy as np
import pytest
import scipy.sparse as sp

from foryou.models.baselines import ItemKNN


def test_checkerboard_users_get_their_block(tiny_dataset) -> None:
    # K = 10 keeps every co-occurring item (a block has 10), so all 5 unseen items of the user's block score > 0
    model = ItemKNN(neighbours=10).fit(tiny_dataset)
    users = [f"u{index:02d}" for index in range(30)]
    ids, scores = model.recommend(users, k=5)
    for index, (row, row_scores) in enumerate(zip(ids, scores)):
        block = "A" if index < 15 else "B"
        wanted = {f"i{i:02d}" for i in (range(10) if block == "A" else range(10, 20))}
        assert set(row) <= wanted, (index, row)
        assert np.all(row_scores > 0)


def test_no_cross_block_similarity(tiny_dataset) -> None:
    model = ItemKNN(neighbours=20).fit(tiny_dataset)
    similarity = model.similarity.toarray()
    # users never mix blocks, so no item of A co-occurs with an item of B
    assert np.all(similarity[:10, 10:] == 0) and np.all(similarity[10:, :10] == 0)
    assert similarity[:10, :10].sum() > 0


def test_score_histories_matches_known_user(tiny_dataset) -> None:
    model = ItemKNN(neighbours=5).fit(tiny_dataset)
    # u03 clicked items 3..7; a new user with the same history (one repeated) gets the same scores
    history = sp.csr_matrix(([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], ([0] * 6, [3, 4, 5, 6, 7, 7])), shape=(1, 20))
    np.testing.assert_allclose(model.score_histories(history), model.score_users(np.array([3])), rtol=1e-6)


def test_item_knn_rejects_zero_neighbours() -> None:
    with pytest.raises(ValueError, match="neighbours must be a positive integer"):
        ItemKNN(neighbours=0)

"""The item-item models (ItemKNN, EASE) score a request's one user as the evaluation scores users in batches."""

import numpy as np
import pytest

from foryou.models.baselines import EASE, ItemKNN


@pytest.mark.parametrize("model", [ItemKNN(neighbours=5), EASE(l2=10.0)], ids=["item_knn", "ease"])
def test_one_user_scores_are_the_batch_row_bit_for_bit(tiny_dataset, model) -> None:
    # a request scores one user from the entries of their row; the evaluation scores users in batches
    model.fit(tiny_dataset)
    batch = model.score_users(np.arange(30))
    for user in range(30):
        one = model.score_users(np.array([user]))
        assert one.shape == (1, 20) and one.dtype == np.float32 and np.array_equal(one[0], batch[user])

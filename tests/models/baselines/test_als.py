"""ALS on the checkerboard and folding in a new user's history."""

import numpy as np
import scipy.sparse as sp

from foryou.models.baselines import ALS


def test_checkerboard_users_get_their_block(tiny_dataset) -> None:
    model = ALS(factors=4, regularization=0.01, alpha=10.0, iterations=15, seed=0).fit(tiny_dataset)
    ids, _ = model.recommend(["u02", "u22"], k=3)
    assert {int(item[1:]) < 10 for item in ids[0]} == {True}
    assert {int(item[1:]) >= 10 for item in ids[1]} == {True}


def test_score_histories_folds_in_a_new_user(tiny_dataset) -> None:
    model = ALS(factors=4, regularization=0.01, alpha=10.0, iterations=15, seed=0).fit(tiny_dataset)
    history = sp.csr_matrix((np.ones(5), ([0] * 5, [11, 12, 13, 14, 15])), shape=(1, 20))
    scores = model.score_histories(history)[0]
    scores[11:16] = -np.inf
    # a user of block B: the best unseen items are in block B
    assert set(np.argsort(-scores)[:3]) <= set(range(10, 20))
    # folding in a known user's own history reproduces (approximately) their learned scores
    own = model.seen[np.array([22])]
    np.testing.assert_allclose(model.score_histories(own), model.score_users(np.array([22])), atol=0.05)

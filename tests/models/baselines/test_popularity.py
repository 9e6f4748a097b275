"""Known answers for MostPop and RecentPop on hand-counted events."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import build_dataset

from foryou.models.baselines import MostPop, RecentPop

# (user, item, day): item 0 has 3 events (one a repeat of user 0), item 1 has 2, item 2 has 1, item 3 none
EVENTS = [(0, 0, 0.0), (0, 0, 1.0), (1, 0, 2.0), (1, 1, 8.0), (2, 1, 9.0), (2, 2, 10.0)]


@pytest.fixture
def four_items():
    return build_dataset(EVENTS, n_users=3, n_items=4, categories=["x"] * 4)


def test_most_pop_counts_events_with_repeats(four_items) -> None:
    model = MostPop().fit(four_items)
    np.testing.assert_array_equal(model.popularity, [3.0, 2.0, 1.0, 0.0])
    # user 2 saw items 1 and 2 -> left: item 0 (3 events) then item 3 (0 events)
    ids, scores = model.recommend(["u02"], k=5)
    np.testing.assert_array_equal(ids[0], ["i00", "i03"])
    np.testing.assert_array_equal(scores[0], [3.0, 0.0])


def test_recent_pop_decays_with_half_life(four_items) -> None:
    model = RecentPop(half_life_days=1.0).fit(four_items)
    # latest event is day 10; weight = 0.5 ** (10 - day)
    # item 0: 0.5**10 + 0.5**9 + 0.5**8 = 0.0068359375; item 1: 0.5**2 + 0.5**1 = 0.75; item 2: 1.0
    np.testing.assert_allclose(model.popularity, [0.0068359375, 0.75, 1.0, 0.0], rtol=1e-6)
    assert list(model.recommend(["u00"], k=3)[0][0]) == ["i02", "i01", "i03"]


def test_recent_pop_rejects_non_positive_half_life() -> None:
    with pytest.raises(ValueError, match="half_life_days must be positive"):
        RecentPop(half_life_days=0)


def test_score_histories_is_popularity_and_checks_width(four_items) -> None:
    model = MostPop().fit(four_items)
    scores = model.score_histories(sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0]])))
    np.testing.assert_array_equal(scores, [[3, 2, 1, 0], [3, 2, 1, 0]])
    with pytest.raises(ValueError, match="histories have 3 item columns but the model knows 4 items"):
        model.score_histories(sp.csr_matrix((1, 3)))

"""top_k: excluded (-inf / NaN) entries never come back, ties follow the fixed tie order."""

import numpy as np

from foryou.models.ranking import tie_break_order, top_k


def test_minus_inf_and_nan_are_never_returned() -> None:
    # regression: np.nan_to_num used to turn -inf into -3.4e38, so excluded items were ranked last, not dropped
    scores = np.array([[3.0, -np.inf, 1.0, np.nan]], dtype=np.float32)
    indices, values = top_k(scores, 4, np.arange(4))
    np.testing.assert_array_equal(indices, [[0, 2, -1, -1]])
    np.testing.assert_array_equal(values, np.array([[3.0, 1.0, -np.inf, -np.inf]], dtype=np.float32))


def test_ties_broken_by_tie_order_not_item_index() -> None:
    # all equal: the order is argsort(tie_order) = [2, 0, 1]
    indices, _ = top_k(np.zeros((1, 3), dtype=np.float32), 3, np.array([1, 2, 0]))
    np.testing.assert_array_equal(indices, [[2, 0, 1]])
    assert sorted(tie_break_order(5)) == [0, 1, 2, 3, 4]

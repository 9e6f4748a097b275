"""Event weights: per-type weights, the default weight, and the three rating modes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from foryou.config import EventsConfig
from foryou.data import schema as S
from foryou.data.weights import apply_event_weights

LOG = pd.DataFrame({
    S.USER_ID: ["u"] * 5, S.ITEM_ID: list("abcde"),
    S.EVENT_TYPE: ["view", "purchase", "rating", "rating", "share"],
    S.VALUE: [np.nan, 2.0, 5.0, 3.0, np.nan],
})


def test_weights_per_type_and_default() -> None:
    # view 1, purchase 10 (quantity ignored), rating 1 (mode all), share unlisted -> default 0.5.
    frame, removed = apply_event_weights(LOG, EventsConfig.model_validate({"default_weight": 0.5}))
    assert frame[S.WEIGHT].dtype == np.float32
    assert frame[S.WEIGHT].tolist() == [1.0, 10.0, 1.0, 1.0, 0.5]
    assert removed == 0


def test_rating_threshold_removes_and_counts_low_ratings() -> None:
    # threshold 4: the 3.0 rating (item d) is removed; the 5.0 one stays with the rating weight 2.
    config = EventsConfig.model_validate({"rating_mode": "threshold", "rating_threshold": 4.0, "weights": {"rating": 2.0}})
    frame, removed = apply_event_weights(LOG, config)
    assert removed == 1
    assert frame[S.ITEM_ID].tolist() == ["a", "b", "c", "e"]
    assert frame[S.WEIGHT].tolist() == [1.0, 1.0, 2.0, 1.0]  # view/purchase/share unlisted -> default 1


def test_rating_weight_mode_uses_the_rating() -> None:
    frame, removed = apply_event_weights(LOG, EventsConfig.model_validate({"rating_mode": "weight"}))
    assert frame[S.WEIGHT].tolist() == [1.0, 10.0, 5.0, 3.0, 1.0] and removed == 0

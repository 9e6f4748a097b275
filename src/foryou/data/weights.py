"""Event weights: how much one event says about a user's taste, from `EventsConfig`.

A purchase says more than a view, so each event type gets a weight (`events.weights`, else
`events.default_weight`). Ratings follow `events.rating_mode`:
  all       every rating is a positive, weighted like any event of type "rating";
  threshold only ratings >= `rating_threshold` are positives; the others are removed (and counted);
  weight    the rating value itself is the weight (a 5-star rating counts five times a 1-star one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from foryou.config import EventsConfig
from foryou.data import schema as S


def apply_event_weights(interactions: pd.DataFrame, events: EventsConfig) -> tuple[pd.DataFrame, int]:
    """(interactions with a float32 `weight` column, rating rows removed by the threshold).

    Rating rows need a finite `value` in the threshold and weight modes (cleaning quarantines the others).
    """
    frame = interactions
    is_rating = (frame[S.EVENT_TYPE] == S.RATING).to_numpy()
    removed = 0
    if events.rating_mode == "threshold":
        below = is_rating & ~(frame[S.VALUE].to_numpy(dtype=np.float64) >= events.rating_threshold)
        removed = int(below.sum())
        frame = frame.loc[~below]
        is_rating = is_rating[~below]
    weight = frame[S.EVENT_TYPE].map(events.weights).fillna(events.default_weight).to_numpy(dtype=np.float64)
    if events.rating_mode == "weight":
        weight = np.where(is_rating, frame[S.VALUE].to_numpy(dtype=np.float64), weight)
    frame = frame.assign(**{S.WEIGHT: weight.astype(np.float32)})
    return frame.reset_index(drop=True), removed


def value_required(events: EventsConfig) -> bool:
    """Whether rating events need a finite value under this config."""
    return events.rating_mode in ("threshold", "weight")

"""A 3-user, 5-item shop with categories, brands, prices, titles and event types, for ranking-stage tests.

Events (user, item, day after START, event type); the cut used by the tests is day 10, so u2's view of item 0 on
day 20 lies after it:
  u0: i0 d0 purchase, i2 d2 view, i1 d8 purchase
  u1: i0 d1 view, i1 d3 purchase, i2 d4 view, i3 d9 view
  u2: i2 d5 purchase, i3 d6 purchase, i0 d20 view
Items: i0 Gold Hoop Earrings (Jewellery, Aurum, 20), i1 Silver Ring (Jewellery, Aurum, 30),
       i2 Linen Cushion (Home Decor, Nest, 15), i3 Oak Frame (Home Decor, Nest, 40), i4 Wool Scarf (Clothing, -, -)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from foryou.data import schema as S
from foryou.data.dataset import Dataset, Manifest

START = pd.Timestamp("2024-01-01", tz="UTC")
P, V = S.PURCHASE, S.VIEW
EVENTS = [(0, 0, 0, P), (0, 2, 2, V), (0, 1, 8, P),
          (1, 0, 1, V), (1, 1, 3, P), (1, 2, 4, V), (1, 3, 9, V),
          (2, 2, 5, P), (2, 3, 6, P), (2, 0, 20, V)]
TITLES = ["Gold Hoop Earrings", "Silver Ring", "Linen Cushion", "Oak Frame", "Wool Scarf"]
CATEGORIES = ["Jewellery", "Jewellery", "Home Decor", "Home Decor", "Clothing"]
BRANDS = ["Aurum", "Aurum", "Nest", "Nest", None]
PRICES = [20.0, 30.0, 15.0, 40.0, np.nan]


def day(offset: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=offset)


def toy_shop(events: list[tuple[int, int, float, str]] | None = None) -> Dataset:
    rows = sorted(EVENTS if events is None else events, key=lambda event: (event[0], event[2]))
    users, items, days, kinds = zip(*rows)
    interactions = pd.DataFrame({
        S.USER_IDX: np.array(users, np.int64), S.ITEM_IDX: np.array(items, np.int64),
        S.TIMESTAMP: [day(float(d)) for d in days], S.EVENT_TYPE: list(kinds), S.VALUE: 1.0, S.WEIGHT: 1.0,
        S.SPLIT: "train", S.COLD_USER: False, S.COLD_ITEM: False, S.SOURCE_ORDER: np.arange(len(rows)),
    })
    interactions[S.TIMESTAMP] = pd.to_datetime(interactions[S.TIMESTAMP], utc=True)
    item_table = pd.DataFrame({S.ITEM_IDX: np.arange(5), S.ITEM_ID: [f"i{i}" for i in range(5)], "title": TITLES,
                               "category": CATEGORIES, "brand": BRANDS, "price": PRICES})
    user_table = pd.DataFrame({S.USER_IDX: np.arange(3), S.USER_ID: ["u0", "u1", "u2"]})
    manifest = Manifest(source="toy_shop", counts={"interactions": len(rows), "items": 5, "users": 3},
                        item_fields={"text": ["title"], "categorical": ["category", "brand"], "numeric": ["price"]},
                        user_fields={}, config={}, input_hashes={})
    return Dataset(interactions, item_table, user_table, manifest)


def toy_candidates() -> pd.DataFrame:
    """Five (user, item) candidates with a made-up cooccurrence source (u0 / i4 and u2 / i1 not proposed by it)."""
    return pd.DataFrame({S.USER_IDX: [0, 0, 1, 2, 2], S.ITEM_IDX: [3, 4, 2, 0, 1],
                         "cooccurrence_score": [2.0, np.nan, 1.0, 2.0, np.nan],
                         "cooccurrence_rank": [1, 3, 1, 1, 3]})

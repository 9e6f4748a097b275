"""The cold-item protocol: hide a random share of items from training entirely, keep them in the catalog.

Their train and validation events are removed; their test events stay, so the evaluation's "cold items" segment
measures how well a model ranks items it could only know from their content.
"""

from __future__ import annotations

import numpy as np

from foryou.data import schema as S
from foryou.data.dataset import Dataset


def hold_out_items(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """(dataset without any train/valid event of the held-out items, sorted held-out item indices)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    n_cold = max(1, round(fraction * dataset.n_items))
    cold = np.sort(rng.choice(dataset.n_items, size=n_cold, replace=False))
    events = dataset.interactions
    hidden = events[S.ITEM_IDX].isin(cold) & events[S.SPLIT].isin(("train", "valid"))
    kept = events[~hidden].reset_index(drop=True)
    return Dataset(kept, dataset.items, dataset.users, dataset.manifest, dataset.evaluated_users), cold

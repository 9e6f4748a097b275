"""The one item space in which every strategy's intra-list diversity is measured.

Measured in each model's own vectors (two-tower outputs, EASE rows, ALS factors) the diversity row compares
nothing, and a ranking-stage strategy has no item vectors at all. So the report measures every strategy in the
catalog's content when it has any (frozen text embeddings, precomputed vector fields), else in the two-tower's
item vectors, and says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foryou.config import FeaturesConfig
from foryou.data.dataset import Dataset
from foryou.features import ItemFeatureEncoder, TextEncoder
from foryou.models.ranking import unit_rows


@dataclass(frozen=True)
class DiversitySpace:
    """vectors (n_items, d) float32, row = item_idx; an all-zero row is an item without content, whose pairs
    are left out of the diversity. description: the space in words, for the report."""

    vectors: np.ndarray
    description: str


def content_space(dataset: Dataset, features: FeaturesConfig) -> DiversitySpace | None:
    """The catalog's text embedding and vector fields, each scaled to unit rows and set side by side (so the
    cosine is the mean of the parts' cosines); None when the catalog has neither or every row is empty."""
    roles = dataset.item_fields
    encoder = ItemFeatureEncoder.fit(dataset.items, roles, features)
    text_encoder = TextEncoder(features.encoder, features.cache_dir, features.encoder_batch_size) \
        if encoder.text_fields else None
    encoded = encoder.transform(dataset.items, text_encoder)
    parts = {f"text of {', '.join(encoder.text_fields)} embedded by {features.encoder}": encoded.text,
             f"vector fields {', '.join(roles.vector)}": encoded.vectors}
    present = {name: unit_rows(part) for name, part in parts.items() if part is not None}
    if not present:
        return None
    vectors = np.concatenate(list(present.values()), axis=1) / np.sqrt(len(present))
    with_content = int((np.abs(vectors).sum(axis=1) > 0).sum())
    if with_content == 0:
        return None
    description = (f"the catalog's content ({'; '.join(present)}), {with_content:,} of {len(vectors):,} items "
                   "with content; pairs with an item without content are left out")
    return DiversitySpace(vectors.astype(np.float32), description)


def diversity_space(dataset: Dataset, features: FeaturesConfig,
                    two_tower_vectors: Callable[[], np.ndarray]) -> DiversitySpace:
    """`content_space`, else the two-tower's item vectors (asked for only then): the space of every strategy."""
    content = content_space(dataset, features)
    if content is not None:
        return content
    return DiversitySpace(np.asarray(two_tower_vectors(), dtype=np.float32),
                          "the two-tower's item vectors (the catalog has no text or vector field)")

"""Turns a dataset's catalog into the `ItemInputs` arrays the item tower reads, via foryou.features."""

from __future__ import annotations

import numpy as np

from foryou.config import FeaturesConfig, ModelConfig
from foryou.data.dataset import Dataset
from foryou.features import ItemFeatureEncoder, ItemFeatures, TextEncoder
from foryou.models.item_tower import ItemInputs


def build_item_inputs(dataset: Dataset, model: ModelConfig, features: FeaturesConfig) -> ItemInputs:
    """ItemInputs for every catalog item (row = item_idx); the text encoder is loaded only when text is used."""
    roles = dataset.item_fields
    encoder = ItemFeatureEncoder.fit(dataset.items, roles, features)
    text_encoder = None
    if model.use_text and roles.text:
        text_encoder = TextEncoder(features.encoder, features.cache_dir, features.encoder_batch_size)
    return item_inputs(encoder.transform(dataset.items, text_encoder), model)


def item_inputs(encoded: ItemFeatures, model: ModelConfig) -> ItemInputs:
    """Frozen dense parts (text and precomputed vectors) side by side; categorical fields as padded code lists."""
    dense = [part for part in (encoded.text if model.use_text else None, encoded.vectors) if part is not None]
    numeric = encoded.numeric if model.use_numeric and encoded.numeric.shape[1] else None
    fields = list(encoded.categorical) if model.use_categorical else []
    return ItemInputs(
        n_items=len(encoded),
        text=np.concatenate(dense, axis=1).astype(np.float32) if dense else None,
        categorical=[encoded.categorical[name] for name in fields],
        cardinalities=[encoded.cardinalities[name] for name in fields],
        numeric=numeric,
        bands=encoded.numeric_bands if numeric is not None else None,
        n_bands=max(encoded.band_counts, default=0),
    )

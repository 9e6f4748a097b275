"""Turns a dataset's catalog into the `ItemInputs` arrays the item tower reads, via foryou.features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from foryou.config import FeaturesConfig, ModelConfig
from foryou.data.dataset import Dataset
from foryou.features import ItemFeatureEncoder, ItemFeatures, TextEncoder
from foryou.models.item_tower import ItemInputs


def build_item_inputs(dataset: Dataset, model: ModelConfig,
                      features: FeaturesConfig) -> tuple[ItemFeatureEncoder, ItemInputs]:
    """The fitted feature encoder (kept to encode items added later) and ItemInputs for every catalog item
    (row = item_idx)."""
    encoder = ItemFeatureEncoder.fit(dataset.items, dataset.item_fields, features)
    return encoder, encode_item_inputs(encoder, dataset.items, model, text_encoder_for(encoder, model, features))


def encode_item_inputs(encoder: ItemFeatureEncoder, items: pd.DataFrame, model: ModelConfig,
                       text_encoder: TextEncoder | None) -> ItemInputs:
    """ItemInputs of any items table through a fitted encoder; fields it lacks count as missing values.
    `text_encoder` (see `text_encoder_for`) is kept by the caller, so a service loads the text model once."""
    missing = [name for name in encoder.fields() if name not in items.columns]
    if missing:
        items = items.assign(**{name: None for name in missing})
    return item_inputs(encoder.transform(items, text_encoder), model)


def text_encoder_for(encoder: ItemFeatureEncoder, model: ModelConfig, features: FeaturesConfig) -> TextEncoder | None:
    """The text encoder the item tower reads from, or None when the model uses no text."""
    if model.use_text and encoder.text_fields:
        return TextEncoder(features.encoder, features.cache_dir, features.encoder_batch_size)
    return None


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

"""The saved model bundle: what `foryou recommend` and the service load once and answer from.

Layout:
  bundle.json   format version, foryou version, model name, config, data manifest summary, test metrics
  model/        the main Recommender (Recommender.save)
  fallback/     a popularity model for users the main model cannot place
  items.parquet the catalog (item_id + fields) to show and filter recommendations
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

import foryou
from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.errors import DataFileError
from foryou.models.base import Recommender

BUNDLE_VERSION = 1


@dataclass
class Bundle:
    model: Recommender
    fallback: Recommender
    items: pd.DataFrame
    meta: dict[str, Any]

    def describe_items(self, item_ids: list[str]) -> list[str]:
        """A short human label per item: its first text field, else its id."""
        text_fields = self.meta.get("item_fields", {}).get("text", [])
        if not text_fields or text_fields[0] not in self.items:
            return list(item_ids)
        labels = self.items.set_index("item_id")[text_fields[0]]
        return [str(labels.get(item, item)) for item in item_ids]


def save_bundle(
    directory: Path,
    model: Recommender,
    fallback: Recommender,
    dataset: Dataset,
    config: RunConfig,
    metrics: dict[str, float],
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model")
    fallback.save(directory / "fallback")
    dataset.items.to_parquet(directory / "items.parquet", index=False)
    meta = {
        "bundle_version": BUNDLE_VERSION,
        "foryou_version": foryou.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "model": model.name,
        "fallback": fallback.name,
        "item_fields": dataset.manifest.item_fields,
        "data": {"source": dataset.manifest.source, "counts": dataset.manifest.counts,
                 "input_hashes": dataset.manifest.input_hashes},
        "test_metrics": metrics,
        "config": json.loads(config.model_dump_json()),
    }
    (directory / "bundle.json").write_text(json.dumps(meta, indent=2))
    return directory


def load_bundle(directory: Path | str) -> Bundle:
    directory = Path(directory)
    meta_path = directory / "bundle.json"
    if not meta_path.exists():
        raise DataFileError(f"{directory} is not a foryou bundle (no bundle.json); run `foryou pipeline` first")
    meta = json.loads(meta_path.read_text())
    if meta.get("bundle_version") != BUNDLE_VERSION:
        raise DataFileError(
            f"bundle {directory} has format version {meta.get('bundle_version')}, this foryou reads {BUNDLE_VERSION}"
        )
    return Bundle(
        model=Recommender.load(directory / "model"),
        fallback=Recommender.load(directory / "fallback"),
        items=pd.read_parquet(directory / "items.parquet"),
        meta=meta,
    )

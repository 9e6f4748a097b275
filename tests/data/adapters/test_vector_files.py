"""Precomputed item vectors from an .npy and its ids file: read by id, fused into the item tower, and enough on
their own (no ids, no text) to place a cold item and keep a shopper inside the cluster they buy from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from foryou.config import DataConfig, TableMapping, VectorFile, load_config
from foryou.data.adapters import generic
from foryou.data.prepare import prepare_dataset
from foryou.errors import DataFileError
from foryou.models.two_tower import TwoTower

CLUSTERS, ITEMS_PER_CLUSTER, DIM = 2, 12, 8


def write_vectors(root: Path, ids: list[str], array: np.ndarray) -> VectorFile:
    np.save(root / "image.npy", array)
    (root / "image_ids.txt").write_text("\n".join(ids) + "\n")
    return VectorFile(path=root / "image.npy", ids=root / "image_ids.txt")


def items_mapping(root: Path, vectors: VectorFile) -> DataConfig:
    (root / "events.csv").write_text("user,sku,ts\nu1,a,1700000000\nu1,b,1700000060\n")
    (root / "items.csv").write_text("sku,title\na,first\nb,second\nc,third\n")
    return DataConfig(source="generic",
                      interactions=TableMapping(path=root / "events.csv", event_type="view",
                                                columns={"user_id": "user", "item_id": "sku", "timestamp": "ts"}),
                      items=TableMapping(path=root / "items.csv", columns={"item_id": "sku"}, text=["title"],
                                         vector_files={"image": vectors}))


def test_rows_are_matched_by_id_and_an_item_without_a_row_gets_none(tmp_path: Path) -> None:
    vectors = write_vectors(tmp_path, ["b", "a", "zz"], np.array([[2.0, 2.0], [1.0, 1.0], [9.0, 9.0]]))
    tables = generic.load(items_mapping(tmp_path, vectors))
    assert tables.item_fields.vector == ["image"]
    by_id = dict(zip(tables.items["item_id"], tables.items["image"], strict=True))
    assert by_id == {"a": [1.0, 1.0], "b": [2.0, 2.0], "c": None}  # "zz" is not in the catalog


@pytest.mark.parametrize(("ids", "array", "message"), [
    (["a", "b"], np.zeros((3, 2)), "has 2 ids for the 3 rows"),
    (["a", "b"], np.zeros(2), "expected \\(n, d\\) numbers"),
])
def test_a_mismatched_file_is_refused_naming_the_field(tmp_path: Path, ids: list[str], array: np.ndarray,
                                                      message: str) -> None:
    with pytest.raises(DataFileError, match=f"data.items.vector_files.image: .*{message}"):
        generic.load(items_mapping(tmp_path, write_vectors(tmp_path, ids, array)))


def test_vectors_alone_place_a_cold_item_and_keep_a_shopper_in_their_cluster(tmp_path: Path) -> None:
    """Two clusters of items whose only feature is a noisy vector around their cluster's centre; users buy in one
    cluster. Item "cold" has no event at all: it reaches the model through `encode_items`, as a new item does."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CLUSTERS, DIM)) * 3
    ids = [f"k{cluster}-{item}" for cluster in range(CLUSTERS) for item in range(ITEMS_PER_CLUSTER)]
    clusters = [cluster for cluster in range(CLUSTERS) for _ in range(ITEMS_PER_CLUSTER)]
    write_vectors(tmp_path, ids, centres[clusters] + rng.normal(size=(len(ids), DIM)))
    lines = ["user,sku,ts"]
    for user in range(60):
        cluster = user % CLUSTERS
        for step, item in enumerate(rng.choice(ITEMS_PER_CLUSTER, 6, replace=False)):
            lines.append(f"u{user},k{cluster}-{item},{1_700_000_000 + 60 * step}")
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "items.csv").write_text("sku\n" + "\n".join(ids) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"""
data:
  source: generic
  interactions: {{path: {tmp_path / 'events.csv'}, event_type: purchase,
                  columns: {{user_id: user, item_id: sku, timestamp: ts}}}}
  items:
    path: {tmp_path / 'items.csv'}
    columns: {{item_id: sku}}
    vector_files: {{image: {{path: {tmp_path / 'image.npy'}, ids: {tmp_path / 'image_ids.txt'}}}}}
model: {{use_id: false, user_tower: mean}}
train: {{epochs: 20, batch_size: 8}}
tracking: {{mlflow: false}}
""")
    run = load_config(config)
    dataset = prepare_dataset(run, progress=False).dataset
    model = TwoTower.from_config(run, progress=False).fit(dataset.restricted_to("train"))
    items = [str(item) for item in dataset.item_ids]
    history = [("k0-0", "purchase", "2024-01-01T00:00:00+00:00"), ("k0-1", "purchase", "2024-01-01T00:01:00+00:00")]
    scores = model.retrieval_vectors() @ model.user_vector(history)
    ranked = [items[index] for index in np.argsort(-scores) if items[index] not in ("k0-0", "k0-1")]
    assert all(item.startswith("k0-") for item in ranked[:10]), ranked[:10]
    cold = pd.DataFrame({"item_id": ["cold"], "image": [list(centres[0] + rng.normal(size=DIM))]})
    cold_score = float(model.encode_items(cold)[0] @ model.user_vector(history))
    by_cluster = {prefix: [score for item, score in zip(items, scores, strict=True) if item.startswith(prefix)]
                  for prefix in ("k0-", "k1-")}
    assert cold_score > max(by_cluster["k1-"])  # the new item, by its vector alone, is nearer than any k1 item

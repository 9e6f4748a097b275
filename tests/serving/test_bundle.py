"""The saved bundle: save -> load gives the same recommendations, the manifest says what the bundle is and
checksums every file, and a missing, changed or old-format bundle is refused naming the file."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serving.api_client import STRATEGIES

import foryou
from foryou.config import load_config
from foryou.data.dataset import Dataset
from foryou.errors import DataFileError
from foryou.rerank.transitions import successor_matrix
from foryou.serving.bundle import BUNDLE_VERSION, Bundle, best_on_validation, load_bundle, save_bundle

USERS = [f"u{user}" for user in range(90)]


@pytest.fixture(scope="module")
def loaded(shop_bundle: Path) -> Bundle:
    return load_bundle(shop_bundle)


def manifest(bundle: Path) -> dict[str, Any]:
    return dict(json.loads((bundle / "bundle.json").read_text()))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_then_load_gives_the_same_recommendations(loaded: Bundle, shop_bundle: Path, tmp_path: Path) -> None:
    run = shop_bundle.parent  # the pipeline's output folder: prepared data beside the bundle
    config = load_config(run.parent / "run.yaml")
    resaved = save_bundle(tmp_path / "bundle", loaded.model, loaded.fallback, loaded.served,
                          Dataset.load(run / "prepared"), config, loaded.meta["test_metrics"],
                          loaded.meta["validation_ndcg"], loaded.ranking)
    again = load_bundle(resaved)
    assert again.ranking is not None and again.ranking.strategies == loaded.ranking.strategies  # type: ignore[union-attr]
    assert set(again.served) == set(loaded.served) == {"collab", "ease", "item_knn"}
    pairs = [(loaded.model, again.model), (loaded.fallback, again.fallback),
             *((loaded.served[name], again.served[name]) for name in loaded.served)]
    for before, after in pairs:
        items_before, scores_before = before.recommend(USERS, k=10)
        items_after, scores_after = after.recommend(USERS, k=10)
        for user in range(len(USERS)):
            np.testing.assert_array_equal(items_after[user], items_before[user])
            np.testing.assert_allclose(scores_after[user], scores_before[user], rtol=1e-6)
    queries = loaded.model.retrieval_vectors()[:5]
    for got, expected in zip(again.index.search(queries, 10), loaded.index.search(queries, 10)):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert loaded.content is not None and again.content is not None
    np.testing.assert_array_equal(again.content, loaded.content)
    assert again.items.equals(loaded.items)
    assert again.strategies == loaded.strategies
    # resaved without per-user validation scores: nothing to test the lead with, so the plain best is served
    assert again.default_strategy == loaded.meta["served_choice"]["best_on_validation"]
    assert again.meta["files"] == loaded.meta["files"]  # the same bytes, file for file


def test_the_transition_source_is_saved_as_fitted_on_train_and_valid(loaded: Bundle, shop_bundle: Path) -> None:
    # what the service's transitions read: the successor matrix of train + valid, no test event in it
    dataset = Dataset.load(shop_bundle.parent / "prepared")
    assert loaded.ranking is not None and "transitions" in loaded.ranking.source_names
    assert loaded.transitions is not None and loaded.transitions.following is not None
    expected = successor_matrix(dataset.events("train", "valid"), dataset.n_items)
    assert (loaded.transitions.following != expected).nnz == 0
    assert (successor_matrix(dataset.interactions, dataset.n_items) != expected).nnz > 0  # test events change it


def test_the_manifest_says_what_the_bundle_is(shop_bundle: Path) -> None:
    meta = manifest(shop_bundle)
    assert meta["bundle_version"] == BUNDLE_VERSION
    assert meta["foryou_version"] == foryou.__version__
    assert meta["model_version"].startswith("shop-")  # the run's name, then when and a digest of the files
    assert meta["strategies"] == STRATEGIES
    validation = meta["validation_ndcg"]  # every strategy but content, each fitted on train
    assert set(validation) == set(STRATEGIES) - {"content"} and all(0 <= v <= 1 for v in validation.values())
    assert meta["served_choice"]["best_on_validation"] == max(validation, key=validation.get)
    assert meta["default_strategy"] == meta["served_choice"]["chosen"]
    assert meta["item_fields"]["categorical"] == ["category"]
    for model in ("two_tower", "most_pop", "als"):
        assert 0.0 <= meta["test_metrics"][model]["NDCG@10"] <= 1.0
    inputs = {Path(path).name: value for path, value in meta["data"]["input_hashes"].items()}
    root = shop_bundle.parents[1]
    assert inputs == {"events.csv": digest(root / "events.csv"), "items.csv": digest(root / "items.csv")}
    assert meta["data"]["counts"]["users"] == 90 and meta["data"]["counts"]["items"] == 60
    on_disk = {path.relative_to(shop_bundle).as_posix(): digest(path)
               for path in shop_bundle.rglob("*") if path.is_file() and path.name != "bundle.json"}
    assert meta["files"] == on_disk
    assert {"model/two_tower.pt", "index/index.faiss", "content.npy", "items.parquet"} <= set(on_disk)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def old_format(bundle: Path) -> None:
    (bundle / "bundle.json").write_text(json.dumps({**manifest(bundle), "bundle_version": 1}))


DAMAGE: list[tuple[str, Callable[[Path], object], str]] = [
    ("missing model", lambda bundle: (bundle / "model/two_tower.pt").unlink(), "model/two_tower.pt is missing"),
    ("missing catalog", lambda bundle: (bundle / "items.parquet").unlink(), "items.parquet is missing"),
    ("changed index", lambda bundle: flip_a_byte(bundle / "index/index.faiss"), "index/index.faiss is damaged"),
    ("changed fallback", lambda bundle: flip_a_byte(bundle / "fallback/popularity.npy"),
     "fallback/popularity.npy is damaged"),
    ("old format", old_format, "bundle.json: bundle format 1"),
    ("no manifest", lambda bundle: (bundle / "bundle.json").unlink(), "no bundle.json"),
    ("unreadable manifest", lambda bundle: (bundle / "bundle.json").write_text("{"), "bundle.json is damaged"),
]


@pytest.mark.parametrize(("damage", "named"), [(harm, named) for _, harm, named in DAMAGE],
                         ids=[name for name, _, _ in DAMAGE])
def test_a_damaged_bundle_is_refused_naming_the_file(shop_bundle: Path, tmp_path: Path,
                                                     damage: Callable[[Path], object], named: str) -> None:
    bundle = Path(shutil.copytree(shop_bundle, tmp_path / "bundle"))
    damage(bundle)
    with pytest.raises(DataFileError) as refused:
        load_bundle(bundle)
    assert named in str(refused.value)
    assert str(bundle) in str(refused.value)


def test_the_old_format_message_says_how_to_fix_it(shop_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(shop_bundle, tmp_path / "bundle"))
    old_format(bundle)
    with pytest.raises(DataFileError, match=f"reads format {BUNDLE_VERSION}: rebuild it with `foryou pipeline`"):
        load_bundle(bundle)


def test_the_default_strategy_is_the_best_on_validation_two_tower_first_on_a_tie() -> None:
    strategies = ["two_tower", "content", "collab", "ease", "popular"]
    assert best_on_validation(strategies, {"two_tower": 0.10, "ease": 0.12, "popular": 0.02}) == "ease"
    assert best_on_validation(strategies, {"two_tower": 0.12, "ease": 0.12}) == "two_tower"
    assert best_on_validation(strategies, {"item_knn": 0.5}) == "two_tower"  # not served: not eligible
    assert best_on_validation(strategies, {}) == "two_tower"

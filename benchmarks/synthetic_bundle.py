"""The synthetic big catalog of the service latency benchmark: the demo bundle + N synthetic items behind HNSW.

Copies a bundle into a cache folder, appends N items (ids syn0.., titles "Synthetic item i", other fields such as
price copied from random real items) to items.parquet, and rebuilds the index over the bundle's item vectors +
N synthetic vectors (a random real item vector plus Gaussian noise of `spread` times its norm, rescaled to that
norm; the bias column drawn from the real ones): labels 0..n-1 are the real rows, n.. the synthetic ones. Then
bundle.json gets the HNSW index config, the new files' SHA-256 and a distinct model version, so the bundle loads
and verifies. The vectors are not trained; the model (user tower) stays the source bundle's. Rebuilt only when
its recipe (source model version, N, efConstruction, spread) changes.

Usage: .venv/bin/python benchmarks/synthetic_bundle.py [--items 1000000] [--ef-construction 64]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foryou.data import schema as S
from foryou.index import VectorIndex, build_index
from foryou.serving.bundle import INDEX_DIR, ITEMS_FILE, MANIFEST, read_manifest, sha256
from foryou.serving.catalog import FieldRoles

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "foryou" / "bench-1m"
CHUNK = 100_000

logger = logging.getLogger("synthetic_bundle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "runs" / "demo" / "bundle")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--spread", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    path, build = synthetic_bundle(args.source.resolve(), args.cache_dir.resolve(), args.items,
                                   args.ef_construction, args.spread)
    print(path, json.dumps(build))


def synthetic_bundle(source: Path, cache: Path, n_synthetic: int, ef_construction: int,
                     spread: float) -> tuple[Path, dict[str, Any]]:
    """The demo bundle + `n_synthetic` items in an HNSW index, under cache/bundle; rebuilt only when its recipe
    (source model version, size, efConstruction, spread) changed. Returns (path, recipe + build seconds)."""
    recipe = {"source_model_version": read_manifest(source)["model_version"], "synthetic_items": n_synthetic,
              "hnsw_ef_construction": ef_construction, "spread": spread}
    target, recipe_path = cache / "bundle", cache / "recipe.json"
    if (target / MANIFEST).exists() and recipe_path.exists():
        stored = json.loads(recipe_path.read_text())
        if stored["recipe"] == recipe:
            logger.info("reusing %s (built in %.0f s)", target, stored["build_s"])
            return target, {**stored, "reused": True}
    start = time.perf_counter()
    building = cache / "bundle.building"
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(source, building)
    (building / "bundle.json").unlink()
    demo_index = VectorIndex.load(source / INDEX_DIR)
    items = pd.read_parquet(source / ITEMS_FILE)
    if not np.array_equal(demo_index.ids(), np.arange(len(items))):
        raise ValueError(f"{source / INDEX_DIR}: labels are not the catalog rows 0..{len(items) - 1}")
    demo_vectors = demo_index.vectors(np.arange(len(items)))
    rng = np.random.default_rng(0)
    vectors = np.concatenate([demo_vectors, synthetic_vectors(demo_vectors, n_synthetic, spread, rng)])
    config = demo_index.config.model_copy(update={"kind": "hnsw", "hnsw_ef_construction": ef_construction})
    logger.info("building HNSW over %s vectors (efConstruction=%d)", f"{len(vectors):,}", ef_construction)
    index_start = time.perf_counter()
    shutil.rmtree(building / INDEX_DIR)
    build_index(vectors, np.arange(len(vectors)), config).save(building / INDEX_DIR)
    index_seconds = time.perf_counter() - index_start
    roles = FieldRoles.from_item_fields(read_manifest(source).get("item_fields", {}))
    catalog = pd.concat([items, synthetic_items(items, n_synthetic, roles.title, rng)], ignore_index=True)
    catalog.to_parquet(building / ITEMS_FILE, index=False)
    write_manifest(source, building, config.model_dump(mode="json"), recipe)
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    build = {"recipe": recipe, "index": config.model_dump(mode="json"), "index_build_s": round(index_seconds, 1),
             "build_s": round(time.perf_counter() - start, 1)}
    recipe_path.write_text(json.dumps(build, indent=2))
    logger.info("built %s in %.0f s", target, build["build_s"])
    return target, {**build, "reused": False}


def synthetic_vectors(demo: np.ndarray, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(n, d) float32 rows like `demo` (n_demo, d): a random demo row's vector part plus Gaussian noise of
    `spread` times its norm, rescaled to that norm; the last (bias) column drawn from the demo's bias values."""
    out = np.empty((n, demo.shape[1]), np.float32)
    dim = demo.shape[1] - 1
    for start in range(0, n, CHUNK):
        chunk = out[start:start + CHUNK]
        body = demo[rng.integers(len(demo), size=len(chunk)), :-1]
        norms = np.linalg.norm(body, axis=1, keepdims=True)
        noisy = body + spread * norms * rng.standard_normal(body.shape, np.float32) / np.sqrt(dim)
        chunk[:, :-1] = noisy * norms / np.maximum(np.linalg.norm(noisy, axis=1, keepdims=True), 1e-12)
        chunk[:, -1] = demo[rng.integers(len(demo), size=len(chunk)), -1]
    return out


def synthetic_items(items: pd.DataFrame, n: int, title: str | None, rng: np.random.Generator) -> pd.DataFrame:
    """`n` catalog rows shaped like `items`: fields (price included) copied from random real rows, ids syn0..,
    titles "Synthetic item i", item_idx continuing the catalog's."""
    frame = items.iloc[rng.integers(len(items), size=n)].reset_index(drop=True)
    frame[S.ITEM_ID] = pd.array([f"syn{i}" for i in range(n)], dtype=items[S.ITEM_ID].dtype)
    if title is not None:
        frame[title] = pd.array([f"Synthetic item {i}" for i in range(n)], dtype=items[title].dtype)
    if S.ITEM_IDX in frame:
        frame[S.ITEM_IDX] = np.arange(len(items), len(items) + n, dtype=items[S.ITEM_IDX].dtype)
    return frame


def write_manifest(source: Path, building: Path, index_config: dict[str, Any], recipe: dict[str, Any]) -> None:
    """The demo's bundle.json with the new index config, the rewritten files' SHA-256 and a distinct version."""
    meta = read_manifest(source)
    meta["config"]["index"] = index_config
    meta["model_version"] = f"{meta['model_version']}-syn{recipe['synthetic_items']}"
    meta["synthetic"] = recipe
    for path in [building / ITEMS_FILE, *sorted((building / INDEX_DIR).iterdir())]:
        meta["files"][path.relative_to(building).as_posix()] = sha256(path)
    (building / MANIFEST).write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()

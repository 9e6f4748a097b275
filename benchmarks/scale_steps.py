"""The in-process halves of benchmarks/scale.py: each runs in its own subprocess so its peak memory is its own.

  train CONFIG PREPARED OUT.json
                            two-tower training throughput through `TwoTower.fit`, with `training_batches` capped
                            at warm-up + N steps (the real model, task, optimizer and Trainer loop)
  vectors WORK              the index benchmark's inputs: n synthetic catalog vectors (benchmarks/index.py's
                            clustered unit vectors), queries, exact top-k, per-query seen items and categories
  index WORK KIND OUT.json  build one index kind (the project factory, or raw faiss IVF-PQ, not an index.kind)
                            and time single queries: plain, with 10 seen items denied, with a category filter

Usage: called by benchmarks/scale.py; by hand: .venv/bin/python benchmarks/scale_steps.py train runs/scale/config.yaml
       runs/scale/prepared-pandas /tmp/train.json --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchmarks/train_time.py: read when torch starts OpenMP

import faiss
import numpy as np
import pandas as pd
import torch
from torch import nn

import foryou.models.two_tower as two_tower_module
from foryou.config import IndexConfig, load_config
from foryou.data.dataset import Dataset
from foryou.index import build_index, ivf_nlist
from foryou.models.sequences import TrainingBatch, training_windows
from foryou.models.two_tower import TwoTower
from foryou.training.trainer import Optimizers
from foryou.tuning.shape import DataShape, with_shaped_defaults
from index import recall, synthetic_catalog
from index import settings as index_settings  # benchmarks/ (the script's folder) is on sys.path

K, SEEN_PER_QUERY, SPREAD = 10, 10, 1.25
PQ_TRAIN_ROWS = 262_144
CATALOG_REPEATS = 3
logger = logging.getLogger("scale_steps")


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---- training throughput -----------------------------------------------------------------------------------
def train_throughput(config_path: Path, prepared: Path, batch_size: int, steps: int, warmup: int, device: str,
                     threads: int) -> dict[str, Any]:
    """Samples (next-event targets) per second of `steps` steps after `warmup` steps on the train split of a
    prepared dataset: the two-tower `foryou train` would fit on it (the data-shaped defaults of
    foryou.tuning.shape), with loss.kind=sampled_softmax and the given batch size."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    full = Dataset.load(prepared)
    load_seconds = time.perf_counter() - start
    overrides = ["loss.kind=sampled_softmax", f"train.batch_size={batch_size}", "train.epochs=1",
                 f"train.device={device}", f"train.num_threads={threads}", "tracking.mlflow=false"]
    config = with_shaped_defaults(load_config(config_path, overrides), DataShape.of(full))
    dataset = full.restricted_to("train")
    model = TwoTower.from_config(config)
    marks: list[tuple[float, float, int]] = []  # (wall and CPU time a batch was handed over, its targets)
    original = two_tower_module.training_batches

    def capped(*args: Any, **kwargs: Any) -> Iterator[TrainingBatch]:
        for batch in islice(original(*args, **kwargs), warmup + steps):
            marks.append((time.perf_counter(), time.process_time(), int((batch.targets >= 0).sum())))
            yield batch
        marks.append((time.perf_counter(), time.process_time(), 0))  # the end of the last step

    two_tower_module.training_batches = capped  # type: ignore[assignment]
    update_seconds = time_optimizer_steps()
    fit_start = time.perf_counter()
    model.fit(dataset)
    timed = marks[warmup:]
    seconds, cpu_seconds = timed[-1][0] - timed[0][0], timed[-1][1] - timed[0][1]
    targets = sum(count for _, _, count in timed[:-1])
    assert model.histories is not None
    config = model.model_config
    epoch = {}
    for whole in (False, True):
        _, starts, ends = training_windows(model.histories, config.max_history, whole)
        epoch[whole] = {"windows": len(starts), "targets": int((ends - starts - 1).sum()),
                        "steps": -(-len(starts) // batch_size)}
    per_step = seconds / steps
    catalog = catalog_seconds(model, CATALOG_REPEATS)
    update = {"optimizer_s_per_step": round(float(np.mean(update_seconds[warmup:warmup + steps])), 3),
              **parameter_counts(model), "sparse_id_table": sparse_id_table(model)}
    return {"device": resolved(model),
            "threads": torch.get_num_threads(), "batch_size": batch_size, "steps_timed": steps,
            "warmup_steps": warmup, "train_users": dataset.n_users, "catalog_items": dataset.n_items,
            "train_events": len(dataset.interactions), "load_s": round(load_seconds, 1),
            "setup_s": round(marks[0][0] - fit_start, 1), "s_per_step": round(per_step, 3),
            "cpu_s_per_step": round(cpu_seconds / steps, 3), **catalog, **update,
            "targets_per_step": round(targets / steps, 1), "samples_per_s": round(targets / seconds, 1),
            "epoch_last_window": {**epoch[False], "estimated_s": round(epoch[False]["steps"] * per_step)},
            "epoch_whole_history": {**epoch[True], "estimated_s": round(epoch[True]["steps"] * per_step)},
            "final_loss": round(model.history[-1].loss, 4) if model.history else None,
            "model": {key: getattr(config, key) for key in ("user_tower", "embedding_dim", "max_history",
                                                             "use_text", "use_categorical", "use_numeric")},
            "loss": {key: getattr(model.loss_config, key) for key in ("kind", "num_negatives", "temperature")}}


def catalog_seconds(model: TwoTower, repeats: int) -> dict[str, float]:
    """Median seconds of the whole-catalog item-tower pass (training mode), and of it with its backward: what a
    full-softmax step adds at this catalog size (a sampled-softmax step encodes only the items it reads)."""
    assert model.module is not None
    module = model.module.train()
    forward, both = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        vectors = module.catalog()
        middle = time.perf_counter()
        vectors.sum().backward()
        forward.append(middle - start)
        both.append(time.perf_counter() - start)
        module.zero_grad(set_to_none=True)
    return {"catalog_forward_s": round(float(np.median(forward)), 3),
            "catalog_forward_backward_s": round(float(np.median(both)), 3)}


def time_optimizer_steps() -> list[float]:
    """Seconds of every optimizer step the training loop takes from now on (the list fills as it trains)."""
    seconds: list[float] = []
    original = Optimizers.step

    def timed(self: Optimizers) -> None:
        start = time.perf_counter()
        original(self)
        seconds.append(time.perf_counter() - start)

    Optimizers.step = timed  # type: ignore[method-assign]
    return seconds


def parameter_counts(model: TwoTower) -> dict[str, int]:
    assert model.module is not None
    tables = [m for m in model.module.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    return {"parameters": sum(parameter.numel() for parameter in model.module.parameters()),
            "embedding_table_parameters": sum(m.weight.numel() for m in tables)}


def sparse_id_table(model: TwoTower) -> bool:
    assert model.module is not None
    table = model.module.item_tower.id_embedding
    return table is not None and table.sparse


def resolved(model: TwoTower) -> str:
    assert model.module is not None
    return str(next(model.module.parameters()).device)


# ---- index inputs ------------------------------------------------------------------------------------------
def write_vectors(work: Path, n_items: int, n_queries: int, items_file: Path) -> dict[str, Any]:
    """Catalog vectors, queries, exact top-K, SEEN_PER_QUERY denied labels and a category filter per query
    (a category drawn by its share of the catalog, from the generated items table) into work/*.npy."""
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    items, queries = synthetic_catalog(n_items, n_queries, SPREAD, seed=n_items)
    exact = faiss.IndexFlatIP(items.shape[1])
    exact.add(items)
    truth = exact.search(queries, K)[1]
    rng = np.random.default_rng(0)
    seen = rng.integers(0, n_items, (n_queries, SEEN_PER_QUERY))
    categories = pd.read_parquet(items_file, columns=["category"])["category"].to_numpy()[:n_items]
    codes, names = pd.factorize(categories)
    query_codes = codes[rng.integers(0, n_items, n_queries)]  # a random item's category: drawn by share
    for name, array in (("items", items), ("queries", queries), ("truth", truth), ("seen", seen),
                        ("item_categories", codes), ("query_categories", query_codes)):
        np.save(work / f"{name}.npy", array)
    return {"items": n_items, "dim": items.shape[1], "queries": n_queries, "categories": len(names),
            "seconds": round(time.perf_counter() - start, 1)}


# ---- one index kind ----------------------------------------------------------------------------------------
def index_kind(work: Path, kind: str, pq_m: int) -> dict[str, Any]:
    """Build `kind` over work/items.npy, then recall@K and single-query latency of three query shapes."""
    items = np.load(work / "items.npy")
    queries, truth, seen = (np.load(work / f"{name}.npy") for name in ("queries", "truth", "seen"))
    item_categories, query_categories = np.load(work / "item_categories.npy"), np.load(work / "query_categories.npy")
    ids = np.arange(len(items), dtype=np.int64)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    before = rss_mb()
    start = time.perf_counter()
    if kind == "ivfpq":
        search, memory, settings = ivfpq(items, pq_m)
    else:
        config = IndexConfig(kind=kind)  # type: ignore[arg-type]
        index = build_index(items, ids, config)
        search, memory = index.search, index.memory_bytes()
        settings = index_settings(kind, len(items), config)
    build = time.perf_counter() - start
    row: dict[str, Any] = {"kind": kind, "settings": settings, "items": len(items), "dim": items.shape[1],
                           "build_s": round(build, 1), "memory_estimate_MB": round(memory / 2**20, 1),
                           "rss_added_by_build_MB": round(rss_mb() - before, 1),
                           f"recall@{K}": recall(search(queries, K)[0], truth)}
    members = {code: np.flatnonzero(item_categories == code) for code in np.unique(query_categories)}
    shapes: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
        "plain": lambda i: search(queries[i:i + 1], K),
        f"{SEEN_PER_QUERY} seen denied": lambda i: search(queries[i:i + 1], K, denied=seen[i]),
        "category filter": lambda i: search(queries[i:i + 1], K, allowed=members[query_categories[i]]),
    }
    if kind == "ivfpq":
        del shapes[f"{SEEN_PER_QUERY} seen denied"], shapes["category filter"]  # not behind VectorIndex
    row["latency_ms"] = {name: single_query_ms(run, len(queries)) for name, run in shapes.items()}
    row["category_filter_sizes"] = {"median": int(np.median([len(members[c]) for c in query_categories])),
                                    "min": int(min(len(m) for m in members.values()))}
    return row


def ivfpq(items: np.ndarray, pq_m: int) -> tuple[Callable[..., tuple[np.ndarray, np.ndarray]], int, str]:
    """Raw faiss IVF-PQ (pq_m bytes per vector, 8-bit codes), the project's IVF nlist and nprobe, trained on
    PQ_TRAIN_ROWS random rows; returns (search(queries, k), serialized bytes, settings)."""
    config = IndexConfig(kind="ivf")
    nlist, dim = ivf_nlist(len(items), config), items.shape[1]
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(len(items), min(PQ_TRAIN_ROWS, len(items)), replace=False)
    index.train(items[np.sort(sample)])
    index.add(items)
    index.nprobe = config.ivf_nprobe

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, found = index.search(queries, k)
        return found, scores

    size = len(faiss.serialize_index(index))
    return search, size, f"nlist={nlist}, nprobe={config.ivf_nprobe}, PQ m={pq_m} x 8 bit (raw faiss)"


def single_query_ms(run: Callable[[int], Any], n_queries: int) -> dict[str, float]:
    """p50 / p99 ms of one-query searches on one faiss thread (as benchmarks/index.py times them)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        seconds = []
        for i in range(n_queries):
            start = time.perf_counter()
            run(i)
            seconds.append(time.perf_counter() - start)
    finally:
        faiss.omp_set_num_threads(threads)
    return {"p50_ms": round(1e3 * float(np.median(seconds)), 3),
            "p99_ms": round(1e3 * float(np.percentile(seconds, 99)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train")
    train.add_argument("config", type=Path, help="the log's config.yaml (its data shape sets the defaults)")
    train.add_argument("prepared", type=Path)
    train.add_argument("out", type=Path)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--steps", type=int, default=30)
    train.add_argument("--warmup", type=int, default=5)
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    train.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    vectors = commands.add_parser("vectors")
    vectors.add_argument("work", type=Path)
    vectors.add_argument("--items", type=int, required=True)
    vectors.add_argument("--queries", type=int, default=1000)
    vectors.add_argument("--items-file", type=Path, required=True, help="generated items table (its categories)")
    index = commands.add_parser("index")
    index.add_argument("work", type=Path)
    index.add_argument("kind", choices=["exact", "hnsw", "ivf", "ivfpq"])
    index.add_argument("out", type=Path)
    index.add_argument("--pq-m", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "train":
        result = train_throughput(args.config, args.prepared, args.batch_size, args.steps, args.warmup, args.device,
                                  args.threads)
    elif args.command == "vectors":
        result = write_vectors(args.work, args.items, args.queries, args.items_file)
        args.out = args.work / "vectors.json"
    else:
        result = index_kind(args.work, args.kind, args.pq_m)
    args.out.write_text(json.dumps(result, indent=2))
    logger.info("%s", result)


if __name__ == "__main__":
    main()

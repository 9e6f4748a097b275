"""ANN index benchmark: recall@10 against exact search, single-query latency on 1 thread, build time, memory.

Synthetic catalogs of unit vectors (d=64) drawn around 1,000 random centres (centre + spread * N(0, I/d), then
normalised, so neighbours are mostly but not only in the query's cluster), and queries from the same distribution.
For every size: exact, HNSW and IVF at the `index` config (defaults unless --set), the auto choice (the kind
`choose_kind` picks, reusing that row), and a sweep of the search-time settings (HNSW efSearch, IVF nprobe) on the
built indexes. Builds and the ground truth use every core; latencies are one query per call on 1 faiss thread.

Writes benchmarks/results/index.json and .md.
Usage: python benchmarks/index.py [--sizes 10000 100000 1000000] [--queries 1000] [--set hnsw_ef_construction=100]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from foryou.config import IndexConfig
from foryou.index import VectorIndex, build_index, choose_kind, ivf_nlist

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SIZES = (10_000, 100_000, 1_000_000)
DIM, CLUSTERS, K, TARGET_RECALL = 64, 1_000, 10, 0.95
SWEEPS = {"hnsw": ("hnsw_ef_search", (32, 64, 128, 256)), "ivf": ("ivf_nprobe", (8, 16, 32, 64))}

logger = logging.getLogger("index")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--spread", type=float, default=1.25, help="noise norm relative to the cluster centre")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an `index` config key, e.g. hnsw_ef_construction=100 (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = IndexConfig.model_validate(dict(item.split("=", 1) for item in args.set))
    rows: list[dict[str, Any]] = []
    sweeps: list[dict[str, Any]] = []
    for n_items in args.sizes:
        items, queries = synthetic_catalog(n_items, args.queries, args.spread, seed=n_items)
        size_rows, size_sweeps = run_size(items, queries, config)
        rows += size_rows
        sweeps += size_sweeps
    write_results(rows, sweeps, config, args)


def synthetic_catalog(n_items: int, n_queries: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Items (n_items, DIM) and queries (n_queries, DIM): float32 unit vectors around CLUSTERS centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.empty((n_items + n_queries, DIM), np.float32)
    for start in range(0, len(vectors), 100_000):  # in chunks: float64 noise for 1M rows would need 0.5 GB
        chunk = vectors[start:start + 100_000]
        chunk[:] = centres[rng.integers(CLUSTERS, size=len(chunk))]
        chunk += spread * rng.standard_normal(chunk.shape, np.float32) / np.sqrt(DIM)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
    return vectors[:n_items], vectors[n_items:]


def run_size(items: np.ndarray, queries: np.ndarray, config: IndexConfig) -> tuple[list[dict], list[dict]]:
    """Rows for exact, HNSW, IVF and auto at this catalog size, and the search-time sweep rows."""
    n_items = len(items)
    ids = np.arange(n_items, dtype=np.int64)
    rows, sweeps = [], []
    truth: np.ndarray | None = None
    for kind in ("exact", "hnsw", "ivf"):
        logger.info("%s items: building %s", f"{n_items:,}", kind)
        kind_config = config.model_copy(update={"kind": kind})
        start = time.perf_counter()
        index = build_index(items, ids, kind_config)
        build_seconds = time.perf_counter() - start
        found = index.search(queries, K)[0]
        truth = found if truth is None else truth
        row = {"items": n_items, "index": kind, "settings": settings(kind, n_items, config),
               "build_s": round(build_seconds, 2), f"recall@{K}": recall(found, truth),
               **latency_ms(index, queries), "memory_MB": round(index.memory_bytes() / 2**20, 1)}
        rows.append(row)
        logger.info("%s", row)
        if kind in SWEEPS:
            sweeps += sweep(index, queries, truth)
        del index
    auto_kind = choose_kind(n_items, config)
    auto_row = next(row for row in rows if row["index"] == auto_kind)
    rows.append({**auto_row, "index": f"auto ({auto_kind})"})
    return rows, sweeps


def settings(kind: str, n_items: int, config: IndexConfig) -> str:
    if kind == "hnsw":
        return f"M={config.hnsw_m}, efConstruction={config.hnsw_ef_construction}, efSearch={config.hnsw_ef_search}"
    if kind == "ivf":
        return f"nlist={ivf_nlist(n_items, config)}, nprobe={config.ivf_nprobe}"
    return "flat inner product"


def sweep(index: VectorIndex, queries: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    """Recall and latency of a built index at each value of its search-time setting."""
    key, values = SWEEPS[index.kind]
    built = index.config
    rows = []
    for value in values:
        index.config = built.model_copy(update={key: value})  # read at every search: no rebuild needed
        rows.append({"items": len(index), "index": index.kind, "setting": f"{key}={value}",
                     f"recall@{K}": recall(index.search(queries, K)[0], truth), **latency_ms(index, queries)})
    index.config = built
    return rows


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-K found, over queries."""
    hits = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist()))
    return round(hits / truth.size, 4)


def latency_ms(index: VectorIndex, queries: np.ndarray) -> dict[str, float]:
    """Median and p99 milliseconds of one-query searches with faiss on a single thread."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        seconds = []
        for query in queries:
            start = time.perf_counter()
            index.search(query[None, :], K)
            seconds.append(time.perf_counter() - start)
    finally:
        faiss.omp_set_num_threads(threads)
    return {"median_ms": round(1e3 * float(np.median(seconds)), 3),
            "p99_ms": round(1e3 * float(np.percentile(seconds, 99)), 3)}


def write_results(rows: list[dict], sweeps: list[dict], config: IndexConfig, args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    environment = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "faiss": faiss.__version__,
                   "machine": platform.machine(), "build_threads": faiss.omp_get_max_threads()}
    auto_ok = all(row[f"recall@{K}"] >= TARGET_RECALL for row in rows if row["index"].startswith("auto"))
    payload = {"environment": environment, "config": config.model_dump(mode="json"),
               "data": {"dim": DIM, "clusters": CLUSTERS, "spread": args.spread, "queries": args.queries, "k": K},
               f"auto_recall@{K}_at_least_{TARGET_RECALL}": auto_ok, "results": rows, "search_sweeps": sweeps}
    (RESULTS / "index.json").write_text(json.dumps(payload, indent=2))
    overrides = ", ".join(args.set) or "none (the defaults)"
    intro = (f"# ANN index: recall@{K}, latency, build time, memory\n\n"
             f"{environment['cpu_count']} CPUs, faiss {environment['faiss']}, Python {environment['python']}. "
             f"Synthetic unit vectors, d={DIM}, {CLUSTERS:,} clusters, spread {args.spread}; {args.queries:,} "
             f"queries from the same distribution. Recall against exact search; latency = one query per call, "
             f"1 faiss thread; builds on {environment['build_threads']} threads; memory estimated from the "
             f"structures' sizes. Config overrides: {overrides}.\n\n"
             f"auto keeps recall@{K} >= {TARGET_RECALL} at every size: **{'yes' if auto_ok else 'NO'}**\n")
    columns = ["items", "index", "settings", "build_s", f"recall@{K}", "median_ms", "p99_ms", "memory_MB"]
    sweep_columns = ["items", "index", "setting", f"recall@{K}", "median_ms", "p99_ms"]
    text = "\n".join([intro, *table(rows, columns), "", "## search-time settings on the same indexes", "",
                      *table(sweeps, sweep_columns)])
    (RESULTS / "index.md").write_text(text + "\n")


def table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns) + " |"
              for row in rows]
    return lines


if __name__ == "__main__":
    main()

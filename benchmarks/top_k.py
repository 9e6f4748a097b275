"""Time `top_k` (the one top-k path of every recommender, the evaluation, the candidates and the service) per row,
on the row shapes the sources give: dense scores (ALS, the two-tower, a dense EASE), a sparse source's row (most
of the catalog tied at zero, the user's seen items excluded: ItemKNN, a sparse EASE) and a co-occurrence row (most
of the catalog excluded), at catalog sizes from the demo's to 1M items.

With --baseline-src DIR the same rows are also timed on the code in DIR (e.g. a worktree of an earlier commit's
src/), in a subprocess, so the two columns come from one run on one machine.

Writes benchmarks/results/top_k.json and .md. Usage:
  .venv/bin/python benchmarks/top_k.py [--sizes 3000 100000 1000000] [--k 200] [--threads 1] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from foryou.models.ranking import tie_break_order, top_k
from foryou.resources import limit_threads

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROW_BYTES = 256 * 2**20  # rows of one shape timed together: ~256 MB of float32 scores
SEEN = 20  # excluded (seen) items per sparse row
NONZERO = 0.02  # share of a sparse row's items with a score


def rows_of(shape: str, n_items: int, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """(n_rows, n_items) float32 scores of one shape."""
    if shape == "dense":
        return rng.standard_normal((n_rows, n_items)).astype(np.float32)
    scores = np.where(rng.random((n_rows, n_items)) < NONZERO, rng.random((n_rows, n_items)), 0).astype(np.float32)
    if shape == "sparse source (zeros)":
        scores[np.arange(n_rows)[:, None], rng.integers(0, n_items, (n_rows, SEEN))] = -np.inf
        return scores
    scores[scores == 0] = -np.inf  # co-occurrence: no shared user, no score
    return scores


def measure(sizes: list[int], k: int) -> list[dict[str, Any]]:
    """ms per row of `top_k` for each shape and size (the median of 3 timings of the same rows)."""
    rng = np.random.default_rng(0)
    found = []
    for n_items in sizes:
        n_rows = int(max(8, min(512, ROW_BYTES // (4 * n_items))))
        tie = tie_break_order(n_items)
        for shape in ("dense", "sparse source (zeros)", "co-occurrence (-inf)"):
            scores = rows_of(shape, n_items, n_rows, rng)
            timings = []
            for _ in range(3):
                start = time.perf_counter()
                top_k(scores, k, tie)
                timings.append((time.perf_counter() - start) / n_rows * 1e3)
            found.append({"items": n_items, "shape": shape, "rows": n_rows, "ms_per_row": float(np.median(timings))})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3_000, 100_000, 1_000_000])
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="threads of torch and numpy's pools (as a run caps them)")
    parser.add_argument("--baseline-src", type=Path, help="the src/ folder of the code to compare with")
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)  # the baseline's subprocess
    args = parser.parse_args()
    limit_threads(args.threads)
    rows = measure(args.sizes, args.k)
    if args.json_only:
        print(json.dumps(rows))
        return
    baseline = None
    if args.baseline_src is not None:
        command = [sys.executable, __file__, "--json-only", "--k", str(args.k), "--threads", str(args.threads), "--sizes", *map(str, args.sizes)]
        env = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
        baseline = json.loads(subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout)
    environment = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                   "k": args.k, "threads": args.threads, "code": revision(ROOT / "src"),
                   "baseline": revision(args.baseline_src) if args.baseline_src else None,
                   "command": " ".join(["python", "benchmarks/top_k.py", *sys.argv[1:]]),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "top_k.json").write_text(json.dumps({"environment": environment, "results": rows,
                                                     "baseline": baseline}, indent=2))
    (RESULTS / "top_k.md").write_text(markdown(environment, rows, baseline))


def revision(src: Path) -> str:
    """The short commit of the checkout that holds `src` (with "+changes" when it has any), else the path."""
    found = [subprocess.run(["git", "-C", str(src), *command], check=False, capture_output=True, text=True)
             for command in (["rev-parse", "--short", "HEAD"], ["status", "--porcelain", "--", "."])]
    if found[0].returncode != 0:
        return str(src)
    return found[0].stdout.strip() + ("+changes" if found[1].stdout.strip() else "")


def markdown(environment: dict[str, Any], rows: list[dict[str, Any]], baseline: list[dict[str, Any]] | None) -> str:
    lines = ["# top_k per row", "",
             (f"`{environment['command']}` (code {environment['code']}; {environment['date']}; "
              f"{environment['cpu_count']} cores, numpy "
              f"{environment['numpy']}), k={environment['k']}, {environment['threads']} thread(s). Dense: standard normal scores; sparse "
              f"source: {NONZERO:.0%} of the items scored, the rest 0, {SEEN} seen items excluded; co-occurrence: "
              f"{NONZERO:.0%} scored, the rest excluded (-inf). Median of 3 timings of the same rows."), ""]
    header = "| items | row shape | rows | ms per row |"
    rule = "|---:|---|---:|---:|"
    if baseline is not None:
        header += f" baseline ({environment['baseline']}) ms per row | baseline / this |"
        rule += "---:|---:|"
    lines += [header, rule]
    for position, row in enumerate(rows):
        cells = f"| {row['items']:,} | {row['shape']} | {row['rows']} | {row['ms_per_row']:.2f} |"
        if baseline is not None:
            before = baseline[position]["ms_per_row"]
            cells += f" {before:.2f} | {before / row['ms_per_row']:.1f}x |"
        lines.append(cells)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

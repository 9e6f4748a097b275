"""In-process latency of the ranking stage on a bundle: candidates from every source + features + reranking of the
merged candidates + explanations, for one request at a time, as the service runs it behind its HTTP layer.

For each strategy the bundle serves, the bundle's known users (up to --users, in a fixed shuffled order) are asked
for k=10 through `Recommender.recommend` (the service's request -> result path, business rules included), with
explain off and on; each request is timed with perf_counter after a warm-up pass. Also timed: the same for raw
5-item histories (no user id), which also runs the user tower on the given events. The issue's floor: p50 <= 1.5 ms
for every ranking-stage strategy with explanations (known users). Then cProfile runs the known users once more
through each ranking-stage strategy with explanations, and the top frames by own time go into the Markdown: the
profile that chose the work.

Writes benchmarks/results/rerank_latency.json and .md.
Usage: .venv/bin/python benchmarks/rerank_latency.py [--bundle runs/demo/bundle] [--users 300] [--top 15]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foryou.rerank.stage import STAGE_STRATEGIES
from foryou.serving.catalog import Filters
from foryou.serving.recommender import Query, Recommender
from foryou.serving.state import Event, ServingState

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FLOOR_MS = 1.5
K = 10
RAW_HISTORY = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "runs" / "demo" / "bundle")
    parser.add_argument("--users", type=int, default=300, help="requests per (strategy, explain) case")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the service's per-request share)")
    parser.add_argument("--top", type=int, default=15, help="profile frames listed per strategy")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    state = ServingState.load(args.bundle)
    recommender = Recommender(state)
    assert state.model.user_ids is not None
    user_ids = [str(user) for user in np.random.default_rng(0).permutation(state.model.user_ids)[: args.users]]
    histories = raw_histories(state, len(user_ids))
    rows = []
    for strategy in state.bundle.strategies:
        for explain in (False, True):
            known = timed(recommender, [(user, []) for user in user_ids], strategy, explain)
            raw = timed(recommender, [(None, events) for events in histories], strategy, explain)
            rows.append({"strategy": strategy, "explain": explain, "known_users": known, "raw_histories": raw})
            print(f"{strategy:14s} explain={explain!s:5s} known p50 {known['p50_ms']:.2f} ms, "
                  f"raw p50 {raw['p50_ms']:.2f} ms", flush=True)
    stage = [row for row in rows if row["strategy"] in STAGE_STRATEGIES and row["explain"]]
    verdict = {"case": "every ranking-stage strategy, explain on, known users", "floor_ms": FLOOR_MS,
               "p50_ms": {row["strategy"]: row["known_users"]["p50_ms"] for row in stage},
               "meets_floor": bool(stage) and all(row["known_users"]["p50_ms"] <= FLOOR_MS for row in stage)}
    profiles = {row["strategy"]: profile(recommender, [(user, []) for user in user_ids], row["strategy"], args.top)
                for row in stage}
    environment = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                   "torch_threads": torch.get_num_threads(), "bundle": str(args.bundle),
                   "items": len(state.catalog), "users": len(state.model.user_ids),
                   "candidates": state.bundle.ranking.settings.candidates if state.bundle.ranking else None,
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"environment": environment, "verdict": verdict, "results": rows, "profiles": profiles}
    (RESULTS / "rerank_latency.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / "rerank_latency.md").write_text(markdown(environment, verdict, rows, profiles))


def raw_histories(state: ServingState, count: int) -> list[list[Event]]:
    """`count` histories of RAW_HISTORY random catalog items, one view a day, ending now."""
    rng = np.random.default_rng(1)
    assert state.model.item_ids is not None
    item_ids = [str(item) for item in state.model.item_ids]
    now = datetime.now(timezone.utc)
    return [[Event(item_ids[i], "view", now - timedelta(days=RAW_HISTORY - day))
             for day, i in enumerate(rng.choice(len(item_ids), RAW_HISTORY, replace=False))] for _ in range(count)]


def run(recommender: Recommender, user: str | None, events: list[Event], strategy: str, explain: bool) -> None:
    """One request as the service makes it: the user's context, then `recommend`."""
    query = Query(user, events, K, strategy, Filters(), explain=explain)
    recommender.recommend(query, recommender.context(user, events, []))


def timed(recommender: Recommender, requests: list[tuple[str | None, list[Event]]], strategy: str,
          explain: bool) -> dict[str, Any]:
    """Latency percentiles (ms) of one `recommend` per request, after one untimed pass over the first 20."""
    for user, events in requests[:20]:
        run(recommender, user, events, strategy, explain)
    seconds = []
    for user, events in requests:
        start = time.perf_counter()
        run(recommender, user, events, strategy, explain)
        seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1000
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def profile(recommender: Recommender, requests: list[tuple[str | None, list[Event]]], strategy: str,
            top: int) -> dict[str, Any]:
    """cProfile of every request once (explain on): total seconds and the `top` frames by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for user, events in requests:
        run(recommender, user, events, strategy, True)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    frames = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = path if path.startswith("~") else f"{short_path(path)}:{line}"
        frames.append({"function": f"{where}({name})", "calls": calls, "own_ms_per_request": own * 1e3 / len(requests),
                       "cumulative_ms_per_request": cumulative * 1e3 / len(requests)})
    frames.sort(key=lambda frame: -frame["own_ms_per_request"])
    return {"requests": len(requests), "total_s": stats.total_tt, "frames": frames[:top]}  # type: ignore[attr-defined]


def short_path(path: str) -> str:
    """A profiled file as the repository path, or the package-relative path of an installed library."""
    if path.startswith(str(ROOT)):
        return os.path.relpath(path, ROOT)
    return path.split("site-packages/", 1)[-1]


def markdown(environment: dict[str, Any], verdict: dict[str, Any], rows: list[dict[str, Any]],
             profiles: dict[str, dict[str, Any]]) -> str:
    lines = ["# rerank latency (in process)", "",
             (f"Bundle {environment['bundle']} ({environment['items']:,} items, {environment['users']:,} users, "
              f"{environment['candidates']} merged candidates per request), k={K}, one request at a time, "
              f"{environment['torch_threads']} torch thread(s), {environment['cpu_count']} cores; "
              f"`Recommender.recommend` (sources, merge, features, ranker, rules, explanations), no HTTP."), "",
             "| strategy | explain | known user p50 (ms) | p95 | p99 | raw 5-item history p50 (ms) | p95 | p99 |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        known, raw = row["known_users"], row["raw_histories"]
        lines.append(f"| {row['strategy']} | {'yes' if row['explain'] else 'no'} | {known['p50_ms']:.2f} | "
                     f"{known['p95_ms']:.2f} | {known['p99_ms']:.2f} | {raw['p50_ms']:.2f} | {raw['p95_ms']:.2f} | "
                     f"{raw['p99_ms']:.2f} |")
    measured = ", ".join(f"{name} {p50:.2f} ms" for name, p50 in verdict["p50_ms"].items())
    lines += ["", (f"Floor: {verdict['case']}: p50 <= {verdict['floor_ms']} ms. Measured: {measured}: "
                   f"{'met' if verdict['meets_floor'] else 'not met'}.")]
    for strategy, found in profiles.items():
        per_request = found["total_s"] * 1e3 / found["requests"]
        lines += ["", (f"## Profile: {strategy}, explain on ({found['requests']} known users under cProfile, "
                       f"{per_request:.2f} ms per request with the profiler's overhead)"),
                  "", "| function | calls | own ms / request | cumulative ms / request |", "|---|---|---|---|"]
        lines += [f"| `{frame['function']}` | {frame['calls']:,} | {frame['own_ms_per_request']:.3f} | "
                  f"{frame['cumulative_ms_per_request']:.3f} |" for frame in found["frames"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

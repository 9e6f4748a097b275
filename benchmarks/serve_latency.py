"""Service latency benchmark: a real `foryou serve` process (uvicorn) under `wrk`, at concurrency 1, 8 and 32.

For each bundle the server is started with the rate limit lifted and a fresh SQLite store in a temp folder, and
load time is measured up to GET /readyz = 200. Routes: POST /v1/recommendations k=10 for the bundle's known users
with its default strategy (explain false and true), the same for raw 5-item histories (no user id), on the demo
bundle also for known users with explain true under two_tower and under every ranking-stage strategy the bundle
serves, and GET /v1/noop, a no-op route of the same app and middleware (the floor). With --compare-workers N the
demo bundle is served again by N workers for the default strategy's known users (explain true) at the highest
concurrency, against the same row of the one-worker server. Each (route, concurrency) gets a warm-up, then `wrk -t min(c, 2) -c c -d
DURATION` with a generated Lua script that rotates over the request bodies and prints the latency percentiles,
request count and errors as one JSON line. The server's RSS is read from /proc after the runs.

Bundles: the demo bundle, and a derived catalog of the demo items + 1,000,000 synthetic items served through HNSW
(benchmarks/synthetic_bundle.py, built once into --cache-dir and reused): synthetic vectors are random demo item
vectors plus Gaussian noise, rescaled to the demo norms, not trained; the model is the demo's.

Floors (the issue's): per ranking-stage strategy with explanations, against two_tower's row of the same run: p50
at c=1 <= 1.5x, req/s at the highest concurrency >= 0.7x, p99 there <= 2x, no errors; on the 1M catalog the
default strategy (known users, explain false) >= 400 req/s with p99 <= 100 ms at the highest concurrency; N
workers >= 1.4x one worker's req/s.

Writes benchmarks/results/serve_latency.json and .md (with --default-strategy S: serve_latency_S.json and .md,
the server's default strategy set to S, e.g. reranked_lgbm, so every request runs the ranking stage).
Usage: .venv/bin/python benchmarks/serve_latency.py [--bundle runs/demo/bundle] [--duration 10] [--skip-1m]
       [--default-strategy reranked_lgbm] [--compare-workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from synthetic_bundle import CACHE, synthetic_bundle  # benchmarks/ (the script's folder) is on sys.path
from wrk_server import get_status, memory_mb, run_wrk, start_server, stop_server, write_script

from foryou.data import schema as S
from foryou.serving.bundle import INDEX_DIR, ITEMS_FILE, MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONCURRENCY = (1, 8, 32)
K, HISTORY_LENGTH, MAX_BODIES = 10, 5, 1000
FLOORS = {"p50_ms": 5.0, "p99_ms": 20.0, "p50_over_noop": 2.5, "requests_per_s": 500.0}
STAGE_FLOORS = {"p50_over_two_tower": 1.5, "requests_per_s_over_two_tower": 0.7, "p99_over_two_tower": 2.0}
LARGE_FLOORS = {"requests_per_s": 400.0, "p99_ms": 100.0}
PROBES_PER_WORKER = 4
WORKERS_FLOOR = 1.4
STAGE_STRATEGIES = ("reranked_lgbm", "reranked_mlp", "hybrid", "hybrid_rrf")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")  # the server inherits them
PACKAGES = ("foryou", "fastapi", "starlette", "uvicorn", "pydantic", "numpy", "pandas", "faiss-cpu", "torch")

logger = logging.getLogger("serve_latency")


@dataclass
class Scenario:
    """One row group: a route with the request bodies wrk rotates over (None for a GET)."""

    route: str
    requests: str
    explain: bool | None
    bodies: list[str] | None
    strategy: str = "default"  # the strategy the bodies ask for ("default": none, the server's default)

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "runs" / "demo" / "bundle")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the discarded wrk run before each")
    parser.add_argument("--concurrency", nargs="+", type=int, default=list(CONCURRENCY))
    parser.add_argument("--skip-1m", action="store_true", help="only the demo bundle")
    parser.add_argument("--default-strategy", help="serve with this default strategy (results file suffixed)")
    parser.add_argument("--synthetic-items", type=int, default=1_000_000)
    parser.add_argument("--ef-construction", type=int, default=64, help="HNSW efConstruction of the big index")
    parser.add_argument("--spread", type=float, default=1.0, help="noise norm relative to the demo vector norm")
    parser.add_argument("--cache-dir", type=Path, default=CACHE, help="where the big bundle is built and reused")
    parser.add_argument("--compare-workers", type=int, default=0, help="also serve the demo with this many workers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    environment = describe_environment()
    targets: list[tuple[str, Path, dict[str, Any] | None]] = [("demo", args.bundle.resolve(), None)]
    if not args.skip_1m:
        path, build = synthetic_bundle(args.bundle.resolve(), args.cache_dir.resolve(), args.synthetic_items,
                                       args.ef_construction, args.spread)
        targets.append((f"demo + {args.synthetic_items:,} synthetic (HNSW)", path, build))
    with tempfile.TemporaryDirectory(prefix="serve-latency-") as scratch:
        bundles = [run_bundle(name, path, build, args, Path(scratch)) for name, path, build in targets]
        workers = compare_workers(bundles[0], args, Path(scratch)) if args.compare_workers > 1 else None
    write_results(environment, bundles, args, workers)


# ---- one bundle under wrk ----------------------------------------------------------------------------------
def run_bundle(name: str, bundle: Path, build: dict[str, Any] | None, args: argparse.Namespace,
               scratch: Path) -> dict[str, Any]:
    """Serve `bundle`, run every scenario at every concurrency, read the server's memory; one result dict."""
    tag = "synthetic" if build else "demo"
    process, base, load_seconds = start_server(bundle, scratch / tag, args.default_strategy)
    try:
        scenarios = make_scenarios(bundle, per_strategy=not build)
        rows: list[dict[str, Any]] = []
        probes: dict[str, dict[str, Any]] = {}
        for scenario in scenarios:
            probes[f"{scenario.requests}, {scenario.strategy}, explain {str(scenario.explain).lower()}"] = \
                probe(base, scenario)
            rows += measure(scenario, base, args.concurrency, args, scratch / f"{tag}-{len(rows)}.lua", name)
        memory = memory_mb(process.pid)
    finally:
        stop_server(process)
    items = len(pd.read_parquet(bundle / ITEMS_FILE, columns=[S.ITEM_ID]))
    index_kind = json.loads((bundle / INDEX_DIR / "index.json").read_text())["kind"]
    checks = floors(rows) + (large_floors(rows) if build else stage_floors(rows))
    return {"name": name, "bundle": str(bundle), "items": items, "index": index_kind,
            "load_s": round(load_seconds, 2), **memory, "build": build, "probes": probes, "rows": rows,
            "floors": checks}


def measure(scenario: Scenario, base: str, concurrency: list[int], args: argparse.Namespace, script_path: Path,
            name: str) -> list[dict[str, Any]]:
    """One row per concurrency: a discarded warm-up wrk run, then the measured one."""
    script = write_script(scenario.bodies, scenario.route.split(" ", 1)[0], script_path)
    rows = []
    for connections in concurrency:
        run_wrk(script, base + scenario.path, connections, args.warmup)
        measured = run_wrk(script, base + scenario.path, connections, args.duration)
        rows.append({"route": scenario.route, "requests": scenario.requests, "strategy": scenario.strategy,
                     "explain": "-" if scenario.explain is None else str(scenario.explain).lower(),
                     "concurrency": connections, **measured})
        logger.info("%s: %s", name, rows[-1])
    return rows


def compare_workers(demo: dict[str, Any], args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """The demo's default strategy, known users, explain true, at the highest concurrency, served by
    `--compare-workers` workers; against the same row of the one-worker server."""
    connections = max(args.concurrency)
    bundle = Path(demo["bundle"])
    scenario = next(s for s in make_scenarios(bundle, per_strategy=False)
                    if s.requests == "known users" and s.explain)
    process, base, _ = start_server(bundle, scratch / "workers", args.default_strategy, args.compare_workers)
    try:
        # each worker keeps its own answers, and a body lands on one worker: sent PROBES_PER_WORKER times per worker,
        # every body reaches every worker (all but ~1% of them), so both servers are timed on the kept path
        for _ in range(PROBES_PER_WORKER * args.compare_workers):
            probe(base, scenario)
        row = measure(scenario, base, [connections], args, scratch / "workers.lua", "workers")[0]
    finally:
        stop_server(process)
    one = next(r for r in demo["rows"] if r["requests"] == "known users" and r["strategy"] == "default"
               and r["explain"] == "true" and r["concurrency"] == connections)
    ratio = round(row["requests_per_s"] / one["requests_per_s"], 2) if one["requests_per_s"] else None
    return {"workers": args.compare_workers, "concurrency": connections, "one_worker": one, "several": row,
            "ratio": ratio, "floor": {"floor": f"{args.compare_workers} workers req/s / 1 worker's at c={connections}",
                                      "value": ratio, "target": f">= {WORKERS_FLOOR}",
                                      "pass": None if ratio is None else ratio >= WORKERS_FLOOR}}


def make_scenarios(bundle: Path, per_strategy: bool) -> list[Scenario]:
    """Known users (explain off / on), raw 5-item histories, the no-op floor; with `per_strategy`, known users
    with explain on under two_tower and every ranking-stage strategy of the bundle."""
    rng = np.random.default_rng(0)
    users = pd.read_parquet(bundle / MODEL_DIR / "users.parquet")[S.USER_ID].astype(str).to_numpy()
    users = rng.permutation(users)[:MAX_BODIES]
    model_items = pd.read_parquet(bundle / MODEL_DIR / "items.parquet")[S.ITEM_ID].astype(str).to_numpy()
    type_index = json.loads((bundle / MODEL_DIR / "two_tower.json").read_text()).get("type_index") or {"view": 1}
    event_type = min(type_index, key=lambda name: type_index[name])  # the model's first event type
    histories = [[{"item_id": str(item), "event_type": event_type}
                  for item in rng.choice(model_items, HISTORY_LENGTH, replace=False)] for _ in range(MAX_BODIES)]

    def known(explain: bool, strategy: str | None = None) -> list[str]:
        asked = {} if strategy is None else {"strategy": strategy}
        return [json.dumps({"user_id": str(user), "k": K, "explain": explain, **asked}) for user in users]

    route = "POST /v1/recommendations"
    scenarios = [Scenario(route, "known users", False, known(False)),
                 Scenario(route, "known users", True, known(True)),
                 Scenario(route, f"{HISTORY_LENGTH}-item histories", False,
                          [json.dumps({"interactions": history, "k": K, "explain": False}) for history in histories]),
                 Scenario("GET /v1/noop", "-", None, None)]
    if per_strategy:
        served = json.loads((bundle / "bundle.json").read_text())["strategies"]
        for strategy in ["two_tower", *(name for name in STAGE_STRATEGIES if name in served)]:
            scenarios.append(Scenario(route, "known users", True, known(True, strategy), strategy))
    return scenarios


def probe(base: str, scenario: Scenario) -> dict[str, Any]:
    """Every body sent once before timing (so known users' query vectors are in the service's cache) and
    checked: 200 with k items; fallbacks and synthetic items counted."""
    if scenario.bodies is None:
        return {"status": get_status(base + scenario.path)}
    counts = {"fallbacks": 0, "synthetic_items": 0, "items": 0}
    for body in scenario.bodies:
        answer = post(base + scenario.path, body)
        if len(answer["items"]) != K:
            raise RuntimeError(f"{scenario.route} {body}: {len(answer['items'])} items instead of {K}")
        counts["fallbacks"] += answer["fallback"] is not None
        counts["items"] += K
        counts["synthetic_items"] += sum(item["item_id"].startswith("syn") for item in answer["items"])
    return {"requests": len(scenario.bodies), **counts}


def post(url: str, body: str, attempts: int = 100) -> dict[str, Any]:
    """POST a JSON body; a 503 (a worker still loading its bundle) is retried every 0.2 s."""
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def floors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets on the main row (known users, explain off); value None where a needed run is missing."""
    def value(requests: str, concurrency: int, key: str) -> float | None:
        found = [r[key] for r in rows if r["requests"] == requests and r["explain"] in ("false", "-")
                 and r["strategy"] == "default" and r["concurrency"] == concurrency]
        return float(found[0]) if found else None

    p50, noop = value("known users", 1, "p50_ms"), value("-", 1, "p50_ms")
    ratio = round(p50 / noop, 2) if p50 is not None and noop else None
    checks = [("recommendations p50 at c=1 (ms)", p50, FLOORS["p50_ms"], "<="),
              ("recommendations p99 at c=1 (ms)", value("known users", 1, "p99_ms"), FLOORS["p99_ms"], "<="),
              ("recommendations p50 / no-op p50 at c=1", ratio, FLOORS["p50_over_noop"], "<="),
              ("recommendations req/s at c=32", value("known users", 32, "requests_per_s"),
               FLOORS["requests_per_s"], ">=")]
    return [check(name, measured, target, op) for name, measured, target, op in checks]


def stage_floors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each ranking-stage strategy (explain on) against two_tower's row of the same run."""
    c1, high = min(r["concurrency"] for r in rows), max(r["concurrency"] for r in rows)

    def row(strategy: str, concurrency: int) -> dict[str, Any] | None:
        return next((r for r in rows if r["strategy"] == strategy and r["concurrency"] == concurrency), None)

    base_1, base_high = row("two_tower", c1), row("two_tower", high)
    checks = []
    for strategy in sorted({r["strategy"] for r in rows} & set(STAGE_STRATEGIES)):
        one, many = row(strategy, c1), row(strategy, high)
        pairs = [(f"{strategy} p50 at c={c1} / two_tower's", one, base_1, "p50_ms", "p50_over_two_tower", "<="),
                 (f"{strategy} req/s at c={high} / two_tower's", many, base_high, "requests_per_s",
                  "requests_per_s_over_two_tower", ">="),
                 (f"{strategy} p99 at c={high} / two_tower's", many, base_high, "p99_ms", "p99_over_two_tower", "<=")]
        for name, mine, theirs, key, floor, op in pairs:
            ratio = round(mine[key] / theirs[key], 2) if mine and theirs and theirs[key] else None
            checks.append(check(name, ratio, STAGE_FLOORS[floor], op))
        errors = sum(r["errors"] for r in rows if r["strategy"] == strategy)
        checks.append(check(f"{strategy} errors (all concurrencies)", errors, 0, "<="))
    return checks


def large_floors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The default strategy on the big catalog (known users, explain false) at the highest concurrency."""
    high = max(r["concurrency"] for r in rows)
    found = next((r for r in rows if r["requests"] == "known users" and r["strategy"] == "default"
                  and r["explain"] == "false" and r["concurrency"] == high), None)
    return [check(f"default strategy req/s at c={high}", found["requests_per_s"] if found else None,
                  LARGE_FLOORS["requests_per_s"], ">="),
            check(f"default strategy p99 at c={high} (ms)", found["p99_ms"] if found else None, LARGE_FLOORS["p99_ms"], "<=")]


def check(name: str, measured: float | None, target: float, op: str) -> dict[str, Any]:
    return {"floor": name, "value": measured, "target": f"{op} {target}",
            "pass": None if measured is None else (measured <= target if op == "<=" else measured >= target)}


# ---- results ------------------------------------------------------------------------------------------------
def describe_environment() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
    wrk = wrk.split("Copyright")[0]
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
            "packages": versions, "wrk": wrk.strip(), "load_average_at_start": os.getloadavg(),
            "thread_settings": {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join([os.path.relpath(sys.executable, ROOT), *sys.argv])}


def write_results(environment: dict[str, Any], bundles: list[dict[str, Any]], args: argparse.Namespace,
                  workers: dict[str, Any] | None) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = {"duration_s": args.duration, "warmup_s": args.warmup, "concurrency": args.concurrency, "k": K,
                "wrk_threads": "min(concurrency, 2)", "history_length": HISTORY_LENGTH, "floors": FLOORS,
                "default_strategy": args.default_strategy or "the bundle's"}
    for bundle in bundles:
        bundle["p50_over_noop"] = noop_ratios(bundle["rows"])
    payload = {"environment": environment, "settings": settings, "bundles": bundles, "workers": workers}
    stem = "serve_latency" + (f"_{args.default_strategy}" if args.default_strategy else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{stem}.md").write_text(markdown(environment, settings, bundles, workers) + "\n")


def noop_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """p50 of the main row over the no-op's, per concurrency."""
    noop = {r["concurrency"]: r["p50_ms"] for r in rows if r["route"] == "GET /v1/noop"}
    return {str(r["concurrency"]): round(r["p50_ms"] / noop[r["concurrency"]], 2) for r in rows
            if r["requests"] == "known users" and r["strategy"] == "default" and r["explain"] == "false"
            and noop.get(r["concurrency"])}


def markdown(environment: dict[str, Any], settings: dict[str, Any], bundles: list[dict[str, Any]],
             workers: dict[str, Any] | None) -> str:
    lines = ["# Service latency: `foryou serve` under wrk", "", machine_line(environment), "",
             f"Command: `{environment['command']}`", "", method_line(settings), ""]
    for bundle in bundles:
        lines += bundle_section(bundle)
    sizes = [{"catalog": b["name"], "items": b["items"], "index": b["index"], "load_s (to /readyz)": b["load_s"],
              "RSS MB (after runs)": b["rss_MB"], "peak RSS MB": b["peak_rss_MB"]} for b in bundles]
    lines += ["## Memory and load time per catalog size", "", *table(sizes), "",
              "## Floors (the issues' targets)", ""]
    named = [(bundle["name"], floor) for bundle in bundles for floor in bundle["floors"]]
    if workers is not None:
        one, several = workers["one_worker"], workers["several"]
        lines[-2:-2] = ["## Workers", "",
                        (f"Default strategy, known users, explain true, c={workers['concurrency']}: one worker "
                         f"{one['requests_per_s']} req/s (p99 {one['p99_ms']} ms), {workers['workers']} workers "
                         f"{several['requests_per_s']} req/s (p99 {several['p99_ms']} ms, {several['errors']} "
                         f"errors): x{workers['ratio']}. Each worker keeps its own answers, so before timing every "
                         f"body was sent {PROBES_PER_WORKER} times per worker (it reaches each worker all but ~1% "
                         "of the time): both rows time the kept path."), ""]
        named.append((bundles[0]["name"], workers["floor"]))
    for name, floor in named:
        verdict = "n/a (not run)" if floor["pass"] is None else ("PASS" if floor["pass"] else "FAIL")
        lines.append(f"- {verdict}: {name}: {floor['floor']} = {floor['value']} (target {floor['target']})")
    return "\n".join(lines)


def machine_line(environment: dict[str, Any]) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in environment["packages"].items())
    load = ", ".join(f"{x:.2f}" for x in environment["load_average_at_start"])
    threads = ", ".join(f"{k}={v}" for k, v in environment["thread_settings"].items()) or "library defaults"
    return (f"{environment['cpu_count']} CPUs ({environment['machine']}), Python {environment['python']}, "
            f"{packages}; {environment['wrk']}. {environment['date']}; load average at start {load}; thread "
            f"settings: {threads}. "
            "Client (wrk) and server share the machine.")


def method_line(settings: dict[str, Any]) -> str:
    return (f"One uvicorn worker (`foryou serve`, rate limit lifted, fresh SQLite store, default strategy: "
            f"{settings['default_strategy']}). Each row: a "
            f"{settings['warmup_s']} s warm-up, then `wrk -t min(c, 2) -c c -d {settings['duration_s']}s`, "
            f"k={settings['k']}; bodies rotate over the bundle's known users (up to {MAX_BODIES}) or over random "
            f"{HISTORY_LENGTH}-item histories without a user id; every body is sent once before timing. The "
            "service keeps a known user's query vector (LRU, 100k users) and, for a trained user without live "
            "events, the ranking stage's answer (LRU, 20k answers, until their events, the rules or the catalog "
            "change) after their first request, so the known-user rows measure that kept path (the first "
            "requests are timed in process by rerank_latency.py); the history rows run the user tower, every "
            "source and the ranker every time. Errors = "
            "socket errors + non-2xx answers. GET /v1/noop is a no-op route of the same app and middleware: the "
            "floor.")


def bundle_section(bundle: dict[str, Any]) -> list[str]:
    lines = [f"## {bundle['name']}: {bundle['items']:,} items, {bundle['index']} index", ""]
    if bundle["build"]:
        lines += [synthetic_line(bundle["build"]), ""]
    columns = ["route", "requests", "strategy", "explain", "concurrency", "p50_ms", "p99_ms", "requests_per_s",
               "errors"]
    lines += table([{c: row[c] for c in columns} for row in bundle["rows"]], columns)
    ratios = ", ".join(f"c={c}: {ratio}" for c, ratio in bundle["p50_over_noop"].items())
    shares = [f"{name}: {p['synthetic_items']:,}/{p['items']:,} synthetic, {p['fallbacks']} fallbacks"
              for name, p in bundle["probes"].items() if "items" in p]
    return [*lines, "", f"p50(recommendations, known users) / p50(no-op): {ratios or 'n/a'}.", "",
            f"Every body sent once before timing (all 200 with {K} items): {'; '.join(shares)}.", ""]


def synthetic_line(build: dict[str, Any]) -> str:
    index, recipe = build["index"], build["recipe"]
    reused = ", reused from the cache" if build["reused"] else ""
    return (f"The demo catalog and model plus {recipe['synthetic_items']:,} synthetic items (ids syn0.., titles "
            f"and prices copied from random demo items). Their vectors are synthetic, not trained: a random demo "
            f"item vector plus Gaussian noise of {recipe['spread']} times its norm, rescaled to that norm, with a "
            f"demo bias value; the model (user tower) is the demo's, so the queries are real. HNSW "
            f"M={index['hnsw_m']}, efConstruction={index['hnsw_ef_construction']} (below the default 200, to "
            f"build in minutes), efSearch={index['hnsw_ef_search']} (the default). Built in {build['build_s']} s "
            f"(index {build['index_build_s']} s){reused}. The `content` strategy still covers the demo items "
            "only (not benchmarked).")


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[str]:
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{row[c]:,}" if isinstance(row[c], int) and not isinstance(row[c], bool)
                                else str(row[c]) for c in columns) + " |" for row in rows]
    return lines


if __name__ == "__main__":
    main()

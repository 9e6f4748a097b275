"""Service latency benchmark: a real `foryou serve` process (uvicorn) under `wrk`, at concurrency 1, 8 and 32.

For each bundle the server is started with the rate limit lifted and a fresh SQLite store in a temp folder, and
load time is measured up to GET /readyz = 200. Routes: POST /v1/recommendations k=10 for the bundle's known users
(explain false and true), the same for raw 5-item histories (no user id), and GET /v1/noop, a no-op route of the
same app and middleware (the floor). Each (route, concurrency) gets a warm-up, then `wrk -t min(c, 2) -c c -d
DURATION` with a generated Lua script that rotates over the request bodies and prints the latency percentiles,
request count and errors as one JSON line. The server's RSS is read from /proc after the runs.

Bundles: the demo bundle, and a derived catalog of the demo items + 1,000,000 synthetic items served through HNSW
(benchmarks/synthetic_bundle.py, built once into --cache-dir and reused): synthetic vectors are random demo item
vectors plus Gaussian noise, rescaled to the demo norms, not trained; the model is the demo's.

Writes benchmarks/results/serve_latency.json and .md (with --default-strategy S: serve_latency_S.json and .md,
the server's default strategy set to S, e.g. reranked_lgbm, so every request runs the ranking stage).
Usage: .venv/bin/python benchmarks/serve_latency.py [--bundle runs/demo/bundle] [--duration 10] [--skip-1m]
       [--default-strategy reranked_lgbm]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import signal
import socket
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

from foryou.data import schema as S
from foryou.serving.bundle import INDEX_DIR, ITEMS_FILE, MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONCURRENCY = (1, 8, 32)
K, HISTORY_LENGTH, MAX_BODIES = 10, 5, 1000
READY_TIMEOUT_S, WRK_TIMEOUT = 1800, "30s"
FLOORS = {"p50_ms": 5.0, "p99_ms": 20.0, "p50_over_noop": 2.5, "requests_per_s": 500.0}
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
    write_results(environment, bundles, args)


# ---- one bundle under wrk ----------------------------------------------------------------------------------
def run_bundle(name: str, bundle: Path, build: dict[str, Any] | None, args: argparse.Namespace,
               scratch: Path) -> dict[str, Any]:
    """Serve `bundle`, run every scenario at every concurrency, read the server's memory; one result dict."""
    tag = "synthetic" if build else "demo"
    process, base, load_seconds = start_server(bundle, scratch / tag, args.default_strategy)
    try:
        scenarios = make_scenarios(bundle)
        rows: list[dict[str, Any]] = []
        probes: dict[str, dict[str, Any]] = {}
        for scenario in scenarios:
            probes[f"{scenario.requests}, explain {str(scenario.explain).lower()}"] = probe(base, scenario)
            script = write_script(scenario, scratch / f"{tag}-{len(rows)}.lua")
            for connections in args.concurrency:
                run_wrk(script, base + scenario.path, connections, args.warmup)
                measured = run_wrk(script, base + scenario.path, connections, args.duration)
                rows.append({"route": scenario.route, "requests": scenario.requests,
                             "explain": "-" if scenario.explain is None else str(scenario.explain).lower(),
                             "concurrency": connections, **measured})
                logger.info("%s: %s", name, rows[-1])
        memory = memory_mb(process.pid)
    finally:
        stop_server(process)
    items = len(pd.read_parquet(bundle / ITEMS_FILE, columns=[S.ITEM_ID]))
    index_kind = json.loads((bundle / INDEX_DIR / "index.json").read_text())["kind"]
    return {"name": name, "bundle": str(bundle), "items": items, "index": index_kind,
            "load_s": round(load_seconds, 2), **memory, "build": build, "probes": probes, "rows": rows,
            "floors": floors(rows)}


def start_server(bundle: Path, scratch: Path,
                 default_strategy: str | None = None) -> tuple[subprocess.Popen[bytes], str, float]:
    """`foryou serve` on a free port with a fresh store; returns (process, base URL, seconds to /readyz 200)."""
    scratch.mkdir(parents=True, exist_ok=True)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = int(free.getsockname()[1])
    command = [str(Path(sys.executable).parent / "foryou"), "serve", str(bundle), "--port", str(port),
               "--set", "serving.rate_limit_per_minute=1000000000",
               "--set", f"serving.store_url=sqlite:///{scratch / 'service.db'}"]
    if default_strategy:
        command += ["--set", f"serving.default_strategy={default_strategy}"]
    log_path = scratch / "serve.log"
    start = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    while get_status(base + "/readyz") != 200:
        if process.poll() is not None or time.perf_counter() - start > READY_TIMEOUT_S:
            stop_server(process)
            raise RuntimeError(f"foryou serve {bundle} did not become ready:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    logger.info("%s ready in %.1f s (pid %d)", bundle, seconds, process.pid)
    return process, base, seconds


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def make_scenarios(bundle: Path) -> list[Scenario]:
    """Known users (explain off / on), raw 5-item histories, and the no-op floor."""
    rng = np.random.default_rng(0)
    users = pd.read_parquet(bundle / MODEL_DIR / "users.parquet")[S.USER_ID].astype(str).to_numpy()
    users = rng.permutation(users)[:MAX_BODIES]
    model_items = pd.read_parquet(bundle / MODEL_DIR / "items.parquet")[S.ITEM_ID].astype(str).to_numpy()
    type_index = json.loads((bundle / MODEL_DIR / "two_tower.json").read_text()).get("type_index") or {"view": 1}
    event_type = min(type_index, key=lambda name: type_index[name])  # the model's first event type
    histories = [[{"item_id": str(item), "event_type": event_type}
                  for item in rng.choice(model_items, HISTORY_LENGTH, replace=False)] for _ in range(MAX_BODIES)]

    def known(explain: bool) -> list[str]:
        return [json.dumps({"user_id": str(user), "k": K, "explain": explain}) for user in users]

    route = "POST /v1/recommendations"
    return [Scenario(route, "known users", False, known(False)),
            Scenario(route, "known users", True, known(True)),
            Scenario(route, f"{HISTORY_LENGTH}-item histories", False,
                     [json.dumps({"interactions": history, "k": K, "explain": False}) for history in histories]),
            Scenario("GET /v1/noop", "-", None, None)]


def probe(base: str, scenario: Scenario) -> dict[str, Any]:
    """Every body sent once before timing (so known users' query vectors are in the service's cache) and
    checked: 200 with k items; fallbacks and synthetic items counted."""
    if scenario.bodies is None:
        return {"status": get_status(base + scenario.path)}
    counts = {"fallbacks": 0, "synthetic_items": 0, "items": 0}
    for body in scenario.bodies:
        request = urllib.request.Request(base + scenario.path, body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if len(answer["items"]) != K:
            raise RuntimeError(f"{scenario.route} {body}: {len(answer['items'])} items instead of {K}")
        counts["fallbacks"] += answer["fallback"] is not None
        counts["items"] += K
        counts["synthetic_items"] += sum(item["item_id"].startswith("syn") for item in answer["items"])
    return {"requests": len(scenario.bodies), **counts}


LUA = """-- generated by benchmarks/serve_latency.py
local bodies = {%(bodies)s}
local made = 0
wrk.method = "%(method)s"
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
  thread:set("offset", made * 7919)
  made = made + 1
end

function init(args)
  counter = offset or 0
end

function request()
  if #bodies == 0 then return wrk.format() end
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter %% #bodies) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nRESULT {"p50_us": %%.0f, "p99_us": %%.0f, "mean_us": %%.0f, "max_us": %%.0f, ' ..
    '"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, ' ..
    '"timeout": %%d}\\n', latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def write_script(scenario: Scenario, path: Path) -> Path:
    """The wrk Lua script of a scenario: rotates over its bodies, one JSON result line from `done`."""
    bodies = ",\n".join(f"[==[{body}]==]" for body in scenario.bodies or [])
    path.write_text(LUA % {"bodies": bodies, "method": scenario.route.split(" ", 1)[0]})
    return path


def run_wrk(script: Path, url: str, connections: int, seconds: int) -> dict[str, Any]:
    """One wrk run: p50 / p99 ms, requests/s and errors (socket errors + non-2xx/3xx answers)."""
    command = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", WRK_TIMEOUT, "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"no result line from {' '.join(command)}:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("RESULT "))
    errors = sum(raw[key] for key in ("connect", "read", "write", "status", "timeout"))
    return {"p50_ms": round(raw["p50_us"] / 1e3, 2), "p99_ms": round(raw["p99_us"] / 1e3, 2),
            "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1), "completed": raw["requests"],
            "errors": errors, "non_2xx": raw["status"]}


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of the server process now and at its peak (VmRSS, VmHWM), in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return {key: round(int(fields[name].split()[0]) / 1024, 1)
            for key, name in (("rss_MB", "VmRSS"), ("peak_rss_MB", "VmHWM"))}


def floors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets on the main row (known users, explain off); value None where a needed run is missing."""
    def value(requests: str, concurrency: int, key: str) -> float | None:
        found = [r[key] for r in rows if r["requests"] == requests and r["explain"] in ("false", "-")
                 and r["concurrency"] == concurrency]
        return float(found[0]) if found else None

    p50, noop = value("known users", 1, "p50_ms"), value("-", 1, "p50_ms")
    ratio = round(p50 / noop, 2) if p50 is not None and noop else None
    checks = [("recommendations p50 at c=1 (ms)", p50, FLOORS["p50_ms"], "<="),
              ("recommendations p99 at c=1 (ms)", value("known users", 1, "p99_ms"), FLOORS["p99_ms"], "<="),
              ("recommendations p50 / no-op p50 at c=1", ratio, FLOORS["p50_over_noop"], "<="),
              ("recommendations req/s at c=32", value("known users", 32, "requests_per_s"),
               FLOORS["requests_per_s"], ">=")]
    return [{"floor": name, "value": measured, "target": f"{op} {target}",
             "pass": None if measured is None else (measured <= target if op == "<=" else measured >= target)}
            for name, measured, target, op in checks]


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


def write_results(environment: dict[str, Any], bundles: list[dict[str, Any]], args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = {"duration_s": args.duration, "warmup_s": args.warmup, "concurrency": args.concurrency, "k": K,
                "wrk_threads": "min(concurrency, 2)", "history_length": HISTORY_LENGTH, "floors": FLOORS,
                "default_strategy": args.default_strategy or "the bundle's"}
    for bundle in bundles:
        bundle["p50_over_noop"] = noop_ratios(bundle["rows"])
    payload = {"environment": environment, "settings": settings, "bundles": bundles}
    stem = "serve_latency" + (f"_{args.default_strategy}" if args.default_strategy else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{stem}.md").write_text(markdown(environment, settings, bundles) + "\n")


def noop_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """p50 of the main row over the no-op's, per concurrency."""
    noop = {r["concurrency"]: r["p50_ms"] for r in rows if r["route"] == "GET /v1/noop"}
    return {str(r["concurrency"]): round(r["p50_ms"] / noop[r["concurrency"]], 2) for r in rows
            if r["requests"] == "known users" and r["explain"] == "false" and noop.get(r["concurrency"])}


def markdown(environment: dict[str, Any], settings: dict[str, Any], bundles: list[dict[str, Any]]) -> str:
    lines = ["# Service latency: `foryou serve` under wrk", "", machine_line(environment), "",
             f"Command: `{environment['command']}`", "", method_line(settings), ""]
    for bundle in bundles:
        lines += bundle_section(bundle)
    sizes = [{"catalog": b["name"], "items": b["items"], "index": b["index"], "load_s (to /readyz)": b["load_s"],
              "RSS MB (after runs)": b["rss_MB"], "peak RSS MB": b["peak_rss_MB"]} for b in bundles]
    lines += ["## Memory and load time per catalog size", "", *table(sizes), "",
              "## Floors (the issue's targets, on known users, explain off)", ""]
    for bundle in bundles:
        for floor in bundle["floors"]:
            verdict = "n/a (not run)" if floor["pass"] is None else ("PASS" if floor["pass"] else "FAIL")
            lines.append(f"- {verdict}: {bundle['name']}: {floor['floor']} = {floor['value']} "
                         f"(target {floor['target']})")
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
            "service caches a known user's query vector (LRU, 100k users) after their first request, so the "
            "known-user rows measure that cached path; the history rows run the user tower every time. Errors = "
            "socket errors + non-2xx answers. GET /v1/noop is a no-op route of the same app and middleware: the "
            "floor.")


def bundle_section(bundle: dict[str, Any]) -> list[str]:
    lines = [f"## {bundle['name']}: {bundle['items']:,} items, {bundle['index']} index", ""]
    if bundle["build"]:
        lines += [synthetic_line(bundle["build"]), ""]
    columns = ["route", "requests", "explain", "concurrency", "p50_ms", "p99_ms", "requests_per_s", "errors"]
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

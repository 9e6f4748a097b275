"""Scale benchmark: prepare (pandas vs Spark), two-tower training throughput and the FAISS index on a power-law log.

The log (benchmarks/power_law_log.py; default 10M events, 1M items, 1M users) is generated into --workdir and
reused while its recipe is unchanged. Every step runs as its own subprocess, and its peak memory is the peak of
the summed RSS of its whole process tree (the Spark JVM and its Python workers included), sampled from /proc
every SAMPLE_S; the sum of each process's own peak (VmHWM) is given beside it as an upper bound, and CPU seconds are the tree's
user + system time read there too. (getrusage(RUSAGE_CHILDREN) is not used: its peak is the largest single
descendant over this script's whole life, and its CPU time misses what the parent does not wait for, e.g. the JVM.)

Steps (--only to run some; results of the others are kept from the last run on the same log):
  generate        writing the log (Parquet, or CSV with --format csv)
  pandas_prepare  `foryou prepare CONFIG`                 (the generic data mapping written beside the log)
  spark_prepare   `foryou prepare CONFIG --engine spark`  (local[*] unless --spark-set says otherwise); a
                  failure (e.g. the engine not there yet) is recorded for its row, the other steps go on
  train           two-tower samples/s for --train-steps sampled-softmax steps per --train-batch-sizes, on CPU,
                  and on CUDA when torch sees one (benchmarks/scale_steps.py train; full softmax over 1M items
                  is not run: a (targets x items) logit matrix per step is not what one trains at this size)
  index           exact / HNSW / IVF through the project factory, and raw faiss IVF-PQ, over --items synthetic
                  vectors (d=64, as benchmarks/index.py): build time, memory, recall@10, single-query p50/p99 on
                  the service's query path (VectorIndex.search, also with seen items denied and a category filter)
The HTTP service at 1M items is benchmarks/serve_latency.py's; its last results are quoted, not rerun.

Writes benchmarks/results/scale.json and .md. Usage:
  .venv/bin/python benchmarks/scale.py [--events 10000000 --items 1000000 --users 1000000] [--workdir runs/scale]
      [--only spark_prepare] [--spark-set spark.driver_memory=8g] [--train-steps 30] [--step-timeout 1800]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from power_law_log import LogSize  # benchmarks/ (the script's folder) is on sys.path
from scale_report import write_markdown

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HERE = Path(__file__).resolve().parent
STEPS = ("generate", "pandas_prepare", "spark_prepare", "train", "index")
INDEX_KINDS = ("exact", "hnsw", "ivf", "ivfpq")
SAMPLE_S = 0.1
PACKAGES = ("numpy", "pandas", "pyarrow", "torch", "faiss-cpu", "pyspark")

logger = logging.getLogger("scale")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "scale")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--spark-set", action="append", default=[], metavar="KEY=VALUE",
                        help="--set override passed to the Spark prepare, e.g. spark.driver_memory=8g (repeatable)")
    parser.add_argument("--train-batch-sizes", nargs="+", type=int, default=[32, 256])
    parser.add_argument("--train-steps", type=int, default=30, help="timed steps per batch size")
    parser.add_argument("--train-warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--index-kinds", nargs="+", choices=INDEX_KINDS, default=list(INDEX_KINDS))
    parser.add_argument("--queries", type=int, default=1000, help="single queries timed per index and shape")
    parser.add_argument("--pq-m", type=int, default=16, help="IVF-PQ bytes per vector")
    parser.add_argument("--step-timeout", type=int, default=1800, help="seconds before a step is stopped (capped)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where scale.json and scale.md go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    size = LogSize(args.events, args.items, args.users)
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = previous_results(args.results_dir / "scale.json", size, args.format)
    results["commands"] = [*results.get("commands", []), command_line()][-5:]
    results["environment"] = describe_environment()
    log = run_generate(work, args, results)  # always: reused (seconds) when the log is there already
    config = Path(log["config"])
    if "pandas_prepare" in args.only:
        results["prepare"]["pandas"] = run_prepare(work, config, "pandas", [], args.step_timeout)
    if "spark_prepare" in args.only:
        results["prepare"]["spark"] = run_prepare(work, config, "spark", args.spark_set, args.step_timeout)
    if "train" in args.only:
        run_train(work, args, results)
    if "index" in args.only:
        run_index(work, args, results)
    results["service_http"] = serve_latency_quote()
    write_results(results, args.results_dir)


# ---- process-tree memory -----------------------------------------------------------------------------------
class TreeMemory:
    """Peak summed RSS of a process and all its descendants, sampled from /proc; and each process's own peak."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak_bytes = 0
        self.own_peaks: dict[int, int] = {}  # pid -> VmHWM bytes, last seen
        self.cpu_ticks: dict[int, int] = {}  # pid -> user + system clock ticks, last seen
        self.names: dict[int, str] = {}

    def sample(self) -> None:
        total = 0
        for pid in self.tree():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self.page
                status = Path(f"/proc/{pid}/status").read_text()
            except (OSError, IndexError, ValueError):
                continue  # exited between the listing and the read
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if "VmHWM" in fields:
                self.own_peaks[pid] = int(fields["VmHWM"].split()[0]) * 1024
                self.names[pid] = fields.get("Name", "?").strip()
        self.peak_bytes = max(self.peak_bytes, total)

    def tree(self) -> list[int]:
        """The root and its descendants now (parents from /proc/PID/stat); records their CPU ticks on the way."""
        children: dict[int, list[int]] = {}
        ticks: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime + stime
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        self.cpu_ticks.update({pid: ticks[pid] for pid in found if pid in ticks})
        return found

    def summary(self) -> dict[str, Any]:
        names = sorted({self.names[pid] for pid in self.own_peaks})
        return {"cpu_s": round(sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK"), 1),
                "peak_tree_rss_MB": round(self.peak_bytes / 2**20, 1),
                "sum_of_process_peaks_MB": round(sum(self.own_peaks.values()) / 2**20, 1),
                "processes": len(self.own_peaks), "process_names": names}


def run_step(name: str, command: list[str], log_path: Path, timeout: int) -> dict[str, Any]:
    """Run `command` as its own session with output to `log_path`; wall seconds, exit status, tree memory."""
    logger.info("%s: %s", name, shlex.join(command))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=ROOT)
    memory, status = TreeMemory(process.pid), "ok"
    while process.poll() is None:
        memory.sample()
        if time.perf_counter() - start > timeout:
            os.killpg(process.pid, signal.SIGKILL)  # the session holds the step and all it started
            process.wait()
            status = f"capped: stopped after --step-timeout {timeout} s"
            break
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - start
    if status == "ok" and process.returncode != 0:
        status = f"error (exit {process.returncode})"
    row: dict[str, Any] = {"status": status, "wall_s": round(seconds, 1), **memory.summary(),
                           "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                           "command": shlex.join(command), "log": str(log_path)}
    if status != "ok":
        row["error_tail"] = log_path.read_text(errors="replace").strip().splitlines()[-12:]
    logger.info("%s: %s in %.1f s, peak tree RSS %.0f MB", name, status, seconds, row["peak_tree_rss_MB"])
    return row


# ---- the steps ---------------------------------------------------------------------------------------------
def run_generate(work: Path, args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "power_law_log.py"), str(work), "--events", str(args.events),
               "--items", str(args.items), "--users", str(args.users), "--format", args.format]
    row = run_step("generate", command, work / "generate.log", args.step_timeout)
    if row["status"] != "ok":
        raise RuntimeError("generating the log failed:\n" + "\n".join(row["error_tail"]))
    log = json.loads((work / "log.json").read_text())
    reused = log_is_reused(work)
    if results.get("generate") is None or not reused:
        results["generate"] = {**row, "reused": reused, "generation_s": log["seconds"],
                               "file_bytes": log["file_bytes"]}
    results["log"] = log["recipe"]
    return log


def log_is_reused(work: Path) -> bool:
    return '"reused": true' in (work / "generate.log").read_text()


def run_prepare(work: Path, config: Path, engine: str, overrides: list[str], timeout: int) -> dict[str, Any]:
    out = work / f"prepared-{engine}"
    shutil.rmtree(out, ignore_errors=True)
    command = [str(Path(sys.executable).parent / "foryou"), "prepare", str(config), "--out", str(out), "-q"]
    command += ["--engine", "spark"] if engine == "spark" else []
    for override in overrides:
        command += ["--set", override]
    row = run_step(f"{engine} prepare", command, work / f"prepare-{engine}.log", timeout)
    manifest = out / "manifest.json"
    if row["status"] == "ok" and manifest.exists():
        counts = json.loads(manifest.read_text())["counts"]
        row["counts"] = {key: counts[key] for key in ("source_interactions", "interactions", "users", "items",
                                                       "train", "valid", "test") if key in counts}
        row["events_per_s"] = round(counts["source_interactions"] / row["wall_s"])
        row["output_MB"] = round(sum(path.stat().st_size for path in out.rglob("*") if path.is_file()) / 2**20, 1)
    return row


def run_train(work: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    prepared = work / "prepared-pandas"
    if not (prepared / "manifest.json").exists():
        results["train"] = {"skipped": f"no prepared dataset in {prepared}: run with --only pandas_prepare first"}
        return
    devices = ["cpu", "cuda"] if cuda_available() else ["cpu"]
    rows = {key: row for key, row in results["train"].items() if isinstance(row, dict)}
    for device in devices:
        for batch_size in args.train_batch_sizes:
            out = work / f"train-{device}-{batch_size}.json"
            out.unlink(missing_ok=True)
            command = [sys.executable, str(HERE / "scale_steps.py"), "train", str(work / "config.yaml"),
                       str(prepared), str(out),
                       "--batch-size", str(batch_size), "--steps", str(args.train_steps),
                       "--warmup", str(args.train_warmup), "--device", device]
            row = run_step(f"train {device} batch {batch_size}", command, work / f"train-{device}-{batch_size}.log",
                           args.step_timeout)
            rows[f"{device}, batch {batch_size}"] = {**row, **(json.loads(out.read_text()) if out.exists() else {})}
    if "cuda" not in devices:
        rows["cuda"] = {"status": "not available (torch.cuda.is_available() is False on this machine)"}
    results["train"] = rows


def cuda_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                           capture_output=True, text=True, check=False)
    return probe.stdout.strip() == "True"


def run_index(work: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    folder = work / "index"
    items_file = Path(json.loads((work / "log.json").read_text())["config"]).parent / f"items.{args.format}"
    if args.format != "parquet":
        raise SystemExit("the index step reads the items' categories from items.parquet: use --format parquet")
    steps = [sys.executable, str(HERE / "scale_steps.py")]
    vectors = run_step("index vectors", [*steps, "vectors", str(folder), "--items", str(args.items), "--queries",
                                         str(args.queries), "--items-file", str(items_file)],
                       work / "index-vectors.log", args.step_timeout)
    if vectors["status"] != "ok":
        results["index"]["inputs"] = vectors
        return
    results["index"]["inputs"] = {**vectors, **json.loads((folder / "vectors.json").read_text())}
    for kind in args.index_kinds:
        out = work / f"index-{kind}.json"
        out.unlink(missing_ok=True)
        row = run_step(f"index {kind}", [*steps, "index", str(folder), kind, str(out), "--pq-m", str(args.pq_m)],
                       work / f"index-{kind}.log", args.step_timeout)
        results["index"][kind] = {**row, **(json.loads(out.read_text()) if out.exists() else {})}


# ---- results -----------------------------------------------------------------------------------------------
def previous_results(path: Path, size: LogSize, fmt: str) -> dict[str, Any]:
    """The last scale.json when it was measured on the same log (so --only updates its rows), else empty."""
    recipe = {**vars(size), "format": fmt, "seed": 0}
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("log") == recipe:
            return stored
    return {"log": recipe, "generate": None, "prepare": {}, "train": {}, "index": {}}


def command_line() -> str:
    return " ".join([".venv/bin/python benchmarks/scale.py", *map(shlex.quote, sys.argv[1:])])


def describe_environment() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False) \
        if shutil.which("java") else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "memory_GB": round(memory_kb / 2**20, 1),
            "python": platform.python_version(), "packages": packages,
            "java": java.stderr.splitlines()[0] if java and java.stderr else None,
            "load_average": [round(value, 2) for value in os.getloadavg()],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def serve_latency_quote() -> dict[str, Any] | None:
    """The 1M-item bundle's rows of benchmarks/results/serve_latency.json (HTTP, wrk), or None when absent."""
    path = RESULTS / "serve_latency.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    big = [bundle for bundle in stored["bundles"] if bundle["items"] >= 1_000_000]
    if not big:
        return None
    bundle, small = big[0], min(stored["bundles"], key=lambda found: found["items"])
    rows = [row for row in bundle["rows"] if row["explain"] in ("false", "-")]
    return {"source": "benchmarks/results/serve_latency.json", "date": stored["environment"].get("date"),
            "baseline_bundle": {key: small[key] for key in ("name", "items", "index", "load_s", "rss_MB")},
            "command": stored["environment"].get("command"), "bundle": bundle["name"], "items": bundle["items"],
            "index": bundle["index"], "hnsw_build_s": (bundle.get("build") or {}).get("index_build_s"),
            "load_s": bundle["load_s"], "rss_MB": bundle["rss_MB"],
            "rows": [{key: row[key] for key in ("route", "requests", "concurrency", "p50_ms", "p99_ms",
                                                 "requests_per_s")} for row in rows]}


def write_results(results: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scale.json").write_text(json.dumps(results, indent=2))
    (folder / "scale.md").write_text(write_markdown(results))
    logger.info("wrote %s and scale.md", folder / "scale.json")


if __name__ == "__main__":
    main()

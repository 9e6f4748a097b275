"""What a user runs, at scale: `foryou pipeline CONFIG` with a generic data mapping and defaults only, on a
power-law shop (benchmarks/power_law_log.py, the generator of scale.py), timed stage by stage.

The pipeline logs one line per stage ("stage NAME: S s (peak RSS G GiB)", foryou.stages); this script runs it
as a subprocess, reads those lines, and records wall time, each stage's seconds and the process's peak RSS
when the stage ended (ru_maxrss: a running maximum, so a stage's own peak is where the column first reaches
it), plus the whole run's peak. With --copies N, N identical pipelines start together (own output folders)
after one runs alone, and each copy's wall time is compared with the lone run: how well they share the cores.

Writes benchmarks/results/pipeline_scale[_SUFFIX].json and .md. Usage:
  .venv/bin/python benchmarks/pipeline_scale.py [--events 1000000 --items 100000 --users 100000]
      [--config configs/demo.yaml (instead of a generated log)] [--workdir runs/pipeline_scale] [--copies 2]
      [--set key=value ...] [--suffix small]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from power_law_log import LogSize, write_log  # benchmarks/ (the script's folder) is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FORYOU = Path(sys.executable).with_name("foryou")
SAMPLE_SECONDS = 0.5
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
STAGE_LINE = re.compile(r"stage (?P<name>.+): (?P<seconds>[\d.]+) s \(peak RSS (?P<rss>[\d.]+) GiB\)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "pipeline_scale")
    parser.add_argument("--config", type=Path, help="run this config instead of a generated log (e.g. the demo's)")
    parser.add_argument("--copies", type=int, default=0, help="also run this many pipelines at once (0: only alone)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an override passed to every pipeline (repeatable); none: defaults only")
    parser.add_argument("--timeout", type=int, default=3 * 3600, help="seconds before a pipeline is stopped")
    parser.add_argument("--suffix", default="", help="results go to pipeline_scale_SUFFIX.json / .md")
    args = parser.parse_args()
    size = LogSize(args.events, args.items, args.users)
    log = write_log(args.workdir / "log", size) if args.config is None else {"config": str(args.config)}
    config = Path(log["config"]).resolve()
    alone = run_pipeline(config, args.workdir / "alone", args.overrides, args.timeout)
    together = run_together(config, args.workdir, args.overrides, args.timeout, args.copies) if args.copies else []
    result = {"size": vars(size), "overrides": args.overrides, "log": log, "alone": alone, "together": together,
              "machine": machine(), "command": " ".join(sys.argv),
              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    name = f"pipeline_scale_{args.suffix}" if args.suffix else "pipeline_scale"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown(result))
    print(markdown(result))


def command(config: Path, output: Path, overrides: list[str]) -> list[str]:
    sets = [f"output_dir={output}", *overrides]
    return [str(FORYOU), "pipeline", str(config), "-q", *[part for value in sets for part in ("--set", value)]]


def run_pipeline(config: Path, output: Path, overrides: list[str], timeout: int) -> dict[str, Any]:
    """One pipeline alone: wall seconds, its stages, the peak RSS of its largest process (this script's only
    child then: ru_maxrss of its descendants) and of its processes together (the baselines' second process
    beside the two-tower's; /proc sampled every SAMPLE_SECONDS)."""
    start = time.perf_counter()
    process = subprocess.Popen(command(config, output, overrides), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    peaks = [0]
    sampler = threading.Thread(target=_sample_tree_rss, args=(process, peaks), daemon=True)
    sampler.start()
    _, stderr = process.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return summary(process.returncode, stderr, wall, output) | {"peak_rss_gib": round(peak / 2**30, 2),
                                                                "peak_tree_rss_gib": round(peaks[0] / 2**30, 2)}


def _sample_tree_rss(process: subprocess.Popen[str], peaks: list[int]) -> None:
    while process.poll() is None:
        peaks[0] = max(peaks[0], tree_rss_bytes(process.pid))
        time.sleep(SAMPLE_SECONDS)


def tree_rss_bytes(root: int) -> int:
    """Resident bytes of process `root` and its descendants now (/proc/PID/stat: parent and RSS in pages)."""
    parents, resident = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except OSError:  # gone since the listing
            continue
        pid = int(stat.parent.name)
        parents[pid], resident[pid] = int(fields[1]), int(fields[21]) * PAGE_BYTES
    total = 0
    for pid, rss in resident.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        total += rss if ancestor == root else 0
    return total


def run_together(config: Path, workdir: Path, overrides: list[str], timeout: int, copies: int) -> list[dict[str, Any]]:
    """`copies` pipelines started at once; each one's wall seconds and stages (peak RSS: from its own log)."""
    start = time.perf_counter()
    processes = [subprocess.Popen(command(config, workdir / f"copy{index}", overrides), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for index in range(copies)]
    results = []
    for index, process in enumerate(processes):  # communicate() drains stderr: a full pipe would block the child
        _, stderr = process.communicate(timeout=timeout)
        results.append(summary(process.returncode, stderr, time.perf_counter() - start, workdir / f"copy{index}"))
    return results


def summary(returncode: int, stderr: str, wall: float, output: Path) -> dict[str, Any]:
    """Exit code, wall seconds, the logged stages and the served baselines' parameters from bundle.json; the whole
    log is kept beside the run's output (pipeline.log), where a stage's own lines say where its time went."""
    if output.is_dir():
        (output / "pipeline.log").write_text(stderr)
    stages = [{"stage": match["name"], "seconds": float(match["seconds"]), "peak_rss_gib": float(match["rss"])}
              for match in STAGE_LINE.finditer(stderr)]
    manifest = output / "bundle" / "bundle.json"
    served = json.loads(manifest.read_text()).get("served_params", {}) if manifest.exists() else {}
    result: dict[str, Any] = {"returncode": returncode, "wall_seconds": round(wall, 1), "stages": stages,
                              "served_params": served}
    if returncode != 0:
        result["stderr_tail"] = stderr[-3000:]
    return result


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "platform": platform.platform(),
            "python": platform.python_version(), "load_average_at_end": os.getloadavg()}


def markdown(result: dict[str, Any]) -> str:
    size, alone, host = result["size"], result["alone"], result["machine"]
    title = (f"# foryou pipeline at scale: {size['events']:,} events, {size['items']:,} items, {size['users']:,} users"
             if "recipe" in result["log"] else f"# foryou pipeline on {result['log']['config']}")
    load = ", ".join(f"{value:.1f}" for value in host["load_average_at_end"])
    ran = f"`{result['command']}` ({result['finished_at']}; {host['affinity']} cores; load average at the end {load})."
    overrides = f"Overrides: {', '.join(result['overrides']) or 'none (defaults only)'}."
    together = (f", all its processes together {alone['peak_tree_rss_gib']:.2f} GiB (sampled every {SAMPLE_SECONDS} s)"
                if "peak_tree_rss_gib" in alone else "")
    total = (f"Alone: exit code {alone['returncode']}, {alone['wall_seconds']:.0f} s wall, "
             f"peak RSS {alone['peak_rss_gib']:.2f} GiB (its largest process){together}.")
    lines = [title, "", ran, overrides, "", total, "", "| stage | seconds | peak RSS so far (GiB) |", "|---|---:|---:|"]
    lines += [f"| {stage['stage']} | {stage['seconds']:.1f} | {stage['peak_rss_gib']:.2f} |"
              for stage in alone["stages"]]
    if any("second process" in stage["stage"] for stage in alone["stages"]):
        lines += ["", ("Stages marked (second process) ran in the baselines' process beside the two-tower's fits "
                  "(foryou/baseline_fits.py): their seconds overlap those fits' and are not added to the wall time.")]
    ease = alone["served_params"].get("ease")
    if ease:
        lines += ["", f"Served EASE (bundle.json): engine {ease['engine']}, dense limit {ease['dense_max_items']} items."]
    if alone["returncode"] != 0:
        lines += ["", "```", alone.get("stderr_tail", ""), "```"]
    if result["together"]:
        lines += ["", f"{len(result['together'])} pipelines started together:", "",
                  "| copy | exit code | wall s | x alone |", "|---|---:|---:|---:|"]
        lines += [f"| {index} | {run['returncode']} | {run['wall_seconds']:.0f} | "
                  f"{run['wall_seconds'] / alone['wall_seconds']:.2f} |" for index, run in enumerate(result["together"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

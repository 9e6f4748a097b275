"""Memory of a serving worker across hot reloads: RSS after each of N reloads that alternate between two bundles.

Starts `foryou serve` (one worker) on a copy of BUNDLE beside a second copy under another model version, sends a
few recommendation requests after each reload (so per-user caches fill), and reads the worker's VmRSS from
/proc. A reload that kept the previous bundle alive (e.g. through a cache keyed on an old object) shows as RSS
growing by about one bundle per reload; flat RSS means each swap frees the bundle it replaced.

Writes benchmarks/results/reload_memory.json and .md.
Usage: .venv/bin/python benchmarks/reload_memory.py [--bundle runs/demo/bundle] [--reloads 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

KEY = "reload-memory-key"
RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"foryou serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("foryou serve not ready in time")


def measure(bundle: Path, reloads: int, users: list[str]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="reload-memory-"))
    try:
        first = Path(shutil.copytree(bundle, root / "first"))
        second = Path(shutil.copytree(bundle, root / "second"))
        manifest = json.loads((second / "bundle.json").read_text())
        manifest["model_version"] += "-second"
        (second / "bundle.json").write_text(json.dumps(manifest))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", "from foryou.cli import app; app()", "serve", str(first), "--port", str(port),
                   "--set", "serving.rate_limit_per_minute=1000000"]
        with (root / "serve.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "FORYOU_API_KEYS": KEY})
        try:
            wait_ready(url, process)
            samples = []
            with httpx.Client(base_url=url, timeout=120, headers={"X-API-Key": KEY}) as client:
                for n in range(reloads + 1):
                    if n:
                        target = "second" if n % 2 else "first"
                        client.post("/v1/admin/reload", json={"bundle": target}).raise_for_status()
                    for user in users:
                        client.post("/v1/recommendations", json={"user_id": user, "k": 10}).raise_for_status()
                    samples.append(round(rss_mib(process.pid), 1))
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    after_first = samples[1:]
    return {"bundle": str(bundle), "reloads": reloads, "requests_per_reload": len(users), "rss_mib": samples,
            "growth_after_first_reload_mib": round(max(after_first) - after_first[0], 1),
            "growth_per_reload_mib": round((after_first[-1] - after_first[0]) / max(1, len(after_first) - 1), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("runs/demo/bundle"))
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    users = [str(user) for user in pd.read_parquet(args.bundle / "model" / "users.parquet")["user_id"]][:args.users]
    result = measure(args.bundle, args.reloads, users)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reload_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {n} | {rss} |" for n, rss in enumerate(result["rss_mib"]))
    (RESULTS / "reload_memory.md").write_text(
        f"# Worker RSS over {args.reloads} hot reloads\n\n`python benchmarks/reload_memory.py --bundle {args.bundle}"
        f" --reloads {args.reloads}`: reloads alternate between two copies of the bundle (two model versions), "
        f"{len(users)} known users asked after each.\n\nGrowth after the first reload: "
        f"{result['growth_after_first_reload_mib']} MiB (max minus first); per reload: "
        f"{result['growth_per_reload_mib']} MiB.\n\n| reloads | RSS MiB |\n|---|---|\n{rows}\n")
    print(json.dumps({key: value for key, value in result.items() if key != "rss_mib"}))


if __name__ == "__main__":
    main()

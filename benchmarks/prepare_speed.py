"""Time `prepare` on the shared MovieLens and UCI data, through their adapters and through generic mappings.

Writes benchmarks/results/prepare_speed.json and .md (counts and seconds). Targets on 2 CPU cores: <= 10 s for
MovieLens latest-small, <= 30 s for UCI Online Retail. Skips (exit 0) when ../shared/data is absent.

Usage (from anywhere): python benchmarks/prepare_speed.py
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from foryou.config import load_config
from foryou.data.prepare import prepare_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
CASES = (  # (config, data folder it needs, target seconds)
    ("movielens.yaml", "movielens-latest-small", 10.0),
    ("movielens_generic.yaml", "movielens-latest-small", 10.0),
    ("uci.yaml", "uci-online-retail", 30.0),
    ("uci_generic.yaml", "uci-online-retail", 30.0),
)

logger = logging.getLogger("prepare_speed")


def time_case(config_name: str, target: float) -> dict[str, Any]:
    """Prepare once in memory (no writing) and report counts and wall-clock seconds."""
    config = load_config(ROOT / "benchmarks" / "configs" / config_name)
    start = time.perf_counter()
    result = prepare_dataset(config, progress=False)
    seconds = time.perf_counter() - start
    counts = result.report["counts"]
    return {"config": config_name, "source": config.data.source, "seconds": round(seconds, 2),
            "target_seconds": target, "within_target": seconds <= target,
            "source_rows": result.dataset.manifest.counts["source_interactions"],
            "quarantined": len(result.quarantine), **counts}


def write_results(rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
    (RESULTS / "prepare_speed.json").write_text(json.dumps({"environment": meta, "results": rows}, indent=2))
    columns = ["config", "source", "source_rows", "quarantined", "users", "items", "interactions", "train",
               "valid", "test", "seconds", "target_seconds"]
    intro = (f"# prepare speed\n\n{meta['cpu_count']} CPUs, Python {meta['python']}; one run each, "
             "in memory (no writing), input hashing included.\n")
    lines = [intro,
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{row[c]:,}" if isinstance(row[c], int) and not isinstance(row[c], bool)
                                 else str(row[c]) for c in columns) + " |" for row in rows]
    (RESULTS / "prepare_speed.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.chdir(ROOT)  # the benchmark configs use paths relative to the repository root
    rows = []
    for config_name, folder, target in CASES:
        if not (SHARED / folder).is_dir():
            logger.info("skip %s: %s not found", config_name, SHARED / folder)
            continue
        rows.append(time_case(config_name, target))
        logger.info("%s: %.2f s (target %.0f s)", config_name, rows[-1]["seconds"], target)
    if not rows:
        logger.info("no shared data found under %s: nothing to time", SHARED)
        return
    write_results(rows)
    logger.info("wrote %s", RESULTS / "prepare_speed.md")


if __name__ == "__main__":
    main()

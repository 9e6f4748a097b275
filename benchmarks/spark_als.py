"""ALS on Spark MLlib against implicit's ALS, same settings, on the shared sets (protocol of BASELINES.md).

Each engine is fitted on train + valid with the benchmark config's ALS settings and three seeds, and tested
once per seed on the test split (full catalog, known items excluded). "Within noise" is read against the
seed-to-seed spread: the gap between the engines' means is compared with twice the larger standard deviation.
Writes benchmarks/results/spark_als.json and spark_als.md.

    .venv/bin/python benchmarks/spark_als.py [--datasets movielens uci] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import RESULTS, available_datasets

from foryou.config import RunConfig
from foryou.data.prepare import prepare_dataset
from foryou.evaluation.protocol import evaluate
from foryou.models.registry import build_baselines

logger = logging.getLogger("spark_als")
ENGINES = ("implicit", "spark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["movielens", "uci"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--master", default="local[2]", help="spark.master for the Spark engine")
    args = parser.parse_args()
    rows = []
    for name, config in available_datasets(args.datasets):
        rows += run_dataset(name, config, args.seeds, args.master)
    summary = summarise(rows)
    payload = {"machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
               "command": "python benchmarks/spark_als.py " + " ".join(sys.argv[1:]), "runs": rows,
               "summary": summary}
    (RESULTS / "spark_als.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / "spark_als.md").write_text(markdown(payload))


def run_dataset(name: str, config: RunConfig, seeds: list[int], master: str) -> list[dict[str, Any]]:
    dataset = prepare_dataset(config, progress=False).dataset
    train_valid = dataset.restricted_to("train", "valid")
    rows = []
    for engine in ENGINES:
        baselines = config.baselines.model_copy(update={"enabled": ["als"], "als_engine": engine})
        spark = config.spark.model_copy(update={"master": master})
        for seed in seeds:
            model = build_baselines(baselines, seed=seed, spark=spark)["als"]
            start = time.perf_counter()
            model.fit(train_valid)
            seconds = time.perf_counter() - start
            ndcg = evaluate(model, dataset, "test", ks=(10,), beyond_accuracy=False).summary["NDCG@10"]
            logger.info("%s %s seed %d: test NDCG@10 %.4f (%.1f s)", name, engine, seed, ndcg, seconds)
            rows.append({"dataset": name, "engine": engine, "seed": seed, "test_NDCG@10": ndcg,
                         "fit_seconds": round(seconds, 1), "params": model.params()})
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for name in dict.fromkeys(row["dataset"] for row in rows):
        stats = {}
        for engine in ENGINES:
            values = np.array([r["test_NDCG@10"] for r in rows if r["dataset"] == name and r["engine"] == engine])
            seconds = np.array([r["fit_seconds"] for r in rows if r["dataset"] == name and r["engine"] == engine])
            stats[engine] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                             float(seconds.mean()))
        gap = stats["spark"][0] - stats["implicit"][0]
        noise = 2 * max(stats["implicit"][1], stats["spark"][1])
        summary.append({"dataset": name, **{f"{engine}_mean": stats[engine][0] for engine in ENGINES},
                        **{f"{engine}_std": stats[engine][1] for engine in ENGINES},
                        **{f"{engine}_fit_seconds": stats[engine][2] for engine in ENGINES},
                        "gap": gap, "two_std": noise, "within_noise": abs(gap) <= noise})
    return summary


def markdown(payload: dict[str, Any]) -> str:
    lines = ["# ALS: Spark MLlib vs implicit", "", (f"`{payload['command']}` on {payload['machine']}; "
             "fit on train + valid with the benchmark config's ALS settings, test NDCG@10 over the seeds "
             "(mean ± std). Fit seconds include Spark's per-job overhead (JVM, a shuffle per iteration), which "
             "dominates at this size."), "",
             "| dataset | implicit | Spark MLlib | gap | 2 x std | within noise | fit s implicit / Spark |",
             "|---|---|---|---|---|---|---|"]
    for row in payload["summary"]:
        lines.append(f"| {row['dataset']} | {row['implicit_mean']:.4f} ± {row['implicit_std']:.4f} | "
                     f"{row['spark_mean']:.4f} ± {row['spark_std']:.4f} | {row['gap']:+.4f} | {row['two_std']:.4f} | "
                     f"{'yes' if row['within_noise'] else 'no'} | {row['implicit_fit_seconds']:.1f} / "
                     f"{row['spark_fit_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

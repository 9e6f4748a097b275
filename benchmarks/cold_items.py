"""Cold-item benchmark: 10% of items are removed from training entirely (train and validation events), kept in
the catalog, and every model ranks the whole catalog for the test users. Reported: HR@10 / NDCG@10 on the test
events of those items, which a model can only get right from content. Random ranking is given exactly (its
expected HR@10 is the mean of min(10, candidates) / candidates over those users); popularity and id-based
baselines have no signal for an item they never saw.

Protocol otherwise as benchmarks/quality.py (leave-last-out, known items excluded); every model is fitted on
train + validation, the two-tower model for the epoch count that quality.py chose on validation.
Writes benchmarks/results/cold_items_<dataset>.json and .md.  Usage: python benchmarks/cold_items.py [--datasets ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import DATASETS, RESULTS, available_datasets

from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset
from foryou.evaluation.cold_start import hold_out_items
from foryou.evaluation.protocol import COLD_ITEMS, evaluate, item_user_counts
from foryou.models.base import Recommender
from foryou.models.registry import build_baseline
from foryou.models.two_tower import TwoTower

FRACTION = 0.10
logger = logging.getLogger("cold_items")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args()
    for name, config in available_datasets(args.datasets):
        run_dataset(name, config)


def run_dataset(name: str, config: RunConfig) -> None:
    dataset, cold = hold_out_items(prepare_dataset(config, progress=False).dataset, FRACTION, seed=0)
    train_valid = dataset.restricted_to("train", "valid")
    rows = [random_row(dataset, train_valid)]
    for baseline, params in (("most_pop", {}), ("ease", {"l2": 50.0})):
        start = time.perf_counter()
        model = build_baseline(baseline, params).fit(train_valid)
        rows.append(row(baseline, model, dataset, time.perf_counter() - start))
    start = time.perf_counter()
    model = TwoTower.from_config(config, epochs_chosen_by_quality(name, config), mlflow=False).fit(train_valid)
    rows.append(row("TwoTower (transformer)", model, dataset, time.perf_counter() - start))
    write(name, dataset, cold, rows)


def epochs_chosen_by_quality(name: str, config: RunConfig) -> int:
    """The epoch count benchmarks/quality.py chose on validation for the transformer, else the config's."""
    path = RESULTS / f"quality_{name}.json"
    if path.exists():
        for result in json.loads(path.read_text())["results"]:
            if result["model"] == "TwoTower (transformer)":
                return int(result["params"]["epochs"])
    logger.warning("no quality result for %s: training %d epochs", name, config.train.epochs)
    return config.train.epochs


def row(name: str, model: Recommender, dataset: Dataset, fit_seconds: float) -> dict[str, Any]:
    segments = evaluate(model, dataset, "test", ks=(10,), beyond_accuracy=False).segments.set_index("segment")
    cold = segments.loc[COLD_ITEMS]
    hr = float(cold["HR@10"])
    logger.info("%s: cold-item HR@10 %.4f over %d users", name, hr, cold["users"])
    return {"model": name, "HR@10": hr, "NDCG@10": float(cold["NDCG@10"]), "users": int(cold["users"]),
            "HR@10_ci95": 1.96 * math.sqrt(hr * (1 - hr) / max(int(cold["users"]), 1)),
            "fit_seconds": round(fit_seconds, 1)}


def random_row(dataset: Dataset, train_valid: Dataset) -> dict[str, Any]:
    """Exact expectation of a uniformly random full-catalog ranking for the users with a cold test item: an item
    without train or validation events, as in the evaluation's cold-item segment (the held-out items, plus items
    whose only events are test events)."""
    untrained = np.flatnonzero(item_user_counts(train_valid.events(), dataset.n_items) == 0)
    test = dataset.events("test")
    users = test[test["item_idx"].isin(untrained)]["user_idx"].unique()
    known = np.diff(train_valid.user_item_matrix().indptr)[users]
    candidates = dataset.n_items - known
    hr = float(np.mean(np.minimum(10, candidates) / candidates))
    return {"model": "random (expected)", "HR@10": hr, "NDCG@10": float("nan"), "users": len(users),
            "HR@10_ci95": 0.0, "fit_seconds": 0.0}


def write(name: str, dataset: Dataset, cold: np.ndarray, rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": name, "held_out_items": len(cold), "items": dataset.n_items, "fraction": FRACTION,
               "results": rows}
    (RESULTS / f"cold_items_{name}.json").write_text(json.dumps(payload, indent=2))
    lines = [f"# cold items: {name}", "",
             (f"{len(cold):,} of {dataset.n_items:,} items ({FRACTION:.0%}, seed 0) removed from train and validation, "
             "kept in the catalog; metrics on the test targets without train or validation events (those items, plus "
             "any item seen only in test), full-catalog ranking."), "",
             "| model | HR@10 | ±95% | NDCG@10 | users | fit time (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['HR@10']:.4f} | {r['HR@10_ci95']:.4f} | {r['NDCG@10']:.4f} | "
                     f"{r['users']} | {r['fit_seconds']} |")
    (RESULTS / f"cold_items_{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

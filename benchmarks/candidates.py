"""Candidate sources on the shared datasets: recall@k of each source alone and of their merge, on validation.

Data and split as in benchmarks/quality.py (protocol of ../shared/BASELINES.md). Every source is fitted on the
train split; candidates are asked for every user with a validation event, train items excluded; the targets are
the validation events (the test split is never read). Baseline settings are the ones quality.py chose on
validation NDCG@10 (read from benchmarks/results/quality_<dataset>.json; the first grid point when absent). The
two-tower uses the benchmark config trained for a fixed number of epochs (no early stopping), fewer than the
config's maximum so that one fit takes about 5 minutes on 2 cores; the content source uses its content-only
item vectors.

Writes benchmarks/results/candidates.json and .md. Skips a dataset whose folder is absent.
Usage: python benchmarks/candidates.py [--datasets movielens uci] [--k 200] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import (  # benchmarks/ (the script's folder) is on sys.path
    DATASETS,
    RESULTS,
    ROOT,
    available_datasets,
)

from foryou.config import RunConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset
from foryou.models.registry import BASELINE_GRIDS, build_baseline
from foryou.models.two_tower import TwoTower
from foryou.rerank import (
    CandidateSource,
    ContentSource,
    CooccurrenceSource,
    ModelSource,
    TransitionSource,
    merge_candidates,
    per_source_recall,
)

# epochs of the two-tower fit per dataset: ~5 min on 2 cores (18 s / 10 s per epoch in quality_*.json), below
# the early-stopped best epoch there (24 on ml-latest-small, 53 on online retail)
TWO_TOWER_EPOCHS = {"movielens": 15, "uci": 25}
LAST_N = 5

logger = logging.getLogger("candidates")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--k", type=int, default=200, help="candidates per source and in the merge")
    parser.add_argument("--epochs", type=int, help="two-tower epochs (default: per dataset, see TWO_TOWER_EPOCHS)")
    args = parser.parse_args()
    environment = describe_environment()
    results = {name: run_dataset(name, config, args) for name, config in available_datasets(args.datasets)}
    write_results(environment, results, args.k)


def run_dataset(name: str, config: RunConfig, args: argparse.Namespace) -> dict[str, Any]:
    dataset = prepare_dataset(config, progress=False).dataset
    train = dataset.restricted_to("train")
    epochs = args.epochs or TWO_TOWER_EPOCHS[name]
    sources, seconds, settings = fit_sources(name, config, dataset, train, epochs)
    valid = dataset.events("valid")
    targets = (valid[S.USER_IDX].to_numpy(np.int64), valid[S.ITEM_IDX].to_numpy(np.int64))
    users = np.unique(targets[0])
    for source in sources:  # timed alone; merge_candidates below asks again (cheap next to fitting)
        start = time.perf_counter()
        merge_candidates([source], users, args.k, total=None)
        seconds[source.name]["candidates_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    frame = merge_candidates(sources, users, args.k, total=None)
    merge_seconds = time.perf_counter() - start
    recall = per_source_recall(frame, targets, k=args.k)
    known = train.user_item_matrix()[targets[0], targets[1]]
    logger.info("%s recall@%d: %s", name, args.k, {key: round(value, 4) for key, value in recall.items()})
    return {"counts": {"users": dataset.n_users, "items": dataset.n_items, "valid_users": len(users),
                       "train_events": len(train.interactions)},
            "known_target_share": float(np.asarray(known).mean()),
            "recall": recall, "seconds": seconds, "merge_s": round(merge_seconds, 2),
            "union_per_user": float(len(frame) / len(users)), "settings": settings}


def fit_sources(name: str, config: RunConfig, dataset: Dataset, train: Dataset,
                epochs: int) -> tuple[list[CandidateSource], dict[str, dict[str, float]], dict[str, Any]]:
    """Every source fitted on `train`, with its fit seconds and settings."""
    seconds: dict[str, dict[str, float]] = {}
    settings: dict[str, Any] = {}

    def timed(label: str, fit: Callable[[], CandidateSource]) -> CandidateSource:
        start = time.perf_counter()
        source = fit()
        seconds[label] = {"fit_s": round(time.perf_counter() - start, 2)}
        logger.info("%s: %s fitted in %.1f s", name, label, seconds[label]["fit_s"])
        return source

    tower = TwoTower.from_config(config, epochs)
    settings["two_tower"] = {"epochs": epochs, "config_max_epochs": config.train.epochs, "early_stopping": False}
    sources = [timed("two_tower", lambda: ModelSource(tower.fit(train), "two_tower"))]
    for baseline in ("ease", "item_knn", "als", "recent_pop"):
        params = chosen_params(name, baseline)
        settings[baseline] = params
        sources.append(timed(baseline, lambda b=baseline, p=params: ModelSource(build_baseline(b, p).fit(train))))
    settings["cooccurrence"] = settings["content"] = {"last_n": LAST_N}
    sources.append(timed("cooccurrence", lambda: CooccurrenceSource(last_n=LAST_N).fit(train)))
    sources.append(timed("transitions", lambda: TransitionSource(last_n=LAST_N).fit(train)))
    sources.append(timed("content", lambda: ContentSource.from_two_tower(tower, dataset.items, last_n=LAST_N)
                         .fit(train)))
    return sources, seconds, settings


def chosen_params(name: str, baseline: str) -> dict[str, Any]:
    """The setting quality.py chose on validation for `baseline`, else the first point of its grid."""
    path = RESULTS / f"quality_{name}.json"
    if path.exists():
        for row in json.loads(path.read_text())["results"]:
            if row["model"] == baseline:
                return dict(row["params"])
    return dict(BASELINE_GRIDS[baseline][0])


def describe_environment() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average_at_start": os.getloadavg(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join([os.path.relpath(sys.executable, ROOT), *sys.argv])}


def write_results(environment: dict[str, Any], results: dict[str, Any], k: int) -> None:
    """Merge into candidates.json (a dataset run again replaces its entry), then render the Markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "candidates.json"
    previous = json.loads(path.read_text())["datasets"] if path.exists() else {}
    datasets = {**previous, **{name: {**result, "environment": environment, "k": k}
                               for name, result in results.items()}}
    path.write_text(json.dumps({"datasets": datasets}, indent=2))
    (RESULTS / "candidates.md").write_text(markdown(datasets))


def markdown(datasets: dict[str, Any]) -> str:
    lines = ["# Candidate sources: recall on the validation split", "",
             ("Sources fitted on train; candidates for every user with a validation event, train items excluded; "
              "targets = validation events (test untouched). `merged` = the top k of the merge (best rank in any "
              "source, then sum of reciprocal ranks); `union` = every source's top k together."), ""]
    for name, result in datasets.items():
        env, k = result["environment"], result["k"]
        lines += [f"## {name}", "",
                  (f"Machine: {env['cpu_count']} CPUs ({env['machine']}), Python {env['python']}, torch "
                   f"{env['torch']}, {env['threads']} torch threads, load average at start "
                   f"{', '.join(f'{x:.1f}' for x in env.get('load_average_at_start', []))}. Date: {env['date']}. "
                   f"Command: `{env['command']}`"), "",
                  (f"{result['counts']['valid_users']:,} validation users, {result['counts']['items']:,} items; "
                   f"{result['known_target_share']:.1%} of the targets are already in the user's train history "
                   f"(unavoidable misses with seen items excluded). Union: {result['union_per_user']:.0f} "
                   f"candidates per user on average; merge {result['merge_s']:.1f} s."), "",
                  f"| source | recall@{k} | fit (s) | candidates (s) | settings |", "|---|---|---|---|---|"]
        for source, seconds in result["seconds"].items():
            setting = json.dumps(result["settings"].get(source, {})).replace("|", "/")
            lines.append(f"| {source} | {result['recall'][source]:.4f} | {seconds['fit_s']:.1f} | "
                         f"{seconds['candidates_s']:.1f} | {setting} |")
        lines += [f"| **merged (top {k})** | **{result['recall']['merged']:.4f}** | | | |",
                  f"| union | {result['recall']['union']:.4f} | | | |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""LightGBM reranking of multi-source candidates on the shared datasets: validation, then test touched once.

Protocol (../shared/BASELINES.md, data as in benchmarks/quality.py): sources fitted on train minus each user's
last train event give the ranker's training frame (label: that event); sources fitted on train give the
validation frame (label: the validation event; LightGBM early-stops on it). Validation NDCG@10 of the reranked
candidates, the two-tower source alone and EASE alone, all fitted on train and evaluated by the same
full-catalog `evaluate` (a target no source proposed is a miss). Then every source is refitted on train + valid,
the trained ranker reranks the test candidates, and the test split is evaluated once.

The two-tower uses the benchmark config with a fixed, reduced epoch count (no early stopping: 2 cores); fitted
two-towers are cached under .cache/foryou/rerank-bench/<dataset>/ so a rerun does not refit them. Baseline
settings are the ones quality.py chose on validation (benchmarks/results/quality_<dataset>.json).

Writes benchmarks/results/rerank.json and .md. Skips a dataset whose folder is absent.
Usage: python benchmarks/rerank.py [--datasets uci movielens] [--k 100] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from candidates import chosen_params, describe_environment  # benchmarks/ (the script's folder) is on sys.path
from quality import RESULTS, ROOT, available_datasets

from foryou.config import RunConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset
from foryou.evaluation.protocol import evaluate
from foryou.models.base import Recommender
from foryou.rerank.candidates import CandidateSource, ModelSource
from foryou.rerank.lgbm import LGBMRanker
from foryou.rerank.protocol import (
    SourceSettings,
    fit_sources,
    label_recall,
    ranking_frame,
    reranked_model,
    split_labels,
    train_ranker,
)

# reduced two-tower epochs (the early-stopped best epoch in quality_*.json is 53 on online retail, 24 on
# ml-latest-small): three fits per dataset (train-minus-last, train, train + valid) within a 60-minute time box
TWO_TOWER_EPOCHS = {"uci": 10, "movielens": 8}
FLOORS = {"uci": 0.1729, "movielens": 0.0576}  # 1.10 x SASRec-own-CE test NDCG@10 (../shared/BASELINES.md)
METRICS = ("HR@10", "NDCG@10", "MRR@10", "HR@20", "NDCG@20")
CACHE = ROOT / ".cache" / "foryou" / "rerank-bench"

logger = logging.getLogger("rerank")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["uci"], choices=list(FLOORS))
    parser.add_argument("--k", type=int, default=100, help="candidates per source; the ranker sees their union")
    parser.add_argument("--epochs", type=int, help="two-tower epochs (default: TWO_TOWER_EPOCHS per dataset)")
    args = parser.parse_args()
    environment = describe_environment()
    results = {f"{name}, two-tower {args.epochs or TWO_TOWER_EPOCHS[name]} epochs": run_dataset(name, config, args)
               for name, config in available_datasets(args.datasets)}
    write_results(environment, results)


def run_dataset(name: str, config: RunConfig, args: argparse.Namespace) -> dict[str, Any]:
    dataset = prepare_dataset(config, progress=False).dataset
    epochs = args.epochs or TWO_TOWER_EPOCHS[name]
    tower = {section: getattr(config, section).model_dump(mode="json") for section in ("model", "loss", "features")}
    tower["train"] = config.train.model_copy(update={"epochs": epochs}).model_dump(mode="json")
    baselines = {baseline: chosen_params(name, baseline) for baseline in ("ease", "item_knn", "als", "recent_pop")}
    settings = SourceSettings(tower=tower, baselines=baselines, cache_dir=CACHE / name)
    start = time.perf_counter()
    trained = train_ranker(dataset, settings, per_source_k=args.k, ranker=LGBMRanker(num_threads=2))
    train_seconds = time.perf_counter() - start
    train_data = dataset.restricted_to("train")
    valid = {"reranked_lgbm": _metrics(reranked_model(trained.ranker, trained.valid_frame, train_data), dataset,
                                       "valid"),
             **{source: _metrics(_model(trained.valid_sources, source), dataset, "valid")
                for source in ("two_tower", "ease")}}
    logger.info("%s valid NDCG@10: %s", name, {key: round(row["NDCG@10"], 4) for key, row in valid.items()})
    start = time.perf_counter()
    train_valid = dataset.restricted_to("train", "valid")
    test_sources = fit_sources(train_valid, settings, "train+valid")
    test_labels = split_labels(dataset, "test")
    test_frame = ranking_frame(test_sources, train_valid, test_labels[S.USER_IDX].to_numpy(), test_labels, args.k)
    test = {"reranked_lgbm": _metrics(reranked_model(trained.ranker, test_frame, train_valid), dataset, "test"),
            **{source: _metrics(_model(test_sources, source), dataset, "test") for source in ("two_tower", "ease")}}
    logger.info("%s test NDCG@10: %s", name, {key: round(row["NDCG@10"], 4) for key, row in test.items()})
    importance = trained.ranker.feature_importance("gain")
    return {"counts": {"users": dataset.n_users, "items": dataset.n_items,
                       "train_frame_rows": len(trained.train_frame), "valid_frame_rows": len(trained.valid_frame),
                       "test_frame_rows": len(test_frame)},
            "label_recall": {**trained.label_recall, "test": label_recall(test_frame, len(test_labels))},
            "valid": valid, "test": test, "floor": FLOORS[name],
            "meets_floor": test["reranked_lgbm"]["NDCG@10"] >= FLOORS[name],
            "best_iteration": trained.ranker.best_iteration, "lgbm_valid_ndcg10_labelled_users":
                trained.ranker.best_score,
            "importance_gain_top15": {key: float(value) for key, value in importance.head(15).items()},
            "seconds": {"train_ranker_incl_sources": round(train_seconds, 1),
                        "test_refit_and_score": round(time.perf_counter() - start, 1)},
            "settings": {"per_source_k": args.k, "two_tower_epochs": epochs, "early_stopping": False,
                         "config_max_epochs": config.train.epochs, "baselines": baselines, "last_n": settings.last_n,
                         "lgbm": {**trained.ranker.params, "num_boost_round": trained.ranker.num_boost_round}}}


def _model(sources: list[CandidateSource], name: str) -> Recommender:
    source = next(source for source in sources if source.name == name)
    assert isinstance(source, ModelSource)
    return source.model


def _metrics(model: Recommender, dataset: Dataset, split: str) -> dict[str, float]:
    summary = evaluate(model, dataset, split, ks=(10, 20), beyond_accuracy=False).summary
    return {key: float(summary[key]) for key in (*METRICS, "users")}


def write_results(environment: dict[str, Any], results: dict[str, Any]) -> None:
    """Merge into rerank.json (a dataset and epoch count run again replaces its entry), then render rerank.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "rerank.json"
    previous = json.loads(path.read_text())["datasets"] if path.exists() else {}
    datasets = {**previous, **{name: {**result, "environment": environment} for name, result in results.items()}}
    path.write_text(json.dumps({"datasets": datasets}, indent=2, default=str))
    (RESULTS / "rerank.md").write_text(markdown(datasets))


def markdown(datasets: dict[str, Any]) -> str:
    lines = ["# LightGBM reranking of multi-source candidates", "",
             ("Ranker trained on labels = each user's last train event (sources fitted on train minus it), "
              "early-stopped on the validation event (sources fitted on train); test: sources refitted on train + "
              "valid, test split evaluated once. Full catalog, known items excluded; a target outside the "
              "candidates is a miss. The two-tower here is the reduced-epoch source, not quality.py's tuned one."),
             ""]
    for name, result in datasets.items():
        env, settings = result["environment"], result["settings"]
        lines += [f"## {name}", "",
                  (f"Machine: {env['cpu_count']} CPUs ({env['machine']}), Python {env['python']}, torch {env['torch']}"
                   f", {env['threads']} torch threads. Date: {env['date']}. Command: `{env['command']}`"), "",
                  (f"Settings: {settings['per_source_k']} candidates per source (union, no cut); two-tower "
                   f"{settings['two_tower_epochs']} epochs of the benchmark config (max {settings['config_max_epochs']}"
                   f", no early stopping); baselines {json.dumps(settings['baselines'])}; LightGBM best iteration "
                   f"{result['best_iteration']}. Labels among the candidates: "
                   + ", ".join(f"{key} {value:.3f}" for key, value in result["label_recall"].items()) + "."), "",
                  "| model | split | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
        for split in ("valid", "test"):
            for model, row in result[split].items():
                lines.append(f"| {model} | {split} | " + " | ".join(f"{row[key]:.4f}" for key in METRICS) + " |")
        verdict = "reached" if result["meets_floor"] else "NOT reached"
        lines += ["", (f"Floor (1.10 x SASRec-own-CE test NDCG@10): {result['floor']:.4f}; reranked_lgbm test "
                       f"NDCG@10 {result['test']['reranked_lgbm']['NDCG@10']:.4f}: **{verdict}**."), "",
                  "Feature importance (gain), top 15:", "", "| feature | gain |", "|---|---|"]
        lines += [f"| {feature} | {gain:.1f} |" for feature, gain in result["importance_gain_top15"].items()]
        lines += ["", f"Seconds: {json.dumps(result['seconds'])}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

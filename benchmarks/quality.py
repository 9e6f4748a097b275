"""Quality benchmark on the shared datasets, under the protocol of ../shared/BASELINES.md.

Protocol: every interaction is a positive; users with >= 3 events; leave-last-out (last = test, second-to-last =
validation); the whole catalog is ranked with the user's known items excluded; ties broken by a fixed random
permutation. Every model's hyperparameters are chosen on validation NDCG@10 (models fitted on train); the chosen
setting is then refitted on train + validation and evaluated once on test. Two-tower candidates are early-stopped
on validation and refitted for the best epoch count.

With --ranking, the ranking stage of `foryou pipeline` (rerank.stage) is added over the config's two-tower: its
sources refitted without each user's last train event make the rankers' labels, LightGBM and the MLP early-stop
and the hybrid weights are tuned on validation, and each strategy is tested once over the sources refitted on
train + validation. Its floor: 1.10x the strongest model of BASELINES.md (SASRec-own-CE on both sets).

Writes benchmarks/results/quality_<dataset>.json and .md. Skips (exit 0) a dataset whose folder is absent.
Usage: python benchmarks/quality.py [--datasets movielens uci] [--quick] [--candidates ...] [--seed N] [--ranking]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from foryou.baseline_fits import fit_baselines_on_windows
from foryou.config import RunConfig, config_from_dict, load_config
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset
from foryou.evaluation.protocol import evaluate
from foryou.models.base import Recommender
from foryou.models.registry import BASELINE_GRIDS, build_baseline
from foryou.two_tower_run import train_two_tower
from foryou.workflow import fit_ranking

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ROOT / "benchmarks" / "configs"
DATASETS = {"movielens": ("movielens.yaml", "movielens-latest-small"), "uci": ("uci.yaml", "uci-online-retail")}
REPORTED = ("HR@10", "NDCG@10", "MRR@10", "HR@20", "NDCG@20", "coverage@10")
STRONGEST = {"movielens": ("SASRec-own-CE", 0.0524), "uci": ("SASRec-own-CE", 0.1572)}  # ../shared/BASELINES.md
STAGE_FLOOR = 1.10
RANKING_PREFIX = "ranking: "

# Two-tower candidates: overrides of the benchmark config's model/loss/train sections, compared on validation.
TWO_TOWER_CANDIDATES: dict[str, dict[str, dict[str, Any]]] = {
    "transformer": {},
    "transformer+DAT": {"model": {"dat": {"enabled": True}}},
    "transformer, id only": {"model": {"use_text": False, "use_categorical": False, "use_numeric": False}},
    "mean": {"model": {"user_tower": "mean"}},
}

logger = logging.getLogger("quality")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--quick", action="store_true", help="first grid point / first candidate only")
    parser.add_argument("--candidates", nargs="*", help="two-tower candidates to run (default: all)")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--skip-two-tower", action="store_true")
    parser.add_argument("--ranking", action="store_true", help="add the ranking stage's strategies (see above)")
    parser.add_argument("--seed", type=int, help="train the two-tower candidates with this seed instead of the "
                        "config's: rows that show the seed-to-seed spread, never chosen as the best two-tower")
    args = parser.parse_args()
    for name, config in available_datasets(args.datasets):
        run_dataset(name, config, args)


def available_datasets(names: list[str]) -> Iterator[tuple[str, RunConfig]]:
    """Set up logging and threads, then each named dataset whose folder exists, with its benchmark config."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("FORYOU_THREADS", "2")))
    for name in names:
        config_name, folder = DATASETS[name]
        if not (SHARED / folder).exists():
            logger.warning("skipping %s: %s is absent", name, SHARED / folder)
            continue
        yield name, load_config(CONFIGS / config_name)


def run_dataset(name: str, config: RunConfig, args: argparse.Namespace) -> None:
    dataset = prepare_dataset(config, progress=False).dataset
    rows: list[dict[str, Any]] = []
    if not args.skip_baselines:
        for baseline, grid in BASELINE_GRIDS.items():
            grid = grid[:1] if args.quick else grid
            rows.append(tune_and_test(baseline, lambda params, b=baseline: build_baseline(b, params), grid, dataset))
    chosen = args.candidates or list(TWO_TOWER_CANDIDATES)[: 1 if args.quick else None]
    for candidate in [] if args.skip_two_tower else chosen:
        if args.seed is None or args.seed == config.train.seed:
            rows.append(two_tower_row(candidate, config, TWO_TOWER_CANDIDATES[candidate], dataset))
        else:
            overrides = _merge(TWO_TOWER_CANDIDATES[candidate], {"train": {"seed": args.seed}})
            row = two_tower_row(f"{candidate}, seed {args.seed}", config, overrides, dataset)
            rows.append({**row, "replicate_of": f"TwoTower ({candidate})"})
    if args.ranking:
        rows += ranking_rows(config, dataset)
    write_results(name, dataset, rows, config)


def ranking_rows(config: RunConfig, dataset: Dataset) -> list[dict[str, Any]]:
    """The ranking stage exactly as `foryou pipeline` fits it (two-tower tuned then refitted, baselines with the
    config's settings), one row per strategy: valid NDCG@10 from the stage, test from the single test pass."""
    start = time.perf_counter()
    trained = train_two_tower(config, dataset, progress=False)
    ranking = fit_ranking(config, dataset, trained, fit_baselines_on_windows(config, dataset), progress=False)
    seconds = time.perf_counter() - start
    stage = ranking.stage
    importance = stage.lgbm.feature_importance("gain")
    params = {"candidates": config.ranking.candidates, "per_source_k": config.ranking.per_source_k,
              "label_recall": {split: round(value, 3) for split, value in stage.label_recall.items()},
              "two_tower_epochs": trained.best_epoch, "lgbm_rounds": stage.lgbm.best_iteration,
              "top_features": [name for name in importance.index[:5]]}
    rows = []
    for strategy, result in ranking.test_results.items():
        summary = result.summary
        hr = summary["HR@10"]
        rows.append({"model": RANKING_PREFIX + strategy, **{key: summary[key] for key in REPORTED if key in summary},
                     "HR@10_ci95": 1.96 * math.sqrt(hr * (1 - hr) / max(summary["users"], 1)),
                     "users": int(summary["users"]), "valid_NDCG@10": stage.validation_ndcg[strategy],
                     "fit_seconds": round(seconds, 2), "params": params, "trials": []})
        logger.info("%s test NDCG@10 %.4f (valid %.4f)", strategy, summary["NDCG@10"], stage.validation_ndcg[strategy])
    return rows


def tune_and_test(
    name: str, factory: Callable[[dict[str, Any]], Recommender], grid: list[dict[str, Any]], dataset: Dataset
) -> dict[str, Any]:
    """Pick the grid point with the best validation NDCG@10, refit it on train + valid, test it once."""
    train = dataset.restricted_to("train")
    trials = []
    for params in grid:
        model = factory(params).fit(train)
        score = evaluate(model, dataset, "valid", ks=(10,), beyond_accuracy=False).summary["NDCG@10"]
        trials.append({"params": params, "valid_NDCG@10": score})
        logger.info("%s %s valid NDCG@10 %.4f", name, params, score)
    best = max(trials, key=lambda trial: trial["valid_NDCG@10"])
    start = time.perf_counter()
    model = factory(best["params"]).fit(dataset.restricted_to("train", "valid"))
    fit_seconds = time.perf_counter() - start
    return test_row(name, model, dataset, fit_seconds, best["params"], best["valid_NDCG@10"], trials)


def two_tower_row(candidate: str, config: RunConfig, overrides: dict[str, dict[str, Any]], dataset: Dataset) -> dict:
    """The candidate through the same tune-then-refit path as `foryou train`, then tested once."""
    candidate_config = config_from_dict(_merge(config.model_dump(mode="json"), overrides))
    trained = train_two_tower(candidate_config, dataset, progress=False)
    valid_ndcg = max(record.valid_ndcg or 0.0 for record in trained.tuning_history)
    logger.info("two-tower %s: best valid NDCG@10 %.4f at epoch %d (%.0f s)", candidate, valid_ndcg,
                trained.best_epoch, trained.tuning_seconds)
    params = {**overrides, "epochs": trained.best_epoch, "tuning_seconds": round(trained.tuning_seconds, 1),
              "epoch_seconds": round(trained.tuning_seconds / len(trained.window_history + trained.tuning_history), 2)}
    return test_row(f"TwoTower ({candidate})", trained.model, dataset, trained.fit_seconds, params, valid_ndcg, [])


def test_row(name: str, model: Recommender, dataset: Dataset, fit_seconds: float, params: dict[str, Any],
             valid_ndcg: float, trials: list[dict[str, Any]]) -> dict[str, Any]:
    result = evaluate(model, dataset, "test", ks=(10, 20), beyond_accuracy=False)
    summary = result.summary
    coverage = evaluate(model, dataset, "test", ks=(10,), beyond_accuracy=True).summary["coverage@10"]
    hr = summary["HR@10"]
    row = {"model": name, **{key: summary[key] for key in REPORTED if key in summary}, "coverage@10": coverage,
           "HR@10_ci95": 1.96 * math.sqrt(hr * (1 - hr) / max(summary["users"], 1)), "users": int(summary["users"]),
           "valid_NDCG@10": valid_ndcg, "fit_seconds": round(fit_seconds, 2), "params": params, "trials": trials}
    logger.info("%s test NDCG@10 %.4f HR@10 %.4f (fit %.1f s)", name, summary["NDCG@10"], hr, fit_seconds)
    return row


def write_results(name: str, dataset: Dataset, new_rows: list[dict[str, Any]], config: RunConfig) -> None:
    """Merge `new_rows` into the dataset's result file (a model run again replaces its row), then render it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"quality_{name}.json"
    previous = json.loads(path.read_text())["results"] if path.exists() else []
    fresh = {row["model"] for row in new_rows}
    rows = [row for row in previous if row["model"] not in fresh] + new_rows
    baselines = [row for row in rows if not row["model"].startswith(("TwoTower", RANKING_PREFIX))]
    towers = [row for row in rows if row["model"].startswith("TwoTower") and "replicate_of" not in row]
    best_baseline = max(baselines, key=lambda row: row["NDCG@10"]) if baselines else None
    best_tower = max(towers, key=lambda row: row["valid_NDCG@10"]) if towers else None
    verdict: dict[str, Any] = {}
    if best_baseline and best_tower:
        ratio = best_tower["NDCG@10"] / best_baseline["NDCG@10"]
        verdict = {"best_baseline": best_baseline["model"], "best_two_tower_by_valid": best_tower["model"],
                   "ndcg10_ratio": ratio, "target_ratio": 1.10, "meets_target": ratio >= 1.10}
        seeds = [best_tower["NDCG@10"]] + [row["NDCG@10"] for row in rows
                                           if row.get("replicate_of") == best_tower["model"]]
        if len(seeds) > 1:
            verdict["seed_replicates"] = {"test_NDCG@10": seeds, "mean": sum(seeds) / len(seeds),
                                          "mean_ratio": sum(seeds) / len(seeds) / best_baseline["NDCG@10"]}
    stage_rows = [row for row in rows if row["model"].startswith(RANKING_PREFIX)]
    if stage_rows:
        best_stage = max(stage_rows, key=lambda row: row["valid_NDCG@10"])
        peer, peer_ndcg = STRONGEST[name]
        ratio = best_stage["NDCG@10"] / peer_ndcg
        verdict["ranking_stage"] = {"best_by_valid": best_stage["model"], "test_NDCG@10": best_stage["NDCG@10"],
                                    "strongest_peer": peer, "peer_NDCG@10": peer_ndcg, "ratio": ratio,
                                    "floor_ratio": STAGE_FLOOR, "meets_floor": ratio >= STAGE_FLOOR}
    environment = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                   "threads": torch.get_num_threads()}
    counts = {"users": dataset.n_users, "items": dataset.n_items, "interactions": len(dataset.interactions)}
    settings = {section: getattr(config, section).model_dump(mode="json") for section in ("model", "loss", "train")}
    payload = {"dataset": name, "counts": counts, "environment": environment, "verdict": verdict,
               "two_tower_settings": settings, "results": rows}
    path.write_text(json.dumps(payload, indent=2, default=str))
    (RESULTS / f"quality_{name}.md").write_text(markdown(name, counts, verdict, rows, settings))


def markdown(name: str, counts: dict[str, int], verdict: dict[str, Any], rows: list[dict[str, Any]],
             settings: dict[str, Any]) -> str:
    header = ["model", *REPORTED, "valid NDCG@10", "fit time (s)", "chosen settings"]
    lines = [f"# quality: {name}", "",
             (f"users {counts['users']:,} · items {counts['items']:,} · interactions {counts['interactions']:,}; "
             "protocol of ../shared/BASELINES.md (leave-last-out, full catalog, known items excluded, "
             "settings chosen on validation, test reported once)."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        chosen = json.dumps(row["params"], default=str).replace("|", "/")
        cells = [row["model"], *[f"{row[key]:.4f}" for key in REPORTED], f"{row['valid_NDCG@10']:.4f}",
                 f"{row['fit_seconds']:.1f}", chosen]
        lines.append("| " + " | ".join(cells) + " |")
    if "ranking_stage" in verdict:
        stage = verdict["ranking_stage"]
        lines += ["", (f"Ranking stage, chosen on validation: {stage['best_by_valid']}, test NDCG@10 "
                       f"{stage['test_NDCG@10']:.4f} = {stage['ratio']:.2f}x {stage['strongest_peer']} "
                       f"({stage['peer_NDCG@10']:.4f}); floor {stage['floor_ratio']:.2f}x: "
                       f"{'met' if stage['meets_floor'] else 'not met'}.")]
    if "best_two_tower_by_valid" in verdict:
        lines += ["", (f"Best two-tower (chosen on validation): {verdict['best_two_tower_by_valid']}; best baseline: "
                  f"{verdict['best_baseline']}; NDCG@10 ratio {verdict['ndcg10_ratio']:.2f} (target >= 1.10).")]
        if "seed_replicates" in verdict:
            spread = verdict["seed_replicates"]
            lines.append(f"Across seeds ({len(spread['test_NDCG@10'])} runs, each chosen on its own validation): "
                         f"test NDCG@10 {', '.join(f'{value:.4f}' for value in spread['test_NDCG@10'])}; mean "
                         f"{spread['mean']:.4f}, ratio {spread['mean_ratio']:.2f}.")
    if rows:
        lines.append(f"95% interval on HR@10: about ±{max(row['HR@10_ci95'] for row in rows):.3f} "
                     f"({int(rows[0]['users'])} test users).")
    lines += ["", ("Two-tower base settings (candidates override them as listed in the table; epochs = the best "
              "validation epoch):"), "", "```json", json.dumps(settings), "```"]
    return "\n".join(lines) + "\n"


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


if __name__ == "__main__":
    main()

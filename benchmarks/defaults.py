"""Good by default: run `foryou pipeline` exactly as a new user would, on the shared sets and synthetic shapes.

Each dataset is one subprocess, `foryou pipeline CONFIG --set output_dir=RUN --set tune.budget=BUDGET --quiet`
(--quiet only hides progress bars), on a config that holds nothing but a data mapping: MovieLens through its
generic config, online retail through its adapter (BASELINES.md's cleaning, so that the table's numbers compare;
benchmarks/configs/uci_protocol.yaml), the synthetic shapes of benchmarks/synthetic_logs.py
(generated on the fly) and any config given on the command line. From each bundle's manifest: the served
(default) strategy, its validation and test NDCG@10, the best baseline's test NDCG@10 and the served choice (was
the best on validation ahead beyond noise). On a synthetic shape the SASRec reference (benchmarks/
sasrec_reference.py) is also fitted on the run's own prepared split, so "x the strongest" compares the served
strategy with the best of SASRec and the baselines, each reading test once.

Floors (FLOOR = 1.10x): on the shared sets the served strategy's test NDCG@10 >= FLOOR x the strongest model of
../shared/BASELINES.md; elsewhere >= FLOOR x the strongest of the same split. With several --seeds (synthetic data
seed and train.seed), each dataset's row in the summary is the mean over seeds with its spread (sample standard
deviation, and min-max of the ratio). Writes benchmarks/results/NAME.json and NAME.md (--results, default
defaults). Shared sets are skipped when ../shared/data is absent.

Usage: .venv/bin/python benchmarks/defaults.py [EXTRA_CONFIG ...] [--budget 10m|none] [--only NAME ...]
       [--skip-shared] [--work-dir runs/defaults] [--seeds 0 1 2] [--no-sasrec] [--results defaults]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from foryou.data import schema as S
from foryou.data.dataset import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sasrec_reference import (  # benchmarks/ (the script's folder) is on sys.path
    ReferenceResult,
    run_reference,
)
from synthetic_logs import SHAPES, write_shape

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
BASELINE_MODELS = ("ease", "item_knn", "als", "most_pop", "recent_pop")
BASELINE_STRATEGIES = ("ease", "item_knn", "collab", "popular")  # served strategies that are baselines
TEST_NAME = {"collab": "als", "popular": "recent_pop"}  # served strategy -> its model's name in test_metrics
LOG_TAIL = 2000  # characters of a failed run's output kept in the results
FLOOR = 1.10  # the served strategy's test NDCG@10 over the strongest model's
REFERENCE_CACHE = "sasrec_reference.json"  # in a run's folder: the reference's score and what it was fitted on

logger = logging.getLogger("defaults")


@dataclass(frozen=True)
class SharedSet:
    """A shared dataset: its data-only config, the data folder it reads, and BASELINES.md's strongest model."""

    config: str
    folder: str
    reference_model: str
    reference_ndcg: float


SHARED_SETS = {
    "movielens": SharedSet("benchmarks/configs/movielens_generic.yaml", "movielens-latest-small",
                           "SASRec-own-CE", 0.0524),
    "uci": SharedSet("benchmarks/configs/uci_protocol.yaml", "uci-online-retail", "SASRec-own-CE", 0.1572),
}


@dataclass(frozen=True)
class ReferenceScore:
    """What a row reads of the SASRec reference fitted on a run's split."""

    valid_ndcg: float
    test_ndcg: float
    best_epoch: int
    learning_rate: float
    seconds: float

    @classmethod
    def of(cls, result: ReferenceResult) -> ReferenceScore:
        return cls(result.valid_ndcg, result.test["NDCG@10"], result.best_epoch, result.learning_rate,
                   round(result.tune_seconds + result.fit_seconds, 1))


def split_fingerprint(prepared: Path, seed: int) -> str:
    """What the reference's score depends on: the split's events, the seed and the reference's own code."""
    events = pd.read_parquet(prepared / "interactions.parquet",
                             columns=[S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP, S.SPLIT])
    digest = hashlib.sha256((ROOT / "benchmarks" / "sasrec_reference.py").read_bytes())
    digest.update(str(seed).encode())
    digest.update(pd.util.hash_pandas_object(events, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def reference_score(run_dir: Path, seed: int) -> tuple[ReferenceScore, bool]:
    """The SASRec reference on the run's prepared split, and whether it was reused: a run folder keeps it with the
    fingerprint of its inputs, and a later run on the same split and seed reads it back instead of refitting
    (up to half an hour on a tiny shape; foryou's own models never change the split)."""
    prepared = run_dir / "output" / "prepared"
    fingerprint, cache = split_fingerprint(prepared, seed), run_dir / REFERENCE_CACHE
    if cache.exists():
        kept = json.loads(cache.read_text())
        if kept.get("fingerprint") == fingerprint:
            logger.info("SASRec reference reused from %s (same split, seed and code)", cache)
            return ReferenceScore(**kept["score"]), True
    fitted = ReferenceScore.of(run_reference(Dataset.load(prepared), seed=seed))
    cache.write_text(json.dumps({"fingerprint": fingerprint, "score": asdict(fitted)}, indent=2))
    return fitted, False


@dataclass
class Outcome:
    """One dataset's row: what was served, how it scored, against which bar, and whether the floor holds."""

    dataset: str
    status: str  # ok, or failed (exit code N)
    seconds: float
    served: str | None = None
    served_valid_ndcg: float | None = None
    served_test_ndcg: float | None = None
    best_baseline: str | None = None
    best_baseline_test_ndcg: float | None = None
    ratio_to_baseline: float | None = None
    reference_model: str | None = None
    reference_ndcg: float | None = None
    ratio_to_reference: float | None = None
    floor_met: bool | None = None
    best_baseline_valid_ndcg: float | None = None  # the best served baseline strategy on validation
    error: str | None = None
    seed: int = 0
    best_on_validation: str | None = None  # the served choice: the top strategy on validation ...
    beyond_noise: bool | None = None  # ... and whether it led the other strategy of the choice beyond noise
    sasrec_valid_ndcg: float | None = None  # the SASRec reference on the same split (synthetic shapes)
    sasrec_test_ndcg: float | None = None
    sasrec_epochs: int | None = None
    sasrec_learning_rate: float | None = None
    sasrec_seconds: float | None = None
    sasrec_reused: bool = False  # read back from the run folder (same split, seed and code), not refitted
    strongest: str | None = None  # the best of the baselines and the SASRec reference, on test
    strongest_test_ndcg: float | None = None
    ratio_to_strongest: float | None = None


def pipeline_command(config: Path, output_dir: Path, budget: str | None, seed: int = 0) -> list[str]:
    """The new user's command line (the foryou script beside this interpreter, else the one on PATH)."""
    script = Path(sys.executable).with_name("foryou")
    command = [str(script) if script.exists() else "foryou", "pipeline", str(config),
               "--set", f"output_dir={output_dir}", "--set", f"train.seed={seed}"]
    if budget is not None:
        command += ["--set", f"tune.budget={budget}"]
    return [*command, "--quiet"]


def run_case(name: str, config: Path, run_dir: Path, budget: str | None,
             reference: SharedSet | None = None, seed: int = 0, sasrec: bool = True) -> Outcome:
    """Run the pipeline in the repository root (shared configs use paths relative to it); log into run_dir. Without
    a shared reference (and with `sasrec`), fit the SASRec reference on the run's prepared split."""
    run_dir.mkdir(parents=True, exist_ok=True)
    command = pipeline_command(config, run_dir / "output", budget, seed)
    logger.info("%s: %s", name, shlex.join(command))
    start = time.perf_counter()
    with open(run_dir / "pipeline.log", "w") as log:
        code = subprocess.run(command, check=False, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = round(time.perf_counter() - start, 1)
    if code != 0:
        tail = (run_dir / "pipeline.log").read_text()[-LOG_TAIL:]
        logger.error("%s failed (exit code %d); log %s:\n%s", name, code, run_dir / "pipeline.log", tail)
        return Outcome(name, f"failed (exit code {code})", seconds, error=tail, seed=seed)
    manifest = json.loads((run_dir / "output" / "bundle" / "bundle.json").read_text())
    fitted, reused = reference_score(run_dir, seed) if sasrec and reference is None else (None, False)
    outcome = score(name, manifest, seconds, reference, fitted, seed)
    outcome.sasrec_reused = reused
    return outcome


def score(name: str, manifest: dict[str, Any], seconds: float, reference: SharedSet | None,
          sasrec: ReferenceScore | None = None, seed: int = 0) -> Outcome:
    """The row of one bundle manifest; the floor is FLOOR x the reference when given, else FLOOR x the strongest
    of the baselines and the SASRec reference (`sasrec`, fitted on the same split)."""
    served = manifest["default_strategy"]
    tests = manifest["test_metrics"]
    served_test = tests.get(TEST_NAME.get(served, served), {}).get("NDCG@10")
    baselines = {model: tests[model]["NDCG@10"] for model in BASELINE_MODELS if model in tests}
    best = max(baselines, key=lambda model: baselines[model]) if baselines else None
    outcome = Outcome(name, "ok", seconds, served, manifest["validation_ndcg"].get(served), served_test, best,
                      baselines.get(best) if best else None)
    outcome.ratio_to_baseline = ratio(served_test, outcome.best_baseline_test_ndcg)
    valid = manifest["validation_ndcg"]
    outcome.best_baseline_valid_ndcg = max((valid[name] for name in BASELINE_STRATEGIES if name in valid),
                                           default=None)
    if reference is not None:
        outcome.reference_model, outcome.reference_ndcg = reference.reference_model, reference.reference_ndcg
        outcome.ratio_to_reference = ratio(served_test, reference.reference_ndcg)
    choice = manifest.get("served_choice") or {}
    outcome.seed, outcome.best_on_validation, outcome.beyond_noise = (seed, choice.get("best_on_validation"),
                                                                      choice.get("beyond_noise"))
    outcome.strongest, outcome.strongest_test_ndcg = best, outcome.best_baseline_test_ndcg
    if sasrec is not None:
        outcome.sasrec_valid_ndcg, outcome.sasrec_test_ndcg = sasrec.valid_ndcg, sasrec.test_ndcg
        outcome.sasrec_epochs, outcome.sasrec_learning_rate = sasrec.best_epoch, sasrec.learning_rate
        outcome.sasrec_seconds = sasrec.seconds
        if best is None or sasrec.test_ndcg > (outcome.best_baseline_test_ndcg or 0.0):
            outcome.strongest, outcome.strongest_test_ndcg = "sasrec_reference", sasrec.test_ndcg
    outcome.ratio_to_strongest = ratio(served_test, outcome.strongest_test_ndcg)
    bar = outcome.ratio_to_reference if reference is not None else outcome.ratio_to_strongest
    outcome.floor_met = bar is not None and bar >= FLOOR
    return outcome


def ratio(value: float | None, bar: float | None) -> float | None:
    return round(value / bar, 3) if value is not None and bar else None


def cases(args: argparse.Namespace) -> list[tuple[str, Path | None, SharedSet | None]]:
    """(name, config or None for a synthetic shape, shared set or None) of every dataset asked for."""
    chosen: list[tuple[str, Path | None, SharedSet | None]] = [(shape, None, None) for shape in SHAPES]
    if not args.skip_shared:  # after the shapes, which finish sooner
        for name, shared in SHARED_SETS.items():
            if (SHARED / shared.folder).is_dir():
                chosen.append((name, ROOT / shared.config, shared))
            else:
                logger.info("skip %s: %s not found", name, SHARED / shared.folder)
    chosen += [(Path(config).stem, Path(config).resolve(), None) for config in args.configs]
    if args.only:  # in the order asked for
        return sorted((case for case in chosen if case[0] in args.only), key=lambda case: args.only.index(case[0]))
    return chosen


def earlier_outcomes(names: set[str], results: str = "defaults") -> list[Outcome]:
    """The rows of RESULTS.json for datasets other than `names` (for --append)."""
    path = RESULTS / f"{results}.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["results"]
    return [Outcome(**row) for row in rows if row["dataset"] not in names]


def write_results(outcomes: list[Outcome], command: str, budget: str | None, name: str = "defaults") -> None:
    """NAME.json (every field, and the summary) and NAME.md (the summary over seeds, then every run)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "budget": budget,
            "command": command, "floor": FLOOR}
    summary = summarise(outcomes)
    (RESULTS / f"{name}.json").write_text(json.dumps({"environment": meta, "summary": summary,
                                                      "results": [asdict(o) for o in outcomes]}, indent=2))
    lines = ["# good by default: `foryou pipeline` on a data mapping only\n",
             (f"Command: `{command}` ({meta['cpu_count']} CPUs, Python {meta['python']}, tune.budget "
              f"{budget or 'not set'}). Each dataset runs `foryou pipeline CONFIG --set output_dir=... --set "
              f"train.seed=SEED {'--set tune.budget=' + budget + ' ' if budget else ''}--quiet` (a synthetic "
              f"shape is generated with the same seed). Floor: served test NDCG@10 >= {FLOOR:.2f}x the strongest: "
              "BASELINES.md's on the shared sets, else the best of the SASRec reference and the baselines on the "
              "same split. Mean +- sample standard deviation over seeds; the ratio's min-max in brackets.\n"),
             *markdown_table(["dataset", "seeds", "served (per seed)", "served test NDCG@10", "strongest (per seed)",
                              "strongest test NDCG@10", "x strongest", "floor met (mean)", "ahead beyond noise"],
                             [summary_cells(row) for row in summary]),
             "\n## Every run\n",
             *markdown_table(["dataset", "seed", "status", "served", "best on valid", "beyond noise",
                              "valid NDCG@10", "test NDCG@10", "best baseline", "its test", "SASRec ref test",
                              "SASRec epochs", "x strongest", "BASELINES.md best", "x BASELINES.md", "floor met",
                              "wall s", "SASRec s"], [run_cells(o) for o in outcomes])]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def summarise(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Per dataset (in first-seen order), the finished runs' means and spreads over seeds."""
    rows = []
    for dataset in dict.fromkeys(o.dataset for o in outcomes):
        done = [o for o in outcomes if o.dataset == dataset and o.status == "ok"]
        maybe = [o.ratio_to_reference if o.reference_ndcg is not None else o.ratio_to_strongest for o in done]
        ratios = [r for r in maybe if r is not None]
        strongest = [o.reference_ndcg if o.reference_ndcg is not None else o.strongest_test_ndcg for o in done]
        rows.append({"dataset": dataset, "seeds": [o.seed for o in done], "served": [o.served for o in done],
                     "served_test_ndcg": spread([o.served_test_ndcg for o in done]),
                     "strongest": [o.reference_model or o.strongest for o in done],
                     "strongest_test_ndcg": spread(strongest), "ratio": spread(ratios),
                     "ratio_range": [min(ratios), max(ratios)] if ratios else None,
                     "floor_met": bool(ratios) and statistics.mean(ratios) >= FLOOR,
                     "beyond_noise": [o.beyond_noise for o in done]})
    return rows


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None for fewer than two values) of the known values."""
    known = [v for v in values if v is not None]
    return {"mean": statistics.mean(known) if known else None,
            "sd": statistics.stdev(known) if len(known) > 1 else None, "n": len(known)}


def summary_cells(row: dict[str, Any]) -> list[str]:
    low_high = row["ratio_range"]
    ratio_text = (f"{pm(row['ratio'], 2)} [{low_high[0]:.2f}, {low_high[1]:.2f}]" if low_high else "-")
    return [row["dataset"], str(len(row["seeds"])), ", ".join(map(str, row["served"])) or "-",
            pm(row["served_test_ndcg"]), ", ".join(map(str, row["strongest"])) or "-",
            pm(row["strongest_test_ndcg"]), ratio_text, "yes" if row["floor_met"] else "**no**",
            ", ".join({True: "yes", False: "no", None: "-"}[b] for b in row["beyond_noise"]) or "-"]


def run_cells(o: Outcome) -> list[str]:
    reference = f"{o.reference_model} {o.reference_ndcg:.4f}" if o.reference_ndcg is not None else "-"
    return [o.dataset, str(o.seed), o.status, o.served or "-", o.best_on_validation or "-",
            {True: "yes", False: "no", None: "-"}[o.beyond_noise], fmt(o.served_valid_ndcg), fmt(o.served_test_ndcg),
            o.best_baseline or "-", fmt(o.best_baseline_test_ndcg), fmt(o.sasrec_test_ndcg),
            str(o.sasrec_epochs or "-"), fmt(o.ratio_to_strongest, 2), reference, fmt(o.ratio_to_reference, 2),
            {True: "yes", False: "**no**", None: "-"}[o.floor_met], f"{o.seconds:.0f}",
            fmt(o.sasrec_seconds, 0) + (" (kept)" if o.sasrec_reused else "")]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def pm(value: dict[str, float | None], digits: int = 4) -> str:
    """'mean +- sd' (or just the mean from one value)."""
    if value["mean"] is None:
        return "-"
    return fmt(value["mean"], digits) + (f" +- {value['sd']:.{digits}f}" if value["sd"] is not None else "")


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", help="extra run configs (named by their file stem)")
    parser.add_argument("--budget", default="10m", help="tune.budget passed to the pipeline; 'none': not set")
    parser.add_argument("--only", nargs="+", help=f"datasets to run: {', '.join([*SHARED_SETS, *SHAPES])} "
                                                  "or an extra config's stem")
    parser.add_argument("--skip-shared", action="store_true", help="leave out the shared sets")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "defaults",
                        help="synthetic data, run outputs and logs go here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one run per seed: the synthetic shapes' data seed and the pipeline's train.seed")
    parser.add_argument("--no-sasrec", action="store_true", help="skip the SASRec reference on synthetic shapes")
    parser.add_argument("--results", default="defaults", help="write benchmarks/results/RESULTS.{json,md}")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of the results file for datasets this run leaves out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    budget = None if args.budget.lower() == "none" else args.budget
    work = args.work_dir.resolve()
    chosen = cases(args)
    kept = earlier_outcomes({name for name, _, _ in chosen}, args.results) if args.append else []
    outcomes: list[Outcome] = []
    command = shlex.join(["python", "benchmarks/defaults.py", *sys.argv[1:]])
    for name, config, shared in chosen:
        for seed in args.seeds:
            run_dir = work / name / f"seed{seed}"
            path = config or write_shape(name, run_dir / "data", seed=seed)
            outcomes.append(run_case(name, path, run_dir, budget, shared, seed, sasrec=not args.no_sasrec))
            logger.info("%s", json.dumps(asdict(outcomes[-1]) | {"error": None}))
            # after every run: a long benchmark stopped part-way still leaves the rows it finished
            write_results([*kept, *outcomes], command, budget, args.results)
    logger.info("wrote %s", RESULTS / f"{args.results}.md")
    if not all(row["floor_met"] for row in summarise(outcomes)):
        sys.exit(1)


if __name__ == "__main__":
    main()

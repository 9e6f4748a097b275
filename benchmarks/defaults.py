"""Good by default: run `foryou pipeline` exactly as a new user would, on the shared sets and synthetic shapes.

Each dataset is one subprocess, `foryou pipeline CONFIG --set output_dir=RUN --set tune.budget=BUDGET --quiet`
(--quiet only hides progress bars), on a config that holds nothing but a data mapping: the shared sets through
their generic configs (benchmarks/configs/*_generic.yaml), the synthetic shapes of benchmarks/synthetic_logs.py
(generated on the fly) and any config given on the command line. From each bundle's manifest: the served
(default) strategy, its validation and test NDCG@10, and the best baseline's test NDCG@10.

Floors: on the shared sets the served strategy's test NDCG@10 >= the strongest model of ../shared/BASELINES.md;
elsewhere it >= the best baseline of the same run. Writes benchmarks/results/defaults.json and defaults.md.
Shared sets are skipped when ../shared/data is absent.

Usage: .venv/bin/python benchmarks/defaults.py [EXTRA_CONFIG ...] [--budget 10m|none] [--only NAME ...]
       [--skip-shared] [--work-dir runs/defaults] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_logs import SHAPES, write_shape  # benchmarks/ (the script's folder) is on sys.path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
BASELINE_MODELS = ("ease", "item_knn", "als", "most_pop", "recent_pop")
BASELINE_STRATEGIES = ("ease", "item_knn", "collab", "popular")  # served strategies that are baselines
TEST_NAME = {"collab": "als", "popular": "recent_pop"}  # served strategy -> its model's name in test_metrics
LOG_TAIL = 2000  # characters of a failed run's output kept in the results

logger = logging.getLogger("defaults")


@dataclass(frozen=True)
class SharedSet:
    """A shared dataset: its generic config, the data folder it reads, and BASELINES.md's strongest model."""

    config: str
    folder: str
    reference_model: str
    reference_ndcg: float


SHARED_SETS = {
    "movielens": SharedSet("benchmarks/configs/movielens_generic.yaml", "movielens-latest-small",
                           "SASRec-own-CE", 0.0524),
    "uci": SharedSet("benchmarks/configs/uci_generic.yaml", "uci-online-retail", "SASRec-own-CE", 0.1572),
}


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


def pipeline_command(config: Path, output_dir: Path, budget: str | None) -> list[str]:
    """The new user's command line (the foryou script beside this interpreter, else the one on PATH)."""
    script = Path(sys.executable).with_name("foryou")
    command = [str(script) if script.exists() else "foryou", "pipeline", str(config),
               "--set", f"output_dir={output_dir}"]
    if budget is not None:
        command += ["--set", f"tune.budget={budget}"]
    return [*command, "--quiet"]


def run_case(name: str, config: Path, run_dir: Path, budget: str | None,
             reference: SharedSet | None = None) -> Outcome:
    """Run the pipeline in the repository root (shared configs use paths relative to it); log into run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    command = pipeline_command(config, run_dir / "output", budget)
    logger.info("%s: %s", name, shlex.join(command))
    start = time.perf_counter()
    with open(run_dir / "pipeline.log", "w") as log:
        code = subprocess.run(command, check=False, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = round(time.perf_counter() - start, 1)
    if code != 0:
        tail = (run_dir / "pipeline.log").read_text()[-LOG_TAIL:]
        logger.error("%s failed (exit code %d); log %s:\n%s", name, code, run_dir / "pipeline.log", tail)
        return Outcome(name, f"failed (exit code {code})", seconds, error=tail)
    manifest = json.loads((run_dir / "output" / "bundle" / "bundle.json").read_text())
    return score(name, manifest, seconds, reference)


def score(name: str, manifest: dict[str, Any], seconds: float, reference: SharedSet | None) -> Outcome:
    """The row of one bundle manifest; the floor is the reference when given, else the best baseline."""
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
    bar = outcome.ratio_to_reference if reference is not None else outcome.ratio_to_baseline
    outcome.floor_met = bar is not None and bar >= 1.0
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


def earlier_outcomes(names: set[str]) -> list[Outcome]:
    """The rows of defaults.json for datasets other than `names` (for --append)."""
    path = RESULTS / "defaults.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["results"]
    return [Outcome(**row) for row in rows if row["dataset"] not in names]


def write_results(outcomes: list[Outcome], command: str, budget: str | None) -> None:
    """defaults.json (every field) and defaults.md (the table and the command that produced it)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "budget": budget,
            "command": command}
    (RESULTS / "defaults.json").write_text(json.dumps({"environment": meta,
                                                       "results": [asdict(o) for o in outcomes]}, indent=2))
    header = ["dataset", "status", "served", "valid NDCG@10", "best baseline valid", "test NDCG@10",
              "best baseline", "its test NDCG@10",
              "x baseline", "BASELINES.md best", "x BASELINES.md", "floor met", "wall s"]
    lines = ["# good by default: `foryou pipeline` on a data mapping only\n",
             (f"Command: `{command}` ({meta['cpu_count']} CPUs, Python {meta['python']}, tune.budget "
             f"{budget or 'not set'}). Each dataset runs `foryou pipeline CONFIG --set output_dir=... "
             f"{'--set tune.budget=' + budget + ' ' if budget else ''}--quiet`. Floors: shared sets >= 1.0x "
             "BASELINES.md's strongest model; other sets: served strategy >= best baseline, on test NDCG@10.\n"),
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for o in outcomes:
        reference = f"{o.reference_model} {o.reference_ndcg:.4f}" if o.reference_ndcg is not None else "-"
        cells = [o.dataset, o.status, o.served or "-", fmt(o.served_valid_ndcg), fmt(o.best_baseline_valid_ndcg),
                 fmt(o.served_test_ndcg),
                 o.best_baseline or "-", fmt(o.best_baseline_test_ndcg), fmt(o.ratio_to_baseline, 2), reference,
                 fmt(o.ratio_to_reference, 2), {True: "yes", False: "**no**", None: "-"}[o.floor_met],
                 f"{o.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    (RESULTS / "defaults.md").write_text("\n".join(lines) + "\n")


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
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic shapes")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of defaults.json for datasets this run leaves out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    budget = None if args.budget.lower() == "none" else args.budget
    work = args.work_dir.resolve()
    chosen = cases(args)
    kept = earlier_outcomes({name for name, _, _ in chosen}) if args.append else []
    outcomes: list[Outcome] = []
    for name, config, shared in chosen:
        config = config or write_shape(name, work / name / "data", seed=args.seed)
        outcomes.append(run_case(name, config, work / name, budget, shared))
        logger.info("%s", json.dumps(asdict(outcomes[-1]) | {"error": None}))
        # after every dataset: a long run stopped part-way still leaves the rows it finished
        write_results([*kept, *outcomes], shlex.join(["python", "benchmarks/defaults.py", *sys.argv[1:]]), budget)
    logger.info("wrote %s", RESULTS / "defaults.md")
    if any(o.floor_met is not True for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()

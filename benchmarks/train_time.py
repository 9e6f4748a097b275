"""Two-tower training time: seconds per epoch on the shared sets against SASRec, and the default config's fit.

Epoch times: the benchmark settings of benchmarks/configs (transformer tower, full softmax; ml-latest-small:
max_history 200, batch 16, whole histories; online retail: max_history 50, batch 64), id only and with content,
each trained `--epochs` epochs without validation; s/epoch is the median epoch (validation excluded, as in
../shared/BASELINES.md). The ratio is to SASRec (benchmarks/sasrec_reference.py: the model of BASELINES.md's
SASRec-own-CE, at the config's max length, width 64 and batch size) timed in the same run, on the same threads,
right before the dataset's settings. Each fit's CPU time (process time, every thread, fit setup included) per
epoch is recorded too: other work on a shared machine stretches wall times unevenly from one fit to the next, but
hardly the CPU a fit uses, so the CPU ratio is the one the floor reads (ratio <= 1.0); with one torch thread on a
quiet machine the two agree. BASELINES.md's own SASRec s/epoch (2 threads, quiet machine) is listed beside them.
Default config: what `foryou train` does first on ml-latest-small with every option at its default
(configs/reference.yaml), early-stopped on validation NDCG@10 (target: <= 60 s); text encodings are computed
beforehand (cached on disk), their cold time is reported apart.
--profile: torch.profiler over `--profile-epochs` epochs per setting instead; the top ops by self CPU time go to
benchmarks/results/profile_train_step.md.

Writes benchmarks/results/train_time.json and .md. Skips (exit 0) when ../shared/data is absent.
OpenMP threads wait passively unless OMP_WAIT_POLICY says otherwise: on a 2-core machine shared with other work,
spinning threads made a 2-thread epoch up to 10x slower whenever another process held a core.
Usage: python benchmarks/train_time.py [--epochs 3] [--datasets ...] [--settings ...] [--skip-default]
       | --profile [--profile-epochs 4]
(FORYOU_THREADS: torch threads, 2 by default)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch starts OpenMP: before the import

import torch
from torch.profiler import ProfilerActivity, profile

from foryou.config import FeaturesConfig, LossConfig, ModelConfig, RunConfig, TrainConfig, load_config
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset
from foryou.evaluation.protocol import validation_ndcg
from foryou.models.item_features import build_item_inputs
from foryou.models.sequences import Histories, training_windows
from foryou.models.two_tower import TwoTower

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sasrec_reference import SASRecReference  # benchmarks/ (the script's folder) is on sys.path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ROOT / "benchmarks" / "configs"
TARGET_SECONDS = 60.0
# dataset -> (benchmark config, shared folder, SASRec-own-CE s/epoch from ../shared/BASELINES.md at equal
# max length and width, 2 CPU threads, for reference: the ratio is to the SASRec timed in the same run)
DATASETS = {"movielens": ("movielens.yaml", "movielens-latest-small", 9.32),
            "uci": ("uci.yaml", "uci-online-retail", 7.12)}
ID_ONLY = {"use_text": False, "use_categorical": False, "use_numeric": False}
# setting -> (model overrides, train overrides); "last window" trains on what SASRec's epoch visits (each user's
# last max_history events), the like-for-like comparison where the benchmark config walks whole histories
SETTINGS: dict[str, tuple[dict[str, bool], dict[str, bool]]] = {
    "id only": (ID_ONLY, {}),
    "id only, last window": (ID_ONLY, {"whole_history": False}),
    "with content": ({}, {}),
    "with content, last window": ({}, {"whole_history": False}),
}
TOP_OPS = 15

logger = logging.getLogger("train_time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per setting")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--skip-default", action="store_true", help="skip the default-config fit")
    parser.add_argument("--profile", action="store_true", help="profile the training step instead of timing")
    parser.add_argument("--profile-epochs", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("FORYOU_THREADS", "2")))
    if not SHARED.exists():
        logger.warning("skipping: %s is absent", SHARED)
        return
    datasets = {name: loaded for name in args.datasets if (loaded := load(name)) is not None}
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.profile:
        sections = [profile_section(name, config, dataset, setting, args.profile_epochs)
                    for name, (config, dataset) in datasets.items() for setting in settings_for(config, args.settings)]
        (RESULTS / "profile_train_step.md").write_text(profile_markdown(sections))
        return
    rows = []
    for name, (config, dataset) in datasets.items():
        sasrec = sasrec_seconds(config, dataset, args.epochs)
        rows += [epoch_row(name, config, dataset, setting, args.epochs, sasrec)
                 for setting in settings_for(config, args.settings)]
    default = None if args.skip_default or "movielens" not in datasets else default_fit(datasets["movielens"][1])
    write_results(rows, default, args)


def settings_for(config: RunConfig, chosen: list[str]) -> list[str]:
    """The chosen settings timed on a config: the last-window ones only where the config walks whole histories."""
    return [name for name, (_, train) in SETTINGS.items()
            if name in chosen and (config.train.whole_history or "whole_history" not in train)]


def load(name: str) -> tuple[RunConfig, Dataset] | None:
    """The dataset's benchmark config and prepared dataset, or None when its folder is absent."""
    config_name, folder, _ = DATASETS[name]
    if not (SHARED / folder).exists():
        logger.warning("skipping %s: %s is absent", name, SHARED / folder)
        return None
    config = load_config(CONFIGS / config_name)
    return config, prepare_dataset(config, progress=False).dataset


def build(config: RunConfig, setting: str, epochs: int) -> TwoTower:
    """The benchmark config's two-tower with the setting's model overrides, trained exactly `epochs` epochs."""
    model_overrides, train_overrides = SETTINGS[setting]
    model = config.model.model_copy(update=model_overrides)
    train = config.train.model_copy(update={**train_overrides, "epochs": epochs})
    return TwoTower(model=model, loss=config.loss, train=train, features=config.features,
                    tracking=config.tracking.model_copy(update={"mlflow": False}))


def steps_per_epoch(config: RunConfig, dataset: Dataset) -> int:
    """Training batches in one epoch of `dataset`'s train split under `config`."""
    train = dataset.restricted_to("train")
    histories = Histories.from_events(train.interactions, train.n_users, {})
    windows = len(training_windows(histories, config.model.max_history, config.train.whole_history)[0])
    return -(-windows // config.train.batch_size)


def sasrec_seconds(config: RunConfig, dataset: Dataset, epochs: int) -> tuple[float, float]:
    """SASRec's median wall s/epoch and its CPU s/epoch on `dataset`'s train split at the config's max length and
    batch size."""
    model = SASRecReference(epochs=epochs, max_len=config.model.max_history, batch_size=config.train.batch_size)
    cpu = time.process_time()
    seconds = model.fit(dataset.restricted_to("train")).epoch_seconds
    cpu = (time.process_time() - cpu) / epochs
    logger.info("%s, SASRec: %.2f s/epoch, %.2f CPU s/epoch (epochs %s)", config.name, statistics.median(seconds),
                cpu, [round(value, 2) for value in seconds])
    return statistics.median(seconds), cpu


def epoch_row(name: str, config: RunConfig, dataset: Dataset, setting: str, epochs: int,
              sasrec: tuple[float, float]) -> dict[str, Any]:
    """Seconds per epoch of one setting (median over `epochs` epochs, validation excluded) and CPU seconds per
    epoch against `sasrec`, SASRec's (wall, CPU) s/epoch timed in the same run."""
    cpu = time.process_time()
    model = build(config, setting, epochs).fit(dataset.restricted_to("train"))
    cpu = (time.process_time() - cpu) / epochs
    seconds = [record.seconds for record in model.history]
    per_epoch = statistics.median(seconds)
    logger.info("%s, %s: %.2f s/epoch, %.2f CPU s/epoch (epochs %s)", name, setting, per_epoch, cpu,
                [round(s, 2) for s in seconds])
    return {"dataset": name, "setting": setting, "seconds_per_epoch": round(per_epoch, 2),
            "epoch_seconds": [round(value, 2) for value in seconds], "sasrec_seconds_per_epoch": round(sasrec[0], 2),
            "wall_ratio": round(per_epoch / sasrec[0], 2), "cpu_seconds_per_epoch": round(cpu, 2),
            "sasrec_cpu_seconds_per_epoch": round(sasrec[1], 2), "ratio": round(cpu / sasrec[1], 2),
            "floor_met": cpu <= sasrec[1], "baselines_md_sasrec_seconds_per_epoch": DATASETS[name][2],
            "steps_per_epoch": steps_per_epoch(config, dataset), "final_loss": model.history[-1].loss,
            "max_history": config.model.max_history, "batch_size": config.train.batch_size,
            "whole_history": config.train.whole_history}


def default_fit(dataset: Dataset) -> dict[str, Any]:
    """The default two-tower's early-stopped fit on ml-latest-small (text encodings cached first)."""
    start = time.perf_counter()
    build_item_inputs(dataset, ModelConfig(), FeaturesConfig())  # fills the text cache the fit then reads
    encode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model = TwoTower().fit(dataset.restricted_to("train"), validate=validation_ndcg(dataset))
    seconds = time.perf_counter() - start
    best = max(model.history, key=lambda record: record.valid_ndcg or 0.0)
    logger.info("default config: %.1f s (%d epochs, best valid NDCG@10 %.4f)", seconds, len(model.history),
                best.valid_ndcg)
    return {"train_seconds": round(seconds, 1), "target_seconds": TARGET_SECONDS,
            "within_target": seconds <= TARGET_SECONDS, "epochs_run": len(model.history),
            "best_epoch": best.epoch, "best_valid_NDCG@10": best.valid_ndcg,
            "text_encoding_seconds (0 when cached)": round(encode_seconds, 1),
            "defaults": {name: section().model_dump(mode="json")
                         for name, section in (("model", ModelConfig), ("loss", LossConfig), ("train", TrainConfig))}}


def write_results(rows: list[dict[str, Any]], default: dict[str, Any] | None, args: argparse.Namespace) -> None:
    environment = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                   "epochs_timed": args.epochs, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                   "load_average_at_end": [round(value, 2) for value in os.getloadavg()]}
    payload = {"environment": environment, "epochs": rows, "default_config": default}
    (RESULTS / "train_time.json").write_text(json.dumps(payload, indent=2))
    lines = ["# two-tower training time", "",
             (f"CPU seconds per epoch (a fit's process time over its {args.epochs} epochs, setup included) and "
              f"wall seconds per epoch (median, validation excluded); {environment['torch_threads']} torch threads, "
              f"{environment['cpu_count']} CPUs, load average at the end {environment['load_average_at_end']}; at "
              "the benchmark settings of benchmarks/configs, against SASRec (benchmarks/sasrec_reference.py, "
              "BASELINES.md's SASRec-own-CE) at the same max length, width and batch size, timed in the same run. "
              "Floor: CPU ratio <= 1.0."),
             "", ("| dataset | setting | CPU s/epoch | SASRec CPU s/epoch | ratio | floor met | s/epoch (wall) "
                  "| SASRec s/epoch (wall) | wall ratio | SASRec s/epoch (BASELINES.md) |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {row['dataset']} | {row['setting']} (max_history {row['max_history']}, batch {row['batch_size']}) "
              f"| {row['cpu_seconds_per_epoch']:.2f} | {row['sasrec_cpu_seconds_per_epoch']:.2f} | {row['ratio']:.2f} "
              f"| {'yes' if row['floor_met'] else 'no'} | {row['seconds_per_epoch']:.2f} "
              f"| {row['sasrec_seconds_per_epoch']:.2f} | {row['wall_ratio']:.2f} "
              f"| {row['baselines_md_sasrec_seconds_per_epoch']:.2f} |" for row in rows]
    if default is not None:
        lines += ["", "## default config on ml-latest-small (early-stopped fit; target <= 60 s)", "",
                  "| measure | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in default.items() if key != "defaults"]
    (RESULTS / "train_time.md").write_text("\n".join(lines) + "\n")


def profile_section(name: str, config: RunConfig, dataset: Dataset, setting: str, epochs: int) -> str:
    """Markdown: the top ops by self CPU time over `epochs` training epochs of one setting."""
    model = build(config, setting, epochs)
    train = dataset.restricted_to("train")
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        model.fit(train)
    steps = steps_per_epoch(config, dataset) * epochs
    seconds = sum(record.seconds for record in model.history)
    table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=TOP_OPS, max_name_column_width=48)
    logger.info("profiled %s, %s: %d steps in %.1f s", name, setting, steps, seconds)
    return (f"## {name}, {setting}\n\n{steps} steps ({epochs} epochs, {seconds / epochs:.2f} s/epoch under the "
            f"profiler; max_history {config.model.max_history}, batch {config.train.batch_size}, whole_history "
            f"{config.train.whole_history})\n\n```\n{table}\n```\n")


def profile_markdown(sections: list[str]) -> str:
    return ("# two-tower training step profile\n\ntorch.profiler (CPU) over whole training epochs (no validation) "
            f"at the benchmark settings; top {TOP_OPS} ops by self CPU time. Produced by "
            "`python benchmarks/train_time.py --profile`.\n\n" + "\n".join(sections))


if __name__ == "__main__":
    main()

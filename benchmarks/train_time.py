"""Training time of the DEFAULT two-tower configuration on ml-latest-small (target: <= 60 s on 2 CPU cores).

Times what `foryou train` does first: fit on the train split with early stopping on validation NDCG@10, every
option at its default (configs/reference.yaml). Text encodings are computed beforehand (they are cached on disk by
model and text, so a second run never pays them); their cold time is reported apart.
Writes benchmarks/results/train_time.json and .md.  Usage: python benchmarks/train_time.py
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch

from foryou.config import FeaturesConfig, LossConfig, ModelConfig, TrainConfig, load_config
from foryou.data.prepare import prepare_dataset
from foryou.evaluation.protocol import validation_ndcg
from foryou.models.item_features import build_item_inputs
from foryou.models.two_tower import TwoTower

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "benchmarks" / "configs" / "movielens.yaml"
TARGET_SECONDS = 60.0

logger = logging.getLogger("train_time")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not (ROOT.parent / "shared" / "data" / "movielens-latest-small").exists():
        logger.warning("skipping: ../shared/data/movielens-latest-small is absent")
        return
    config = load_config(CONFIG)
    dataset = prepare_dataset(config, progress=False).dataset
    start = time.perf_counter()
    build_item_inputs(dataset, ModelConfig(), FeaturesConfig())  # fills the text cache the fit then reads
    encode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model = TwoTower().fit(dataset.restricted_to("train"), validate=validation_ndcg(dataset))
    seconds = time.perf_counter() - start
    best = max(model.history, key=lambda record: record.valid_ndcg or 0.0)
    result = {"train_seconds": round(seconds, 1), "target_seconds": TARGET_SECONDS,
              "within_target": seconds <= TARGET_SECONDS, "epochs_run": len(model.history),
              "best_epoch": best.epoch, "best_valid_NDCG@10": best.valid_ndcg,
              "text_encoding_seconds (0 when cached)": round(encode_seconds, 1),
              "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "defaults": {name: section().model_dump(mode="json")
                           for name, section in (("model", ModelConfig), ("loss", LossConfig), ("train", TrainConfig))}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_time.json").write_text(json.dumps(result, indent=2))
    rows = [f"| {key} | {value} |" for key, value in result.items() if key != "defaults"]
    (RESULTS / "train_time.md").write_text(
        "# default two-tower training time on ml-latest-small\n\n| measure | value |\n|---|---|\n"
        + "\n".join(rows) + "\n")
    logger.info("default config: %.1f s (%d epochs, best valid NDCG@10 %.4f)", seconds, len(model.history),
                 best.valid_ndcg)


if __name__ == "__main__":
    main()

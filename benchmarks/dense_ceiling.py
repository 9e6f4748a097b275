"""The ceiling of the dense synthetic shape: how far a perfect model of its generator gets on foryou's own split.

The dense shape (benchmarks/synthetic_logs.py) draws each user's items from hidden logits (user x item factors plus
popularity). Ranking every unseen item by those very logits is the best any model of the log can hope for; next to
it, EASE (the strongest baseline on the shape) fitted the way the pipeline fits it, both scored by foryou's protocol
(full catalog, history excluded, NDCG@10) on valid (fitted on train) and test (train + valid). It says whether
"1.10x the strongest" is within reach on the shape or beyond any model.

Writes benchmarks/results/dense_ceiling.json and .md.
Usage: .venv/bin/python benchmarks/dense_ceiling.py [--seeds 0 1 2] [--work-dir runs/dense_ceiling]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from foryou.config import load_config
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset
from foryou.evaluation.protocol import evaluate
from foryou.models.base import Recommender
from foryou.models.baselines.ease import EASE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_logs import dense_tastes, write_shape  # benchmarks/ (the script's folder) is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FITTED_ON = {"valid": ("train",), "test": ("train", "valid")}


class GeneratorLogits(Recommender):
    """Scores every item by the generator's own logits for the user (ids "u<n>" / "i<n>" index its tables)."""

    name = "generator_logits"

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = logits
        self.table = np.zeros((0, 0), np.float32)

    def _fit(self, dataset: Dataset) -> None:
        users = dataset.users.sort_values(S.USER_IDX)[S.USER_ID].str[1:].astype(int).to_numpy()
        items = dataset.items.sort_values(S.ITEM_IDX)[S.ITEM_ID].str[1:].astype(int).to_numpy()
        self.table = self.logits[np.ix_(users, items)].astype(np.float32)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.table[user_idx].copy()

    def item_embeddings(self) -> np.ndarray:
        return np.eye(self.table.shape[1], dtype=np.float32)


def ceiling(seed: int, work_dir: Path) -> dict[str, float | int]:
    """NDCG@10 of the generator's logits and of EASE on valid and test of the shape generated with `seed`."""
    config = load_config(write_shape("dense", work_dir / f"seed{seed}", seed=seed))
    dataset = prepare_dataset(config, progress=False).dataset
    logits = dense_tastes(np.random.default_rng(seed)).logits
    row: dict[str, float | int] = {"seed": seed}
    for split, fitted_on in FITTED_ON.items():
        data = dataset.restricted_to(*fitted_on)
        for name, model in (("logits", GeneratorLogits(logits)), ("ease", EASE())):
            result = evaluate(model.fit(data), dataset, split, ks=(10,), beyond_accuracy=False)
            row[f"{name}_{split}"] = float(result.summary["NDCG@10"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "dense_ceiling")
    args = parser.parse_args()
    rows = [ceiling(seed, args.work_dir) for seed in args.seeds]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dense_ceiling.json").write_text(json.dumps(rows, indent=2))
    lines = ["# The dense shape's ceiling: the generator's own logits against EASE", "",
             (f"Command: `.venv/bin/python benchmarks/dense_ceiling.py --seeds {' '.join(map(str, args.seeds))}`. "
             "NDCG@10 on foryou's split (full catalog, history excluded); valid fitted on train, test on train + "
             "valid. EASE with its defaults, as the pipeline fits it."), "",
             "| seed | logits valid | EASE valid | logits test | EASE test | logits test / EASE test |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {row['seed']} | {row['logits_valid']:.4f} | {row['ease_valid']:.4f} | {row['logits_test']:.4f} | "
              f"{row['ease_test']:.4f} | {row['logits_test'] / row['ease_test']:.2f} |" for row in rows]
    (RESULTS / "dense_ceiling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""An MLP ranker over the candidate features (and optionally the user and item vectors): the alternative to
the LightGBM ranker, with the same fit / predict / save / load interface.

Each row's input is [preprocessed features, missing indicators, user, item, user * item]; the network scores a
row alone, so `predict` needs no groups. Only the order within a group matters, so training is a sampled
listwise softmax: every relevant row competes with up to `negatives` irrelevant rows of its group, resampled
each epoch. With a validation set, the epoch with the best NDCG@eval_at is kept. Saved as mlp.pt (state dict)
plus mlp.json (feature names, preprocessing statistics, settings, best epoch).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from typing_extensions import Self

from foryou.errors import NotFittedError
from foryou.evaluation.metrics import grouped_ndcg
from foryou.rerank.features import FeatureRows
from foryou.rerank.ranker import FeatureRanker, RankingSet, ranking_arrays

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "mlp.pt"
LOG_ABOVE = 100.0  # a column whose training max |value| exceeds this is heavy-tailed: signed log1p first
STD_FLOOR = 1e-6
CLIP = 10.0  # z-scores are clipped so that values far outside training (even inf) keep the scores finite
PREDICT_ROWS = 65_536
# the constructor's arguments, saved so that `load` rebuilds the same ranker
SETTINGS = ("hidden", "epochs", "learning_rate", "batch_groups", "negatives", "dropout", "patience",
            "eval_at", "seed", "weight_decay")

# (user vectors (n, d), item vectors (n, d)) float32, one pair per feature row
Vectors = tuple[np.ndarray, np.ndarray]
# per group with a relevant row: (its relevant rows, its irrelevant rows), as row indices
TrainingGroups = list[tuple[np.ndarray, np.ndarray]]
# (validation inputs (n, width), labels (n,), group ids (n,))
Validation = tuple[torch.Tensor, np.ndarray, np.ndarray]


@dataclass
class Preprocessing:
    """Per-column statistics fitted on the training rows only, so every later row is transformed alike."""

    log_columns: np.ndarray  # (f,) bool: signed log1p before standardising (counts, days, ...)
    mean: np.ndarray  # (f,) float64 over the finite (logged) training values
    std: np.ndarray  # (f,) float64, floored at STD_FLOOR
    missing_columns: np.ndarray  # (f,) bool: had NaN in training, so they get a missing indicator

    @classmethod
    def fit(cls, matrix: np.ndarray) -> Preprocessing:
        finite = np.isfinite(matrix)
        log_columns = np.abs(np.where(finite, matrix, 0.0)).max(axis=0, initial=0.0) > LOG_ABOVE
        values = np.where(finite, _signed_log(matrix, log_columns), 0.0)
        counts = np.maximum(finite.sum(axis=0), 1)
        mean = values.sum(axis=0) / counts
        std = np.sqrt((np.where(finite, values - mean, 0.0) ** 2).sum(axis=0) / counts)
        return cls(log_columns, mean, np.maximum(std, STD_FLOOR), np.isnan(matrix).any(axis=0))

    @property
    def width(self) -> int:
        """Columns `transform` gives: the features, then one missing indicator per `missing_columns`."""
        return len(self.mean) + int(self.missing_columns.sum())

    def transform(self, matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(n, f) raw float64 -> (n, f + m) float32: clipped z-scores (0 where NaN), m missing indicators; written
        into `out` (n, f + m) float32 when given (the first columns of the network's input)."""
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = np.clip((_signed_log(matrix, self.log_columns) - self.mean) / self.std, -CLIP, CLIP)
        out = np.empty((len(matrix), self.width), np.float32) if out is None else out
        out[:, : len(self.mean)] = np.nan_to_num(scaled, nan=0.0, copy=False)
        out[:, len(self.mean):] = np.isnan(matrix[:, self.missing_columns])
        return out

    def to_json(self) -> dict[str, list[Any]]:
        return {name: values.tolist() for name, values in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, list[Any]]) -> Preprocessing:
        return cls(np.array(data["log_columns"], bool), np.array(data["mean"], np.float64),
                   np.array(data["std"], np.float64), np.array(data["missing_columns"], bool))


class MLPRanker(FeatureRanker):
    """Scores each candidate row with an MLP trained by a sampled softmax within its group (user)."""

    meta_file = "mlp.json"

    def __init__(self, hidden: tuple[int, ...] = (128, 64), epochs: int = 30, learning_rate: float = 1e-3,
                 batch_groups: int = 256, negatives: int = 32, dropout: float = 0.1, patience: int = 4,
                 eval_at: int = 10, seed: int = 0, weight_decay: float = 1e-5) -> None:
        super().__init__()
        self.hidden = tuple(int(width) for width in hidden)
        self.epochs, self.learning_rate = int(epochs), float(learning_rate)
        self.batch_groups, self.negatives = int(batch_groups), int(negatives)
        self.dropout, self.patience, self.eval_at = float(dropout), int(patience), int(eval_at)
        self.seed, self.weight_decay = int(seed), float(weight_decay)
        self.preprocessing: Preprocessing | None = None
        self.vector_dim: int | None = None
        self.network: nn.Sequential | None = None

    @property
    def uses_vectors(self) -> bool:
        return self.vector_dim is not None

    def fit(self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray,
            valid: RankingSet | None = None, vectors: Vectors | None = None,
            valid_vectors: Vectors | None = None) -> Self:
        """features (n, f) numeric columns (all used; NaN allowed), labels (n,) (> 0 = relevant), groups (n,)
        query ids with contiguous rows; vectors = (user (n, d), item (n, d)) to use them too. With `valid`
        (and `valid_vectors` when `vectors`), keep the epoch with the best NDCG@eval_at and stop after
        `patience` epochs without improvement. Deterministic on CPU for a given seed."""
        if (valid_vectors is not None) != (valid is not None and vectors is not None):
            raise ValueError("pass valid_vectors exactly when both valid and vectors are given")
        labels, sizes = ranking_arrays(features, labels, groups)
        training = _relevant_groups(labels, sizes)
        if not training:
            raise ValueError("no group has a relevant row (label > 0): there is nothing to learn from")
        torch.manual_seed(self.seed)
        self.feature_names = [str(column) for column in features.columns]
        self.vector_dim = None if vectors is None else int(np.shape(vectors[0])[-1])
        self.preprocessing = preprocessing = Preprocessing.fit(self._matrix(features))
        inputs = self._inputs(features, vectors, preprocessing)
        validation = None
        if valid is not None:
            valid_labels, _ = ranking_arrays(*valid)
            if not (valid_labels > 0).any():
                raise ValueError("valid has no relevant row (label > 0): its NDCG is undefined")
            validation = (self._inputs(valid[0], valid_vectors, preprocessing), valid_labels, np.asarray(valid[2]))
        self.network = self._network(inputs.shape[1])
        self._train(self.network, inputs, training, validation)
        return self

    def predict(self, features: FeatureRows, vectors: Vectors | None = None) -> np.ndarray:
        """(n,) float64 scores; compare them only within a group. Pass `vectors` exactly when fit had them.
        Inputs are assembled PREDICT_ROWS rows at a time, the chunks the network scores anyway: millions of rows
        never hold their (n, width) input matrix at once, and the scores equal those of one input matrix."""
        network, preprocessing = self._fitted()
        matrix, checked = self._checked(features, vectors)
        chunks = []
        for start in range(0, len(matrix), PREDICT_ROWS):
            rows = slice(start, start + PREDICT_ROWS)
            chunks.append(_scores(network, _assembled(matrix[rows], _vector_rows(checked, rows), preprocessing)))
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float64)

    def save(self, directory: Path | str) -> None:
        """Write mlp.pt (the kept weights) and mlp.json (all else `load` needs to predict identically)."""
        network, preprocessing = self._fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), directory / WEIGHTS_FILE)
        self._save_meta(directory, {"preprocessing": preprocessing.to_json(), "vector_dim": self.vector_dim,
                                    "settings": {name: getattr(self, name) for name in SETTINGS}})

    @classmethod
    def load(cls, directory: Path | str) -> MLPRanker:
        directory = Path(directory)
        meta = cls._read_meta(directory)
        ranker = cls(**{**meta["settings"], "hidden": tuple(meta["settings"]["hidden"])})
        ranker._restore_meta(meta)
        ranker.preprocessing = Preprocessing.from_json(meta["preprocessing"])
        ranker.vector_dim = meta["vector_dim"]
        ranker.network = ranker._network(ranker.preprocessing.width + 3 * (ranker.vector_dim or 0))
        weights = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        ranker.network.load_state_dict(weights)
        return ranker

    def _fitted(self) -> tuple[nn.Sequential, Preprocessing]:
        if self.network is None or self.preprocessing is None:
            raise NotFittedError("MLPRanker is not fitted: call fit() or load() first")
        return self.network, self.preprocessing

    def _network(self, width: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for hidden in self.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(self.dropout)]
            width = hidden
        return nn.Sequential(*layers, nn.Linear(width, 1))

    def _train(self, network: nn.Sequential, inputs: torch.Tensor, training: TrainingGroups,
               validation: Validation | None) -> None:
        """All epochs, or until `patience` epochs pass without a better validation NDCG; then the best."""
        rng = np.random.default_rng(self.seed)
        optimizer = torch.optim.Adam(network.parameters(), self.learning_rate, weight_decay=self.weight_decay)
        self.best_iteration, self.best_score = self.epochs, None
        best_state, since_best = copy.deepcopy(network.state_dict()), 0
        for epoch in range(1, self.epochs + 1):
            loss = self._train_epoch(network, inputs, training, optimizer, rng)
            if validation is None:
                logger.info("mlp ranker: epoch %d, train loss %.4f", epoch, loss)
                continue
            valid_inputs, valid_labels, valid_groups = validation
            score = grouped_ndcg(_scores(network, valid_inputs), valid_labels, valid_groups, self.eval_at)
            logger.info("mlp ranker: epoch %d, train loss %.4f, valid NDCG@%d %.4f", epoch, loss,
                        self.eval_at, score)
            if self.best_score is None or score > self.best_score:
                self.best_iteration, self.best_score = epoch, score
                best_state, since_best = copy.deepcopy(network.state_dict()), 0
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        if validation is not None:
            network.load_state_dict(best_state)
            logger.info("mlp ranker: best epoch %d, valid NDCG@%d %.4f", self.best_iteration, self.eval_at,
                        self.best_score)

    def _train_epoch(self, network: nn.Sequential, inputs: torch.Tensor, training: TrainingGroups,
                     optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        """One pass over the groups in random order, `batch_groups` at a time; mean loss per relevant row."""
        network.train()
        order = rng.permutation(len(training))
        total, count = 0.0, 0
        for start in range(0, len(order), self.batch_groups):
            batch = [training[g] for g in order[start: start + self.batch_groups]]
            rows = torch.from_numpy(_sampled_lists(batch, self.negatives, rng))
            logits = network(inputs[rows.clamp(min=0)]).squeeze(-1).masked_fill(rows < 0, float("-inf"))
            loss = nn.functional.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        return total / count

    def _inputs(self, features: pd.DataFrame, vectors: Vectors | None,
                preprocessing: Preprocessing) -> torch.Tensor:
        """(n, width) float32 network inputs of every row (see `_assembled`)."""
        return _assembled(*self._checked(features, vectors), preprocessing)

    def _checked(self, features: FeatureRows, vectors: Vectors | None) -> tuple[np.ndarray, Vectors | None]:
        """(n, f) float64 raw features in the fitted order, and the vectors as float32 once their shapes match."""
        if (vectors is not None) != self.uses_vectors:
            raise ValueError("the ranker was fitted with vectors: pass vectors=(user_vectors, item_vectors)"
                             if self.uses_vectors else "the ranker was fitted without vectors: pass none")
        matrix = self._matrix(features)
        if vectors is None:
            return matrix, None
        user, item = (np.asarray(side, np.float32) for side in vectors)
        expected = (len(matrix), self.vector_dim)
        if user.shape != expected or item.shape != expected:
            raise ValueError(f"user and item vectors must have shape {expected}, got {user.shape}, {item.shape}")
        return matrix, (user, item)


def _assembled(matrix: np.ndarray, vectors: Vectors | None, preprocessing: Preprocessing) -> torch.Tensor:
    """(n, width) float32: preprocessed features, then user, item, user * item if the ranker uses them; each part
    written once into the one input array."""
    if vectors is None:
        return torch.from_numpy(preprocessing.transform(matrix))
    user, item = vectors
    start, dim = preprocessing.width, user.shape[1]
    inputs = np.empty((len(matrix), start + 3 * dim), np.float32)
    preprocessing.transform(matrix, inputs[:, :start])
    inputs[:, start:start + dim] = user
    inputs[:, start + dim:start + 2 * dim] = item
    np.multiply(user, item, out=inputs[:, start + 2 * dim:])
    return torch.from_numpy(inputs)


def _vector_rows(vectors: Vectors | None, rows: slice) -> Vectors | None:
    return None if vectors is None else (vectors[0][rows], vectors[1][rows])


def _signed_log(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    return np.where(columns, np.sign(matrix) * np.log1p(np.abs(matrix)), matrix)


def _group_rows(sizes: np.ndarray) -> list[np.ndarray]:
    return np.split(np.arange(int(np.sum(sizes))), np.cumsum(sizes)[:-1])


def _relevant_groups(labels: np.ndarray, sizes: np.ndarray) -> TrainingGroups:
    """Groups without a relevant row teach the softmax nothing, so they are left out."""
    return [(rows[labels[rows] > 0], rows[labels[rows] <= 0]) for rows in _group_rows(sizes)
            if (labels[rows] > 0).any()]


def _sampled_lists(batch: TrainingGroups, negatives: int, rng: np.random.Generator) -> np.ndarray:
    """(p, 1 + negatives) int64 rows: each relevant row, then up to `negatives` of its group's irrelevant rows
    drawn without replacement; -1 pads groups with fewer."""
    blocks = []
    for relevant, irrelevant in batch:
        take = min(negatives, len(irrelevant))
        block = np.full((len(relevant), 1 + negatives), -1, np.int64)
        block[:, 0] = relevant
        draws = np.argsort(rng.random((len(relevant), len(irrelevant))), axis=1)[:, :take]
        block[:, 1: 1 + take] = irrelevant[draws]
        blocks.append(block)
    return np.concatenate(blocks)


def _scores(network: nn.Sequential, inputs: torch.Tensor) -> np.ndarray:
    """(n,) float64 scores in eval mode (no dropout) without autograd, PREDICT_ROWS rows at a time."""
    network.eval()
    with torch.inference_mode():
        chunks = [network(inputs[start: start + PREDICT_ROWS]).squeeze(-1)
                  for start in range(0, len(inputs), PREDICT_ROWS)]
    return torch.cat(chunks).numpy().astype(np.float64) if chunks else np.zeros(0, np.float64)

"""A full-softmax SASRec reference (benchmark code, not a served model): "x the strongest" on any prepared dataset.

The model of ../shared/BASELINES.md's "SASRec-own-CE": a causal transformer over item ids (hidden 64, 2 layers,
2 heads, learned positions, the last `max_len` items) trained with full-catalog softmax cross-entropy at every
position. It is a foryou `Recommender`, so it is scored by foryou's own protocol on foryou's own split (the one
the pipeline run used): full catalog, the user's history excluded, the same NDCG@10. Protocol: the learning rate
(1e-3 or 3e-3) and the epochs chosen by early stopping on validation NDCG@10 (fitted on train, patience 20), then a
refit on train + valid for that many epochs, and the test split read once.

Usage: .venv/bin/python benchmarks/sasrec_reference.py PREPARED_DIR [--max-len 50] [--seed 0] [--out FILE.json]
(PREPARED_DIR: a run's output_dir/prepared, as `foryou prepare` or `foryou pipeline` wrote it)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.evaluation.protocol import evaluate
from foryou.models.base import Recommender

logger = logging.getLogger("sasrec_reference")


def user_sequences(dataset: Dataset) -> list[np.ndarray]:
    """Per user_idx (all n_users), the item_idx of its events in time order (file order on ties), repeats kept."""
    events = dataset.interactions.sort_values([S.USER_IDX, S.TIMESTAMP, S.SOURCE_ORDER], kind="stable")
    users = events[S.USER_IDX].to_numpy(np.int64)
    items = events[S.ITEM_IDX].to_numpy(np.int64)
    bounds = np.searchsorted(users, np.arange(dataset.n_users + 1))
    return [items[bounds[u]:bounds[u + 1]] for u in range(dataset.n_users)]


class _Net(nn.Module):
    """Item + position embeddings -> causal pre-LN transformer -> (b, L, hidden). Index 0 is padding, always on
    the right, so the causal mask alone keeps it out of every real position (no fully masked attention row)."""

    def __init__(self, n_items: int, max_len: int, hidden: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.positions = nn.Embedding(max_len, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, hidden, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        x = self.items(ids) * self.items.embedding_dim ** 0.5 + self.positions(torch.arange(length))
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        return self.norm(self.encoder(self.dropout(x), mask=causal))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., hidden) -> (..., n_items) scores over the real items (the padding row left out)."""
        return hidden @ self.items.weight[1:].T


class SASRecReference(Recommender):
    """SASRec with full-softmax CE; `fit` trains `epochs` epochs, or early-stops on `validate` with `patience`."""

    name = "sasrec_reference"

    def __init__(self, epochs: int = 200, max_len: int = 50, hidden: int = 64, layers: int = 2, heads: int = 2,
                 dropout: float = 0.2, learning_rate: float = 1e-3, batch_size: int = 128, seed: int = 0) -> None:
        super().__init__()
        self.epochs, self.max_len, self.hidden, self.layers, self.heads = epochs, max_len, hidden, layers, heads
        self.dropout, self.learning_rate, self.batch_size, self.seed = dropout, learning_rate, batch_size, seed
        self.validate: Callable[[SASRecReference], float] | None = None
        self.patience = 10
        self.history: list[float] = []  # validation score per epoch (with `validate`)
        self.epoch_seconds: list[float] = []  # training time per epoch, validation excluded
        self.net: _Net | None = None
        self.inputs = torch.zeros(0, max_len, dtype=torch.long)  # per user_idx: its last max_len items, padded
        self.lengths = torch.zeros(0, dtype=torch.long)  # per user_idx: how many of them are real

    def params(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "max_len": self.max_len, "hidden": self.hidden, "layers": self.layers,
                "heads": self.heads, "dropout": self.dropout, "learning_rate": self.learning_rate,
                "batch_size": self.batch_size, "seed": self.seed}

    def _fit(self, dataset: Dataset) -> None:
        torch.manual_seed(self.seed)
        sequences = user_sequences(dataset)
        self.inputs, self.lengths = _right_padded([s + 1 for s in sequences], self.max_len)
        train, _ = _right_padded([s + 1 for s in sequences if len(s) >= 2], self.max_len + 1)
        self.net = _Net(dataset.n_items, self.max_len, self.hidden, self.layers, self.heads, self.dropout)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.learning_rate)
        generator = torch.Generator().manual_seed(self.seed)
        best, best_state, waited = -np.inf, None, 0
        for _ in range(self.epochs):
            start = time.perf_counter()
            self._epoch(train, optimizer, generator)
            self.epoch_seconds.append(time.perf_counter() - start)
            if self.validate is None:
                continue
            self.history.append(self.validate(self))
            if self.history[-1] > best:
                best, waited = self.history[-1], 0
                best_state = {key: value.clone() for key, value in self.net.state_dict().items()}
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_state is not None:
            self.net.load_state_dict(best_state)

    def _epoch(self, train: torch.Tensor, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
        """One pass over the users: predict every next item of each sequence, CE over the whole catalog."""
        assert self.net is not None
        self.net.train()
        for rows in torch.randperm(len(train), generator=generator).split(self.batch_size):
            batch = train[rows]
            inputs, targets = batch[:, :-1], batch[:, 1:]
            logits = self.net.logits(self.net(inputs))
            real = targets > 0  # padding is on the right: a real target always follows a real input
            loss = nn.functional.cross_entropy(logits[real], targets[real] - 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    @property
    def best_epoch(self) -> int:
        return int(np.argmax(self.history)) + 1

    @torch.no_grad()
    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        assert self.net is not None
        self.net.eval()
        rows = torch.as_tensor(np.asarray(user_idx, dtype=np.int64))
        last = (self.lengths[rows] - 1).clamp(min=0)  # the state after the user's last item
        hidden = self.net(self.inputs[rows])[torch.arange(len(rows)), last]
        return self.net.logits(hidden).numpy().astype(np.float32)

    def item_embeddings(self) -> np.ndarray:
        assert self.net is not None
        return self.net.items.weight[1:].detach().numpy().astype(np.float32)


def _right_padded(sequences: list[np.ndarray], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, length) long tensor of each sequence's last `length` ids followed by 0s, and (n,) their counts."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    counts = np.zeros(len(sequences), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = sequence[-length:]
        out[row, :len(tail)], counts[row] = tail, len(tail)
    return torch.from_numpy(out), torch.from_numpy(counts)


@dataclass
class ReferenceResult:
    valid_ndcg: float
    best_epoch: int
    epochs_run: int
    test: dict[str, float]  # NDCG@10, HR@10, ... of the refit on train + valid
    tune_seconds: float  # every learning rate's early-stopped fit on train
    fit_seconds: float
    learning_rate: float = 1e-3  # the one chosen on validation


def run_reference(dataset: Dataset, max_len: int = 50, seed: int = 0, max_epochs: int = 400, patience: int = 20,
                  learning_rates: tuple[float, ...] = (1e-3, 3e-3)) -> ReferenceResult:
    """Per learning rate, early-stop on validation (fit on train); refit the best on train + valid for its best
    epoch count and read test once."""
    start = time.perf_counter()
    fits = []
    for learning_rate in learning_rates:
        tuned = SASRecReference(epochs=max_epochs, max_len=max_len, learning_rate=learning_rate, seed=seed)
        tuned.validate = lambda model: float(evaluate(model, dataset, "valid", ks=(10,),
                                                      beyond_accuracy=False).summary["NDCG@10"])
        tuned.patience = patience
        tuned.fit(dataset.restricted_to("train"))
        logger.info("SASRec reference lr %g: best valid NDCG@10 %.4f at epoch %d of %d", learning_rate,
                    max(tuned.history), tuned.best_epoch, len(tuned.history))
        fits.append(tuned)
    best = max(fits, key=lambda fit: max(fit.history))
    tune_seconds = time.perf_counter() - start
    start = time.perf_counter()
    refit = SASRecReference(epochs=best.best_epoch, max_len=max_len, learning_rate=best.learning_rate,
                            seed=seed).fit(dataset.restricted_to("train", "valid"))
    fit_seconds = time.perf_counter() - start
    summary = evaluate(refit, dataset, "test", ks=(10, 20), beyond_accuracy=False).summary
    test = {key: float(value) for key, value in summary.items() if key.split("@")[0] in ("NDCG", "HR", "MRR")}
    return ReferenceResult(max(best.history), best.best_epoch, len(best.history), test, tune_seconds, fit_seconds,
                           best.learning_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared_dir", type=Path)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    result = run_reference(Dataset.load(args.prepared_dir), max_len=args.max_len, seed=args.seed)
    text = json.dumps(asdict(result), indent=2)
    if args.out is not None:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

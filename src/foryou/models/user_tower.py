"""User towers: encode a user's chronological history into one vector per position (what comes next).

Every tower gets the history as a right-padded `History` batch plus the item tower's vectors of those items and
returns (b, L, embedding_dim) unit vectors, where position i summarises events 0..i (causal): trained to predict
event i + 1, and the vector at the last real position is the user's vector at serving time.
Kinds (config.model.user_tower): "mean" (event weight x recency-decayed mean), "attention" (learned attention
pooling), "gru" / "lstm", "transformer" (causal, SASRec-style, positional + event-type embeddings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foryou.config import ModelConfig


@dataclass
class History:
    """A right-padded batch of histories, oldest event first.

    items (b, L) int64 item indices (0 where padded); event_types (b, L) int64, 0 = padding, 1.. = types;
    weights (b, L) float32 event weights (0 where padded); days (b, L) float32 event time in days;
    mask (b, L) bool, True on real events.
    """

    items: Tensor
    event_types: Tensor
    weights: Tensor
    days: Tensor
    mask: Tensor

    def to(self, device: torch.device) -> History:
        return History(*(getattr(self, name).to(device) for name in ("items", "event_types", "weights", "days", "mask")))

    def last_positions(self) -> Tensor:
        """(b,) index of each row's last real event."""
        return self.mask.long().sum(1).clamp_min(1) - 1


class UserTower(nn.Module):
    """Shared input layer: item vector + event-type embedding + log event weight, then a kind-specific encoder."""

    def __init__(self, config: ModelConfig, n_event_types: int) -> None:
        super().__init__()
        dim = config.embedding_dim
        self.event_type = nn.Embedding(n_event_types + 1, dim, padding_idx=0)
        nn.init.zeros_(self.event_type.weight)  # starts neutral: a constant offset as large as the item signal hides it
        self.weight_scale = nn.Linear(1, dim, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(dim, dim)
        self.scale = math.sqrt(dim)

    def inputs(self, item_vectors: Tensor, history: History) -> Tensor:
        """(b, L, d) per-event input vectors, zero where padded."""
        x = item_vectors * self.scale + self.event_type(history.event_types)
        x = x + self.weight_scale(torch.log1p(history.weights).unsqueeze(-1))
        return self.dropout(x) * history.mask.unsqueeze(-1)

    def forward(self, item_vectors: Tensor, history: History, extra: Tensor | None = None) -> Tensor:
        """item_vectors (b, L, d), history (b, L), extra (b, d) or None (added to every position) -> (b, L, d)."""
        hidden = self.output(self.encode(self.inputs(item_vectors, history), history))
        if extra is not None:
            hidden = hidden + extra.unsqueeze(1)
        return F.normalize(hidden, dim=-1)

    def encode(self, x: Tensor, history: History) -> Tensor:
        raise NotImplementedError


def _causal_pool(values: Tensor, logits: Tensor, history: History) -> Tensor:
    """Position i = softmax over j <= i of logits[b, i, j], applied to values (b, L, d)."""
    length = values.shape[1]
    allowed = torch.ones(length, length, dtype=torch.bool, device=values.device).tril()
    allowed = allowed.unsqueeze(0) & history.mask.unsqueeze(1)
    weights = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    return weights @ values


class MeanUserTower(UserTower):
    """Weighted mean of the history: event weight x 0.5 ** (age in days / half-life), age from position i."""

    def __init__(self, config: ModelConfig, n_event_types: int) -> None:
        super().__init__(config, n_event_types)
        self.half_life = config.recency_half_life_days

    def encode(self, x: Tensor, history: History) -> Tensor:
        age = (history.days.unsqueeze(2) - history.days.unsqueeze(1)).clamp_min(0.0)  # (b, i, j)
        logits = torch.log(history.weights.clamp_min(1e-6)).unsqueeze(1) - age * (math.log(2) / self.half_life)
        return _causal_pool(x, logits, history)


class AttentionUserTower(UserTower):
    """Attention pooling: a learned query scores each earlier event (content, weight and recency features)."""

    def __init__(self, config: ModelConfig, n_event_types: int) -> None:
        super().__init__(config, n_event_types)
        self.key = nn.Linear(config.embedding_dim, config.embedding_dim)
        self.query = nn.Parameter(torch.zeros(config.embedding_dim))
        self.recency = nn.Parameter(torch.tensor(-math.log(2) / config.recency_half_life_days))

    def encode(self, x: Tensor, history: History) -> Tensor:
        age = (history.days.unsqueeze(2) - history.days.unsqueeze(1)).clamp_min(0.0)
        content = (self.key(x) @ self.query / self.scale).unsqueeze(1)  # (b, 1, L)
        return _causal_pool(x, content + self.recency * age, history)


class RecurrentUserTower(UserTower):
    """GRU or LSTM over the history; recurrent state is causal by construction."""

    def __init__(self, config: ModelConfig, n_event_types: int, cell: str) -> None:
        super().__init__(config, n_event_types)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(config.embedding_dim, config.embedding_dim, num_layers=config.num_layers, batch_first=True,
                       dropout=config.dropout if config.num_layers > 1 else 0.0)

    def encode(self, x: Tensor, history: History) -> Tensor:
        return self.rnn(x)[0]


class TransformerUserTower(UserTower):
    """Causal transformer over the last `max_history` events (SASRec): an output at every position."""

    def __init__(self, config: ModelConfig, n_event_types: int) -> None:
        super().__init__(config, n_event_types)
        dim = config.embedding_dim
        self.position = nn.Embedding(config.max_history, dim)
        layer = nn.TransformerEncoderLayer(dim, config.num_heads, dim_feedforward=dim, dropout=config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def encode(self, x: Tensor, history: History) -> Tensor:
        length = x.shape[1]
        x = x + self.position(torch.arange(length, device=x.device)) * history.mask.unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        return self.norm(self.encoder(x, mask=causal))


class UserFeatureTower(nn.Module):
    """Known users' categorical (EmbeddingBag, 0 = padding) and numeric feature fields -> (b, d), summed."""

    numeric_values: Tensor

    def __init__(self, categorical: list[np.ndarray], cardinalities: list[int], numeric: np.ndarray, dim: int) -> None:
        super().__init__()
        self.bags = nn.ModuleList(nn.EmbeddingBag(size + 1, dim, mode="mean", padding_idx=0) for size in cardinalities)
        for position, values in enumerate(categorical):
            self.register_buffer(f"cat_{position}", torch.as_tensor(values, dtype=torch.long), persistent=False)
        self.register_buffer("numeric_values", torch.as_tensor(numeric, dtype=torch.float32), persistent=False)
        self.numeric = nn.Linear(numeric.shape[1], dim) if numeric.shape[1] else None

    def forward(self, users: Tensor) -> Tensor:
        """users (b,) user indices -> (b, d)."""
        parts = [bag(getattr(self, f"cat_{position}")[users]) for position, bag in enumerate(self.bags)]
        if self.numeric is not None:
            parts.append(self.numeric(self.numeric_values[users]))
        return torch.stack(parts).sum(0)


def build_user_tower(config: ModelConfig, n_event_types: int) -> UserTower:
    """The user tower named by config.model.user_tower."""
    if config.user_tower == "mean":
        return MeanUserTower(config, n_event_types)
    if config.user_tower == "attention":
        return AttentionUserTower(config, n_event_types)
    if config.user_tower in ("gru", "lstm"):
        return RecurrentUserTower(config, n_event_types, config.user_tower)
    return TransformerUserTower(config, n_event_types)

"""The towers as one torch module: item vectors (the whole catalog or a step's items) and user vectors.

`TwoTowerModule` only encodes; `foryou.models.two_tower.TwoTower` trains it with the retrieval task, saves it
and serves it. `EncodedItems` is what a sampled-softmax step reads instead of the whole catalog.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from foryou.config import ModelConfig
from foryou.models.item_tower import ItemInputs, ItemTower
from foryou.models.user_tower import History, UserFeatureTower, build_user_tower
from foryou.tasks.dat import AugmentedVectors


class EncodedItems:
    """The item vectors of one training step: the distinct items it reads, encoded once, indexed like the
    catalog tensor (`encoded[item_indices]`) without encoding the rest of the catalog."""

    def __init__(self, module: TwoTowerModule, items: Tensor) -> None:
        distinct = torch.unique(items)
        self.vectors = module.items(distinct)
        self.rows = torch.full((len(module.known),), -1, dtype=torch.long, device=items.device)
        self.rows[distinct] = torch.arange(len(distinct), device=items.device)

    def __getitem__(self, items: Tensor) -> Tensor:
        return self.vectors[self.rows[items]]


ItemLookup = Tensor | EncodedItems


class TwoTowerModule(nn.Module):
    """The towers (and DAT augmented vectors): encodes, never computes a loss."""

    known: Tensor  # (n_items,) bool buffer: items with training events

    def __init__(self, inputs: ItemInputs, known: np.ndarray, n_users: int, n_event_types: int,
                 config: ModelConfig, user_features: UserFeatureTower | None = None, sparse_ids: bool = False) -> None:
        super().__init__()
        self.item_tower = ItemTower(inputs, known, config, sparse_ids)
        self.user_tower = build_user_tower(config, n_event_types)
        self.register_buffer("known", torch.as_tensor(known, dtype=torch.bool), persistent=False)
        # a learned popularity prior per item with training events; new items have none (0)
        self.item_bias = nn.Parameter(torch.zeros(inputs.n_items)) if config.item_bias else None
        self.user_features = user_features
        dim = config.embedding_dim
        self.augmented = AugmentedVectors(n_users, inputs.n_items, dim) if config.dat.enabled else None
        self.user_augment = nn.Linear(dim, dim, bias=False) if config.dat.enabled else None
        self.item_augment = nn.Linear(dim, dim, bias=False) if config.dat.enabled else None

    def catalog(self) -> Tensor:
        """(n_items, d) item vectors of the whole catalog; items without training events get no DAT vector (it
        was never trained), so they are encoded from content alone, as `TwoTower.encode_items` encodes them."""
        return self.item_tower.all_items(self._item_extra(None))

    def items(self, items: Tensor) -> Tensor:
        """(m, d) vectors of the catalog rows `items`, as `catalog()` encodes them: what a sampled-softmax step
        needs, so that a step costs the batch's items rather than the whole catalog."""
        return self.item_tower(items, self._item_extra(items))

    def _item_extra(self, items: Tensor | None) -> Tensor | None:
        """DAT's added vectors of catalog rows `items` (None: every row; zero for items without training
        events), or None without DAT."""
        if self.augmented is None or self.item_augment is None:
            return None
        if items is None:
            return self.item_augment(self.augmented.items.weight) * self.known.unsqueeze(1)
        return self.item_augment(self.augmented.items(items)) * self.known[items].unsqueeze(1)

    def bias(self) -> Tensor | None:
        """(n_items,) logit offset of every catalog item (0 for items without training events), or None."""
        return None if self.item_bias is None else self.item_bias * self.known

    def users(self, item_vectors: ItemLookup, history: History, users: Tensor | None) -> Tensor:
        """(b, L, d) user vectors at every position; item_vectors: the catalog or the step's `EncodedItems`;
        users (b,) user indices (None: unseen users)."""
        return self.user_tower(item_vectors[history.items], history, self.user_extra(users, len(history.items)))

    def user_augmented(self, users: Tensor | None, count: int) -> Tensor | None:
        """(b, d) augmented user vectors (index 0 = unseen user), or None without DAT."""
        if self.augmented is None:
            return None
        rows = users + 1 if users is not None else torch.zeros(count, dtype=torch.long)
        return self.augmented.users(rows.to(self.augmented.users.weight.device))

    def user_extra(self, users: Tensor | None, count: int) -> Tensor | None:
        """(b, d) added to known users' vectors: DAT augmented vector and user features (None: nothing to add)."""
        parts = []
        augmented = self.user_augmented(users, count)
        if augmented is not None and self.user_augment is not None:
            parts.append(self.user_augment(augmented))
        if self.user_features is not None and users is not None:
            parts.append(self.user_features(users))
        return torch.stack(parts).sum(0) if parts else None

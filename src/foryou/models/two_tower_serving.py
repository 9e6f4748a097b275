"""`TwoTowerServing`: what the service and the ranking stage read from a fitted two-tower, apart from training.

`TwoTower` (models/two_tower.py) subclasses it and sets the fitted state declared here when it fits or loads;
this class turns that state into vectors whose inner products are the model's scores:
  retrieval_vectors()            (n_items, d + 1) catalog vectors whose inner product with a user vector is the
                                 model's score (the item bias, scaled by the temperature, is the last column)
  encode_items(items frame)      the same vectors for any items, from their fields (new ids: content only)
  user_vector(events, user_id)   (d + 1,) vector of a raw history, appended to a known user's stored one
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from foryou.config import FeaturesConfig, LossConfig, ModelConfig
from foryou.data import schema as S
from foryou.errors import UnknownIdError
from foryou.features import ItemFeatureEncoder, TextEncoder
from foryou.models.base import Recommender
from foryou.models.item_features import encode_item_inputs, text_encoder_for
from foryou.models.item_tower import UNKNOWN_ID, ItemContent
from foryou.models.sequences import Histories, concat_histories, lookup_history
from foryou.models.towers import TwoTowerModule


class TwoTowerServing(Recommender):
    """The serving surface of a two-tower: vectors of the catalog, of items given by their fields and of users
    given by their events. No training here: `TwoTower` fits (or loads) the state below."""

    model_config: ModelConfig
    loss_config: LossConfig
    features_config: FeaturesConfig
    module: TwoTowerModule | None
    item_encoder: ItemFeatureEncoder | None
    histories: Histories | None
    known: np.ndarray  # (n_items,) bool: items with training events
    type_index: dict[str, int]  # event type name -> history code (1..)
    type_weights: dict[str, float]  # event type name -> mean training weight
    _text_encoder: TextEncoder | None  # loaded on the first encode_items, then kept

    def retrieval_vectors(self) -> np.ndarray:
        """(n_items, d + 1): item vectors with temperature * bias as the last column (0 without a bias), so that
        `user_vector(...) @ retrieval_vectors().T` equals `score_users` for a known user."""
        self._check_fitted()
        assert self.module is not None
        with torch.no_grad():
            bias = self.module.bias()
        column = np.zeros(self.n_items, np.float32) if bias is None else self._bias_column(bias.float().cpu().numpy())
        return np.concatenate([self.item_embeddings(), column[:, None]], axis=1)

    def _bias_column(self, bias: np.ndarray) -> np.ndarray:
        # logits are q.v / temperature + bias; the same order as q.v + temperature * bias
        return (self.loss_config.temperature * bias).astype(np.float32)

    def encode_items(self, items: pd.DataFrame, content_only: bool = False) -> np.ndarray:
        """(len(items), d + 1) retrieval vectors of items given by their fields (an item_id column plus the
        catalog's feature fields; absent fields count as missing). A catalog id with training events keeps its
        id embedding (and bias), so its own fields give its stored vector; any other id, or every id with
        `content_only`, is encoded from content alone through the unknown id, as untrained catalog items are."""
        self._check_fitted()
        assert self.module is not None and self.item_encoder is not None
        rows = np.array([self._item_index.get(str(item), -1) for item in items[S.ITEM_ID]], dtype=np.int64)
        trained = (rows >= 0) & self.known[np.maximum(rows, 0)] & (not content_only)
        ids = np.where(trained, rows + 1, UNKNOWN_ID)
        if self._text_encoder is None:
            self._text_encoder = text_encoder_for(self.item_encoder, self.model_config, self.features_config)
        inputs = encode_item_inputs(self.item_encoder, items, self.model_config, self._text_encoder)
        device = next(self.module.parameters()).device
        with torch.no_grad():
            extra = self._item_extra(rows, trained, device)
            vectors = self.module.item_tower.encode(ItemContent.from_inputs(inputs, device),
                                                    torch.as_tensor(ids, device=device), extra)
            bias = self.module.bias()
        column = np.zeros(len(rows), np.float32)
        if bias is not None:
            column[trained] = self._bias_column(bias.float().cpu().numpy()[rows[trained]])
        return np.concatenate([vectors.float().cpu().numpy(), column[:, None]], axis=1)

    def _item_extra(self, rows: np.ndarray, trained: np.ndarray, device: torch.device) -> Tensor | None:
        """DAT augmented vectors of trained catalog rows (zero for the others), or None without DAT."""
        assert self.module is not None
        module = self.module
        if module.augmented is None or module.item_augment is None:
            return None
        extra = module.item_augment(module.augmented.items.weight[torch.as_tensor(np.maximum(rows, 0), device=device)])
        return extra * torch.as_tensor(trained, device=device).unsqueeze(1)

    def user_vector(self, events: Sequence[tuple[str, str, Any]], user_id: str | None = None) -> np.ndarray:
        """(d + 1,) query vector: the user tower over `user_id`'s stored history (when given) followed by
        `events` ((item_id, event_type, timestamp) tuples, merged in time order), with a trailing 1 that picks up
        the item bias column of `retrieval_vectors`. Unknown item ids raise UnknownIdError naming them."""
        self._check_fitted()
        assert self.histories is not None
        history = lookup_history(events, self._checked_items(events), self.type_index, self.type_weights)
        users = None
        if user_id is not None:
            user = int(self.user_indices([user_id])[0])
            history = concat_histories(self.histories.user(user), history)
            users = torch.as_tensor([user])
        vector = self._vectors(history, np.zeros(1, dtype=np.int64), users)[0]
        return np.append(vector, np.float32(1.0)).astype(np.float32)

    def _checked_items(self, events: Sequence[tuple[str, str, Any]]) -> dict[str, int]:
        missing = [event[0] for event in events if event[0] not in self._item_index]
        if missing:
            raise UnknownIdError(f"unknown item id(s) in history: {', '.join(repr(item) for item in missing[:10])}")
        return self._item_index

    def _vectors(self, histories: Histories, rows: np.ndarray, users: Tensor | None) -> np.ndarray:
        """(b, d) user vectors at each row's last event (the known users' batches of `user_vectors` too)."""
        assert self.module is not None
        device = next(self.module.parameters()).device
        history = histories.batch(rows, self.model_config.max_history).to(device)
        catalog = torch.as_tensor(self.item_embeddings(), device=device)
        with torch.no_grad():
            per_position = self.module.users(catalog, history, None if users is None else users.to(device))
            last = per_position[torch.arange(len(rows), device=device), history.last_positions()]
        return last.float().cpu().numpy()

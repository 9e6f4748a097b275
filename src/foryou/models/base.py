"""The one interface every recommender implements, in the spirit of implicit's RecommenderBase.

A subclass implements `_fit`, `score_users` (full-catalog scores) and `item_embeddings` (for similar items),
plus `_save_state` / `_load_state`. The base class owns ids, the seen-items matrix, filters, tie-breaking,
top-k, similar items and persistence, so every model behaves the same at the edges.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from typing_extensions import Self

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.errors import NotFittedError, UnknownIdError
from foryou.models.ranking import sparse_top_k, tie_break_order, top_k, unit_rows
from foryou.models.sparse_rows import stored_rows

Filters = Mapping[str, str | Sequence[str]]


class Recommender(ABC):
    """fit(dataset) -> recommend(user_ids, k) / similar_items(item_ids, k) -> save(dir) / load(dir)."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.item_ids: np.ndarray | None = None
        self.user_ids: np.ndarray | None = None
        self.seen: sp.csr_matrix | None = None
        self.item_attributes: pd.DataFrame = pd.DataFrame()
        self._item_index: dict[str, int] = {}
        self._user_index: dict[str, int] = {}
        self._tie_order = np.zeros(0, dtype=np.int64)

    # ---- what a model implements -------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, dataset: Dataset) -> None:
        """Learn from all interactions of `dataset` (the caller restricts it to the training splits)."""

    @abstractmethod
    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores (len(user_idx), n_items) float32 over the whole catalog; higher is better. A new array, which the
        caller may change (ranking excludes items in place; a read-only one, e.g. a broadcast row, is copied)."""

    @abstractmethod
    def item_embeddings(self) -> np.ndarray:
        """(n_items, d) float32 vectors whose cosine similarity defines `similar_items`."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments, saved so that `load` rebuilds the same model."""
        return {}

    def _save_state(self, directory: Path) -> None:
        """Write the learned state into `directory`."""

    def _load_state(self, directory: Path) -> None:
        """Read back what `_save_state` wrote."""

    # ---- shared behaviour ----------------------------------------------------------------------------------
    def fit(self, dataset: Dataset) -> Self:
        self._remember(dataset)
        self._fit(dataset)
        return self

    def _remember(self, dataset: Dataset) -> None:
        self.item_ids = dataset.item_ids
        self.user_ids = dataset.user_ids
        self.seen = dataset.user_item_matrix(binary=True)
        categorical = [name for name in dataset.item_fields.categorical if name in dataset.items]
        self.item_attributes = dataset.items[categorical].reset_index(drop=True)
        self._build_lookups()

    def _build_lookups(self) -> None:
        assert self.item_ids is not None and self.user_ids is not None
        self._item_index = {item: index for index, item in enumerate(self.item_ids)}
        self._user_index = {user: index for index, user in enumerate(self.user_ids)}
        self._tie_order = tie_break_order(len(self.item_ids))

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.item_ids)  # type: ignore[arg-type]

    def _check_fitted(self) -> None:
        if self.item_ids is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    def user_indices(self, user_ids: Sequence[str]) -> np.ndarray:
        """Dense indices of external user ids; unknown ids raise UnknownIdError naming them."""
        self._check_fitted()
        return _lookup(self._user_index, user_ids, "user")

    def item_indices(self, item_ids: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        return _lookup(self._item_index, item_ids, "item")

    def recommend(
        self,
        user_ids: Sequence[str],
        k: int = 10,
        exclude_seen: bool = True,
        filters: Filters | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Top-k item ids and scores per user, best first.

        At most `k` items per user (fewer when the catalog, minus seen and filtered-out items, is smaller).
        `filters` keeps items whose categorical field matches one of the given values, e.g.
        {"category": ["shoes"]}; the key "item_id" restricts to the listed items.
        """
        user_idx = self.user_indices(user_ids)
        indices, scores = self.recommend_indices(user_idx, k, exclude_seen, self.filter_mask(filters))
        return _unpad(indices, scores, self.item_ids)

    def recommend_indices(
        self, user_idx: np.ndarray, k: int, exclude_seen: bool = True, item_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Index form of `recommend`: (b, min(k, n_items)) indices padded with -1, scores padded with -inf."""
        assert self.seen is not None
        scores = self.score_users(np.asarray(user_idx, dtype=np.int64))
        return self.rank(scores, k, self.seen[user_idx] if exclude_seen else None, item_mask, overwrite=True)

    def rank(self, scores: np.ndarray | sp.csr_matrix, k: int, seen: sp.csr_matrix | None = None,
             item_mask: np.ndarray | None = None, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The one exclude / filter / top-k path, for known users and raw histories alike: scores (b, n_items),
        `seen` (b, n_items) sparse rows of items to leave out, `item_mask` (n_items,) allowed items ->
        (b, min(k, n_items)) item indices padded with -1 and scores padded with -inf, best first. `overwrite`: a
        writable float32 `scores` is changed in place (excluded items set to -inf), not copied: in the 100k-item
        pipeline the copies took about as long as `top_k` itself. A sparse `scores` (CSR) holds a few scored items
        per row, the rest -inf (`sparse_top_k`)."""
        _check_k(k)
        if sp.issparse(scores):
            return sparse_top_k(scores, k, self._tie_order, seen, item_mask)
        scores = np.require(scores, np.float32, ["W"]) if overwrite else np.array(scores, dtype=np.float32)
        if seen is not None:
            scores[stored_rows(seen), seen.indices] = -np.inf
        if item_mask is not None:
            scores[:, ~item_mask] = -np.inf
        return top_k(scores, k, self._tie_order, overwrite=True)

    def similar_items(self, item_ids: Sequence[str], k: int = 10) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The k items most similar (cosine of `item_embeddings`) to each given item, the item itself left out."""
        _check_k(k)
        item_idx = self.item_indices(item_ids)
        unit = unit_rows(np.asarray(self.item_embeddings(), dtype=np.float32))
        scores = unit[item_idx] @ unit.T
        scores[np.arange(len(item_idx)), item_idx] = -np.inf
        indices, values = top_k(scores, k, self._tie_order, overwrite=True)
        return _unpad(indices, values, self.item_ids)

    def filter_mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean (n_items,) mask of items allowed by `filters`; unknown fields are a ValueError naming them."""
        if not filters:
            return None
        mask = np.ones(self.n_items, dtype=bool)
        for field, wanted in filters.items():
            values = {wanted} if isinstance(wanted, str) else set(wanted)
            if field == S.ITEM_ID:
                mask &= np.isin(self.item_ids, list(values))  # type: ignore[arg-type]
                continue
            if field not in self.item_attributes:
                known = ", ".join([S.ITEM_ID, *self.item_attributes.columns])
                raise ValueError(f"unknown filter field '{field}'; filterable fields: {known}")
            mask &= self.item_attributes[field].map(lambda value, wanted=values: _matches(value, wanted)).to_numpy(dtype=bool)
        return mask

    def save(self, directory: Path | str) -> None:
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cls = type(self)
        meta = {"class": f"{cls.__module__}.{cls.__qualname__}", "name": self.name, "params": self.params()}
        (directory / "recommender.json").write_text(json.dumps(meta, indent=2))
        pd.DataFrame({S.ITEM_ID: self.item_ids}).to_parquet(directory / "items.parquet", index=False)
        pd.DataFrame({S.USER_ID: self.user_ids}).to_parquet(directory / "users.parquet", index=False)
        self.item_attributes.to_parquet(directory / "item_attributes.parquet", index=False)
        sp.save_npz(directory / "seen.npz", self.seen)
        self._save_state(directory)

    @staticmethod
    def load(directory: Path | str) -> Recommender:
        """Rebuild whichever recommender was saved in `directory`."""
        directory = Path(directory)
        meta = json.loads((directory / "recommender.json").read_text())
        module_name, _, class_name = meta["class"].rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        model: Recommender = cls(**meta["params"])
        model.item_ids = pd.read_parquet(directory / "items.parquet")[S.ITEM_ID].to_numpy(dtype=object)
        model.user_ids = pd.read_parquet(directory / "users.parquet")[S.USER_ID].to_numpy(dtype=object)
        model.item_attributes = pd.read_parquet(directory / "item_attributes.parquet")
        model.seen = sp.load_npz(directory / "seen.npz").tocsr()
        model._build_lookups()
        model._load_state(directory)
        return model


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _lookup(index: dict[str, int], ids: Sequence[str], kind: str) -> np.ndarray:
    if isinstance(ids, str):
        raise TypeError(f"{kind} ids must be a list of ids, not a single string {ids!r}")
    missing = [value for value in ids if value not in index]
    if missing:
        shown = ", ".join(repr(value) for value in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise UnknownIdError(f"unknown {kind} id(s): {shown}{more}")
    return np.fromiter((index[value] for value in ids), dtype=np.int64, count=len(ids))


def _unpad(indices: np.ndarray, scores: np.ndarray, ids: np.ndarray | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    assert ids is not None
    keep = [row >= 0 for row in indices]
    return [ids[row[mask]] for row, mask in zip(indices, keep)], [s[mask] for s, mask in zip(scores, keep)]


def _matches(value: Any, wanted: set[str]) -> bool:
    if isinstance(value, (list, tuple, np.ndarray)):
        return any(str(part) in wanted for part in value)
    return value is not None and str(value) in wanted

"""A prepared dataset: canonical tables with dense indices, a split column and a manifest, stored as Parquet.

Layout of a prepared directory:
  interactions.parquet  user_idx, item_idx, timestamp, event_type, value, weight, split, cold_user, cold_item,
                        source_order; sorted by (user_idx, timestamp, source_order)
  items.parquet         one row per indexed item, in item_idx order: item_idx, item_id + catalog fields
  users.parquet         one row per indexed user, in user_idx order: user_idx, user_id + feature fields
  manifest.json         row counts, field roles, config, input hashes (see `Manifest`)
  quarantine.csv        malformed rows set aside, with file, row, reason and the raw values
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from foryou.data import schema as S
from foryou.data.schema import FieldRoles
from foryou.errors import DataFileError

MANIFEST_VERSION = 1


@dataclass
class Manifest:
    """Everything needed to reproduce and check a prepared dataset."""

    source: str
    counts: dict[str, int]
    item_fields: dict[str, list[str]]
    user_fields: dict[str, list[str]]
    config: dict[str, Any]
    input_hashes: dict[str, str]
    steps: list[dict[str, Any]] = field(default_factory=list)
    version: int = MANIFEST_VERSION


@dataclass
class Dataset:
    """Interactions, items and users with dense indices; models and evaluation read only this.

    `evaluated_users`: the sorted user indices whose valid / test events are scored (None: every user). A large
    log is evaluated on a seeded uniform sample (`with_evaluation_sample`): ranking the whole catalog for every
    user costs users x items, and 10,000+ users already give intervals of about a hundredth. Training reads
    every event either way."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    manifest: Manifest
    evaluated_users: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items[S.ITEM_ID].to_numpy(dtype=object)

    @property
    def user_ids(self) -> np.ndarray:
        return self.users[S.USER_ID].to_numpy(dtype=object)

    @property
    def item_fields(self) -> FieldRoles:
        return FieldRoles.from_dict(self.manifest.item_fields)

    @property
    def user_fields(self) -> FieldRoles:
        return FieldRoles.from_dict(self.manifest.user_fields)

    def events(self, *splits: str) -> pd.DataFrame:
        """The interactions of the given splits (all when none given), in (user, time, source order) order."""
        if not splits:
            return self.interactions
        return self.interactions[self.interactions[S.SPLIT].isin(splits)]

    def restricted_to(self, *splits: str) -> Dataset:
        """Same ids and catalog, only the interactions of `splits`: what a model is fitted on."""
        return Dataset(self.events(*splits).reset_index(drop=True), self.items, self.users, self.manifest,
                       self.evaluated_users)

    def evaluation_events(self, split: str) -> pd.DataFrame:
        """The events of `split` that evaluation scores: those of the evaluated users."""
        events = self.events(split)
        if self.evaluated_users is None:
            return events
        return events[np.isin(events[S.USER_IDX].to_numpy(), self.evaluated_users)]

    def with_evaluation_sample(self, max_users: int | None, seed: int = 0) -> Dataset:
        """This dataset evaluated on at most `max_users` of the users with a valid or test event, drawn uniformly
        with `seed` (None, or no more users than that: all of them). The same users in valid and test, so every
        model of a run is compared on the same people."""
        scored = np.unique(self.events(*S.SPLITS[1:])[S.USER_IDX].to_numpy(np.int64))
        if max_users is None or len(scored) <= max_users:
            return Dataset(self.interactions, self.items, self.users, self.manifest)
        chosen = np.sort(np.random.default_rng(seed).choice(scored, size=max_users, replace=False))
        return Dataset(self.interactions, self.items, self.users, self.manifest, chosen)

    def user_item_matrix(self, *splits: str, binary: bool = True) -> sp.csr_matrix:
        """(n_users, n_items) CSR of the given splits: 1 per seen pair, or summed weights when binary=False."""
        events = self.events(*splits)
        values = np.ones(len(events), np.float32) if binary else events[S.WEIGHT].to_numpy(np.float32)
        matrix = sp.csr_matrix(
            (values, (events[S.USER_IDX].to_numpy(), events[S.ITEM_IDX].to_numpy())),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.interactions.to_parquet(directory / "interactions.parquet", index=False)
        self.items.to_parquet(directory / "items.parquet", index=False)
        self.users.to_parquet(directory / "users.parquet", index=False)
        (directory / "manifest.json").write_text(json.dumps(asdict(self.manifest), indent=2, default=str))

    @classmethod
    def load(cls, directory: Path) -> Dataset:
        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise DataFileError(f"{directory} is not a prepared dataset (no manifest.json); run `foryou prepare`")
        manifest = Manifest(**json.loads(manifest_path.read_text()))
        try:
            tables = {
                name: pd.read_parquet(directory / f"{name}.parquet") for name in ("interactions", "items", "users")
            }
        except (OSError, ValueError) as exc:
            raise DataFileError(f"cannot read prepared dataset in {directory}: {exc}") from exc
        return cls(tables["interactions"], tables["items"], tables["users"], manifest)

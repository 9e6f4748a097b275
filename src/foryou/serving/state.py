"""One loaded bundle made servable: the catalog, the two indexes and the live item changes applied to them.

A `ServingState` is built once per bundle and swapped whole on reload, so a request keeps the state it started
with. Item changes (PUT / DELETE, from this process or, via the store, from another worker or replica) are
applied under one lock; searches run concurrently (the indexes lock themselves).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foryou.config import IndexConfig
from foryou.data import schema as S
from foryou.index import VectorIndex, build_index
from foryou.models.ranking import unit_rows
from foryou.models.sequences import SECONDS_PER_DAY
from foryou.serving.bundle import Bundle, load_bundle
from foryou.serving.catalog import Catalog, FieldRoles
from foryou.serving.store import StoredEvent, StoredItem

logger = logging.getLogger(__name__)

USER_CACHE_SIZE = 100_000  # trained users whose history and query vector stay in memory


@dataclass(frozen=True)
class Event:
    """One interaction of a user's history, as the service sees it."""

    item_id: str
    event_type: str
    timestamp: datetime


class ServingState:
    """A bundle with its catalog and indexes, kept current with upserted and deleted items."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.model = bundle.model
        self.roles = FieldRoles.from_item_fields(bundle.meta.get("item_fields", {}))
        self.catalog = Catalog(bundle.items, self.roles)
        self.index = bundle.index
        self.content_index: VectorIndex | None = None
        if bundle.content is not None:  # exact: built in a blink at load, and content queries are rarer
            self.content_index = build_index(bundle.content, np.arange(len(bundle.content)), IndexConfig(kind="exact"))
        if bundle.cooccurrence is not None and not bundle.cooccurrence.keep_pair_counts():  # a request's fast path
            logger.info("co-occurrence: the item pair counts would pass their memory budget: read per request")
        self.item_sequence = 0  # newest store change applied
        self._lock = threading.Lock()
        self._type_names = self.model.type_names()
        configured = bundle.meta.get("config", {}).get("events", {}).get("weights", {})
        self._event_types = sorted({*configured, *self._type_names})
        # per-instance caches (not lru_cache on the methods, which would keep every reloaded bundle alive)
        self.trained_history = functools.lru_cache(maxsize=USER_CACHE_SIZE)(self._trained_history)
        self.trained_user_vector = functools.lru_cache(maxsize=USER_CACHE_SIZE)(self._trained_user_vector)

    @classmethod
    def load(cls, directory: Path) -> ServingState:
        return cls(load_bundle(directory))

    @property
    def model_version(self) -> str:
        return self.bundle.model_version

    @property
    def event_types(self) -> list[str]:
        """The event types requests and writes may name: those the bundle's config weighs and those the model
        was trained with."""
        return self._event_types

    # ---- items ------------------------------------------------------------------------------------------------
    def apply_items(self, items: Sequence[StoredItem], sequence: int) -> None:
        """Apply item states read from the store (upserts and tombstones), in order, up to `sequence`."""
        with self._lock:
            upserts = [item for item in items if not item.deleted]
            if upserts:
                self._upsert(upserts)
            for item in items:
                if item.deleted:
                    self._delete(item.item_id)
            self.item_sequence = max(self.item_sequence, sequence)

    def _upsert(self, items: Sequence[StoredItem]) -> None:
        """Catalog first; then encode and index only the items whose fields changed (availability alone does
        not touch the item tower)."""
        changed = [item for item in items if self._fields_changed(item)]
        for item in items:
            self.catalog.set_item(item.item_id, item.fields, item.available)
        if changed:
            self._encode(changed)

    def _fields_changed(self, item: StoredItem) -> bool:
        label = self.catalog.label(item.item_id)
        if label is None or not self.index.contains(label):
            return True
        current = self.catalog.fields_of(label)
        return any(current.get(name) != item.fields.get(name) for name in self.roles.accepted())

    def _encode(self, items: Sequence[StoredItem]) -> None:
        frame = pd.DataFrame([{S.ITEM_ID: item.item_id, **item.fields} for item in items])
        vectors = self.model.encode_items(frame)
        labels = np.array([self.catalog.labels[item.item_id] for item in items], dtype=np.int64)
        self.index.upsert(labels, vectors)
        if self.content_index is not None:
            self.content_index.upsert(labels, unit_rows(self.model.encode_items(frame, content_only=True)[:, :-1]))

    def _delete(self, item_id: str) -> None:
        label = self.catalog.withdraw(item_id)
        if label is not None:
            self.index.remove(np.array([label]))
            if self.content_index is not None:
                self.content_index.remove(np.array([label]))

    def item_vectors(self, labels: np.ndarray) -> np.ndarray:
        """(n, d) unit two-tower item vectors (bias column left out) of live labels, for explanations."""
        return unit_rows(self.index.vectors(labels)[:, :-1])

    # ---- users ------------------------------------------------------------------------------------------------
    def user_index(self, user_id: str | None) -> int | None:
        """The model's index of a user seen at training, else None."""
        if user_id is None:
            return None
        return self.model._user_index.get(user_id)

    def trained_labels(self, user: int) -> np.ndarray:
        """Sorted catalog labels of the items the user had in training (the model's seen row)."""
        assert self.model.seen is not None
        seen = self.model.seen
        return seen.indices[seen.indptr[user]:seen.indptr[user + 1]].astype(np.int64)

    def _trained_history(self, user: int) -> list[Event]:
        """The user's events the model was trained on (train + valid), oldest first."""
        assert self.model.histories is not None and self.model.item_ids is not None
        history = self.model.histories.user(user)
        item_ids = self.model.item_ids
        return [Event(str(item_ids[item]), self._type_name(int(code)),
                      datetime.fromtimestamp(float(day) * SECONDS_PER_DAY, timezone.utc))
                for item, code, day in zip(history.items, history.event_types, history.days)]

    def _trained_user_vector(self, user: int) -> np.ndarray:
        """The two-tower query of a trained user from the training history alone (fixed for this bundle)."""
        assert self.model.user_ids is not None
        vector = self.model.user_vector([], str(self.model.user_ids[user]))
        vector.setflags(write=False)
        return vector

    def _type_name(self, code: int) -> str:
        return self._type_names[code - 1] if 1 <= code <= len(self._type_names) else "other"


def stored_events_as_history(events: Sequence[StoredEvent]) -> list[Event]:
    return [Event(event.item_id, event.event_type, event.timestamp) for event in events]


def as_utc(moment: datetime | None) -> datetime:
    """A timestamp as aware UTC; None means now."""
    if moment is None:
        return datetime.now(timezone.utc)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def model_events(events: Sequence[Event]) -> list[tuple[str, str, Any]]:
    """(item_id, event_type, timestamp) tuples, the form the model's user tower reads."""
    return [(event.item_id, event.event_type, event.timestamp) for event in events]

"""The service's operations behind the routes: load and hot-swap the bundle, read and write the store.

One `Service` per process. The current `Recommender` (over one `ServingState`) is replaced whole on reload, so
a request in flight finishes on the state it started with. Item changes reach every worker and replica
through the store: each process polls it and applies what changed, its own writes included.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any

import numpy as np

from foryou.config import ServingConfig
from foryou.errors import ForyouError, UnknownIdError
from foryou.serving.catalog import Filters
from foryou.serving.recommender import POPULAR, Query, Recommender, Result, UserContext
from foryou.serving.state import Event, ServingState, as_utc, stored_events_as_history
from foryou.serving.store import Store, StoredEvent, StoredItem

logger = logging.getLogger(__name__)

STORE_POLL_SECONDS = 1.0  # how soon other workers' item changes and reloads are picked up


class NotReadyError(ForyouError):
    """The bundle is still loading."""


class BadRequestError(ForyouError):
    """A request is well-formed but asks for something this service cannot do; the message names the field."""


@dataclass
class ItemWrite:
    item_id: str
    created: bool
    item: dict[str, Any] | None


class Service:
    """Bundle + store + config: what every route calls."""

    def __init__(self, bundle_dir: Path, config: ServingConfig, store: Store) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.config = config
        self.store = store
        self._current: Recommender | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._applied_reload = 0  # id of the newest store-recorded reload this process serves

    # ---- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the bundle, apply the store's items, warm up, then poll the store for item changes and reloads.
        Reloads recorded before this start are history: a process serves the bundle it was started with."""
        latest = self.store.latest_reload()
        self._applied_reload = latest[0] if latest else 0
        self._current = self._prepare(self.bundle_dir)
        self._poller = threading.Thread(target=self._poll_store, name="foryou-store-sync", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.store.close()

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def recommender(self) -> Recommender:
        if self._current is None:
            raise NotReadyError("the bundle is still loading; retry shortly (GET /readyz says when it is ready)")
        return self._current

    def reload(self, bundle_dir: Path | None) -> tuple[str, str]:
        """Swap to a new bundle (or the same folder again); a broken one raises and the old one keeps serving.
        The reload is recorded in the store, so every other worker and replica sharing it follows."""
        with self._reload_lock:
            previous = self.recommender.state.model_version
            directory = (Path(bundle_dir) if bundle_dir else self.bundle_dir).resolve()
            self._swap(directory)
            version = self.recommender.state.model_version
            self._applied_reload = self.store.record_reload(str(directory), version)
            return version, previous

    def follow_reloads(self) -> bool:
        """Load the bundle of a reload recorded by another process since the last one applied here; True if
        one was found (a broken bundle is logged and skipped, the current one keeps serving)."""
        latest = self.store.latest_reload()
        if latest is None or latest[0] <= self._applied_reload:
            return False
        with self._reload_lock:
            reload_id, bundle, _ = latest
            if reload_id <= self._applied_reload:  # this process made it meanwhile
                return False
            self._applied_reload = reload_id
            try:
                self._swap(Path(bundle))
            except ForyouError as error:
                logger.error("cannot follow the reload to %s: %s; still serving %s", bundle, error,
                             self.recommender.state.model_version)
        return True

    def _swap(self, directory: Path) -> None:
        previous = self.recommender.state.model_version
        self._current = self._prepare(directory)
        self.bundle_dir = directory
        logger.info("serving bundle %s: %s -> %s", directory, previous, self._current.state.model_version)

    def _prepare(self, directory: Path) -> Recommender:
        state = ServingState.load(directory)
        items, sequence = self.store.item_changes_since(0)
        state.apply_items(items, sequence)
        recommender = Recommender(state)
        warm = Query(None, [], 10, POPULAR, Filters())
        recommender.recommend(warm, recommender.context(None, [], []))  # first calls pay for lazy set-up
        if state.model.n_items:
            recommender.user_vector(recommender.context(None, [Event(str(state.model.item_ids[0]), "view",  # type: ignore[index]
                                                                      as_utc(None))], []))
        return recommender

    def _poll_store(self) -> None:
        while not self._stop.wait(STORE_POLL_SECONDS):
            try:
                self.follow_reloads()
                self.sync_items()
            except Exception:  # a store outage must not kill the sync thread; it retries next second
                logger.exception("sync from the store failed")

    def sync_items(self) -> int:
        """Apply item changes stored since the last sync; returns how many."""
        state = self.recommender.state
        items, sequence = self.store.item_changes_since(state.item_sequence)
        if items:
            state.apply_items(items, sequence)
        return len(items)

    # ---- reads ------------------------------------------------------------------------------------------------
    def strategy(self, asked: str | None) -> str:
        available = self.recommender.state.bundle.strategies
        name = asked or self.config.default_strategy or self.recommender.state.bundle.default_strategy
        if name not in available:
            raise BadRequestError(f"strategy: unknown strategy {name!r}; available: {', '.join(available)}")
        return name

    def check_k(self, k: int) -> None:
        if k > self.config.max_k:
            raise BadRequestError(f"k: {k} is above this server's maximum of {self.config.max_k} (serving.max_k)")

    def context(self, user_id: str | None, interactions: list[Event], warnings: list[str]) -> UserContext:
        """The user's trained history + stored live events + the request's events."""
        if len(interactions) > self.config.max_interactions:
            raise BadRequestError(f"interactions: {len(interactions)} events, at most "
                                  f"{self.config.max_interactions} per request (serving.max_interactions)")
        stored = self.store.user_events(user_id, limit=self.config.max_interactions) if user_id else []
        return self.recommender.context(user_id, [*stored_events_as_history(stored), *interactions], warnings)

    def recommend(self, query: Query) -> tuple[Result, UserContext]:
        self.check_k(query.k)
        recommender = self.recommender
        warnings: list[str] = []
        context = self.context(query.user_id, query.interactions, warnings)
        result = recommender.recommend(query, context)
        result.warnings = warnings + result.warnings
        return result, context

    def history(self, user_id: str) -> tuple[bool, list[tuple[Event, str]]]:
        """(known to the model, events oldest first with their source 'training' or 'live')."""
        state = self.recommender.state
        user = state.user_index(user_id)
        trained = state.trained_history(user) if user is not None else []
        live = stored_events_as_history(self.store.user_events(user_id, limit=self.config.max_interactions))
        if user is None and not live:
            raise UnknownIdError(f"unknown user id: {user_id!r} (no training history and no stored events)")
        events = [(event, "training") for event in trained] + [(event, "live") for event in live]
        return user is not None, sorted(events, key=lambda pair: pair[0].timestamp)

    def encode(self, user_id: str | None, interactions: list[Event]) -> tuple[np.ndarray, list[str]]:
        warnings: list[str] = []
        context = self.context(user_id, interactions, warnings)
        vector = self.recommender.user_vector(context)
        if vector is None:
            raise BadRequestError("interactions: no event on an item the model knows, and no known user_id: "
                                  "there is nothing to encode")
        return vector, warnings

    def retrieve(self, vector: list[float], k: int, filters: Filters, exclude: list[str]) -> list[dict[str, Any]]:
        self.check_k(k)
        recommender = self.recommender
        width = recommender.state.index.dim
        if len(vector) != width:
            raise BadRequestError(f"vector: {len(vector)} numbers, this model's vectors have {width}")
        query = np.asarray(vector, np.float64)
        if np.abs(query).max() > np.finfo(np.float32).max:
            raise BadRequestError("vector: numbers beyond the float32 range (about 3.4e38)")
        catalog = recommender.state.catalog
        labels = np.array([label for item in exclude if (label := catalog.label(item)) is not None], np.int64)
        found, scores = recommender.retrieve(query.astype(np.float32), k, filters, labels)
        return ranked(recommender, found, scores)

    def similar(self, item_id: str, k: int, filters: Filters) -> list[dict[str, Any]]:
        self.check_k(k)
        recommender = self.recommender
        found, scores = recommender.similar(item_id, k, filters)
        return ranked(recommender, found, scores)

    # ---- writes -----------------------------------------------------------------------------------------------
    def add_events(self, events: list[StoredEvent]) -> tuple[int, list[str]]:
        """Store durably (committed before returning); returns (newly stored, warnings on unknown items)."""
        stored = self.store.add_events(events)
        catalog = self.recommender.state.catalog
        unknown = sorted({event.item_id for event in events if catalog.label(event.item_id) is None})
        warnings = []
        if unknown:
            warnings.append(f"stored, but {len(unknown)} item id(s) are not in the catalog and do not affect "
                            f"recommendations until added: {', '.join(repr(item) for item in unknown[:10])}")
        return stored, warnings

    def upsert_item(self, item_id: str, fields: dict[str, Any], available: bool) -> ItemWrite:
        """Check the fields against the catalog's, store the item, then encode and index it here at once."""
        state = self.recommender.state
        check_item_fields(fields, state.roles.text, state.roles.categorical, state.roles.numeric)
        created = state.catalog.label(item_id) is None
        sequence = self.store.upsert_item(StoredItem(item_id, fields, available))
        state.apply_items([StoredItem(item_id, fields, available)], 0)
        logger.debug("item %s stored as change %d", item_id, sequence)
        label = state.catalog.label(item_id)
        return ItemWrite(item_id, created, None if label is None else state.catalog.describe(label))

    def delete_item(self, item_id: str) -> None:
        state = self.recommender.state
        if state.catalog.label(item_id) is None:
            raise UnknownIdError(f"unknown item id: {item_id!r}")
        self.store.delete_item(item_id)
        state.apply_items([StoredItem(item_id, {}, available=False, deleted=True)], 0)


def ranked(recommender: Recommender, labels: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    catalog = recommender.state.catalog
    return [{**catalog.describe(label), "rank": rank, "score": float(score)}
            for rank, (label, score) in enumerate(zip(labels.tolist(), scores.tolist()), 1)]


def check_item_fields(fields: dict[str, Any], text: list[str], categorical: list[str], numeric: list[str]) -> None:
    """Field names the catalog knows, with values of their role's type; else BadRequestError naming the field."""
    for name, value in fields.items():
        if name not in (*text, *categorical, *numeric):
            known = ", ".join([*text, *categorical, *numeric]) or "none"
            raise BadRequestError(f"fields.{name}: not a field of this catalog; accepted fields: {known}")
        if value is None:
            continue
        if name in text and not isinstance(value, str):
            raise BadRequestError(f"fields.{name}: a text field takes a string")
        if name in categorical and not isinstance(value, (str, list)):
            raise BadRequestError(f"fields.{name}: a categorical field takes a string or a list of strings")
        if name in numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BadRequestError(f"fields.{name}: a numeric field takes a number")


def stored_event(user_id: str, item_id: str, event_type: str, timestamp: Any, event_id: str | None) -> StoredEvent:
    return StoredEvent(user_id, item_id, event_type, as_utc(timestamp).astimezone(timezone.utc), event_id)

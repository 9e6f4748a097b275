"""The service's operations behind the routes: load and hot-swap the bundle, read and write the store.

One `Service` per process. The current `Recommender` (over one `ServingState`) is replaced whole on reload; every
request reads it once and answers from that snapshot, so a request in flight finishes on the bundle it started
with and never mixes two. Item changes reach every worker and replica through the store: each process polls it
and applies what changed, its own writes included. Store reads of the async routes run on a worker thread
(`anyio.to_thread`), so a slow database never stalls the event loop.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from anyio import to_thread

from foryou.config import ServingConfig
from foryou.errors import ForyouError, UnknownIdError
from foryou.serving.bundle import MANIFEST
from foryou.serving.catalog import Filters
from foryou.serving.changes import ChangeSignal
from foryou.serving.checks import BadRequestError, check_item_fields
from foryou.serving.recommender import POPULAR, Query, Recommender, Result, UserContext
from foryou.serving.state import Event, ServingState, as_utc, stored_events_as_history
from foryou.serving.store import Store, StoredEvent, StoredItem

logger = logging.getLogger(__name__)

MAX_VECTOR_VALUE = 1e6  # per number of a /v1/retrieve query: its scores stay finite in float32
STORE_POLL_SECONDS = 1.0  # how soon other workers' item changes and reloads are picked up


class NotReadyError(ForyouError):
    """The bundle is still loading."""


class OutsideBundleRootError(ForyouError):
    """A reload names a folder outside the bundle root (403)."""


@dataclass
class ItemWrite:
    item_id: str
    created: bool
    item: dict[str, Any] | None


class Service:
    """Bundle + store + config: what every route calls."""

    def __init__(self, bundle_dir: Path, config: ServingConfig, store: Store, changes: ChangeSignal) -> None:
        """`changes` is shared by the server's workers: item writes raise it, reads catch up when behind it."""
        self.bundle_dir = Path(bundle_dir).resolve()
        self.changes = changes
        self.bundle_root = Path(config.bundle_root).resolve() if config.bundle_root else self.bundle_dir.parent
        self.config = config
        self.store = store
        self._current: Recommender | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._applied_reload = 0  # id of the newest store-recorded reload this process serves

    # ---- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the newest bundle recorded in the store (`foryou serve` records the one it starts with, so a
        worker restarted after a reload serves the reloaded bundle) or else `bundle_dir`; apply the store's
        items, warm up, then poll the store for item changes and reloads."""
        latest = self.store.latest_reload()
        directory = self.bundle_dir
        if latest is not None:
            self._applied_reload, directory = latest[0], Path(latest[1])
        try:
            recommender = self._load(directory)
        except ForyouError as error:
            if directory == self.bundle_dir:
                raise
            logger.error("cannot load the recorded bundle %s (%s); serving %s", directory, error, self.bundle_dir)
            directory = self.bundle_dir
            recommender = self._load(directory)
        self._current, self.bundle_dir = recommender, directory
        settle_memory()
        poller = threading.Thread(target=self._poll_store, name="foryou-store-sync", daemon=True)
        poller.start()
        self._poller = poller  # published once started: `stop` (from another thread) may join it at any moment

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.store.close()
        self.changes.close()

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def recommender(self) -> Recommender:
        """The current snapshot; read it once per request and pass it down."""
        if self._current is None:
            raise NotReadyError("the bundle is still loading; retry shortly (GET /readyz says when it is ready)")
        return self._current

    def reload(self, bundle: str | None) -> tuple[str, str]:
        """Swap to the bundle folder `bundle` (relative to the bundle root, or absolute inside it; None: the
        current one again); a broken one raises and the old one keeps serving. The reload is recorded in the
        store, so every other worker and replica sharing it follows."""
        directory = self._bundle_path(bundle) if bundle else self.bundle_dir
        with self._reload_lock:
            previous = self.recommender.state.model_version
            try:
                self._swap(directory)
            except (ForyouError, OSError) as error:
                shown = bundle or "the current bundle"
                reason = str(error).replace(str(directory), shown).replace(str(self.bundle_root), "<bundle root>")
                raise BadRequestError(f"bundle: {shown!r} cannot be loaded: {reason}") from None
            version = self.recommender.state.model_version
            self._applied_reload = self.store.record_reload(str(directory), version)
            return version, previous

    def _bundle_path(self, bundle: str) -> Path:
        """`bundle` resolved inside the bundle root; a path that escapes it is refused without naming host paths."""
        if "\x00" in bundle:
            raise BadRequestError("bundle: a path cannot contain a NUL character")
        try:
            directory = (self.bundle_root / bundle).resolve()
            inside, found = directory.is_relative_to(self.bundle_root), (directory / MANIFEST).is_file()
        except (OSError, RuntimeError, ValueError):
            raise BadRequestError(f"bundle: {bundle!r} is not a usable path") from None
        if not inside:
            raise OutsideBundleRootError(f"bundle: {bundle!r} is outside the bundle root this server may load "
                                         "from (serving.bundle_root, by default the folder holding the served "
                                         "bundle)")
        if not found:
            raise UnknownIdError(f"bundle: no bundle (a folder with {MANIFEST}) at {bundle!r} in the bundle root")
        return directory

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
            except (ForyouError, OSError) as error:
                logger.error("cannot follow the reload to %s: %s; still serving %s", bundle, error,
                             self.recommender.state.model_version)
        return True

    def _swap(self, directory: Path) -> None:
        previous = self.recommender.state.model_version
        recommender = self._load(directory)
        self._current = recommender
        self.bundle_dir = directory
        settle_memory()
        logger.info("serving bundle %s: %s -> %s", directory, previous, recommender.state.model_version)

    def _load(self, directory: Path) -> Recommender:
        """The bundle at `directory`, ready to serve; `serving.default_strategy` must be one it serves (checked
        at start and at every reload, before the bundle is served)."""
        recommender = self._prepare(directory)
        name = self.config.default_strategy
        if name is not None and name not in recommender.state.bundle.strategies:
            raise BadRequestError(f"serving.default_strategy {name!r} is not served by bundle "
                                  f"{recommender.state.model_version}; it serves "
                                  f"{', '.join(recommender.state.bundle.strategies)}")
        return recommender

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

    async def current_items(self, recommender: Recommender) -> None:
        """Catch up with item changes another worker of this server acknowledged (the shared counter is ahead
        of this state), so every worker answers with every acknowledged write at once."""
        if self.changes.latest() > recommender.state.item_sequence:
            await to_thread.run_sync(self.sync_items)

    # ---- reads ------------------------------------------------------------------------------------------------
    def strategy(self, asked: str | None, recommender: Recommender | None = None) -> str:
        """The strategy a request gets from `recommender` (default: the current one): the asked one, else the
        configured or the bundle's default; an unknown name is a 422 listing those served."""
        state = (recommender or self.recommender).state
        available = state.bundle.strategies
        name = asked or self.config.default_strategy or state.bundle.default_strategy
        if name not in available:
            raise BadRequestError(f"strategy: unknown strategy {name!r}; available: {', '.join(available)}")
        return name

    def check_k(self, k: int) -> None:
        if k > self.config.max_k:
            raise BadRequestError(f"k: {k} is above this server's maximum of {self.config.max_k} (serving.max_k)")

    def check_event_types(self, recommender: Recommender, event_types: list[str], field: str) -> None:
        """Event types must be ones the bundle's model was trained with; else a 422 naming the allowed ones."""
        allowed = recommender.state.event_types
        unknown = sorted(set(event_types) - set(allowed))
        if unknown:
            raise BadRequestError(f"{field}: unknown event type(s) {', '.join(repr(name) for name in unknown[:10])}; "
                                  f"this bundle knows {', '.join(allowed)}")

    async def stored_events(self, user_id: str | None) -> list[Event]:
        """The user's stored live events, read on a worker thread (never on the event loop)."""
        if not user_id:
            return []
        stored = await to_thread.run_sync(self.store.user_events, user_id, self.config.max_interactions)
        return stored_events_as_history(stored)

    def context(self, recommender: Recommender, user_id: str | None, stored: list[Event],
                interactions: list[Event], warnings: list[str]) -> UserContext:
        """The user's trained history + stored live events + the request's events, all from one snapshot."""
        if len(interactions) > self.config.max_interactions:
            raise BadRequestError(f"interactions: {len(interactions)} events, at most "
                                  f"{self.config.max_interactions} per request (serving.max_interactions)")
        self.check_event_types(recommender, [event.event_type for event in interactions], "interactions.event_type")
        return recommender.context(user_id, [*stored, *interactions], warnings)

    async def recommend(self, query: Query, asked_strategy: str | None) -> Result:
        """`query` (its strategy ignored) answered with `asked_strategy` or the default, by one bundle."""
        self.check_k(query.k)
        recommender = self.recommender
        query = replace(query, strategy=self.strategy(asked_strategy, recommender))
        await self.current_items(recommender)
        stored = await self.stored_events(query.user_id)
        warnings: list[str] = []
        context = self.context(recommender, query.user_id, stored, query.interactions, warnings)
        result = recommender.recommend(query, context)
        result.warnings = warnings + result.warnings
        return result

    async def history(self, user_id: str) -> tuple[bool, list[tuple[Event, str]]]:
        """(known to the model, events oldest first with their source 'training' or 'live')."""
        state = self.recommender.state
        live = await self.stored_events(user_id)
        user = state.user_index(user_id)
        trained = state.trained_history(user) if user is not None else []
        if user is None and not live:
            raise UnknownIdError(f"unknown user id: {user_id!r} (no training history and no stored events)")
        events = [(event, "training") for event in trained] + [(event, "live") for event in live]
        return user is not None, sorted(events, key=lambda pair: pair[0].timestamp)

    async def encode(self, user_id: str | None, interactions: list[Event]) -> tuple[np.ndarray, str, list[str]]:
        """(the user's query vector, the model version that made it, warnings)."""
        recommender = self.recommender
        await self.current_items(recommender)
        stored = await self.stored_events(user_id)
        warnings: list[str] = []
        context = self.context(recommender, user_id, stored, interactions, warnings)
        vector = recommender.user_vector(context)
        if vector is None:
            raise UnknownIdError("user_id, interactions: neither a user the model knows nor an event on an item it "
                                 "knows: there is nothing to encode")
        return vector, recommender.state.model_version, warnings

    async def retrieve(self, vector: list[float], k: int, filters: Filters,
                       exclude: list[str]) -> tuple[list[dict[str, Any]], str]:
        """(ranked items, model version) for a query vector."""
        self.check_k(k)
        recommender = self.recommender
        await self.current_items(recommender)
        width = recommender.state.index.dim
        if len(vector) != width:
            raise BadRequestError(f"vector: {len(vector)} numbers, this model's vectors have {width}")
        query = np.asarray(vector, np.float64)
        if np.abs(query).max() > MAX_VECTOR_VALUE:
            raise BadRequestError(f"vector: numbers beyond ±{MAX_VECTOR_VALUE:g} (encoded users are far smaller; "
                                  "larger ones would overflow the float32 scores)")
        catalog = recommender.state.catalog
        labels = np.array([label for item in exclude if (label := catalog.label(item)) is not None], np.int64)
        found, scores = recommender.retrieve(query.astype(np.float32), k, filters, labels)
        return ranked(recommender, found, scores), recommender.state.model_version

    async def similar(self, item_id: str, k: int, filters: Filters) -> tuple[list[dict[str, Any]], str]:
        """(ranked items like `item_id`, model version)."""
        self.check_k(k)
        recommender = self.recommender
        await self.current_items(recommender)
        found, scores = recommender.similar(item_id, k, filters)
        return ranked(recommender, found, scores), recommender.state.model_version

    # ---- writes -----------------------------------------------------------------------------------------------
    def add_events(self, events: list[StoredEvent]) -> tuple[int, list[str]]:
        """Store durably (committed before returning); returns (newly stored, warnings on unknown items).
        Event types the bundle does not know are refused (422) before anything is stored."""
        recommender = self.recommender
        self.check_event_types(recommender, [event.event_type for event in events], "events.event_type")
        stored = self.store.add_events(events)
        catalog = recommender.state.catalog
        unknown = sorted({event.item_id for event in events if catalog.label(event.item_id) is None})
        warnings = []
        if unknown:
            warnings.append(f"stored, but {len(unknown)} item id(s) are not in the catalog and do not affect "
                            f"recommendations until added: {', '.join(repr(item) for item in unknown[:10])}")
        return stored, warnings

    def upsert_item(self, item_id: str, fields: dict[str, Any], available: bool) -> ItemWrite:
        """Full replace: check the fields against the catalog's, store the item, then encode and index it here
        at once. Fields left out are cleared."""
        state = self.recommender.state
        check_item_fields(fields, state.roles)
        created = state.catalog.label(item_id) is None
        return self._write_item(state, StoredItem(item_id, fields, available), created)

    def patch_item(self, item_id: str, fields: dict[str, Any], available: bool | None) -> ItemWrite:
        """Partial update of a known item: the named fields (None clears one) and availability; the rest kept.
        The item is re-encoded only when a field that feeds the item tower changes."""
        state = self.recommender.state
        check_item_fields(fields, state.roles)
        label = state.catalog.label(item_id)
        if label is None:
            raise UnknownIdError(f"unknown item id: {item_id!r} (PUT /v1/items/{{item_id}} creates items)")
        current = state.catalog.fields_of(label)
        merged = {**current, **fields}
        item = StoredItem(item_id, merged, state.catalog.is_available(label) if available is None else available)
        return self._write_item(state, item, created=False)

    def _write_item(self, state: ServingState, item: StoredItem, created: bool) -> ItemWrite:
        sequence = self.store.upsert_item(item)
        state.apply_items([item], 0)
        self.changes.announce(sequence)
        logger.debug("item %s stored as change %d", item.item_id, sequence)
        label = state.catalog.label(item.item_id)
        return ItemWrite(item.item_id, created, None if label is None else state.catalog.describe(label))

    def delete_item(self, item_id: str) -> None:
        state = self.recommender.state
        if state.catalog.label(item_id) is None:
            raise UnknownIdError(f"unknown item id: {item_id!r}")
        sequence = self.store.delete_item(item_id)
        state.apply_items([StoredItem(item_id, {}, available=False, deleted=True)], 0)
        self.changes.announce(sequence)


def settle_memory() -> None:
    """Collect what a replaced bundle left (its reference cycles: torch modules, caches), then move everything
    alive, the bundle just loaded first of all, out of the cyclic garbage collector's walk: a full collection then
    visits only what requests made since, not the catalog and the model, and stops stalling the server."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def ranked(recommender: Recommender, labels: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    catalog = recommender.state.catalog
    return [{**catalog.describe(label), "rank": rank, "score": float(score)}
            for rank, (label, score) in enumerate(zip(labels.tolist(), scores.tolist()), 1)]

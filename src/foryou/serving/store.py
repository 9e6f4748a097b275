"""The service's durable store of live events and upserted items, shared by every worker and replica.

Embedded SQLite in WAL mode (one file beside the run; several uvicorn workers may write it) or PostgreSQL
(several replicas). Every write is one transaction committed before the call returns, so an acknowledged event
survives kill -9. Item writes take a sequence number from a one-row counter: its row lock serialises item
writers, so sequence order equals commit order and a poller of `item_changes_since` never skips a change that
committed late.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    make_url,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from foryou.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another worker's write lock before failing
_SCHEMA_LOCK_KEY = 0x666F72796F75  # PostgreSQL advisory lock held while creating the tables ("foryou")
_WRITE = "foryou_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)
_SINGLE_READ = "foryou_single_read"  # execution option: one SELECT, run in autocommit (SQLite: no BEGIN)
_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}

# SQLite only aliases rowid (autoincrement) for an INTEGER PRIMARY KEY, not BIGINT.
_AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")

_metadata = MetaData()
_events = Table(
    "events",
    _metadata,
    # insertion order: breaks ties between equal timestamps
    Column("position", _AutoIncrementId, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=True, unique=True),  # NULLs never conflict: events without an id
    Column("user_id", Text, nullable=False),
    Column("item_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("timestamp", DateTime(), nullable=False),  # naive UTC
    Index("ix_events_user_time", "user_id", "timestamp", "position"),
)
_items = Table(
    "items",
    _metadata,
    Column("item_id", Text, primary_key=True),
    Column("fields", JSON, nullable=False),
    Column("available", Boolean, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("updated_at", DateTime(), nullable=False),  # naive UTC
    Column("sequence", BigInteger, nullable=False, index=True),
)
_item_sequence = Table(
    "item_sequence",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

_reloads = Table(
    "reloads",
    _metadata,
    # every worker and replica sharing the store follows the newest one (ids grow in commit order per writer)
    Column("id", _AutoIncrementId, primary_key=True, autoincrement=True),
    Column("bundle", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("requested_at", DateTime(), nullable=False),  # naive UTC
)


# A user's events, newest first (the caller reverses them); built once, as the service runs it per request.
_USER_EVENTS = (select(_events).where(_events.c.user_id == bindparam("user_id"))
                .order_by(_events.c.timestamp.desc(), _events.c.position.desc()))


@dataclass(frozen=True)
class StoredEvent:
    """One live interaction; `event_id` is the client's idempotency key (None: always stored)."""

    user_id: str
    item_id: str
    event_type: str
    timestamp: datetime  # timezone-aware UTC (a naive value is read as UTC)
    event_id: str | None = None


@dataclass(frozen=True)
class StoredItem:
    """The latest state of one item; DELETE keeps a tombstone so a restart knows a bundle item was removed."""

    item_id: str
    fields: dict[str, Any]  # JSON-serialisable (title, category, price, ...)
    available: bool = True
    deleted: bool = False
    updated_at: datetime | None = None  # None: set to the time of the write


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file, absolute so that every worker opens the same file."""
    return f"sqlite:///{Path(path).resolve()}"


class Store:
    """Events and items in SQLite or PostgreSQL; safe under concurrent calls from several processes."""

    def __init__(self, url: str) -> None:
        """Connects and creates the tables if missing; raises ConfigError naming the URL when that fails."""
        shown = _hide_password(url)
        try:
            name = make_url(url).get_backend_name()
            if name not in _INSERTS:
                hint = "use sqlite:///PATH or postgresql+psycopg://..."
                raise ConfigError(f"unsupported database {shown}: {hint}")
            self._engine = create_engine(url, pool_pre_ping=True)  # a database restart fails no later request
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"invalid database URL {shown}: {exc}") from exc
        self._insert = _INSERTS[name]
        if name == "sqlite":
            _configure_sqlite(self._engine)
        try:
            with self._writing() as conn:
                if name == "postgresql":  # replicas starting together: one creates, the others then see it
                    conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
                _metadata.create_all(conn)
                conn.execute(self._insert(_item_sequence).values(id=1, value=0).on_conflict_do_nothing())
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise ConfigError(f"cannot open database {shown}: {_reason(exc)}") from exc

    def add_events(self, events: Sequence[StoredEvent]) -> int:
        """Stores the events in one committed transaction, skipping already stored event ids.

        Returns how many were newly stored (duplicates within the batch count once).
        """
        if not events:
            return 0
        rows = [
            {"event_id": e.event_id, "user_id": e.user_id, "item_id": e.item_id, "event_type": e.event_type,
             "timestamp": _to_naive_utc(e.timestamp)}
            for e in events
        ]
        stmt = self._insert(_events).on_conflict_do_nothing(index_elements=["event_id"])
        with self._writing() as conn:
            return len(conn.execute(stmt.returning(_events.c.position), rows).all())

    def user_events(self, user_id: str, limit: int | None = None) -> list[StoredEvent]:
        """The user's events, oldest first (by timestamp, then insertion order); the last `limit` if given."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        query = _USER_EVENTS if limit is None else _USER_EVENTS.limit(limit)
        with self._engine.connect() as conn:  # one statement: its own snapshot, no transaction needed
            rows = conn.execution_options(**{_SINGLE_READ: True}).execute(query, {"user_id": user_id}).all()
        return [
            StoredEvent(r.user_id, r.item_id, r.event_type, _as_utc(r.timestamp), r.event_id)
            for r in reversed(rows)
        ]

    def event_count(self) -> int:
        """The number of stored events."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_events)).scalar_one())

    def upsert_item(self, item: StoredItem) -> int:
        """Inserts or replaces the item; returns its new change sequence number."""
        return self._write_item(item, replace=("fields", "available", "deleted", "updated_at", "sequence"))

    def delete_item(self, item_id: str) -> int:
        """Leaves a tombstone (deleted, unavailable; fields kept) even for an item never upserted here.

        Returns the change sequence number.
        """
        tombstone = StoredItem(item_id, fields={}, available=False, deleted=True)
        return self._write_item(tombstone, replace=("available", "deleted", "updated_at", "sequence"))

    def item_changes_since(self, sequence: int) -> tuple[list[StoredItem], int]:
        """The latest state of every item changed after `sequence`, and the newest sequence number.

        `sequence=0` gives every item. Pass the returned number to the next call to get only later changes.
        """
        with self._engine.connect() as conn:
            # Sequence order is commit order, so every change up to `newest` is visible to the second query.
            counter = select(_item_sequence.c.value).where(_item_sequence.c.id == 1)
            newest = int(conn.execute(counter).scalar_one())
            query = (
                select(_items)
                .where(_items.c.sequence > sequence, _items.c.sequence <= newest)
                .order_by(_items.c.sequence)
            )
            rows = conn.execute(query).all()
        changed = [StoredItem(r.item_id, r.fields, r.available, r.deleted, _as_utc(r.updated_at)) for r in rows]
        return changed, newest

    def record_reload(self, bundle: str, model_version: str) -> int:
        """Records that the service now serves `bundle`; returns the reload's id (larger than every earlier one)."""
        row = {"bundle": bundle, "model_version": model_version,
               "requested_at": _to_naive_utc(datetime.now(timezone.utc))}
        with self._writing() as conn:
            return int(conn.execute(_reloads.insert().values(row).returning(_reloads.c.id)).scalar_one())

    def latest_reload(self) -> tuple[int, str, str] | None:
        """(id, bundle, model_version) of the newest recorded reload, or None before the first one."""
        query = select(_reloads.c.id, _reloads.c.bundle, _reloads.c.model_version).order_by(
            _reloads.c.id.desc()).limit(1)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row.id), str(row.bundle), str(row.model_version))

    def close(self) -> None:
        """Closes every pooled connection."""
        self._engine.dispose()

    def _write_item(self, item: StoredItem, replace: tuple[str, ...]) -> int:
        updated_at = item.updated_at or datetime.now(timezone.utc)
        with self._writing() as conn:
            # The counter row stays locked until commit: the next writer waits and takes the next number.
            bump = (
                _item_sequence.update()
                .where(_item_sequence.c.id == 1)
                .values(value=_item_sequence.c.value + 1)
                .returning(_item_sequence.c.value)
            )
            sequence = int(conn.execute(bump).scalar_one())
            row = {"item_id": item.item_id, "fields": item.fields, "available": item.available,
                   "deleted": item.deleted, "updated_at": _to_naive_utc(updated_at), "sequence": sequence}
            stmt = self._insert(_items).values(row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["item_id"], set_={name: stmt.excluded[name] for name in replace}))
        return sequence

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn


def _configure_sqlite(engine: Engine) -> None:
    """WAL + synchronous=FULL + busy_timeout on every connection; writers BEGIN IMMEDIATE.

    BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout) instead of failing with
    SQLITE_BUSY when a read transaction later tries to write while another worker holds the lock.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if not options.get(_SINGLE_READ):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE) else "BEGIN")


def _to_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _as_utc(stored: datetime) -> datetime:
    return stored.replace(tzinfo=timezone.utc)


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's own message, without SQLAlchemy's statement dump and background link."""
    original = getattr(exc, "orig", None)
    return str(original or exc).strip().splitlines()[0]

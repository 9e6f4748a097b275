"""The durable store, against SQLite and a real PostgreSQL server (see conftest.py): idempotency, order,
restarts, tombstones, change polling, Unicode, errors, concurrent writers and kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import foryou
from foryou.errors import ConfigError
from foryou.serving.store import Store, StoredEvent, StoredItem, sqlite_url

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
# Children import foryou from this checkout whether or not it is installed.
CHILD_ENV = {**os.environ, "PYTHONPATH": str(Path(foryou.__file__).parents[1])}


def event(user: str, item: str, minutes: int, event_id: str | None = None, kind: str = "view") -> StoredEvent:
    return StoredEvent(user, item, kind, T0 + timedelta(minutes=minutes), event_id)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


def test_events_come_back_in_chronological_order_per_user(store: Store) -> None:
    # Added out of order; i2 and i3 share a timestamp, so insertion order decides (i2 first).
    store.add_events([event("u1", "i4", 30), event("u1", "i2", 10), event("u2", "x", 0),
                      event("u1", "i3", 10)])
    paris = timezone(timedelta(hours=2))
    in_paris = StoredEvent("u1", "i1", "click", datetime(2024, 3, 1, 13, 5, tzinfo=paris))
    store.add_events([in_paris])  # 11:05 UTC

    got = store.user_events("u1")

    assert [e.item_id for e in got] == ["i1", "i2", "i3", "i4"]
    assert got[0] == StoredEvent("u1", "i1", "click", T0 - timedelta(minutes=55))
    assert all(e.timestamp.tzinfo == timezone.utc for e in got)
    assert store.user_events("nobody") == []
    assert store.event_count() == 5


def test_event_id_repeated_in_one_batch_is_stored_once(store: Store) -> None:
    batch = [event("u", "a", 0, "e1"), event("u", "a", 0, "e1"), event("u", "b", 1, "e2")]
    assert store.add_events(batch) == 2
    assert [e.event_id for e in store.user_events("u")] == ["e1", "e2"]


def test_event_id_seen_in_an_earlier_batch_is_skipped(store: Store) -> None:
    assert store.add_events([event("u", "a", 0, "e1"), event("u", "b", 1)]) == 2
    # e1 again (even with other content) is skipped; events without an id are never deduplicated.
    assert store.add_events([event("u", "z", 5, "e1"), event("u", "b", 1), event("u", "c", 2, "e3")]) == 2
    assert [e.item_id for e in store.user_events("u")] == ["a", "b", "b", "c"]
    assert store.add_events([]) == 0


CONCURRENT_WRITER = """
import random, sys
from datetime import datetime, timezone
from foryou.serving.store import Store, StoredEvent, StoredItem
url, worker = sys.argv[1], int(sys.argv[2])
store = Store(url)
ids = list(range(200))
random.Random(worker).shuffle(ids)
stored, sequences = 0, []
for start in range(0, 200, 10):
    batch = [StoredEvent("u", f"i{i % 7}", "view", datetime(2024, 1, 1, tzinfo=timezone.utc), f"e{i}")
             for i in ids[start:start + 10]]
    stored += store.add_events(batch)
    sequences.append(store.upsert_item(StoredItem(f"w{worker}", {"batch": start})))
print(stored, *sequences)
"""


def test_concurrent_processes_store_each_event_id_once(store_url: str) -> None:
    # Four processes open the same fresh store at once and add the same 200 ids in different orders.
    writers = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, store_url, str(w)], env=CHILD_ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    outputs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in outputs]
    reports = [[int(n) for n in out.split()] for out, _ in outputs]

    store = Store(store_url)
    assert sum(r[0] for r in reports) == store.event_count() == 200
    sequences = [s for r in reports for s in r[1:]]
    assert sorted(sequences) == list(range(1, 81))  # 4 workers x 20 upserts, every number handed out once
    items, newest = store.item_changes_since(0)
    assert newest == 80 and sorted(i.item_id for i in items) == ["w0", "w1", "w2", "w3"]
    store.close()


def test_limit_returns_the_last_n_in_order(store: Store) -> None:
    store.add_events([event("u", f"i{m}", m) for m in (5, 1, 4, 2, 3)])
    assert [e.item_id for e in store.user_events("u", limit=2)] == ["i4", "i5"]
    assert [e.item_id for e in store.user_events("u", limit=10)] == ["i1", "i2", "i3", "i4", "i5"]
    assert store.user_events("u", limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        store.user_events("u", limit=-1)


def test_events_and_items_survive_a_restart(store_url: str) -> None:
    first = Store(store_url)
    first.add_events([event("u", "a", 0, "e1"), event("u", "b", 1)])
    first.upsert_item(StoredItem("new", {"title": "Lamp", "price": 9.5}))
    removed = first.delete_item("bundle-item")
    first.close()

    second = Store(store_url)
    assert [e.item_id for e in second.user_events("u")] == ["a", "b"]
    assert second.add_events([event("u", "a", 0, "e1")]) == 0  # the id is still known
    items, newest = second.item_changes_since(0)
    assert newest == removed == 2
    assert [(i.item_id, i.fields, i.deleted) for i in items] == [
        ("new", {"title": "Lamp", "price": 9.5}, False), ("bundle-item", {}, True)]
    assert second.upsert_item(StoredItem("other", {})) == 3  # numbering continues
    second.close()


def test_upsert_replaces_the_whole_item(store: Store) -> None:
    first = store.upsert_item(StoredItem("i", {"title": "Old", "colour": "red"}))
    second = store.upsert_item(StoredItem("i", {"title": "New"}, available=False, updated_at=T0))
    assert second > first
    items, _ = store.item_changes_since(0)
    assert items == [StoredItem("i", {"title": "New"}, available=False, deleted=False, updated_at=T0)]


def test_delete_leaves_a_tombstone(store: Store) -> None:
    store.upsert_item(StoredItem("i", {"title": "Mug"}))
    store.delete_item("i")
    store.delete_item("only-in-bundle")  # never upserted here: still remembered as removed
    items, _ = store.item_changes_since(0)
    assert [(i.item_id, i.fields, i.available, i.deleted) for i in items] == [
        ("i", {"title": "Mug"}, False, True), ("only-in-bundle", {}, False, True)]
    assert all(i.updated_at is not None and i.updated_at.tzinfo == timezone.utc for i in items)
    store.upsert_item(StoredItem("i", {"title": "Mug"}))  # upserting again brings it back
    assert store.item_changes_since(0)[0][-1].deleted is False


def test_item_changes_since_returns_only_later_changes(store: Store) -> None:
    assert store.item_changes_since(0) == ([], 0)
    a = store.upsert_item(StoredItem("a", {"v": 1}))
    b = store.upsert_item(StoredItem("b", {"v": 1}))
    items, newest = store.item_changes_since(a)
    assert ([i.item_id for i in items], newest) == (["b"], b)
    store.upsert_item(StoredItem("a", {"v": 2}))
    c = store.delete_item("c")
    items, newest = store.item_changes_since(b)
    assert ([(i.item_id, i.fields) for i in items], newest) == ([("a", {"v": 2}), ("c", {})], c)
    assert store.item_changes_since(newest) == ([], c)


def test_unicode_and_long_strings_round_trip(store: Store) -> None:
    long_text = ("نص عربي طويل 🛍️ and ascii " * 400)[:10_000]
    arabic_user, emoji_item = "مستخدم-٤٢", "👗🛒-١"
    store.add_events([StoredEvent(arabic_user, emoji_item, long_text, T0, "معرّف-🙂")])
    fields = {"title": "فستان صيفي 🌸", "description": long_text, "tags": ["新品", "😀"], "price": 19.99}
    store.upsert_item(StoredItem(emoji_item, fields))

    assert store.user_events(arabic_user) == [StoredEvent(arabic_user, emoji_item, long_text, T0, "معرّف-🙂")]
    assert store.item_changes_since(0)[0][0].fields == fields


def test_sqlite_store_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    Store(sqlite_url(path)).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("not a database url", "not a database url"),
        ("mysql://alice:s3cret@db.example/shop", "unsupported database mysql://alice:***@db.example/shop"),
        ("postgresql+nodriver://alice@db.example/shop", "invalid database URL postgresql+nodriver://alice@"),
        ("postgresql+psycopg://alice:s3cret@127.0.0.1:1/shop",
         "cannot open database postgresql+psycopg://alice:***@127.0.0.1:1/shop: connection failed"),
    ],
)
def test_bad_url_raises_config_error_naming_it(url: str, shown: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Store(url)
    assert shown in str(raised.value) and "s3cret" not in str(raised.value)


def test_sqlite_file_in_missing_folder_raises_config_error(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "missing" / "store.sqlite")
    with pytest.raises(ConfigError, match="cannot open database .*missing/store.sqlite"):
        Store(url)


ACKNOWLEDGING_WRITER = """
import sys
from datetime import datetime, timezone
from foryou.serving.store import Store, StoredEvent
store = Store(sys.argv[1])
for batch in range(1_000_000):
    now = datetime.now(timezone.utc)
    events = [StoredEvent("u", f"i{j}", "view", now, f"{batch}-{j}") for j in range(20)]
    assert store.add_events(events) == 20
    print(batch, flush=True)
"""


def test_acknowledged_events_survive_kill_9(store_url: str) -> None:
    Store(store_url).close()  # tables exist before the child starts its loop
    child = subprocess.Popen([sys.executable, "-c", ACKNOWLEDGING_WRITER, store_url], env=CHILD_ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, child.kill)
    watchdog.start()
    lines: list[str] = []
    while len(lines) < 30 and (line := child.stdout.readline()):  # type: ignore[union-attr]
        lines.append(line)
    os.kill(child.pid, signal.SIGKILL)  # mid-way through a later batch
    rest, errors = child.communicate()
    watchdog.cancel()
    assert len(lines) == 30, errors
    acknowledged = [int(line) for line in (lines + rest.splitlines(keepends=True)) if line.endswith("\n")]

    store = Store(store_url)
    stored = {e.event_id for e in store.user_events("u")}
    lost = {f"{b}-{j}" for b in acknowledged for j in range(20)} - stored
    assert not lost
    assert store.event_count() % 20 == 0  # a batch is all or nothing
    store.close()


def test_reloads_are_recorded_newest_last(store_url: str) -> None:
    store = Store(store_url)
    try:
        assert store.latest_reload() is None
        first = store.record_reload("/bundles/a", "a-1")
        second = store.record_reload("/bundles/b", "b-1")
        assert second > first
        assert store.latest_reload() == (second, "/bundles/b", "b-1")
    finally:
        store.close()


def test_a_postgresql_restart_fails_no_later_call(postgres_server) -> None:  # type: ignore[no-untyped-def]
    """Pooled connections die with the server; each is pinged before use, so the next call reconnects."""
    store = Store(postgres_server.new_database())
    try:
        store.add_events([event("u1", "i1", 0)])
        assert [e.item_id for e in store.user_events("u1")] == ["i1"]  # a pooled connection is now open
        postgres_server.restart()
        store.add_events([event("u1", "i2", 1)])
        assert [e.item_id for e in store.user_events("u1")] == ["i1", "i2"]
    finally:
        store.close()

"""API keys, per-client rate limits and the request body cap.

Writes and admin always need a key: with none configured they are refused (never open). Reads need one only
when `serving.require_key_for_reads` is set. Rate limits are token buckets per valid key (per client
address otherwise: a made-up key buys no fresh bucket), so one noisy caller cannot starve the others. The
buckets live in one SQLite file that every worker of a server shares, so the configured limit holds for the
whole server, not per worker; a bucket that has refilled is deleted, so the file stays bounded.
"""

from __future__ import annotations

import hmac
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foryou.errors import ConfigError

KEY_HEADER = "X-API-Key"
NO_KEYS_MESSAGE = ("writes and admin are disabled: no API key is configured. Set serving.api_keys in the config "
                   "or the FORYOU_API_KEYS environment variable (comma-separated), then send the key in X-API-Key")


class AccessDenied(Exception):
    """401 (no or wrong key) or 403 (writes disabled)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiKeys:
    """The accepted keys; compared in constant time."""

    def __init__(self, keys: Iterable[str], require_for_reads: bool) -> None:
        """A key must be printable ASCII (what an HTTP header carries intact): any other is a ConfigError at
        start-up, since no request could ever match it."""
        self.keys = [key for key in (key.strip() for key in keys) if key]
        for position, key in enumerate(self.keys, 1):
            if not (key.isascii() and key.isprintable()):
                raise ConfigError(f"API key #{position} (serving.api_keys, then FORYOU_API_KEYS) has a character "
                                  "that is not printable ASCII: no X-API-Key header could match it")
        self.require_for_reads = require_for_reads

    def check_write(self, given: str | None) -> None:
        if not self.keys:
            raise AccessDenied(403, NO_KEYS_MESSAGE)
        self._check(given)

    def check_read(self, given: str | None) -> None:
        if self.require_for_reads:
            self._check(given)

    def accepts(self, given: str) -> bool:
        return any(hmac.compare_digest(given.encode(), key.encode()) for key in self.keys)

    def _check(self, given: str | None) -> None:
        if not given:
            raise AccessDenied(401, f"missing {KEY_HEADER} header")
        if not self.accepts(given):
            raise AccessDenied(401, f"invalid {KEY_HEADER}")


class RateLimiter:
    """Token bucket per client, `per_minute` requests refilled continuously, in an SQLite file at `path` that
    every worker process of the server opens: one atomic upsert per request takes a token for all of them."""

    _SCHEMA = "CREATE TABLE IF NOT EXISTS buckets (client TEXT PRIMARY KEY, tokens REAL NOT NULL, " \
              "at REAL NOT NULL, allowed INTEGER NOT NULL)"
    # Refill since `at`, capped at the capacity; take one token when at least one is there.
    _TAKE = """
        INSERT INTO buckets (client, tokens, at, allowed) VALUES (:client, :capacity - 1, :now, 1)
        ON CONFLICT (client) DO UPDATE SET
          allowed = min(:capacity, tokens + (:now - at) * :rate) >= 1,
          tokens = min(:capacity, tokens + (:now - at) * :rate)
                   - (min(:capacity, tokens + (:now - at) * :rate) >= 1),
          at = :now
        RETURNING tokens, allowed"""
    PRUNE_EVERY = 1000  # requests between deletions of refilled buckets

    def __init__(self, per_minute: int, path: Path) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._lock = threading.Lock()
        self._calls = 0
        self._db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = OFF")  # counters, not data: a crash may only forget tokens
        self._db.execute(self._SCHEMA)

    def retry_after(self, client: str) -> int | None:
        """None when the request may go ahead (one token taken), else whole seconds until a token is back."""
        now = time.time()  # one clock for every process
        with self._lock:
            tokens, allowed = self._db.execute(self._TAKE, {"client": client, "capacity": self.capacity,
                                                            "now": now, "rate": self.rate}).fetchone()
            self._calls += 1
            if self._calls % self.PRUNE_EVERY == 0:
                self._prune(now)
        if allowed:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def buckets(self) -> int:
        """How many clients hold a bucket now (refilled ones are pruned)."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM buckets").fetchone()[0])

    def _prune(self, now: float) -> None:
        """Delete buckets full again: a missing bucket is a full one, so this forgets nothing."""
        self._db.execute("DELETE FROM buckets WHERE tokens + (:now - at) * :rate >= :capacity",
                         {"now": now, "rate": self.rate, "capacity": self.capacity})

    def close(self) -> None:
        with self._lock:
            self._db.close()


class BodySizeLimit:
    """ASGI middleware: a body over `max_bytes` (declared or streamed) gets a 413 before any route sees it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(413, _too_large_message(self.max_bytes))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _too_large(send, self.max_bytes)


class _BodyTooLarge(HTTPException):
    """An HTTPException, because FastAPI re-raises those from reading the body (any other error becomes a 400)."""


def _too_large_message(max_bytes: int) -> str:
    return f"request body: larger than this server's limit of {max_bytes} bytes (serving.max_body_bytes)"


async def _too_large(send: Send, max_bytes: int) -> None:
    body = json.dumps({"detail": _too_large_message(max_bytes)}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""A change counter shared by the worker processes of one server, so a write is true on every worker at once.

The store is the truth and each worker polls it every second (the only path across replicas). Within one server,
a worker that commits an item change also raises this counter, a memory-mapped file in the server's runtime
folder, before it acknowledges the write; every worker reads the counter (8 bytes, no system call) before a read
that depends on items, and catches up from the store first when it is behind.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_WIDTH = struct.calcsize("<q")


class ChangeSignal:
    """The newest item-change sequence number any worker of the server has committed (never decreases)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size < _WIDTH:
                os.ftruncate(self._fd, _WIDTH)
        self._map = mmap.mmap(self._fd, _WIDTH)

    def latest(self) -> int:
        return int(struct.unpack_from("<q", self._map)[0])

    def announce(self, sequence: int) -> None:
        """Raise the counter to `sequence` (writers race: the lock keeps the maximum)."""
        with self._locked():
            if sequence > self.latest():
                struct.pack_into("<q", self._map, 0, sequence)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

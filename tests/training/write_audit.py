"""An audit hook (sys.addaudithook) that records file writes under given folders: how the distributed tests
check that only rank 0 writes. It cannot be removed, so install it only in a process started for the test.
It sees Python-level file operations only (torch.save and pyarrow open their files in C++), which is enough here:
every folder foryou writes artifacts to also gets files written from Python (JSON, npz, MLflow's YAML)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WRITE_EVENTS = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.truncate", "os.symlink",
                "shutil.copyfile", "shutil.rmtree"}


def watch_writes(roots: list[str], record: Callable[[str], None]) -> None:
    """Call record("<event> <path>") for every open-for-writing, mkdir, rename, ... of a path under `roots`."""
    roots = [os.path.abspath(root) for root in roots]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(char in (mode or "") for char in "wax+") or bool((flags or 0) & WRITE_FLAGS)
        else:
            path, writing = (args[0] if args else None), event in WRITE_EVENTS
        if writing and isinstance(path, (str, bytes, os.PathLike)) and any(
                os.path.abspath(os.fsdecode(path)).startswith(root) for root in roots):
            record(f"{event} {os.fsdecode(path)}")

    sys.addaudithook(hook)


def watch_from_env() -> None:
    """For a sitecustomize loaded by every process of a torchrun job: ranks other than 0 append their writes
    under FORYOU_WATCHED (os.pathsep-separated folders) to the file FORYOU_WRITES_LOG (outside them)."""
    rank = os.environ.get("RANK", "0")
    if rank == "0" or "FORYOU_WATCHED" not in os.environ:
        return
    log = os.environ["FORYOU_WRITES_LOG"]

    def append(line: str) -> None:
        with open(log, "a") as file:
            file.write(f"rank {rank}: {line}\n")

    watch_writes(os.environ["FORYOU_WATCHED"].split(os.pathsep), append)

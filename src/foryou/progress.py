"""Progress of long loops: on a terminal, tqdm bars with a total and an ETA; elsewhere, one plain line per step.

A carriage-return bar written to a file (a `make demo` log, CI output) is one unreadable smear, so when stderr
is not a terminal the bars are off and each finished epoch or stage is one line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def on_terminal() -> bool:
    """True when stderr (where tqdm draws) is an interactive terminal."""
    return sys.stderr.isatty()


def bar(iterable: Iterable[T] | None = None, *, total: int | None, desc: str, unit: str, enabled: bool,
        leave: bool = False) -> tqdm:
    """A tqdm bar over `iterable` with `total` steps (the ETA needs it), drawn only when `enabled` and on a
    terminal; otherwise a silent pass-through, and the caller reports with `line`."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True,
                disable=not (enabled and on_terminal()))


def announce(text: str, enabled: bool) -> None:
    """A message for the person running the command (what a run will do), on stderr, terminal or not."""
    if enabled:
        tqdm.write(text, file=sys.stderr)


def line(text: str, enabled: bool) -> None:
    """One finished epoch or stage as one line on stderr when no bar shows it (not on a terminal)."""
    if enabled and not on_terminal():
        tqdm.write(text, file=sys.stderr)


def remaining(seconds_so_far: float, done: int, total: int) -> str:
    """At most how long the rest takes at the mean pace so far, e.g. "4 min 10 s"."""
    left = seconds_so_far / max(done, 1) * max(total - done, 0)
    minutes, seconds = divmod(round(left), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"

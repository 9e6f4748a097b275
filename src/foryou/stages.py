"""One log line per pipeline stage with its seconds and the process's peak memory so far, so a slow or
memory-hungry stage of `foryou pipeline` is named in its log (and benchmarks/pipeline_scale.py can read it)."""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)  # the CLI shows this logger at INFO
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # the CLI's log lines (and a second process's, baseline_fits.py)


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@contextmanager
def timed_stage(name: str) -> Iterator[Callable[[], float]]:
    """Log 'stage NAME: S s (peak RSS G GiB)' when the block ends (not when it raises); yields the seconds so far."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start
    logger.info("stage %s: %.1f s (peak RSS %.2f GiB)", name, time.perf_counter() - start, peak_rss_bytes() / 2**30)

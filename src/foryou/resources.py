"""What this process may use of the machine (cores, memory) and the one place that caps every library's threads.

Read from CPU affinity, /proc/meminfo and the cgroup (v2, else v1) limits, so a container or `taskset` that
grants 2 of 64 cores is seen as 2 cores. Two pipelines sharing a machine each keep to their own cores instead of
every library (torch, BLAS, OpenMP in LightGBM and faiss) starting one busy-spinning thread per core.
"""

from __future__ import annotations

import logging
import math
import os
import resource
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP = Path("/sys/fs/cgroup")
MEMINFO = Path("/proc/meminfo")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores(cgroup: Path = CGROUP) -> int:
    """Cores this process may run on: its CPU affinity, capped by the cgroup's CPU quota (rounded up), >= 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cpu_quota(cgroup)
    return max(1, min(cores, math.ceil(quota)) if quota is not None else cores)


def _cpu_quota(cgroup: Path) -> float | None:
    """Cores' worth of CPU time the cgroup allows (cpu.max, or v1's cfs quota / period); None: unlimited."""
    v2, v1 = _read(cgroup / "cpu.max"), _read(cgroup / "cpu" / "cpu.cfs_quota_us")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100_000)
    if v1 is not None and int(v1) > 0:
        return int(v1) / int(_read(cgroup / "cpu" / "cpu.cfs_period_us") or 100_000)
    return None


def available_memory_bytes(cgroup: Path = CGROUP, meminfo: Path = MEMINFO) -> int:
    """Bytes this process could still allocate: MemAvailable, or less when the cgroup's limit or the address-space
    limit (ulimit -v, less the address space in use) leaves less."""
    available = _meminfo_available(meminfo)
    address_space, _ = resource.getrlimit(resource.RLIMIT_AS)
    if address_space != resource.RLIM_INFINITY:
        available = min(available, max(address_space - _address_space_in_use(), 0))
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        limit, usage = _read(cgroup / limit_file), _read(cgroup / usage_file)
        if limit is not None and limit.isdigit() and usage is not None:
            available = min(available, max(int(limit) - int(usage), 0))
            break
    return available


def _address_space_in_use() -> int:
    for line in (_read(Path("/proc/self/status")) or "").splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _meminfo_available(meminfo: Path) -> int:
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")) if hasattr(os, "sysconf") else 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def prepare_thread_environment(threads: int) -> None:
    """Before torch, numpy, LightGBM or faiss are imported: OpenMP and BLAS pools of `threads`, and OpenMP
    threads that sleep when idle (OMP_WAIT_POLICY=PASSIVE) rather than spin on cores another process needs.
    Variables the user set already are kept."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def limit_threads(threads: int | None) -> int:
    """Cap torch, every BLAS / OpenMP pool loaded now (threadpoolctl) and faiss at `threads` (None: the usable
    cores); returns the cap. Call after those libraries are imported: threadpoolctl sees only loaded pools."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    cap = threads if threads is not None else usable_cores()
    torch.set_num_threads(cap)
    try:
        torch.set_num_interop_threads(cap)
    except RuntimeError:  # allowed once, before any inter-op work; a second run in one process keeps the first
        pass
    threadpool_limits(cap)
    faiss.omp_set_num_threads(cap)
    logger.info("threads capped at %d (torch, BLAS, OpenMP, faiss)", cap)
    return cap

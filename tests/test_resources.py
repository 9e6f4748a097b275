"""Cores and memory read from fake cgroup / meminfo files, and the thread cap applied to torch and BLAS."""

import os
import subprocess
import sys
from pathlib import Path

import faiss
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from foryou.resources import available_memory_bytes, limit_threads, usable_cores

AFFINITY = len(os.sched_getaffinity(0))


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_cpu_quota_caps_the_affinity_rounded_up(tmp_path) -> None:
    # 50000 / 100000 = half a core -> 1; an unlimited quota leaves the affinity
    assert usable_cores(_write(tmp_path / "half", {"cpu.max": "50000 100000\n"})) == 1
    assert usable_cores(_write(tmp_path / "max", {"cpu.max": "max 100000\n"})) == AFFINITY
    assert usable_cores(_write(tmp_path / "v1", {"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"})) == 1
    assert usable_cores(tmp_path / "none") == AFFINITY


def test_memory_is_the_smaller_of_meminfo_and_the_cgroup_headroom(tmp_path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   20000000 kB\n")
    assert available_memory_bytes(tmp_path / "none", meminfo) == 20_000_000 * 1024
    # cgroup v2: limit 8 GiB, 3 GiB in use -> 5 GiB left, less than MemAvailable
    limited = _write(tmp_path / "v2", {"memory.max": str(8 * 2**30), "memory.current": str(3 * 2**30)})
    assert available_memory_bytes(limited, meminfo) == 5 * 2**30
    unlimited = _write(tmp_path / "v2max", {"memory.max": "max", "memory.current": str(3 * 2**30)})
    assert available_memory_bytes(unlimited, meminfo) == 20_000_000 * 1024


def test_an_address_space_limit_caps_the_available_memory(tmp_path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:   900000000 kB\n")  # ~858 GiB: more than any limit below
    script = ("import resource, sys; from pathlib import Path; from foryou.resources import available_memory_bytes; "
              "resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, resource.RLIM_INFINITY)); "
              f"print(available_memory_bytes(Path('{tmp_path}/none'), Path('{meminfo}')))")
    available = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert 0 < available < 8 * 2**30  # the 8 GiB limit less what the interpreter has mapped already


def test_limit_threads_caps_torch_faiss_and_every_blas_pool() -> None:
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    with threadpool_limits(limits=None):  # on exit: the pools' limits from before the test
        try:
            assert limit_threads(1) == 1
            assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        finally:
            torch.set_num_threads(before[0])
            faiss.omp_set_num_threads(before[1])

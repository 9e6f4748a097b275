"""One log line per finished stage, with its seconds and the peak RSS so far; none for a stage that raised."""

import logging
import time

import pytest

from foryou.stages import peak_rss_bytes, timed_stage


def test_a_finished_stage_logs_its_name_seconds_and_peak(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="foryou.stages"), timed_stage("prepare"):
        sum(range(1000))
    [record] = caplog.records
    assert record.getMessage().startswith("stage prepare: 0.0 s (peak RSS ")


def test_a_stage_that_raises_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="foryou.stages"), pytest.raises(RuntimeError), timed_stage("fit"):
        raise RuntimeError("boom")
    assert not caplog.records


def test_peak_rss_is_at_least_a_fresh_allocation() -> None:
    block = bytearray(64 * 2**20)  # 64 MiB touched
    block[::4096] = b"x" * len(block[::4096])
    assert peak_rss_bytes() >= 64 * 2**20


def test_a_stage_yields_its_seconds_so_far() -> None:
    with timed_stage("fit") as elapsed:
        time.sleep(0.05)
        assert elapsed() >= 0.05

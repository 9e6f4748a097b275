"""The item-change counter the workers of one server share: every view of the file sees the maximum announced."""

from __future__ import annotations

from pathlib import Path

from foryou.serving.changes import ChangeSignal


def test_every_worker_sees_the_newest_change_and_it_never_decreases(tmp_path: Path) -> None:
    first, second = ChangeSignal(tmp_path / "changes"), ChangeSignal(tmp_path / "changes")
    assert first.latest() == second.latest() == 0
    first.announce(5)
    assert second.latest() == 5
    second.announce(3)  # a slower writer's older change arrives late
    assert first.latest() == second.latest() == 5
    second.announce(9)
    assert first.latest() == 9
    first.close()
    second.close()
    assert ChangeSignal(tmp_path / "changes").latest() == 9  # a worker started later reads it too

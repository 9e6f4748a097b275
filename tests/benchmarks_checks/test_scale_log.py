"""The power-law log of benchmarks/scale.py (benchmarks/power_law_log.py) at a small size: the requested counts,
ids in range, every user and item present, a heavy head, and a config that foryou reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks.power_law_log import EVENT_TYPES, LogSize, write_log, zipf_counts

from foryou.config import load_config

SIZE = LogSize(events=20_000, items=2_000, users=1_000)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("scale-log")
    write_log(folder, SIZE, seed=1)
    return folder, pd.read_parquet(folder / "interactions.parquet"), pd.read_parquet(folder / "items.parquet")


def numbers(ids: pd.Series, prefix: str) -> np.ndarray:
    assert ids.str.startswith(prefix).all()
    return ids.str.slice(len(prefix)).astype(int).to_numpy()


def test_requested_counts_and_ids_in_range(log: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    _, events, items = log
    users, item_numbers = numbers(events["user"], "u"), numbers(events["item"], "i")
    assert len(events) == SIZE.events and len(items) == SIZE.items
    assert users.min() >= 0 and users.max() < SIZE.users
    assert item_numbers.min() >= 0 and item_numbers.max() < SIZE.items
    # every user and every catalog item has at least one event
    assert len(np.unique(users)) == SIZE.users and len(np.unique(item_numbers)) == SIZE.items
    assert set(events["event"]) <= set(EVENT_TYPES) and items["price"].gt(0).all()


def test_head_heavier_than_tail(log: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    _, events, _ = log
    for column, prefix, n in (("item", "i", SIZE.items), ("user", "u", SIZE.users)):
        counts = np.bincount(numbers(events[column], prefix), minlength=n)
        tenth = n // 10
        # rank 1 is id 0; weights r^-a: the head tenth's mean is ~5x (users, a=0.5) to ~16x (items, a=0.8) the tail's
        assert counts[:tenth].mean() > 3 * counts[-tenth:].mean()
        assert counts[0] == counts.max()
    items = np.bincount(numbers(events["item"], "i"), minlength=SIZE.items)
    # items (a=0.8): the first tenth of the catalog holds more events than its whole second half
    assert items[:SIZE.items // 10].sum() > items[SIZE.items // 2:].sum()


def test_zipf_counts_sum_and_floor() -> None:
    counts = zipf_counts(np.random.default_rng(0), 100, 1_000, 1.0)
    assert counts.sum() == 1_000 and counts.min() >= 1 and counts[0] == counts.max()


def test_config_maps_the_files(log: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    folder, _, _ = log
    config = load_config(folder / "config.yaml")
    assert config.data.source == "generic" and config.data.items is not None
    assert config.data.items.categorical == ["category"] and config.data.items.numeric == ["price"]
    assert write_log(folder, SIZE, seed=1)["reused"]  # same recipe: the files are kept


def test_too_few_events_is_an_error() -> None:
    with pytest.raises(ValueError, match="events >= max"):
        LogSize(events=10, items=20, users=5)

"""The power-law event log of the scale benchmark: Zipf-like item popularity and user activity, at any size.

Every user and every item gets at least one event (so the prepared catalog really has `n_items` items and
`n_users` users); the other events are spread by Zipf weights, rank r getting r^-exponent (user u0 and item i0
are the most active / popular), then users' and items' event slots are paired at random. There is no taste
structure: the log is for time and memory, quality metrics on it mean nothing. Timestamps are uniform over a
year, event types view / click / add_to_cart / purchase at 70 / 15 / 10 / 5 %. Items carry a category (Zipf
over `CATEGORIES` values) and a log-normal price.

Written into a folder: interactions.parquet (or .csv) with columns user, item, ts (epoch seconds), event;
items.parquet (or .csv) with item, category, price; config.yaml, a generic data mapping with all else default.
Usage: .venv/bin/python benchmarks/power_law_log.py OUT_DIR [--events 10000000 --items 1000000 --users 1000000]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

START = 1_672_531_200  # 2023-01-01 UTC, epoch seconds
YEAR = 365 * 86_400
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
EVENT_SHARES = (0.70, 0.15, 0.10, 0.05)
CATEGORIES = 200
ITEM_EXPONENT, USER_EXPONENT, CATEGORY_EXPONENT = 0.8, 0.5, 1.0
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class LogSize:
    """How big a log to generate, and how skewed (Zipf exponents of item popularity and user activity)."""

    events: int
    items: int
    users: int
    item_exponent: float = ITEM_EXPONENT
    user_exponent: float = USER_EXPONENT

    def __post_init__(self) -> None:
        if min(self.items, self.users) < 1 or self.events < max(self.items, self.users):
            raise ValueError(f"need events >= max(items, users) >= 1 so that every user and item has an event; "
                             f"got events={self.events:,}, items={self.items:,}, users={self.users:,}")


def zipf_counts(rng: np.random.Generator, n: int, total: int, exponent: float) -> np.ndarray:
    """(n,) int64 counts summing to `total`, each >= 1: one each, the rest multinomial with weights r^-exponent
    (index 0 = rank 1, the heaviest)."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return 1 + rng.multinomial(total - n, weights / weights.sum()).astype(np.int64)


def prefixed(prefix: str, numbers: np.ndarray) -> pa.Array:
    """String ids like "u17" for int `numbers`, built in Arrow (10M Python strings would take minutes)."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def interactions_table(rng: np.random.Generator, size: LogSize) -> pa.Table:
    """(events,) rows: user, item, ts (int64 epoch seconds), event (type name); in random order."""
    users = np.repeat(np.arange(size.users), zipf_counts(rng, size.users, size.events, size.user_exponent))
    items = np.repeat(np.arange(size.items), zipf_counts(rng, size.items, size.events, size.item_exponent))
    rng.shuffle(items)  # pairs each user event slot with a random item event slot
    timestamps = START + rng.integers(0, YEAR, size.events)
    types = rng.choice(len(EVENT_TYPES), size=size.events, p=EVENT_SHARES).astype(np.int8)
    order = rng.permutation(size.events)  # a log file is not sorted by user
    events = pa.DictionaryArray.from_arrays(pa.array(types[order]), pa.array(EVENT_TYPES)).cast(pa.string())
    return pa.table({"user": prefixed("u", users[order]), "item": prefixed("i", items[order]),
                     "ts": pa.array(timestamps[order]), "event": events})


def items_table(rng: np.random.Generator, n_items: int) -> pa.Table:
    """(n_items,) rows: item, category (c0 most common), price (log-normal, 2 decimals)."""
    weights = np.arange(1, CATEGORIES + 1, dtype=np.float64) ** -CATEGORY_EXPONENT
    categories = rng.choice(CATEGORIES, size=n_items, p=weights / weights.sum())
    prices = np.round(np.exp(rng.normal(3.0, 1.0, n_items)), 2)
    return pa.table({"item": prefixed("i", np.arange(n_items)), "category": prefixed("c", categories),
                     "price": pa.array(prices)})


def write_table(table: pa.Table, path: Path) -> None:
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=1_000_000)
    else:
        pacsv.write_csv(table, path)


def generic_config(out_dir: Path, fmt: str) -> dict[str, Any]:
    """The data mapping of the generated files (absolute paths); outputs under OUT_DIR/run; no MLflow."""
    return {
        "name": "scale-power-law",
        "output_dir": str(out_dir / "run"),
        "data": {
            "source": "generic",
            "interactions": {"path": str(out_dir / f"interactions.{fmt}"),
                             "columns": {"user_id": "user", "item_id": "item", "timestamp": "ts",
                                         "event_type": "event"},
                             "timestamp_unit": "s"},
            "items": {"path": str(out_dir / f"items.{fmt}"), "columns": {"item_id": "item"},
                      "categorical": ["category"], "numeric": ["price"]},
        },
        "tracking": {"mlflow": False},
    }


def write_log(out_dir: Path | str, size: LogSize, fmt: str = "parquet", seed: int = 0) -> dict[str, Any]:
    """Generate the log and its items into `out_dir`, with config.yaml; returns a description (paths, sizes,
    seconds). Reuses the files when `out_dir/log.json` records the same recipe."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = {**vars(size), "format": fmt, "seed": seed}
    described = out_dir / "log.json"
    if described.exists() and json.loads(described.read_text())["recipe"] == recipe:
        return {**json.loads(described.read_text()), "reused": True}
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    write_table(interactions_table(rng, size), out_dir / f"interactions.{fmt}")
    write_table(items_table(rng, size.items), out_dir / f"items.{fmt}")
    config = out_dir / "config.yaml"
    config.write_text(f"# power-law scale log ({size.events:,} events, {size.items:,} items, {size.users:,} users,"
                      f" seed {seed}): data mapping only, all else default\n"
                      + yaml.safe_dump(generic_config(out_dir, fmt), sort_keys=False))
    files = {name: (out_dir / f"{name}.{fmt}").stat().st_size for name in ("interactions", "items")}
    description = {"recipe": recipe, "config": str(config), "file_bytes": files,
                   "seconds": round(time.perf_counter() - start, 1)}
    described.write_text(json.dumps(description, indent=2))
    return {**description, "reused": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--format", choices=FORMATS, default="parquet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = LogSize(args.events, args.items, args.users)
    print(json.dumps(write_log(args.out_dir, size, args.format, args.seed), indent=2))


if __name__ == "__main__":
    main()

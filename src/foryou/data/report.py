"""The data report: what a prepared dataset holds and what preparation removed, as a dict and as rich tables.

It answers the questions to ask before training: how big and sparse is the data, how active are users and
items, what was quarantined or dropped and why, how many items lack text, and how many evaluation events
involve users or items the model never saw in training (cold).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.console import Group
from rich.table import Table

from foryou.data import schema as S
from foryou.data.dataset import Dataset

# Lower bounds of the activity buckets: 1, 2-4, 5-19, 20-99, 100+ events.
ACTIVITY_EDGES = (1, 2, 5, 20, 100)


def activity_buckets(counts: np.ndarray, edges: tuple[int, ...] = ACTIVITY_EDGES) -> dict[str, int]:
    """How many entities have an event count in each bucket, e.g. {"1": 3, "2-4": 5, ..., "100+": 1}."""
    result = {}
    for low, high in zip(edges, [*edges[1:], None]):
        inside = counts >= low if high is None else (counts >= low) & (counts < high)
        label = f"{low}+" if high is None else (str(low) if high == low + 1 else f"{low}-{high - 1}")
        result[label] = int(inside.sum())
    return result


def _items_without_text(dataset: Dataset) -> int:
    text = dataset.item_fields.text
    if not text:
        return dataset.n_items
    empty = np.ones(dataset.n_items, dtype=bool)
    for column in text:
        values = dataset.items[column]
        empty &= (values.isna() | (values.astype("str").str.strip() == "")).to_numpy()
    return int(empty.sum())


def _cold(events: pd.DataFrame) -> dict[str, dict[str, int]]:
    result = {}
    for split in ("valid", "test"):
        part = events[events[S.SPLIT] == split]
        result[split] = {
            "rows": len(part),
            "cold_user_rows": int(part[S.COLD_USER].sum()),
            "cold_item_rows": int(part[S.COLD_ITEM].sum()),
            "cold_users": int(part.loc[part[S.COLD_USER], S.USER_IDX].nunique()),
            "cold_items": int(part.loc[part[S.COLD_ITEM], S.ITEM_IDX].nunique()),
        }
    return result


def build_report(dataset: Dataset, quarantine: pd.DataFrame) -> dict[str, Any]:
    """The data report as a JSON-ready dict."""
    events = dataset.interactions
    n_users, n_items, n_events = dataset.n_users, dataset.n_items, len(events)
    pairs = len(events[[S.USER_IDX, S.ITEM_IDX]].drop_duplicates())
    counts = {"users": n_users, "items": n_items, "interactions": n_events,
              **{split: int((events[S.SPLIT] == split).sum()) for split in S.SPLITS}}
    manifest = dataset.manifest
    return {
        "source": manifest.source,
        "counts": counts,
        "sparsity": 1.0 - pairs / (n_users * n_items) if n_users and n_items else 1.0,
        "events_per_type": {str(k): int(v) for k, v in events[S.EVENT_TYPE].value_counts().sort_index().items()},
        "user_activity": activity_buckets(events[S.USER_IDX].value_counts().to_numpy()),
        "item_activity": activity_buckets(events[S.ITEM_IDX].value_counts().to_numpy()),
        "quarantined_by_reason": {str(k): int(v) for k, v in quarantine["reason"].value_counts().items()},
        "dropped_by_rule": {step["step"]: int(step["removed"]) for step in manifest.steps},
        "items_without_text": _items_without_text(dataset),
        "items_without_metadata": manifest.counts.get("items_without_metadata", 0),
        "catalog_items_without_interactions": manifest.counts.get("catalog_items_without_interactions", 0),
        "duplicate_catalog_ids": manifest.counts.get("duplicate_catalog_ids", 0),
        "cold": _cold(events),
    }


def _table(title: str, rows: dict[str, Any], key: str = "", value: str = "count") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    table.add_column(value, justify="right")
    for name, number in rows.items():
        table.add_row(str(name), f"{number:,}" if isinstance(number, int) else f"{number:.4f}")
    return table


def render_report(report: dict[str, Any]) -> Group:
    """The report as rich tables for the terminal."""
    overview = {**report["counts"], "sparsity": report["sparsity"],
                "items without text": report["items_without_text"],
                "items without metadata": report["items_without_metadata"],
                "catalog items without interactions": report["catalog_items_without_interactions"],
                "duplicate catalog ids": report["duplicate_catalog_ids"]}
    cold = Table(title="Evaluation rows with cold users / items", title_justify="left")
    for column in ("split", "rows", "cold user rows", "cold item rows", "cold users", "cold items"):
        cold.add_column(column, justify="left" if column == "split" else "right")
    for split, numbers in report["cold"].items():
        cold.add_row(split, *(f"{n:,}" for n in numbers.values()))
    activity = Table(title="Activity (events per user / item)", title_justify="left")
    for column in ("events", "users", "items"):
        activity.add_column(column, justify="left" if column == "events" else "right")
    for bucket, users in report["user_activity"].items():
        activity.add_row(bucket, f"{users:,}", f"{report['item_activity'][bucket]:,}")
    return Group(
        _table(f"Data report: {report['source']}", overview),
        _table("Events per type", report["events_per_type"], "event type"),
        activity,
        _table("Quarantined rows by reason", report["quarantined_by_reason"] or {"(none)": 0}, "reason"),
        _table("Removed rows by step", report["dropped_by_rule"], "step", "rows removed"),
        cold,
    )

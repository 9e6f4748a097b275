"""Retailrocket e-commerce dataset: a folder with events.csv, item_properties_part*.csv, category_tree.csv.

- events.csv: timestamp (unix ms), visitorid, event (view / addtocart / transaction), itemid, transactionid
  -> view / add_to_cart / purchase events (value NaN). Malformed rows (empty ids or event, unparseable
  timestamp) are quarantined.
- item_properties_part1.csv, item_properties_part2.csv (either or both): timestamp, itemid, property, value;
  properties change over time and the latest value per (item, property) is kept (same timestamp: the later
  row, part1 before part2). `categoryid` -> categorical `category`, `available` -> numeric `available`; the
  other properties are hashed tokens and are dropped unless named in the option `properties`, which keeps
  each as a categorical field of that name. Only these properties are parsed, so the 20M-row files stay cheap.
- category_tree.csv (optional): categoryid, parentid -> categorical `parent_category` of each item's category.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import Field

from foryou.config import DataConfig
from foryou.data import schema as S
from foryou.data.adapters.common import (
    AdapterOptions,
    build_interactions,
    canonical_event_types,
    clean_ids,
    find_file,
    find_optional,
    parse_options,
    record_drop,
    require_folder,
    screen_rows,
    to_numbers,
)
from foryou.data.quarantine import concat_quarantine
from foryou.data.readers import read_csv, require_columns
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.timeparse import parse_timestamps
from foryou.errors import DataFileError

PROPERTY_FILES = ("item_properties_part1.csv", "item_properties_part2.csv")
PROPERTY_COLUMNS = ["timestamp", "itemid", "property", "value"]


class RetailrocketOptions(AdapterOptions):
    properties: list[str] = Field(default_factory=list, description="extra hashed properties kept as categorical")


def load(config: DataConfig) -> SourceTables:
    """View, add-to-cart and purchase events plus item categories from a Retailrocket folder."""
    options = parse_options(RetailrocketOptions, config.options, "retailrocket")
    folder = require_folder(Path(config.path or ""))
    events_file = find_file(folder, ["events.csv"])
    interactions, quarantine = _events(events_file)
    inputs, dropped = [str(events_file)], dict[str, int]()
    property_files = [p for p in (find_optional(folder, [n]) for n in PROPERTY_FILES) if p]
    items, fields, parts = None, FieldRoles(), [quarantine]
    if property_files:
        latest, bad = _latest_properties(property_files, ["categoryid", "available", *options.properties])
        parts.append(bad)
        inputs += [str(p) for p in property_files]
        items, fields = _items(latest, options.properties, dropped)
        tree_file = find_optional(folder, ["category_tree.csv"])
        if tree_file is not None:
            items["parent_category"] = items["category"].map(_parents(tree_file))
            fields.categorical.append("parent_category")
            inputs.append(str(tree_file))
    return SourceTables(interactions=interactions, items=items, item_fields=fields,
                        quarantine=concat_quarantine(parts), dropped=dropped, inputs=inputs)


def _events(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = read_csv(path)
    require_columns(raw, ["timestamp", "visitorid", "event", "itemid"], path)
    users, items = clean_ids(raw["visitorid"]), clean_ids(raw["itemid"])
    timestamp, bad_time = parse_timestamps(raw["timestamp"], "ms")
    checks = [(users.isna(), "empty visitorid"), (items.isna(), "empty itemid"),
              (raw["event"].isna(), "empty event"), (bad_time, "unparseable timestamp")]
    ok, quarantine = screen_rows(raw, checks, path)
    events = canonical_event_types(raw.loc[ok, "event"])
    frame = build_interactions(users[ok], items[ok], timestamp[ok], events, float("nan"), raw.index[ok].to_numpy())
    return frame, quarantine


def _latest_properties(paths: list[Path], wanted: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Latest (itemid, property, value) for the wanted properties; malformed rows are quarantined."""
    frames, parts = [], []
    for order, path in enumerate(paths):
        raw = read_csv(path)
        require_columns(raw, PROPERTY_COLUMNS, path)
        raw = raw.loc[raw["property"].isin(wanted)]
        items = clean_ids(raw["itemid"])
        timestamp, bad_time = parse_timestamps(raw["timestamp"], "ms")
        ok, bad = screen_rows(raw, [(items.isna(), "empty itemid"), (bad_time, "unparseable timestamp")], path)
        parts.append(bad)
        frames.append(pd.DataFrame({"item": items[ok], "property": raw.loc[ok, "property"],
                                    "value": raw.loc[ok, "value"], "time": timestamp[ok], "file": order,
                                    "row": raw.index[ok]}))
    rows = pd.concat(frames, ignore_index=True).sort_values(["time", "file", "row"], kind="stable")
    return rows.drop_duplicates(["item", "property"], keep="last"), concat_quarantine(parts)


def _items(latest: pd.DataFrame, extra: list[str], dropped: dict[str, int]) -> tuple[pd.DataFrame, FieldRoles]:
    table = latest.pivot(index="item", columns="property", values="value")
    table = table.reindex(columns=["categoryid", "available", *extra])
    available, bad = to_numbers(table["available"])
    record_drop(dropped, "non-numeric 'available' property values (set to NaN)", int(bad.sum()))
    items = pd.DataFrame({S.ITEM_ID: table.index.astype("str"),
                          "category": clean_ids(table["categoryid"]).to_numpy(),
                          "available": available.to_numpy()})
    for name in extra:
        items[name] = table[name].to_numpy()
    return items, FieldRoles(categorical=["category", *extra], numeric=["available"])


def _parents(path: Path) -> pd.Series:
    tree = read_csv(path)
    require_columns(tree, ["categoryid", "parentid"], path)
    tree = pd.DataFrame({"category": clean_ids(tree["categoryid"]), "parent": clean_ids(tree["parentid"])})
    if tree["category"].duplicated().any():
        raise DataFileError(f"{path}: category ids must be unique; repeated: "
                            f"{', '.join(tree.loc[tree['category'].duplicated(), 'category'].head(5))}")
    return tree.dropna(subset=["category"]).set_index("category")["parent"]

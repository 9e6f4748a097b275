"""Plush-style fashion shop export: a folder with the catalog, the brands and one CSV per event type.

Layout (names fixed; each event file optional but at least one present):
  dresses.json        items: a JSON array or JSON lines of objects. Keys: the id under `id`, `item_id` or
                      `product_id`; `name` or `title`; `brand_id` (or `brand`); `price`; `colour` (or `color`);
                      `category`; `description`. Missing keys give empty fields.
  brands.json         brand names: either one object {"<brand id>": "<name>", ...} or an array of
                      {"id": ..., "name": ...} objects.
  buy_click.csv       -> purchase events   \\
  product_click.csv   -> click events       } columns user_id,item_id,timestamp or userId,productId,time
  save.csv            -> save events       /
Timestamps: unix s / ms or ISO (naive ones in `data.timezone`). source_order numbers the event rows across
the files in the order above. Malformed events (empty ids, unparseable time) and catalog objects without an id
are quarantined. Items: title and description (text), brand (the joined brand name; an id missing from
brands.json gives NaN, counted), colour and category (categorical), price (numeric; non-numbers -> NaN,
counted). Duplicate item ids: the last object wins.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from foryou.config import DataConfig
from foryou.data import schema as S
from foryou.data.adapters.common import (
    AdapterOptions,
    build_interactions,
    clean_ids,
    find_file,
    find_optional,
    keep_last_per_id,
    parse_options,
    record_drop,
    require_folder,
    screen_rows,
    to_numbers,
)
from foryou.data.quarantine import concat_quarantine
from foryou.data.readers import read_csv, read_json_document, read_json_records
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.timeparse import parse_timestamps
from foryou.errors import DataFileError, MissingColumnError

EVENT_FILES = {"buy_click.csv": S.PURCHASE, "product_click.csv": S.CLICK, "save.csv": S.SAVE}
EVENT_COLUMNS = (("user_id", "item_id", "timestamp"), ("userId", "productId", "time"))
ITEM_ID_KEYS = ("id", "item_id", "product_id")


class PlushOptions(AdapterOptions):
    """No options: the layout is fixed (see the module docstring)."""


def load(config: DataConfig) -> SourceTables:
    """Purchase, click and save events plus the dress catalog from a Plush export folder."""
    parse_options(PlushOptions, config.options, "plush")
    folder = require_folder(Path(config.path or ""))
    event_files = [(p, kind) for name, kind in EVENT_FILES.items()
                   if (p := find_optional(folder, [name])) is not None]
    if not event_files:
        raise DataFileError(f"{folder} has no event file; expected one or more of {', '.join(EVENT_FILES)}")
    frames, parts, offset = [], [], 0
    for path, kind in event_files:
        frame, bad, rows = _events(path, kind, offset, config.timezone)
        frames.append(frame)
        parts.append(bad)
        offset += rows
    dresses_file = find_file(folder, ["dresses.json", "dresses.jsonl"])
    brands_file = find_optional(folder, ["brands.json"])
    dropped: dict[str, int] = {}
    items, bad_items = _items(dresses_file, brands_file, dropped)
    inputs = [str(p) for p, _ in event_files] + [str(dresses_file)] + ([str(brands_file)] if brands_file else [])
    return SourceTables(
        interactions=pd.concat(frames, ignore_index=True), items=items,
        item_fields=FieldRoles(text=["title", "description"], categorical=["brand", "colour", "category"],
                               numeric=["price"]),
        quarantine=concat_quarantine([*parts, bad_items]), dropped=dropped, inputs=inputs)


def _events(path: Path, kind: str, offset: int, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(events, quarantine, rows read) of one event file; source_order continues from `offset`."""
    raw = read_csv(path)
    names = next((c for c in EVENT_COLUMNS if set(c).issubset(raw.columns)), None)
    if names is None:
        raise MissingColumnError(f"file {path} needs the columns user_id,item_id,timestamp (or userId,productId,"
                                 f"time); columns present: {', '.join(map(str, raw.columns)) or '(none)'}")
    user, item, time = names
    users, items = clean_ids(raw[user]), clean_ids(raw[item])
    timestamp, bad_time = parse_timestamps(raw[time], "auto", timezone)
    checks = [(users.isna(), f"empty {user}"), (items.isna(), f"empty {item}"), (bad_time, f"unparseable {time}")]
    ok, quarantine = screen_rows(raw, checks, path)
    frame = build_interactions(users[ok], items[ok], timestamp[ok], kind, float("nan"),
                               raw.index[ok].to_numpy() + offset)
    return frame, quarantine, len(raw)


def _items(path: Path, brands_file: Path | None, dropped: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = read_json_records(path)
    id_key = next((k for k in ITEM_ID_KEYS if k in raw.columns), None)
    if id_key is None:
        raise MissingColumnError(f"file {path} has no item id key (one of {', '.join(ITEM_ID_KEYS)}); keys "
                                 f"present: {', '.join(map(str, raw.columns)) or '(none)'}")
    ids = clean_ids(raw[id_key])
    ok, quarantine = screen_rows(raw, [(ids.isna(), f"empty {id_key}")], path, first_row=1)
    raw = raw.loc[ok]

    def field(*keys: str) -> pd.Series:
        key = next((k for k in keys if k in raw.columns), None)
        return raw[key] if key else pd.Series(None, index=raw.index, dtype=object)

    brand_ids = clean_ids(field("brand_id", "brand"))
    brands = brand_ids.map(_brand_names(brands_file)) if brands_file else brand_ids
    record_drop(dropped, f"brand ids in {path.name} not found in brands.json (brand left empty)",
                int((brands.isna() & brand_ids.notna()).sum()))
    price, bad_price = to_numbers(field("price"))
    record_drop(dropped, f"non-numeric prices in {path.name} (set to NaN)", int(bad_price.sum()))
    items = pd.DataFrame({S.ITEM_ID: ids[ok], "title": field("name", "title"), "description": field("description"),
                          "brand": brands, "colour": field("colour", "color"), "category": field("category"),
                          "price": price})
    items, removed = keep_last_per_id(items)
    record_drop(dropped, f"duplicate item ids in {path.name} (last kept)", removed)
    return items, quarantine


def _brand_names(path: Path) -> pd.Series:
    document = read_json_document(path)
    if isinstance(document, dict):
        pairs = pd.Series(document, dtype=object)
        return pd.Series(pairs.to_numpy(), index=clean_ids(pd.Series(pairs.index, dtype=object)))
    if isinstance(document, list) and all(isinstance(d, dict) and "id" in d and "name" in d for d in document):
        table = pd.DataFrame.from_records(document)
        return pd.Series(table["name"].to_numpy(), index=clean_ids(table["id"]))
    raise DataFileError(f"{path}: expected an object of brand id -> name, or an array of {{\"id\", \"name\"}} "
                        "objects")

"""Amazon Reviews (McAuley lab), 2018 and 2023 releases: reviews JSON lines plus optional item metadata.

- 2018: reviews `<Category>.json(.gz)` with reviewerID, asin, overall, unixReviewTime (seconds); meta
  `meta_<Category>.json(.gz)` with asin, title, brand, category (list), price (text such as "$12.99"; empty
  -> NaN; anything else, e.g. leaked CSS, -> NaN and counted in `dropped`), description (list of str or str).
- 2023: reviews `<Category>.jsonl(.gz)` with user_id, parent_asin (the item id), rating, timestamp (ms); meta
  `meta_<Category>.jsonl(.gz)` with parent_asin, title, store (the brand), categories (list), price (number or
  null), description (list), features (list).

`data.path` is a reviews file or a folder; in a folder the files named meta_* are metadata and the other is the
reviews file (options `reviews` / `meta` pick by name when there are several). Next to a reviews file,
meta_<its name> is used when present. The release is detected from the reviews' columns.
Events: event_type "rating", value = the star rating. Malformed reviews (empty ids, non-numeric rating,
unparseable time) are quarantined. Items: title, description (+ features in 2023) as text (lists joined by
" "), brand and categories (list) as categorical, price numeric; duplicate item ids in meta: the last wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from foryou.config import DataConfig
from foryou.data import schema as S
from foryou.data.adapters.common import (
    AdapterOptions,
    build_interactions,
    clean_ids,
    keep_last_per_id,
    parse_options,
    record_drop,
    screen_rows,
    to_numbers,
)
from foryou.data.readers import check_file, read_json_records, require_columns
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.timeparse import parse_timestamps
from foryou.errors import ConfigError, DataFileError

_JSON_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
_PRICE = r"^\s*\$?\s*(\d[\d,]*(?:\.\d+)?)\s*$"


@dataclass(frozen=True)
class Release:
    name: str
    user: str
    item: str
    rating: str
    time: str
    unit: str
    brand: str
    categories: str


RELEASES = (
    Release("2018", "reviewerID", "asin", "overall", "unixReviewTime", "s", "brand", "category"),
    Release("2023", "user_id", "parent_asin", "rating", "timestamp", "ms", "store", "categories"),
)


class AmazonOptions(AdapterOptions):
    reviews: str | None = None
    meta: str | None = None


def load(config: DataConfig) -> SourceTables:
    """Rating events and (when metadata is present) items from an Amazon Reviews 2018 or 2023 category."""
    options = parse_options(AmazonOptions, config.options, "amazon")
    reviews_file, meta_file = _locate(Path(config.path or ""), options)
    raw = read_json_records(reviews_file)
    release = _detect(raw, reviews_file)
    interactions, quarantine = _interactions(raw, release, reviews_file)
    dropped: dict[str, int] = {}
    items, fields = None, FieldRoles()
    if meta_file is not None:
        items = _items(read_json_records(meta_file), release, meta_file, dropped)
        text = ["title", "description", *(["features"] if release.name == "2023" else [])]
        fields = FieldRoles(text=text, categorical=["brand", "categories"], numeric=["price"])
    inputs = [str(reviews_file), *([str(meta_file)] if meta_file else [])]
    return SourceTables(interactions=interactions, items=items, item_fields=fields, quarantine=quarantine,
                        dropped=dropped, inputs=inputs)


def _locate(path: Path, options: AmazonOptions) -> tuple[Path, Path | None]:
    if path.is_file():
        meta = path.parent / options.meta if options.meta else path.parent / f"meta_{path.name}"
        return path, check_file(meta) if options.meta else (meta if meta.is_file() else None)
    if not path.is_dir():
        raise DataFileError(f"data.path {path} does not exist")
    files = sorted(p.name for p in path.iterdir() if p.name.endswith(_JSON_SUFFIXES))
    reviews = _pick([f for f in files if not f.startswith("meta_")], options.reviews, "reviews", path)
    metas = [f for f in files if f.startswith("meta_")]
    if reviews is None:
        raise DataFileError(f"{path} has no reviews file (*.json, *.jsonl, optionally .gz, not named meta_*)")
    meta_name = _pick(metas, options.meta, "meta", path)
    return check_file(path / reviews), (check_file(path / meta_name) if meta_name else None)


def _pick(names: list[str], chosen: str | None, option: str, folder: Path) -> str | None:
    if chosen is not None:
        return chosen
    if len(names) > 1:
        raise ConfigError(f"data.options.{option}: {folder} has several candidate files ({', '.join(names)}); "
                          "name the one to use")
    return names[0] if names else None


def _detect(raw: pd.DataFrame, path: Path) -> Release:
    for release in RELEASES:
        if {release.user, release.item}.issubset(raw.columns):
            require_columns(raw, [release.user, release.item, release.rating, release.time], path)
            return release
    expected = "; ".join(f"{r.name}: {r.user}, {r.item}, {r.rating}, {r.time}" for r in RELEASES)
    raise DataFileError(f"{path} is not an Amazon reviews file: expected the columns of one release ({expected}); "
                        f"columns present: {', '.join(map(str, raw.columns)) or '(none)'}")


def _interactions(raw: pd.DataFrame, release: Release, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    users, items = clean_ids(raw[release.user]), clean_ids(raw[release.item])
    rating, bad_rating = to_numbers(raw[release.rating])
    timestamp, bad_time = parse_timestamps(raw[release.time], release.unit)  # type: ignore[arg-type]
    checks = [(users.isna(), f"empty {release.user}"), (items.isna(), f"empty {release.item}"),
              (bad_rating | raw[release.rating].isna(), f"non-numeric {release.rating}"),
              (bad_time, f"unparseable {release.time}")]
    ok, quarantine = screen_rows(raw, checks, path, first_row=1)
    frame = build_interactions(users[ok], items[ok], timestamp[ok], S.RATING, rating[ok], raw.index[ok].to_numpy())
    return frame, quarantine


def _items(meta: pd.DataFrame, release: Release, path: Path, dropped: dict[str, int]) -> pd.DataFrame:
    require_columns(meta, [release.item], path)

    def column(name: str) -> pd.Series:
        return meta[name] if name in meta.columns else pd.Series(None, index=meta.index, dtype=object)

    price, bad_price = _prices(column("price"))
    items = pd.DataFrame({
        S.ITEM_ID: clean_ids(meta[release.item]), "title": column("title").map(_text),
        "description": column("description").map(_text), "brand": column(release.brand).map(_text),
        "categories": column(release.categories).map(_string_list), "price": price,
    })
    if release.name == "2023":
        items["features"] = column("features").map(_text)
    record_drop(dropped, f"meta rows without {release.item} in {path.name}", int(items[S.ITEM_ID].isna().sum()))
    record_drop(dropped, f"meta prices that are not a number in {path.name} (set to NaN)", int(bad_price.sum()))
    items, removed = keep_last_per_id(items.loc[items[S.ITEM_ID].notna()])
    record_drop(dropped, f"duplicate item ids in {path.name} (last kept)", removed)
    return items


def _prices(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers as they are; text like "$1,299.00" parsed; empty text and anything else NaN (the mask)."""
    text = values.astype("str").str.extract(_PRICE)[0].str.replace(",", "", regex=False)
    price = pd.to_numeric(text, errors="coerce").astype("float64")
    empty = values.isna() | (values.astype("str").str.strip() == "")
    return price, price.isna() & ~empty


def _text(value: object) -> str | None:
    if isinstance(value, list):
        joined = " ".join(str(part).strip() for part in value if str(part).strip())
        return joined or None
    if isinstance(value, str):
        return value.strip() or None
    return None


def _string_list(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [value.strip()] if isinstance(value, str) and value.strip() else []

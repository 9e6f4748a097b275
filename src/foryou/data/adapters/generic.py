"""Bring-your-own-data adapter: interactions (and optionally items, users) described by `TableMapping`s.

Each table is a CSV, Parquet, JSON lines or JSON array file (.gz allowed for text formats), its format given
or taken from the extension. `columns` maps canonical names to source columns; a canonical name that is not
mapped is looked up under its own name. Interactions need user_id, item_id and timestamp; event_type comes from
a column (known aliases such as "addtocart" become canonical names), else from the mapping's constant
`event_type`, else "click"; value is optional (NaN when absent). Item and user fields keep their source column
names; `list_separator` splits categorical strings into lists; vector cells may be lists or JSON arrays.

Malformed interactions (empty ids, unparseable timestamp, non-numeric value) are quarantined; items or users
with an empty id are quarantined; duplicate item or user ids keep the last row (counted in `dropped`); numeric
field values that are not numbers become NaN (counted in `dropped`, nothing is removed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foryou.config import DataConfig, TableMapping, VectorFile
from foryou.data import schema as S
from foryou.data.adapters.common import (
    AdapterOptions,
    build_interactions,
    canonical_event_types,
    clean_ids,
    keep_last_per_id,
    parse_options,
    record_drop,
    screen_rows,
    to_numbers,
)
from foryou.data.quarantine import concat_quarantine
from foryou.data.readers import TableFormat, detect_format, read_table, require_columns
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.timeparse import TimestampUnit, parse_timestamps
from foryou.errors import ConfigError, DataFileError

INTERACTION_KEYS = (S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.EVENT_TYPE, S.VALUE)
DEFAULT_EVENT = S.CLICK


class GenericOptions(AdapterOptions):
    """No options: everything is in data.interactions / data.items / data.users."""


def load(config: DataConfig) -> SourceTables:
    """Interactions, and items / users when mapped, from the user's own files."""
    parse_options(GenericOptions, config.options, "generic")
    if config.interactions is None:
        raise ConfigError("data.interactions is required when data.source is 'generic'")
    interactions, quarantine = _interactions(config.interactions, config.timezone)
    return with_entities(config, interactions, quarantine)


def with_entities(config: DataConfig, interactions: pd.DataFrame, quarantine: pd.DataFrame) -> SourceTables:
    """The source tables: parsed interactions (and their quarantine) with the mapped items / users read here."""
    assert config.interactions is not None
    dropped: dict[str, int] = {}
    parts, inputs = [quarantine], [str(config.interactions.path)]
    tables: dict[str, Any] = {}
    for name, key, mapping in (("items", S.ITEM_ID, config.items), ("users", S.USER_ID, config.users)):
        if mapping is None:
            tables[name], tables[f"{name}_fields"] = None, FieldRoles()
            continue
        frame, fields, bad = _entities(name, key, mapping, dropped)
        tables[name], tables[f"{name}_fields"] = frame, fields
        parts.append(bad)
        inputs.append(str(mapping.path))
    return SourceTables(interactions=interactions, items=tables["items"], users=tables["users"],
                        item_fields=tables["items_fields"], user_fields=tables["users_fields"],
                        quarantine=concat_quarantine(parts), dropped=dropped, inputs=inputs)


def _read(name: str, mapping: TableMapping, key: str) -> tuple[pd.DataFrame, int]:
    """The table and the file row number of its first record (2 for CSV with a header, else 1)."""
    fmt = checked_format(name, mapping, key)
    frame = read_table(mapping.path, fmt, sep=mapping.csv_separator)
    return frame, first_record_row(fmt)


def checked_format(name: str, mapping: TableMapping, key: str) -> TableFormat:
    """The table's file format (csv, parquet, jsonl) once its `columns` keys are known canonical names."""
    unknown = [c for c in mapping.columns if c not in (INTERACTION_KEYS if name == "interactions" else (key,))]
    if unknown:
        allowed = ", ".join(INTERACTION_KEYS if name == "interactions" else (key,))
        raise ConfigError(f"data.{name}.columns.{unknown[0]}: unknown canonical name; use one of {allowed}")
    try:
        return detect_format(mapping.path) if mapping.format == "auto" else mapping.format
    except DataFileError as exc:
        raise DataFileError(f"data.{name}.path: {exc}") from exc


def first_record_row(fmt: str) -> int:
    """The file row number of a table's first record: 2 under a CSV header, else 1."""
    return 2 if fmt == "csv" else 1


def _source(mapping: TableMapping, canonical: str) -> str:
    return mapping.columns.get(canonical, canonical)


def _interactions(mapping: TableMapping, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw, first_row = _read("interactions", mapping, S.ITEM_ID)
    return parse_interaction_rows(raw, mapping, timezone, first_row, mapping.timestamp_unit)


def interaction_reasons(mapping: TableMapping) -> list[str]:
    """The quarantine reasons of interaction rows, in the order the checks run (a row gets the first it fails)."""
    return [f"empty user id ({_source(mapping, S.USER_ID)})", f"empty item id ({_source(mapping, S.ITEM_ID)})",
            f"unparseable timestamp ({_source(mapping, S.TIMESTAMP)})",
            f"non-numeric value ({_source(mapping, S.VALUE)})", f"empty event type ({_source(mapping, S.EVENT_TYPE)})"]


def parse_interaction_rows(raw: pd.DataFrame, mapping: TableMapping, timezone: str, first_row: int,
                           unit: TimestampUnit) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(canonical interactions, quarantine) of raw source rows whose index is their record number.

    Row-local, so the Spark engine runs it on each partition of a large file and gets the pandas engine's rows.
    """
    required = [S.USER_ID, S.ITEM_ID, S.TIMESTAMP]
    optional = [k for k in (S.EVENT_TYPE, S.VALUE) if k in mapping.columns or k in raw.columns]
    names = {_source(mapping, k): k for k in [*required, *optional]}
    require_columns(raw, names, mapping.path, label="interactions file", meanings=names)
    users, items = clean_ids(raw[_source(mapping, S.USER_ID)]), clean_ids(raw[_source(mapping, S.ITEM_ID)])
    timestamp, bad_time = parse_timestamps(raw[_source(mapping, S.TIMESTAMP)], unit, timezone)
    value, bad_value = (to_numbers(raw[_source(mapping, S.VALUE)]) if S.VALUE in optional
                        else (pd.Series(np.nan, index=raw.index), pd.Series(False, index=raw.index)))
    events = _event_types(raw, mapping, S.EVENT_TYPE in optional)
    reasons = interaction_reasons(mapping)
    checks = [(users.isna(), reasons[0]), (items.isna(), reasons[1]), (bad_time, reasons[2]),
              (bad_value, reasons[3])]
    if isinstance(events, pd.Series):
        checks.append((events.isna(), reasons[4]))
    ok, quarantine = screen_rows(raw, checks, mapping.path, first_row=first_row)
    chosen = events[ok] if isinstance(events, pd.Series) else events
    frame = build_interactions(users[ok], items[ok], timestamp[ok], chosen, value[ok], raw.index[ok].to_numpy())
    return frame, quarantine


def _event_types(raw: pd.DataFrame, mapping: TableMapping, has_column: bool) -> pd.Series | str:
    if has_column:
        column = raw[_source(mapping, S.EVENT_TYPE)]
        return canonical_event_types(column).where(column.notna())
    return mapping.event_type or DEFAULT_EVENT


def _entities(name: str, key: str, mapping: TableMapping,
              dropped: dict[str, int]) -> tuple[pd.DataFrame, FieldRoles, pd.DataFrame]:
    """An items or users table: id + fields with their source names; returns (table, roles, quarantine)."""
    raw, first_row = _read(name, mapping, key)
    id_column = _source(mapping, key)
    fields = FieldRoles(text=list(mapping.text), categorical=list(mapping.categorical),
                        numeric=list(mapping.numeric), vector=list(mapping.vector))
    wanted = {**{f: f"{name[:-1]} field" for f in fields.all()}, id_column: key}
    require_columns(raw, wanted, mapping.path, label=f"{name} file", meanings=wanted)
    ids = clean_ids(raw[id_column])
    ok, quarantine = screen_rows(raw, [(ids.isna(), f"empty {key} ({id_column})")], mapping.path, first_row)
    table = pd.DataFrame({key: ids[ok]})
    for column in fields.text:
        table[column] = raw.loc[ok, column].astype("str")
    for column in fields.categorical:
        table[column] = _categorical(raw.loc[ok, column], mapping.list_separator)
    for column in fields.numeric:
        table[column], bad = to_numbers(raw.loc[ok, column])
        record_drop(dropped, f"non-numeric values in {name} column '{column}' (set to NaN)", int(bad.sum()))
    for column in fields.vector:
        table[column] = [_vector(v, mapping.path, column) for v in raw.loc[ok, column]]
    for column, source in mapping.vector_files.items():
        vectors = _vector_file(source, f"data.{name}.vector_files.{column}")
        table[column] = [vectors.get(entity) for entity in table[key]]
        fields.vector.append(column)
    table, removed = keep_last_per_id(table, key)
    record_drop(dropped, f"duplicate {key}s in {Path(mapping.path).name} (last kept)", removed)
    return table, fields, quarantine


def _categorical(values: pd.Series, separator: str | None) -> pd.Series:
    if separator is None:
        return values.where(values.isna(), values.astype("str"))
    return pd.Series([[part.strip() for part in str(v).split(separator) if part.strip()]
                      if isinstance(v, str) else [] for v in values], index=values.index, dtype=object)


def _vector_file(source: VectorFile, where: str) -> dict[str, list[float]]:
    """id -> list of floats from an (n, d) .npy and its n ids (a repeated id: its last row); a mismatch or a bad
    array names the file."""
    try:
        array = np.load(source.path, allow_pickle=False)
        ids = [line.strip() for line in Path(source.ids).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{where}: cannot read {source.path} / {source.ids}: {exc}") from exc
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise DataFileError(f"{where}: {source.path} holds a {array.dtype} array of shape {array.shape}, "
                            "expected (n, d) numbers")
    if len(ids) != len(array):
        raise DataFileError(f"{where}: {source.ids} has {len(ids)} ids for the {len(array)} rows of {source.path}")
    return {entity: [float(x) for x in row] for entity, row in zip(ids, array, strict=True)}


def _vector(value: Any, path: Path, column: str) -> list[float] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
        return [float(x) for x in parsed]
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{path}: vector column '{column}' holds {str(value)[:40]!r}, expected a list of "
                            "numbers or a JSON array like [0.1, 0.2]") from exc

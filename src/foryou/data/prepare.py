"""`prepare`: adapter -> field roles -> cleaning -> weights -> dedup -> filters -> split -> dense indices.

The pipeline is written once here (stages, step records, errors, indexing, report) over an engine that owns the
table operations (`foryou.data.engine.PrepareEngine`): pandas in this process or Spark, which give the same tables.
The result is a `Dataset` whose manifest records the count after every step, what each step removed, the
field roles, the config and the sha256 of every input file, so a prepared dataset can be checked and rebuilt.
Identity order: users and items are indexed in sorted id order (stable whatever the file order).
Kept + quarantined + removed always equals the adapter's interaction rows: nothing disappears uncounted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foryou.config import FeaturesConfig, RunConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset, Manifest
from foryou.data.engine import CleanSource, Events, PrepareEngine
from foryou.data.filters import filter_min_interactions
from foryou.data.pandas_engine import PandasEngine
from foryou.data.quarantine import concat_quarantine
from foryou.data.report import build_report
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.spark.engine import SparkEngine
from foryou.errors import ConfigError, EmptyDatasetError
from foryou.progress import bar as progress_bar

logger = logging.getLogger(__name__)

STAGES = ("read source", "clean", "weights", "dedup", "filters", "split", "index")
INTERACTION_OUTPUT = (S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP, S.EVENT_TYPE, S.VALUE, S.WEIGHT, S.SPLIT,
                      S.COLD_USER, S.COLD_ITEM, S.SOURCE_ORDER)


@dataclass
class PrepareResult:
    """A prepared dataset, the rows set aside on the way, and the data report (a JSON-ready dict)."""

    dataset: Dataset
    quarantine: pd.DataFrame
    report: dict[str, Any]


def prepare_dataset(config: RunConfig, progress: bool = True) -> PrepareResult:
    """Run every preparation step (nothing is written; see `write_prepared`) on `data.engine`: pandas in this
    process, or Spark (`foryou.data.spark`), which gives the same tables."""
    engine: PrepareEngine[Any] = SparkEngine(config.spark) if config.data.engine == "spark" else PandasEngine()
    return _prepare(config, engine, progress, hash_inputs=True)


def inspect_dataset(config: RunConfig, progress: bool = True) -> PrepareResult:
    """What `validate` runs: every step of `prepare_dataset` except hashing the inputs (no file is written)."""
    return _prepare(config, PandasEngine(), progress, hash_inputs=False)


def write_prepared(result: PrepareResult, out_dir: Path) -> Path:
    """Write the dataset (Parquet + manifest.json), quarantine.csv and report.json into `out_dir`."""
    out_dir = Path(out_dir)
    result.dataset.save(out_dir)
    result.quarantine.to_csv(out_dir / "quarantine.csv", index=False)
    (out_dir / "report.json").write_text(json.dumps(result.report, indent=2))
    logger.info("wrote prepared dataset to %s", out_dir)
    return out_dir


def _prepare(config: RunConfig, engine: PrepareEngine[Events], progress: bool, hash_inputs: bool) -> PrepareResult:
    """The stages in order: the engine transforms the events, this function records and checks every step."""
    desc = "prepare" if engine.name == "pandas" else f"prepare ({engine.name})"
    bar = progress_bar(total=len(STAGES), desc=desc, unit="step", enabled=progress)
    steps: list[dict[str, Any]] = []

    def advance(stage: str, rows: int | None = None) -> None:
        bar.set_postfix_str(stage)
        bar.update(1)
        if rows is not None:
            logger.info("%s: %d interactions", stage, rows)

    try:
        source = engine.read(config)
        tables = source.tables
        _source_steps(tables, steps, source.source_rows)
        fields = _field_roles(tables, config.features)
        advance("read source", source.source_rows)
        weighted = engine.count(source.events)
        quarantine = concat_quarantine([tables.quarantine, source.clean_quarantine])
        _record_cleaning(steps, source, weighted, len(quarantine))
        advance("clean", weighted + source.below_threshold)
        _record_weights(steps, config, source.below_threshold, weighted)
        advance("weights", weighted)
        events = engine.deduplicate(source.events, config.events.dedup)
        kept = engine.count(events)
        _record_step(steps, f"duplicates (dedup={config.events.dedup})", weighted - kept, kept)
        advance("dedup", kept)
        events, filter_steps = filter_min_interactions(events, kept, config.filters, engine)
        for fstep in filter_steps:
            _record_step(steps, fstep.name, fstep.removed_rows, fstep.remaining_rows)
        advance("filters", filter_steps[-1].remaining_rows)
        frame = engine.split(events, config.split)
        advance("split", len(frame))
        dataset = _index_events(frame, tables, source.source_rows, fields, config, steps, hash_inputs)
        advance("index")
    finally:
        bar.close()
    return PrepareResult(dataset, quarantine, build_report(dataset, quarantine))


def _record_step(steps: list[dict[str, Any]], name: str, removed: int, remaining: int | None,
                 applies: bool = True) -> None:
    """Append one manifest step: what it removed and how many interactions remain (None: not counted)."""
    if applies:
        steps.append({"step": name, "removed": int(removed), "remaining": remaining})


def _source_steps(tables: SourceTables, steps: list[dict[str, Any]], source_rows: int) -> None:
    """The adapter's own rules and quarantine, recorded first (they act on source rows, before any event)."""
    for rule, count in tables.dropped.items():
        _record_step(steps, f"source: {rule}", count, None)
    _record_step(steps, "source: malformed rows quarantined", len(tables.quarantine), source_rows)


def _record_cleaning(steps: list[dict[str, Any]], source: CleanSource[Any], weighted: int,
                     quarantined: int) -> None:
    malformed = len(source.clean_quarantine)
    cleaned = weighted + source.below_threshold
    _record_step(steps, "malformed interactions quarantined", malformed, cleaned)
    if cleaned == 0:
        raise EmptyDatasetError(f"no valid interactions: the source gave {source.source_rows} and cleaning "
                                f"quarantined {malformed}; {quarantined} rows quarantined in all")


def _record_weights(steps: list[dict[str, Any]], config: RunConfig, below: int, weighted: int) -> None:
    threshold = config.events.rating_threshold
    _record_step(steps, f"ratings below rating_threshold={threshold}", below, weighted,
                 config.events.rating_mode == "threshold")
    if weighted == 0:
        raise EmptyDatasetError(f"events.rating_threshold={threshold} removed every interaction ({below} ratings "
                                "below it); lower the threshold or use events.rating_mode 'all' or 'weight'")


def _field_roles(tables: SourceTables, features: FeaturesConfig) -> tuple[FieldRoles, FieldRoles]:
    """The adapter's roles, with the ones set in `features` (None = keep the adapter's) replacing them."""
    items = FieldRoles(**tables.item_fields.to_dict())
    columns = list(tables.items.columns) if tables.items is not None else []
    for role, chosen, key in (("text", features.text_fields, "text_fields"),
                              ("categorical", features.categorical_fields, "categorical_fields"),
                              ("numeric", features.numeric_fields, "numeric_fields")):
        if chosen is not None:
            _check_columns(chosen, columns, f"features.{key}", "items")
            setattr(items, role, list(chosen))
    users = FieldRoles(**tables.user_fields.to_dict())
    if features.user_fields is not None:
        table = tables.users if tables.users is not None else pd.DataFrame()
        _check_columns(features.user_fields, list(table.columns), "features.user_fields", "users")
        known = set(users.all())
        users = FieldRoles(
            categorical=[f for f in features.user_fields if f in users.categorical
                         or (f not in known and not pd.api.types.is_numeric_dtype(table[f]))],
            numeric=[f for f in features.user_fields if f in users.numeric
                     or (f not in known and pd.api.types.is_numeric_dtype(table[f]))])
    return items, users


def _check_columns(chosen: list[str], columns: list[str], key: str, table: str) -> None:
    missing = [c for c in chosen if c not in columns]
    if missing:
        have = ", ".join(c for c in columns if c not in (S.ITEM_ID, S.USER_ID)) or "(no table)"
        raise ConfigError(f"{key}: {', '.join(repr(c) for c in missing)} not in the {table} table "
                          f"(its fields: {have})")


def _entity_table(ids: np.ndarray, catalog: pd.DataFrame | None, key: str, index: str,
                  fields: FieldRoles) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per indexed id (idx order) with its fields; ids absent from the catalog get an empty row."""
    base = pd.DataFrame({index: np.arange(len(ids), dtype=np.int64), key: ids})
    if catalog is None:
        catalog = pd.DataFrame({key: pd.Series(dtype="str")})
    duplicated = catalog.duplicated(key, keep="last")
    catalog = catalog.loc[~duplicated, [key, *[f for f in fields.all() if f in catalog.columns]]]
    catalog = catalog.assign(**{key: catalog[key].astype("str")})
    table = base.merge(catalog, on=key, how="left", validate="one_to_one")
    known = pd.Index(catalog[key])
    stats = {"without_metadata": int((~pd.Index(ids).isin(known)).sum()),
             "catalog_without_interactions": int((~known.isin(ids)).sum()),
             "duplicate_catalog_ids": int(duplicated.sum())}
    return table, stats


def _index_events(events: pd.DataFrame, tables: SourceTables, source_rows: int, fields: tuple[FieldRoles, FieldRoles],
                 config: RunConfig, steps: list[dict[str, Any]], hash_inputs: bool) -> Dataset:
    """The dataset: ids indexed in sorted order, rows sorted by (user, time, source order), the manifest."""
    item_fields, user_fields = fields
    user_ids = np.sort(events[S.USER_ID].unique().astype(object))
    item_ids = np.sort(events[S.ITEM_ID].unique().astype(object))
    items, item_stats = _entity_table(item_ids, tables.items, S.ITEM_ID, S.ITEM_IDX, item_fields)
    users, _ = _entity_table(user_ids, tables.users, S.USER_ID, S.USER_IDX, user_fields)
    frame = events.assign(**{
        S.USER_IDX: pd.Index(user_ids).get_indexer(events[S.USER_ID]).astype(np.int64),
        S.ITEM_IDX: pd.Index(item_ids).get_indexer(events[S.ITEM_ID]).astype(np.int64)})
    frame = frame.sort_values([S.USER_IDX, S.TIMESTAMP, S.SOURCE_ORDER], kind="stable")
    frame = frame.loc[:, list(INTERACTION_OUTPUT)].reset_index(drop=True)
    counts = {"source_interactions": source_rows, "interactions": len(frame),
              "users": len(users), "items": len(items),
              **{split: int((frame[S.SPLIT] == split).sum()) for split in S.SPLITS},
              "items_without_metadata": item_stats["without_metadata"],
              "catalog_items_without_interactions": item_stats["catalog_without_interactions"],
              "duplicate_catalog_ids": item_stats["duplicate_catalog_ids"]}
    manifest = Manifest(source=config.data.source, counts=counts, item_fields=item_fields.to_dict(),
                        user_fields=user_fields.to_dict(), config=config.model_dump(mode="json"),
                        input_hashes=_hashes(tables.inputs) if hash_inputs else {}, steps=steps)
    return Dataset(frame, items, users, manifest)


def _hashes(inputs: list[str]) -> dict[str, str]:
    result = {}
    for name in inputs:
        digest = hashlib.sha256()
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        result[str(name)] = digest.hexdigest()
    return result

"""Helpers every adapter shares: option validation, id cleaning, row screening, canonical table assembly.

They keep the adapters short and make every source follow the same rules: ids are strings, malformed rows go
to quarantine with the first problem found, duplicate catalog rows are counted, and the interactions table
always has the same columns and dtypes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from foryou.data import schema as S
from foryou.data.quarantine import concat_quarantine, quarantine_rows
from foryou.errors import ConfigError, DataFileError

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class AdapterOptions(BaseModel):
    """Base for adapter option models: unknown options are errors."""

    model_config = ConfigDict(extra="forbid")


def parse_options(model: type[OptionsT], options: dict[str, Any], source: str) -> OptionsT:
    """Validate `data.options` for one adapter; a bad option is a ConfigError naming `data.options.<key>`."""
    try:
        return model.model_validate(options or {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            message = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"data.options.{key}: {message}")
        known = ", ".join(model.model_fields) or "(none)"
        raise ConfigError(f"invalid options for adapter '{source}': {'; '.join(problems)} "
                          f"(known options: {known})") from exc


def clean_ids(values: pd.Series) -> pd.Series:
    """Ids as stripped strings; integral floats lose their '.0' ("17850.0" -> "17850"); empty -> NaN."""
    text = values.astype("str")
    text = text.str.strip().str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    return text.where(text.str.len() > 0).astype("str")


def to_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float values, mask of entries present but not numeric); empty entries become NaN, not malformed."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers, numbers.isna() & values.notna()


def screen_rows(frame: pd.DataFrame, checks: Sequence[tuple[pd.Series, str]], file: Path | str,
                first_row: int = 2) -> tuple[pd.Series, pd.DataFrame]:
    """(rows that pass every check, quarantine of the others); each bad row is quarantined once, first reason."""
    bad = pd.Series(False, index=frame.index)
    parts = []
    for mask, reason in checks:
        fresh = mask.fillna(False).astype(bool) & ~bad
        parts.append(quarantine_rows(frame, fresh, file, reason, first_row=first_row))
        bad |= fresh
    return ~bad, concat_quarantine(parts)


def missing_id_checks(frame: pd.DataFrame, columns: Iterable[str]) -> list[tuple[pd.Series, str]]:
    """One check per id column: null or empty ids are malformed."""
    return [(frame[column].isna(), f"empty {column}") for column in columns]


def build_interactions(user_id: pd.Series, item_id: pd.Series, timestamp: pd.Series, event_type: pd.Series | str,
                       value: pd.Series | float, source_order: pd.Series | np.ndarray) -> pd.DataFrame:
    """The canonical interactions table with its dtypes, in the given row order, index reset."""
    frame = pd.DataFrame({
        S.USER_ID: user_id.astype("str").to_numpy(),
        S.ITEM_ID: item_id.astype("str").to_numpy(),
        S.TIMESTAMP: pd.Series(timestamp).to_numpy(),
        S.EVENT_TYPE: event_type.to_numpy() if isinstance(event_type, pd.Series) else event_type,
        S.VALUE: value.to_numpy(dtype="float64") if isinstance(value, pd.Series) else float(value),
        S.SOURCE_ORDER: np.asarray(source_order, dtype=np.int64),
    })
    frame[S.TIMESTAMP] = pd.to_datetime(frame[S.TIMESTAMP], utc=True).astype("datetime64[ns, UTC]")
    frame[S.EVENT_TYPE] = frame[S.EVENT_TYPE].astype("str")
    frame[S.VALUE] = frame[S.VALUE].astype("float64")
    return frame


def keep_last_per_id(frame: pd.DataFrame, key: str = S.ITEM_ID) -> tuple[pd.DataFrame, int]:
    """One row per `key`, the last occurrence in file order winning; returns (table, rows removed)."""
    duplicated = frame.duplicated(key, keep="last")
    return frame.loc[~duplicated].reset_index(drop=True), int(duplicated.sum())


def record_drop(dropped: dict[str, int], rule: str, count: int) -> None:
    """Count rows removed on purpose; rules that removed nothing are still listed (as 0) for transparency."""
    dropped[rule] = dropped.get(rule, 0) + int(count)


def find_optional(folder: Path, names: Sequence[str]) -> Path | None:
    """The first of `names` present in `folder` (exact name, then with .gz), or None."""
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def find_file(folder: Path, names: Sequence[str]) -> Path:
    """Like `find_optional`, but a DataFileError naming the expected files when none is present."""
    found = find_optional(folder, names)
    if found is None:
        raise DataFileError(f"{folder} has none of the expected files: {', '.join(names)}")
    return found


def require_folder(path: Path) -> Path:
    """`path` if it is an existing folder; DataFileError otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"data.path {path} does not exist")
    if not path.is_dir():
        raise DataFileError(f"data.path {path} must be a folder for this source")
    return path


def most_frequent(frame: pd.DataFrame, key: str, column: str) -> pd.Series:
    """Per `key`, the most frequent non-null value of `column`; ties go to the value that sorts first."""
    present = frame.loc[frame[column].notna(), [key, column]]
    counts = present.groupby([key, column], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values(["n", column], ascending=[False, True], kind="stable")
    return counts.drop_duplicates(key).set_index(key)[column]


# Common spellings of the canonical event types; anything not listed is kept as given (lower-cased).
EVENT_ALIASES = {
    "addtocart": S.ADD_TO_CART, "add-to-cart": S.ADD_TO_CART, "cart": S.ADD_TO_CART, "add to cart": S.ADD_TO_CART,
    "transaction": S.PURCHASE, "buy": S.PURCHASE, "order": S.PURCHASE, "checkout": S.PURCHASE,
    "like": S.SAVE, "favorite": S.SAVE, "favourite": S.SAVE, "wishlist": S.SAVE, "bookmark": S.SAVE,
    "impression": S.VIEW, "pageview": S.VIEW, "page_view": S.VIEW, "detail_view": S.VIEW,
    "rate": S.RATING, "review": S.RATING,
}


def canonical_event_types(values: pd.Series) -> pd.Series:
    """Lower-cased, stripped event names with known aliases mapped to the canonical ones (schema.py)."""
    names = values.astype("str").str.strip().str.lower()
    return names.replace(EVENT_ALIASES)

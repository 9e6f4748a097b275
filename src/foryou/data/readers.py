"""Read the input files every adapter needs (CSV, Parquet, JSON lines, JSON arrays; plain or .gz).

Every failure becomes a `DataFileError` naming the path and what was expected, so the user knows which file to
fix; `require_columns` gives a `MissingColumnError` naming the column, the file and the columns it does have.
Values are read as strings (CSV, JSON lines) so that ids keep leading zeros; adapters convert what they need.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from foryou.errors import DataFileError, MissingColumnError

TableFormat = Literal["auto", "csv", "parquet", "jsonl", "json"]

_SUFFIX_FORMATS: dict[str, TableFormat] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".dat": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
}


def detect_format(path: Path) -> TableFormat:
    """The format implied by the file name (a trailing .gz is ignored); DataFileError when there is none."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffixes[-1]]
    known = ", ".join(sorted({*_SUFFIX_FORMATS, ".csv.gz", ".jsonl.gz", ".json.gz"}))
    raise DataFileError(f"cannot tell the format of {path} from its name; expected one of {known} (or set format)")


def check_file(path: Path) -> Path:
    """`path` as a Path if it is a readable file; DataFileError otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"input file {path} does not exist")
    if not path.is_file():
        raise DataFileError(f"input path {path} is not a file")
    return path


def read_csv(path: Path, *, sep: str = ",", header: bool = True, names: list[str] | None = None,
             encoding: str = "utf-8", dtype: Any = str, quoting: int = csv.QUOTE_MINIMAL) -> pd.DataFrame:
    """A CSV (or any delimited text, .gz allowed) as strings; empty cells are NaN; the index is the record number.

    A multi-character `sep` (MovieLens '::') is swapped for a control character first, so the C parser reads it.
    """
    path = check_file(path)
    source: Any = path
    described = _sep_name(sep)
    if len(sep) > 1:  # e.g. MovieLens '::': swap for a control character so the fast C parser can read it
        source = io.BytesIO(_read_bytes(path).replace(sep.encode(encoding), b"\x1f"))
        sep, quoting = "\x1f", csv.QUOTE_NONE
    try:
        return pd.read_csv(source, sep=sep, header=0 if header else None, names=names, dtype=dtype,
                           encoding=encoding, keep_default_na=False, na_values=[""], quoting=quoting,
                           compression="infer" if source is path else None)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, gzip.BadGzipFile,
            zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise DataFileError(f"{path} is not a readable {described}-separated text file "
                            f"(encoding {encoding}): {exc}") from exc
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc}") from exc


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file; DataFileError when it is not one."""
    path = check_file(path)
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{path} is not a readable Parquet file: {exc}") from exc


def read_json_records(path: Path) -> pd.DataFrame:
    """JSON lines, or one JSON array of objects (.gz allowed); one row per object, columns = union of keys.

    Lines that are blank are skipped; a line that is not a JSON object is a DataFileError naming its number.
    The index is the 0-based record number (line order for JSON lines).
    """
    text = _read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path} is not valid JSON (expected an array of objects): {exc}") from exc
        if not all(isinstance(r, dict) for r in records):
            raise DataFileError(f"{path}: expected a JSON array of objects")
        return pd.DataFrame.from_records(records) if records else pd.DataFrame()
    try:
        frame = pd.read_json(io.StringIO(text), lines=True, dtype=False, convert_dates=False)
    except ValueError:  # find and name the offending line
        return _json_lines(path, text)
    return frame if all(isinstance(c, str) for c in frame.columns) else _json_lines(path, text)


def _json_lines(path: Path, text: str) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path} line {number} is not valid JSON (expected JSON lines, one object "
                                f"per line): {exc}") from exc
        if not isinstance(record, dict):
            raise DataFileError(f"{path} line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


def read_json_document(path: Path) -> Any:
    """One JSON document (object or array, .gz allowed); DataFileError when the file is not valid JSON."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path} is not valid JSON (expected one JSON document): {exc}") from exc


def read_table(path: Path, fmt: TableFormat = "auto", *, sep: str = ",") -> pd.DataFrame:
    """Any supported table, its format given or taken from the file name."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "csv":
        return read_csv(path, sep=sep)
    if fmt == "parquet":
        return read_parquet(path)
    return read_json_records(path)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path | str, *, label: str = "file",
                    meanings: Mapping[str, str] | None = None) -> None:
    """Raise MissingColumnError for the first of `columns` absent from `frame`.

    The message names the file, the column, what it was meant to be (`meanings`: source column -> canonical
    name) and the columns present, e.g. "interactions file events.csv has no column 'ts' (mapped to timestamp);
    columns present: a, b, c".
    """
    present = [str(c) for c in frame.columns]
    for column in columns:
        if column not in frame.columns:
            role = f" (mapped to {meanings[column]})" if meanings and column in meanings else ""
            raise MissingColumnError(f"{label} {path} has no column '{column}'{role}; "
                                     f"columns present: {', '.join(present) or '(none)'}")


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return _read_bytes(path).decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path} is not {encoding} text: {exc}") from exc


def _read_bytes(path: Path) -> bytes:
    path = check_file(path)
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (gzip.BadGzipFile, EOFError) as exc:
        raise DataFileError(f"{path} is not a valid gzip file: {exc}") from exc
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc}") from exc


def _sep_name(sep: str) -> str:
    return {",": "comma", "\t": "tab", "|": "pipe", ";": "semicolon"}.get(sep, repr(sep))


__all__ = ["check_file", "detect_format", "read_csv", "read_json_document", "read_json_records", "read_parquet", "read_table",
           "require_columns"]

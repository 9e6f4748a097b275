"""Readers: every format, .gz, string dtypes, and the errors naming the path and what was expected."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from foryou.data.readers import detect_format, read_csv, read_json_records, read_table, require_columns
from foryou.errors import DataFileError, MissingColumnError


def test_csv_keeps_ids_as_strings_and_blank_as_nan(tmp_path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,x\n007,\n8,NA\n")
    frame = read_csv(path)
    assert frame["id"].tolist() == ["007", "8"]
    assert frame["x"].isna().tolist() == [True, False]  # only empty cells are missing; "NA" is a value


def test_gz_and_multichar_separator(tmp_path) -> None:
    path = tmp_path / "r.dat.gz"
    path.write_bytes(gzip.compress("1::Café::5\n2::b|c::4\n".encode("latin-1")))
    frame = read_csv(path, sep="::", header=False, names=["u", "t", "r"], encoding="latin-1")
    assert frame.values.tolist() == [["1", "Café", "5"], ["2", "b|c", "4"]]


def test_json_lines_and_array(tmp_path) -> None:
    lines = tmp_path / "a.jsonl.gz"
    lines.write_bytes(gzip.compress(b'{"a": "01", "b": [1, 2]}\n\n{"a": "02", "c": 3}\n'))
    frame = read_json_records(lines)
    assert frame["a"].tolist() == ["01", "02"] and frame["b"].iloc[0] == [1, 2]
    array = tmp_path / "b.json"
    array.write_text('[{"a": 1}, {"a": 2, "b": "x"}]')
    assert read_table(array)["a"].tolist() == [1, 2]


def test_parquet_round_trip(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    assert read_table(path)["a"].tolist() == [1, 2]


def test_detect_format() -> None:
    assert detect_format("x/events.csv.gz") == "csv"
    assert detect_format("items.jsonl") == "jsonl"
    assert detect_format("t.PARQUET") == "parquet"
    with pytest.raises(DataFileError, match=r"cannot tell the format of data\.xml"):
        detect_format("data.xml")


def test_errors_name_path_and_expectation(tmp_path) -> None:
    with pytest.raises(DataFileError, match=r"input file .*missing\.csv does not exist"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataFileError, match=r"is not a file"):
        read_csv(tmp_path)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataFileError, match=r"bad\.jsonl line 2 is not valid JSON \(expected JSON lines"):
        read_json_records(bad_json)
    not_gzip = tmp_path / "fake.csv.gz"
    not_gzip.write_text("a,b\n")
    with pytest.raises(DataFileError, match=r"fake\.csv\.gz is not a readable comma-separated text file"):
        read_csv(not_gzip)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a\nCaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin\.csv is not a readable comma-separated text file "
                                            r"\(encoding utf-8\)"):
        read_csv(latin)


def test_require_columns() -> None:
    frame = pd.DataFrame(columns=["a", "b"])
    require_columns(frame, ["a", "b"], "f.csv")
    with pytest.raises(MissingColumnError, match=r"^file f\.csv has no column 'c'; columns present: a, b$"):
        require_columns(frame, ["a", "c"], "f.csv")
    with pytest.raises(MissingColumnError, match=r"^events file e\.csv has no column 'ts' \(mapped to timestamp\)"):
        require_columns(frame, ["ts"], "e.csv", label="events file", meanings={"ts": "timestamp"})

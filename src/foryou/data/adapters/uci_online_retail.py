"""UCI Online Retail (Chen, Sain & Guo 2012): one CSV (plain or .gz) or the original XLSX of invoice lines.

Columns: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country.
CustomerID may be written as a float ("17850.0" -> user "17850"). InvoiceDate (ISO text or an Excel datetime)
is shop-local time, localised to `data.timezone` (set "Europe/London" for this source).

Malformed rows (quarantined): empty InvoiceNo or StockCode, unparseable InvoiceDate, non-numeric Quantity or
UnitPrice. Rules of the source (counted in `dropped`, applied in this order): rows without CustomerID, rows of
cancelled invoices (InvoiceNo starting with "C"), rows with Quantity <= 0; then the lines of one StockCode
within one invoice of one customer collapse into one purchase event (quantities summed, first line's position
kept as source_order). Items: `description` (text) = the StockCode's most frequent Description over kept lines
(ties: alphabetical first), `price` (numeric) = median UnitPrice over kept lines. Users: `country`
(categorical) = the customer's most frequent Country (ties: alphabetical first).
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
    missing_id_checks,
    most_frequent,
    parse_options,
    record_drop,
    screen_rows,
    to_numbers,
)
from foryou.data.readers import check_file, read_csv, require_columns
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.timeparse import parse_timestamps
from foryou.errors import DataFileError

COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
           "Country"]
NO_CUSTOMER = "rows without CustomerID"
CANCELLED = "rows of cancelled invoices (InvoiceNo starting with 'C')"
NON_POSITIVE = "rows with Quantity <= 0"
COLLAPSED = "invoice lines merged into one event per (customer, StockCode, invoice) (quantities summed)"


class UciOptions(AdapterOptions):
    """No options: the protocol's rules are fixed so that counts are comparable across papers."""


def load(config: DataConfig) -> SourceTables:
    """Purchase events, items and users from the UCI Online Retail file at `data.path`."""
    parse_options(UciOptions, config.options, "uci_online_retail")
    path = check_file(Path(config.path or ""))
    raw = _read(path)
    require_columns(raw, COLUMNS, path)
    lines, quarantine = _valid_lines(raw, path, config.timezone)
    dropped: dict[str, int] = {}
    lines = _apply_rules(lines, dropped)
    events = _collapse(lines, dropped)
    return SourceTables(
        interactions=build_interactions(events["CustomerID"], events["StockCode"], events["time"], S.PURCHASE,
                                        events["quantity"], events["line"]),
        items=_items(lines), users=_users(lines),
        item_fields=FieldRoles(text=["description"], numeric=["price"]),
        user_fields=FieldRoles(categorical=["country"]),
        quarantine=quarantine, dropped=dropped, inputs=[str(path)],
    )


def _read(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".xlsx", ".xls"):
        try:
            return pd.read_excel(path, dtype=object)
        except (OSError, ValueError, KeyError) as exc:
            raise DataFileError(f"{path} is not a readable Excel workbook: {exc}") from exc
    return read_csv(path)


def _valid_lines(raw: pd.DataFrame, path: Path, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed lines (quarantining malformed ones): ids as strings, numbers as floats, times in UTC."""
    lines = pd.DataFrame({
        "InvoiceNo": clean_ids(raw["InvoiceNo"]), "StockCode": clean_ids(raw["StockCode"]),
        "CustomerID": clean_ids(raw["CustomerID"]), "Description": raw["Description"], "Country": raw["Country"],
        "line": raw.index,
    }, index=raw.index)
    lines["time"], bad_time = parse_timestamps(raw["InvoiceDate"], "iso", timezone)
    lines["quantity"], bad_quantity = to_numbers(raw["Quantity"])
    lines["price"], bad_price = to_numbers(raw["UnitPrice"])
    checks = [*missing_id_checks(lines, ["InvoiceNo", "StockCode"]), (bad_time, "unparseable InvoiceDate"),
              (bad_quantity | raw["Quantity"].isna(), "non-numeric Quantity"),
              (bad_price, "non-numeric UnitPrice")]
    ok, quarantine = screen_rows(raw, checks, path)
    return lines.loc[ok], quarantine


def _apply_rules(lines: pd.DataFrame, dropped: dict[str, int]) -> pd.DataFrame:
    for rule, removed in (
        (NO_CUSTOMER, lambda f: f["CustomerID"].isna()),
        (CANCELLED, lambda f: f["InvoiceNo"].str.upper().str.startswith("C")),
        (NON_POSITIVE, lambda f: f["quantity"] <= 0),
    ):
        mask = removed(lines)
        record_drop(dropped, rule, int(mask.sum()))
        lines = lines.loc[~mask]
    return lines


def _collapse(lines: pd.DataFrame, dropped: dict[str, int]) -> pd.DataFrame:
    """One event per (customer, StockCode, invoice), in order of its first line."""
    events = lines.groupby(["CustomerID", "StockCode", "InvoiceNo"], sort=False).agg(
        quantity=("quantity", "sum"), time=("time", "first"), line=("line", "min")).reset_index()
    record_drop(dropped, COLLAPSED, len(lines) - len(events))
    return events.sort_values("line", kind="stable").reset_index(drop=True)


def _items(lines: pd.DataFrame) -> pd.DataFrame:
    price = lines.groupby("StockCode", sort=True)["price"].median()
    description = most_frequent(lines, "StockCode", "Description").reindex(price.index)
    return pd.DataFrame({S.ITEM_ID: price.index.astype("str"), "description": description.to_numpy(),
                         "price": price.to_numpy(dtype="float64")})


def _users(lines: pd.DataFrame) -> pd.DataFrame:
    country = most_frequent(lines, "CustomerID", "Country")
    users = pd.Series(sorted(lines["CustomerID"].unique()), dtype="str")
    return pd.DataFrame({S.USER_ID: users, "country": country.reindex(users).to_numpy()})

"""Turn a column of source timestamps into UTC datetimes, marking (never dropping) those that cannot be parsed.

Sources write time as unix seconds, unix milliseconds, ISO strings with a zone, ISO strings without one (local
time of the shop), bare dates, or Excel datetimes. One function handles them all so every adapter agrees:
naive times are localised to the configured zone (DST gaps shift forward, ambiguous times take the first,
summer-time reading), then converted to UTC. Unique values are parsed once, so repeated stamps cost nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

TimestampUnit = Literal["auto", "s", "ms", "iso"]

# Unix seconds reach 1e11 only in the year 5138, while unix milliseconds pass 1e11 in March 1973:
# anything whose typical magnitude is above this is milliseconds.
MS_THRESHOLD = 1e11
_ZONE_SUFFIX = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
_UTC_DTYPE = "datetime64[ns, UTC]"


def parse_timestamps(values: pd.Series, unit: TimestampUnit = "auto",
                     timezone: str = "UTC") -> tuple[pd.Series, pd.Series]:
    """(UTC timestamps, unparseable mask), both aligned with `values`' index.

    `unit`: "s" / "ms" unix epoch numbers, "iso" date/time strings (or datetime objects), "auto" numbers when
    most non-empty entries are numeric (s vs ms by magnitude, see MS_THRESHOLD), ISO otherwise. Empty entries
    are unparseable. The result has dtype datetime64[ns, UTC] with NaT where the mask is True.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return _from_datetimes(values, timezone)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = _parse_unique(pd.Series(uniques, dtype=object), unit, timezone)
    naive_utc = parsed.dt.tz_localize(None).astype("datetime64[ns]").to_numpy()
    taken = np.full(len(codes), np.datetime64("NaT", "ns"))
    taken[codes >= 0] = naive_utc[codes[codes >= 0]]
    result = pd.Series(taken, index=values.index, dtype="datetime64[ns]").dt.tz_localize("UTC")
    return result, pd.Series(result.isna().to_numpy(), index=values.index)


def _from_datetimes(values: pd.Series, timezone: str) -> tuple[pd.Series, pd.Series]:
    """Already datetimes (e.g. from Parquet): zoned ones are converted, naive ones localised."""
    if values.dt.tz is None:
        values = values.dt.tz_localize(timezone, ambiguous=np.ones(len(values), dtype=bool),
                                       nonexistent="shift_forward")
    result = values.dt.tz_convert("UTC").astype(_UTC_DTYPE)
    return result, result.isna()


def detect_unit(values: pd.Series) -> Literal["s", "ms", "iso"]:
    """"s" or "ms" when most non-empty entries are numbers (by magnitude), "iso" otherwise."""
    present = values.dropna()
    if present.empty:
        return "s"
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().mean() <= 0.5:
        return "iso"
    return "ms" if float(numbers.abs().median()) > MS_THRESHOLD else "s"


def _parse_unique(uniques: pd.Series, unit: TimestampUnit, timezone: str) -> pd.Series:
    """Parse distinct non-null values; returns UTC datetimes (NaT where unparseable), same order."""
    if uniques.empty:
        return pd.Series([], dtype=_UTC_DTYPE)
    chosen = detect_unit(uniques) if unit == "auto" else unit
    if chosen in ("s", "ms"):
        numbers = pd.to_numeric(uniques, errors="coerce")
        return pd.to_datetime(numbers, unit=chosen, utc=True, errors="coerce")
    return _parse_iso(uniques, timezone)


def _parse_iso(uniques: pd.Series, timezone: str) -> pd.Series:
    is_text = uniques.map(lambda v: isinstance(v, str))
    text = uniques.where(is_text, None).astype(object)
    stripped = text.str.strip()
    zoned = is_text & stripped.str.contains(_ZONE_SUFFIX, regex=True, na=False) & stripped.str.contains(
        r"\d[T ]\d|\d[+-]\d{2}:?\d{2}$", regex=True, na=False)
    result = pd.Series(pd.NaT, index=uniques.index, dtype=_UTC_DTYPE)
    if zoned.any():
        result[zoned] = _to_datetime(stripped[zoned], utc=True)
    naive = ~zoned
    if naive.any():
        values = stripped.where(is_text, uniques)[naive]
        local = _to_datetime(values, utc=False)
        if getattr(local.dt, "tz", None) is not None:  # datetime objects that carried a zone
            result[naive] = local.dt.tz_convert("UTC")
        else:
            result[naive] = local.dt.tz_localize(timezone, ambiguous=np.ones(len(local), dtype=bool),
                                                 nonexistent="shift_forward").dt.tz_convert("UTC")
    return result


def _to_datetime(values: pd.Series, utc: bool) -> pd.Series:
    """ISO 8601 first (fast); the entries that fail get a second, format-guessing try (e.g. '12/1/2010 8:26')."""
    parsed = pd.to_datetime(values, format="ISO8601", utc=utc, errors="coerce")
    failed = parsed.isna() & values.notna()
    if failed.any():
        retry = pd.to_datetime(values[failed], format="mixed", utc=utc, errors="coerce")
        parsed = parsed.astype(retry.dtype) if parsed.dtype != retry.dtype and not failed.all() else parsed
        parsed[failed] = retry
    return parsed

"""Set malformed source rows aside with where they came from, so nothing is dropped silently.

Each quarantined row keeps the file, its 1-based row number in that file (for a CSV with a header the first
data row is row 2, matching what an editor shows), the reason and the raw values as a JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from foryou.data.schema import QUARANTINE_COLUMNS, empty_quarantine


def quarantine_rows(frame: pd.DataFrame, mask: pd.Series | np.ndarray, file: Path | str, reason: str, *,
                    first_row: int = 2) -> pd.DataFrame:
    """The rows of `frame` selected by `mask` as quarantine records (columns file, row, reason, raw).

    `frame`'s index must be the 0-based record position in the file (as the readers return it); `first_row` is
    the file row number of record 0: 2 for a CSV with a header line, 1 for headerless files and JSON lines.
    """
    selected = frame.loc[np.asarray(mask, dtype=bool)]
    if selected.empty:
        return empty_quarantine()
    records = selected.astype(object).where(selected.notna(), None).to_dict("records")
    return pd.DataFrame({
        "file": str(file),
        "row": (selected.index.to_numpy(dtype=np.int64) + first_row),
        "reason": reason,
        "raw": [json.dumps(record, default=str, ensure_ascii=False) for record in records],
    }, columns=list(QUARANTINE_COLUMNS))


def concat_quarantine(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """One quarantine table from several (empty ones ignored), ordered by file then row."""
    kept = [part for part in parts if not part.empty]
    if not kept:
        return empty_quarantine()
    return pd.concat(kept, ignore_index=True).sort_values(["file", "row"], kind="stable").reset_index(drop=True)

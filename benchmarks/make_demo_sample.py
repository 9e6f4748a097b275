"""Make data/demo/online_retail_sample.csv.gz: a small slice of UCI Online Retail in its raw format.

All rows of a seeded random sample of customers (so each sampled customer's history is complete), plus a
seeded sample of rows without CustomerID, so the demo shows the cleaning rules (no customer, cancelled
invoices, negative quantities) at work. Rows keep their original order, columns and header.

Usage: python benchmarks/make_demo_sample.py [SOURCE_CSV_GZ] [OUT_CSV_GZ]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "uci-online-retail" / "online_retail.csv.gz"
OUT = ROOT / "data" / "demo" / "online_retail_sample.csv.gz"
SEED = 20121
N_CUSTOMERS = 1000
N_ANONYMOUS_ROWS = 2000

logger = logging.getLogger("make_demo_sample")


def make_sample(source: Path, out: Path) -> pd.DataFrame:
    """Write the sample to `out` (gzip, deterministic bytes) and return it."""
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(SEED)
    customers = np.sort(raw.loc[raw["CustomerID"] != "", "CustomerID"].unique())
    chosen = set(rng.choice(customers, size=N_CUSTOMERS, replace=False))
    anonymous = np.flatnonzero((raw["CustomerID"] == "").to_numpy())
    extra = rng.choice(anonymous, size=N_ANONYMOUS_ROWS, replace=False)
    keep = raw["CustomerID"].isin(chosen).to_numpy().copy()
    keep[extra] = True
    sample = raw.loc[keep]
    out.parent.mkdir(parents=True, exist_ok=True)
    sample.to_csv(out, index=False, compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
    return sample


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else OUT
    sample = make_sample(source, out)
    cancelled = sample["InvoiceNo"].str.startswith("C").sum()
    logger.info("%s: %d rows, %d customers, %d items, %d rows without CustomerID, %d cancelled-invoice rows, "
                "%.2f MB", out, len(sample), sample.loc[sample["CustomerID"] != "", "CustomerID"].nunique(),
                sample["StockCode"].nunique(), (sample["CustomerID"] == "").sum(), cancelled,
                out.stat().st_size / 1e6)


if __name__ == "__main__":
    main()

"""Shared paths and small factories for the adapter tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from foryou.config import DataConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"


def data_config(source: str, path: Path | None = None, **kwargs: Any) -> DataConfig:
    return DataConfig(source=source, path=path, **kwargs)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


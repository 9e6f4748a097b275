"""One module per source format. Each exposes `load(config: DataConfig) -> SourceTables`; `ADAPTERS` finds it."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from foryou.config import DataConfig
from foryou.data.schema import SourceTables
from foryou.errors import ConfigError

ADAPTER_MODULES = {
    "movielens": "foryou.data.adapters.movielens",
    "amazon": "foryou.data.adapters.amazon",
    "retailrocket": "foryou.data.adapters.retailrocket",
    "hm": "foryou.data.adapters.hm",
    "uci_online_retail": "foryou.data.adapters.uci_online_retail",
    "plush": "foryou.data.adapters.plush",
    "generic": "foryou.data.adapters.generic",
}


def get_adapter(source: str) -> Callable[[DataConfig], SourceTables]:
    """The `load` function of the named adapter; an unknown name is a ConfigError listing the known ones."""
    if source not in ADAPTER_MODULES:
        known = ", ".join(sorted(ADAPTER_MODULES))
        raise ConfigError(f"data.source: unknown adapter '{source}'; known adapters: {known}")
    module = importlib.import_module(ADAPTER_MODULES[source])
    return module.load  # type: ignore[no-any-return]

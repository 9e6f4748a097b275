"""`foryou serve`: resolve the serving settings of a bundle and run uvicorn over the app factory.

The same path runs one worker or several: the settings travel to each worker process as JSON in an environment
variable, and every worker builds its app with `app_from_environment`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import uvicorn

from foryou.config import ServingConfig, apply_override, config_from_dict
from foryou.serving.app import SETTINGS_ENV
from foryou.serving.bundle import read_manifest
from foryou.serving.store import sqlite_url

KEYS_ENV = "FORYOU_API_KEYS"
STORE_FILE = "service.db"


def serving_config(bundle: Path, overrides: list[str] | None = None) -> ServingConfig:
    """The bundle's own `serving` section with `serving.key=value` overrides applied."""
    raw = read_manifest(bundle)["config"]
    for override in overrides or []:
        apply_override(raw, override)
    return config_from_dict(raw, source=f"{bundle} config with overrides").serving


def store_url(bundle: Path, config: ServingConfig) -> str:
    """The configured store, else an SQLite file beside the bundle (shared by its workers and restarts)."""
    return config.store_url or sqlite_url(Path(bundle).resolve().parent / STORE_FILE)


def environment_keys() -> list[str]:
    return [key.strip() for key in os.environ.get(KEYS_ENV, "").split(",") if key.strip()]


def serve(bundle: Path, host: str, port: int, workers: int, overrides: list[str] | None = None,
          access_log: bool = False) -> None:
    """Run the service until interrupted; each worker loads the bundle once."""
    config = serving_config(bundle, overrides)
    settings = {"bundle": str(Path(bundle).resolve()), "config": json.loads(config.model_dump_json()),
                "store_url": store_url(bundle, config), "api_keys": environment_keys()}
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    uvicorn.run("foryou.serving.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, log_level="info")

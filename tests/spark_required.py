"""Skip a Spark test module, with the reason, where Spark cannot run: no pyspark or no Java runtime."""

from __future__ import annotations

import shutil

import pytest


def require_spark() -> None:
    """Call at module level, before the module's tests are collected."""
    pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra (make setup installs it)")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (make setup installs default-jre-headless)", allow_module_level=True)

"""One SparkSession per process, built from `SparkConfig`; a clear error when pyspark is not installed."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING

from foryou.config import SparkConfig
from foryou.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


def spark_session(config: SparkConfig) -> SparkSession:
    """The running session or a new one on `config.master` (UTC session time zone, Arrow transfers on)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError("the Spark engine needs pyspark: pip install 'foryou[spark]' (and Java 17)") from exc
    builder = (SparkSession.builder.master(config.master).appName(config.app_name)
               .config("spark.driver.memory", config.driver_memory)
               .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.showConsoleProgress", "false"))
    # Python workers must run an interpreter where foryou is installed: this one, unless PYSPARK_PYTHON says
    # otherwise (on a cluster, the executors' interpreter).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in config.conf.items():
        builder = builder.config(key, value)
    # pyspark 4.0 warns on every conversion that it has not been validated on pandas 3; foryou's tests check the
    # conversions it uses (tests/data/spark), so the warning says nothing a user can act on.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    if session.sparkContext.getCheckpointDir() is None:
        session.sparkContext.setCheckpointDir(config.checkpoint_dir or tempfile.mkdtemp(prefix="foryou-spark-"))
    logger.info("Spark %s on %s", session.version, session.sparkContext.master)
    return session

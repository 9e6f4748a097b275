"""ALS fitted by Spark MLlib (`baselines.als_engine: spark`), for user-item matrices that outgrow one machine.

Same model and objective as `ALS` (implicit preferences, confidence 1 + alpha per seen pair); only the solver
runs on Spark. Scoring, fold-in of new histories and the saved state are `ALS`'s, so serving needs no Spark.
MLlib scales the L2 penalty of each user's (item's) factors by its number of ratings (ALS-WR), implicit does
not: at the same `regularization` MLlib regularises heavy users and items more.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from foryou.config import SparkConfig
from foryou.data.dataset import Dataset
from foryou.models.baselines.als import ALS

# Iterations between lineage cuts: without them a long ALS run overflows the JVM stack on its task graph.
CHECKPOINT_INTERVAL = 5


class SparkALS(ALS):
    """`ALS` whose factors come from pyspark.ml's ALS on `spark.master`."""

    def __init__(self, factors: int = 128, regularization: float = 0.01, alpha: float = 10.0, iterations: int = 15,
                 seed: int = 0, num_threads: int = 1, spark: dict[str, Any] | SparkConfig | None = None) -> None:
        super().__init__(factors, regularization, alpha, iterations, seed, num_threads)
        self.spark = SparkConfig.model_validate(spark or {}) if not isinstance(spark, SparkConfig) else spark

    def params(self) -> dict[str, Any]:
        return {**super().params(), "spark": self.spark.model_dump()}

    def _fit(self, dataset: Dataset) -> None:
        from pyspark.ml.recommendation import ALS as MLlibALS

        from foryou.data.spark.session import spark_session

        session = spark_session(self.spark)
        pairs = dataset.user_item_matrix(binary=True).tocoo()
        ratings = session.createDataFrame(pd.DataFrame({
            "user": pairs.row.astype(np.int32), "item": pairs.col.astype(np.int32),
            "rating": pairs.data.astype(np.float32)}))
        solver = MLlibALS(rank=self.factors, maxIter=self.iterations, regParam=self.regularization,
                          alpha=self.alpha, implicitPrefs=True, seed=self.seed, userCol="user", itemCol="item",
                          ratingCol="rating", numUserBlocks=self.spark.shuffle_partitions,
                          numItemBlocks=self.spark.shuffle_partitions,
                          checkpointInterval=CHECKPOINT_INTERVAL)
        fitted = solver.fit(ratings)
        self.user_factors = _dense(fitted.userFactors.toPandas(), dataset.n_users, self.factors)
        self.item_factors = _dense(fitted.itemFactors.toPandas(), dataset.n_items, self.factors)
        self._fold_in = None


def _dense(factors: pd.DataFrame, rows: int, rank: int) -> np.ndarray:
    """(rows, rank) float32 factors from MLlib's (id, features) rows; ids without a row (no pair) stay 0."""
    dense = np.zeros((rows, rank), dtype=np.float32)
    if len(factors):
        dense[factors["id"].to_numpy()] = np.stack(factors["features"].to_numpy()).astype(np.float32)
    return dense

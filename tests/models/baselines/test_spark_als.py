"""ALS on Spark MLlib: built from `als_engine: spark`, learns the checkerboard like implicit's, and its saved
model serves (scores, folds in, reloads) without Spark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from tests.models.conftest import BLOCK, N_ITEMS, N_USERS, build_dataset, checkerboard_events
from tests.spark_required import require_spark

from foryou.config import BaselinesConfig, SparkConfig
from foryou.models.base import Recommender
from foryou.models.baselines import ALS
from foryou.models.baselines.spark_als import SparkALS
from foryou.models.registry import build_baselines

require_spark()

LOCAL = SparkConfig(master="local[2]", shuffle_partitions=2)


@pytest.fixture(scope="module")
def spark_als() -> SparkALS:  # fitted once per module: a Spark fit takes seconds
    dataset = build_dataset(checkerboard_events(), N_USERS, N_ITEMS, ["A"] * BLOCK + ["B"] * BLOCK)
    return SparkALS(factors=4, regularization=0.01, alpha=10.0, iterations=15, seed=0, spark=LOCAL).fit(dataset)


def test_registry_builds_spark_als_with_the_run_spark_settings() -> None:
    config = BaselinesConfig(enabled=["als"], als_engine="spark", als_factors=16)
    model = build_baselines(config, seed=3, spark=LOCAL)["als"]
    assert isinstance(model, SparkALS) and model.factors == 16 and model.seed == 3
    assert model.spark.master == "local[2]"
    assert type(build_baselines(BaselinesConfig(enabled=["als"]))["als"]) is ALS  # implicit stays the default


def test_checkerboard_users_get_their_block_as_with_implicit(spark_als: SparkALS, tiny_dataset) -> None:
    implicit = ALS(factors=4, regularization=0.01, alpha=10.0, iterations=15, seed=0).fit(tiny_dataset)
    for model in (spark_als, implicit):
        ids, scores = model.recommend(["u02", "u22"], k=3)
        assert all(int(item[1:]) < 10 for item in ids[0]) and all(int(item[1:]) >= 10 for item in ids[1])
        assert np.all(np.diff(scores, axis=1) <= 0)
    assert spark_als.user_factors.shape == (tiny_dataset.n_users, 4)
    assert spark_als.item_factors.shape == (tiny_dataset.n_items, 4)


def test_fold_in_and_reload_need_no_spark(spark_als: SparkALS, tmp_path: Path) -> None:
    history = sp.csr_matrix((np.ones(5), ([0] * 5, [11, 12, 13, 14, 15])), shape=(1, 20))
    scores = spark_als.score_histories(history)[0]
    scores[11:16] = -np.inf
    assert set(np.argsort(-scores)[:3]) <= set(range(10, 20))
    spark_als.save(tmp_path / "als")
    loaded = Recommender.load(tmp_path / "als")
    assert isinstance(loaded, SparkALS) and loaded.spark == LOCAL
    np.testing.assert_allclose(loaded.score_users(np.arange(5)), spark_als.score_users(np.arange(5)))

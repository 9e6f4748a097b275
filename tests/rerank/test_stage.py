"""The ranking stage offline: scoring a frame in chunks of rows (bounded memory on millions of candidates) gives
every strategy exactly the scores of one pass over the whole frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.rerank.toy_shop import toy_shop

from foryou.config import RankingConfig
from foryou.data import schema as S
from foryou.rerank import mlp, stage
from foryou.rerank.features import feature_columns
from foryou.rerank.hybrid import HybridBlend
from foryou.rerank.lgbm import LGBMRanker
from foryou.rerank.mlp import MLPRanker
from foryou.rerank.online import CatalogFeatures
from foryou.rerank.protocol import LABEL
from foryou.rerank.stage import STAGE_STRATEGIES, FrameVectors, RankingStage, frame_scores

N_USERS, N_ITEMS, PER_USER, DIM = 10, 30, 12, 4


def candidate_frame(rng: np.random.Generator) -> pd.DataFrame:
    """PER_USER candidates per user from two sources (some proposed by one only), a feature and a label."""
    users = np.repeat(np.arange(N_USERS), PER_USER)
    items = np.concatenate([rng.choice(N_ITEMS, PER_USER, replace=False) for _ in range(N_USERS)])
    frame = pd.DataFrame({S.USER_IDX: users, S.ITEM_IDX: items})
    for source in ("two_tower", "ease"):
        scores = rng.normal(size=len(frame)).astype(np.float32)
        scores[rng.random(len(frame)) < 0.3] = np.nan
        frame[f"{source}_score"] = scores
        frame[f"{source}_rank"] = rng.integers(1, PER_USER + 2, size=len(frame)).astype(np.int32)
    frame["item_pop_all"] = rng.integers(0, 500, size=len(frame)).astype(np.float64)
    frame[LABEL] = (np.arange(len(frame)) % PER_USER == rng.integers(0, PER_USER)).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def fitted() -> tuple[RankingStage, pd.DataFrame, FrameVectors]:
    rng = np.random.default_rng(0)
    frame = candidate_frame(rng)
    vectors = FrameVectors(np.arange(N_USERS), rng.normal(size=(N_USERS, DIM)).astype(np.float32),
                           rng.normal(size=(N_ITEMS, DIM)).astype(np.float32))
    features = feature_columns(frame, exclude=(LABEL,))
    labels, groups = frame[LABEL].to_numpy(), frame[S.USER_IDX].to_numpy()
    lgbm = LGBMRanker({"min_data_in_leaf": 1}, num_boost_round=5, num_threads=1).fit(frame[features], labels, groups)
    ranker = MLPRanker(hidden=(8,), epochs=1, batch_groups=4).fit(frame[features], labels, groups,
                                                                   vectors=vectors.rows(frame))
    ranking = RankingStage(RankingConfig(), ["two_tower", "ease"], features, lgbm, ranker,
                           HybridBlend({"two_tower": 1.0, "ease": 0.5}), CatalogFeatures.from_dataset(toy_shop()),
                           {}, {})
    return ranking, frame, vectors


@pytest.mark.parametrize("strategy", STAGE_STRATEGIES)
def test_scoring_a_frame_in_chunks_gives_the_scores_of_one_pass(
        fitted: tuple[RankingStage, pd.DataFrame, FrameVectors], strategy: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ranking, frame, vectors = fitted
    monkeypatch.setattr(mlp, "PREDICT_ROWS", 8)  # the MLP's network chunk; the stage's must be a multiple of it
    one_pass = ranking.scores(strategy, frame, vectors.rows(frame))
    monkeypatch.setattr(stage, "SCORE_ROWS", 16)  # 120 rows: 8 chunks, the last one short
    np.testing.assert_array_equal(frame_scores(ranking, strategy, frame, vectors), one_pass)


def test_the_rankers_learn_from_a_seeded_sample_of_users_when_there_are_more() -> None:
    labels = pd.DataFrame({S.USER_IDX: np.arange(0, 200, 2), S.ITEM_IDX: np.arange(100) % 7,
                           S.TIMESTAMP: pd.date_range("2024-01-01", periods=100, freq="h")})
    kept = stage.sampled_labels(labels, 30, seed=3)
    assert len(kept) == 30 and kept[S.USER_IDX].is_unique and kept[S.USER_IDX].is_monotonic_increasing
    merged = kept.merge(labels, on=[S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP], how="left", indicator=True)
    assert (merged["_merge"] == "both").all()  # whole label rows of the input, unchanged
    pd.testing.assert_frame_equal(kept, stage.sampled_labels(labels, 30, seed=3))  # the seed fixes the users
    assert not kept.equals(stage.sampled_labels(labels, 30, seed=4))
    for max_users in (None, 100, 500):
        assert stage.sampled_labels(labels, max_users, seed=3) is labels

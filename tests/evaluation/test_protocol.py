"""`evaluate` on a 4-user x 6-item dataset with fixed scores; every expected value is worked out below.

Events (split):  user 0: items 0, 1 (train), 2 (valid), 3 (test)
                 user 1: item 0 (train), items 4, 5 (test)
                 user 2: items 1, 2, 3 (train), item 1 (test: already known, an unavoidable miss)
                 user 3: item 0 (train), nothing in test -> never evaluated
Fitted on train + valid, the seen items are u0 {0, 1, 2}, u1 {0}, u2 {1, 2, 3}, u3 {0}.
Scores (rows = users) and the resulting top-3 with seen items removed:
  u0 [9, 8, 7, 6, 1, 0] -> [3, 4, 5]  target {3}: hit at rank 1 (the seen 0, 1, 2 score higher but are out)
  u1 [0, 2, 5, 3, 1, 4] -> [2, 5, 3]  targets {4, 5}: hit at rank 2
  u2 [0, 9, 1, 1, 2, 3] -> [5, 4, 0]  target {1}: scored best but seen, so a miss
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from foryou.data import schema as S
from foryou.data.dataset import Dataset, Manifest
from foryou.evaluation.protocol import (
    COLD_ITEMS,
    KNOWN_TARGETS,
    evaluate,
    evaluate_many,
    evaluated_users_note,
)
from foryou.models import ranking
from foryou.models.base import Recommender

SCORES = np.array(
    [[9, 8, 7, 6, 1, 0], [0, 2, 5, 3, 1, 4], [0, 9, 1, 1, 2, 3], [1, 1, 1, 1, 1, 1]], dtype=np.float32
)
EVENTS = [  # (user, item, split)
    (0, 0, "train"), (0, 1, "train"), (0, 2, "valid"), (0, 3, "test"),
    (1, 0, "train"), (1, 4, "test"), (1, 5, "test"),
    (2, 1, "train"), (2, 2, "train"), (2, 3, "train"), (2, 1, "test"),
    (3, 0, "train"),
]
GENRES = [["a"], ["a"], ["a", "b"], ["b"], ["c"], []]
L3 = 1 / math.log2(3)


class FixedScores(Recommender):
    name = "fixed"

    def __init__(self, scores: np.ndarray = SCORES) -> None:
        super().__init__()
        self.scores = scores

    def _fit(self, dataset: Dataset) -> None:
        return None

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.scores[user_idx]

    def item_embeddings(self) -> np.ndarray:
        return np.eye(self.scores.shape[1], dtype=np.float32)


@pytest.fixture
def dataset() -> Dataset:
    users, items, splits = zip(*EVENTS)
    interactions = pd.DataFrame({
        S.USER_IDX: np.array(users, np.int64), S.ITEM_IDX: np.array(items, np.int64), S.SPLIT: list(splits),
        S.TIMESTAMP: pd.date_range("2024-01-01", periods=len(EVENTS), freq="h", tz="UTC"),
        S.WEIGHT: np.ones(len(EVENTS)),
    })
    item_table = pd.DataFrame({S.ITEM_IDX: range(6), S.ITEM_ID: [f"i{i}" for i in range(6)], "genres": GENRES})
    user_table = pd.DataFrame({S.USER_IDX: range(4), S.USER_ID: [f"u{u}" for u in range(4)]})
    manifest = Manifest(source="hand", counts={}, item_fields={"categorical": ["genres"]}, user_fields={},
                        config={}, input_hashes={})
    return Dataset(interactions, item_table, user_table, manifest)


@pytest.fixture
def model(dataset: Dataset) -> FixedScores:
    return FixedScores().fit(dataset.restricted_to("train", "valid"))


def test_ranked_lists_exclude_seen_and_skip_users_without_targets(dataset, model) -> None:
    result = evaluate(model, dataset, "test", ks=(1, 3), activity_buckets=(2,))
    assert result.ranked.tolist() == [[3, 4, 5], [2, 5, 3], [5, 4, 0]]
    assert result.per_user[S.USER_IDX].tolist() == [0, 1, 2]  # user 3 has no test event
    assert result.summary["users"] == 3


def test_users_are_ranked_alike_one_at_a_time_or_in_a_batch_cut_by_the_catalogs_width(dataset, model,
                                                                                     monkeypatch) -> None:
    one_by_one = evaluate(model, dataset, "test", ks=(1, 3), batch_size=1).ranked
    monkeypatch.setattr(ranking, "SCORE_BATCH_BYTES", 4 * dataset.n_items * 2)  # two users' scores at a time
    assert ranking.users_per_batch(dataset.n_items) == 2
    np.testing.assert_array_equal(evaluate(model, dataset, "test", ks=(1, 3)).ranked, one_by_one)


def test_accuracy_summary_matches_hand_computation(dataset, model) -> None:
    summary = evaluate(model, dataset, "test", ks=(1, 3), activity_buckets=(2,)).summary
    assert summary["HR@1"] == pytest.approx(1 / 3)  # only u0 hits at rank 1
    assert summary["HR@3"] == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3
    assert summary["Recall@3"] == pytest.approx(0.5)  # (1 + 1/2 + 0) / 3
    assert summary["Precision@3"] == pytest.approx(2 / 9)  # (1/3 + 1/3 + 0) / 3
    assert summary["MRR@3"] == pytest.approx(0.5)  # (1 + 1/2 + 0) / 3
    assert summary["MAP@3"] == pytest.approx(5 / 12)  # u1: (1/2) / min(2, 3) = 1/4 -> (1 + 1/4 + 0) / 3
    # u1: DCG = 1/log2(3), IDCG over 2 hits = 1 + 1/log2(3).
    assert summary["NDCG@3"] == pytest.approx((1 + L3 / (1 + L3)) / 3)


def test_beyond_accuracy_summary(dataset, model) -> None:
    summary = evaluate(model, dataset, "test", ks=(1, 3), item_embeddings=np.eye(6)).summary
    assert summary["coverage@1"] == pytest.approx(3 / 6)  # {3, 2, 5}
    assert summary["coverage@3"] == pytest.approx(5 / 6)  # {0, 2, 3, 4, 5}
    # Distinct train+valid users per item: [3, 2, 2, 1, 0, 0] over 4 users; top-1 items 3, 2, 5 have
    # p = 1/4, 2/4, 1/4 (item 5 counted as one user) -> -log2 p = 2, 1, 2 -> mean 5/3.
    assert summary["novelty@1"] == pytest.approx(5 / 3)
    # Percentiles (ascending rank - 0.5) / 6: item 3 rank 3 -> 2.5/6, item 2 rank 4.5 -> 4/6, item 5 rank 1.5
    # -> 1/6; mean = 7.5 / 18.
    assert summary["popularity_bias@1"] == pytest.approx(7.5 / 18)
    # Genre-disjoint pairs: u0 [3, 4, 5] 3/3, u1 [2, 5, 3] 2/3 (2 and 3 share b), u2 [5, 4, 0] 3/3 -> 8/9.
    assert summary["diversity_category@3"] == pytest.approx(8 / 9)
    assert summary["diversity_embedding@3"] == pytest.approx(1.0)  # one-hot embeddings: every pair orthogonal
    # No shared space given: the model's own vectors are not used (they would not compare across models).
    assert math.isnan(evaluate(model, dataset, "test", ks=(3,)).summary["diversity_embedding@3"])


def test_segments_count_activity_cold_items_and_known_targets(dataset, model) -> None:
    segments = evaluate(model, dataset, "test", ks=(3,), activity_buckets=(2,)).segments.set_index("segment")
    # Train+valid events: u0 3, u1 1, u2 3 -> buckets "0": none, "1-2": u1, ">2": u0 and u2.
    assert segments.loc["activity 0", "users"] == 0 and math.isnan(segments.loc["activity 0", "NDCG@3"])
    assert segments.loc["activity 1-2", "users"] == 1
    assert segments.loc["activity 1-2", "HR@3"] == 1.0
    assert segments.loc["activity >2", "users"] == 2
    assert segments.loc["activity >2", "NDCG@3"] == pytest.approx(0.5)  # (1 + 0) / 2
    # Items never in train+valid: 4 and 5, both u1 targets; u1 finds 5 of them at rank 2.
    assert segments.loc[COLD_ITEMS, ["users", "targets"]].tolist() == [1, 2]
    assert segments.loc[COLD_ITEMS, "Recall@3"] == pytest.approx(0.5)
    # u2's target 1 is in its history: counted, and necessarily missed.
    assert segments.loc[KNOWN_TARGETS, ["users", "targets"]].tolist() == [1, 1]
    assert segments.loc[KNOWN_TARGETS, "HR@3"] == 0.0


def test_per_user_table(dataset, model) -> None:
    per_user = evaluate(model, dataset, "test", ks=(3,), activity_buckets=(2,)).per_user
    assert per_user["n_train_events"].tolist() == [3, 1, 3]
    assert per_user["activity"].astype(str).tolist() == [">2", "1-2", ">2"]
    assert per_user["n_targets"].tolist() == [1, 2, 1]
    np.testing.assert_allclose(per_user["MRR@3"], [1.0, 0.5, 0.0])


def test_validation_split_uses_train_only(dataset) -> None:
    # Fitted on train, u0's valid target 2 is ranked among unseen items {2, 3, 4, 5}: scores 7, 6, 1, 0 -> rank 1.
    model = FixedScores().fit(dataset.restricted_to("train"))
    result = evaluate(model, dataset, "valid", ks=(10,), beyond_accuracy=False)
    assert result.summary == {**{f"{m}@10": 1.0 for m in ("HR", "Recall", "NDCG", "MRR", "MAP")},
                              "Precision@10": pytest.approx(1 / 10), "users": 1.0}
    assert result.ranked.shape == (1, 6)  # k capped at the catalog size


def test_evaluate_many_one_row_per_model(dataset, model) -> None:
    flat = FixedScores(np.ones_like(SCORES)).fit(dataset.restricted_to("train", "valid"))
    table = evaluate_many({"fixed": model, "flat": flat}, dataset, ks=(3,), beyond_accuracy=False)
    assert table.index.tolist() == ["fixed", "flat"]
    assert table.loc["fixed", "HR@3"] == pytest.approx(2 / 3)


def test_errors_name_the_fix(dataset, model) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate(model, dataset, "train")
    with pytest.raises(ValueError, match="ks must be positive"):
        evaluate(model, dataset, "test", ks=(0,))
    other = FixedScores(SCORES[:, :5])
    other.fit(Dataset(dataset.interactions[dataset.interactions[S.ITEM_IDX] < 5], dataset.items.iloc[:5],
                      dataset.users, dataset.manifest))
    with pytest.raises(ValueError, match="fitted on 5 items / 4 users but the dataset has 6 items"):
        evaluate(other, dataset, "test")


def test_split_without_events_gives_no_users_and_nan_metrics(dataset) -> None:
    dataset.interactions = dataset.interactions[dataset.interactions[S.SPLIT] != "valid"].reset_index(drop=True)
    model = FixedScores().fit(dataset.restricted_to("train"))
    result = evaluate(model, dataset, "valid", ks=(3,))
    assert result.summary["users"] == 0 and math.isnan(result.summary["NDCG@3"])
    assert result.per_user.empty and result.ranked.shape == (0, 3)
    assert result.segments["users"].sum() == 0


def test_an_evaluation_sample_scores_only_its_users_and_the_same_in_every_split(dataset, model) -> None:
    # users with a valid or test event: u0 (valid, test), u1 (test), u2 (test); u3 has none and is never drawn
    sampled = dataset.with_evaluation_sample(2, seed=0)
    chosen = sampled.evaluated_users
    assert chosen is not None and len(chosen) == 2 and set(chosen) <= {0, 1, 2}
    assert list(chosen) == sorted(chosen)
    assert list(sampled.with_evaluation_sample(2, seed=0).evaluated_users) == list(chosen)  # seeded
    assert list(sampled.restricted_to("train", "valid", "test").evaluated_users) == list(chosen)
    result = evaluate(model, sampled, "test", ks=(1, 3), activity_buckets=(2,))
    assert result.per_user[S.USER_IDX].tolist() == list(chosen) and result.summary["users"] == 2
    # each sampled user's row is the one the full evaluation gives them (a sample changes who, not how)
    full = evaluate(model, dataset, "test", ks=(1, 3), activity_buckets=(2,)).per_user.set_index(S.USER_IDX)
    pd.testing.assert_frame_equal(result.per_user.set_index(S.USER_IDX), full.loc[list(chosen)])
    assert set(sampled.evaluation_events("valid")[S.USER_IDX]) <= set(chosen)
    assert len(sampled.events("test")) == len(dataset.events("test"))  # training data keeps every event
    assert evaluated_users_note(sampled) == ("a uniform sample (seeded) of 2 of the 3 users with a valid or test "
                                             "event (evaluation.max_users)")


def test_no_sample_when_the_users_fit(dataset) -> None:
    for max_users in (None, 3, 100):
        kept = dataset.with_evaluation_sample(max_users)
        assert kept.evaluated_users is None and kept.evaluation_events("test").equals(dataset.events("test"))
    assert evaluated_users_note(dataset) == "all 3 users with a valid or test event"

"""The ranker's training protocol: holdout relabelling by hand, no label in its own features, rerank scores that
keep the ranker's order above every non-candidate, and a smoke run of train_ranker + evaluate."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tests.models.conftest import build_dataset
from tests.rerank.toy_shop import toy_shop

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.evaluation.protocol import evaluate
from foryou.rerank.features import ranking_features
from foryou.rerank.lgbm import LGBMRanker
from foryou.rerank.merge import MERGED_RANK
from foryou.rerank.protocol import (
    LABEL,
    ScoreMatrix,
    SourceSettings,
    fit_sources,
    holdout_last_train_event,
    rank_matrix,
    ranking_frame,
    rerank_scores,
    reranked_model,
    score_matrix,
    train_ranker,
)

TINY_TOWER = {"model": {"embedding_dim": 8, "hidden_dim": 8, "max_history": 8, "num_layers": 1, "use_text": False},
              "train": {"epochs": 1, "batch_size": 16, "device": "cpu"}}
SMALL_BASELINES = {"ease": {"l2": 10.0}, "item_knn": {"neighbours": 5}, "recent_pop": {"half_life_days": 7.0}}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_holdout_relabels_each_users_last_train_event() -> None:
    # toy shop, all train: u0 i0 d0, i2 d2, i1 d8 -> holds out i1 d8; u1 i0 d1, i1 d3, i2 d4, i3 d9 -> i3 d9;
    # u2 i2 d5, i3 d6, i0 d20 -> i0 d20 (every user has >= 2 train events)
    dataset = toy_shop()
    before = dataset.interactions.copy()
    relabelled, labels = holdout_last_train_event(dataset)
    assert labels[[S.USER_IDX, S.ITEM_IDX]].to_numpy().tolist() == [[0, 1], [1, 3], [2, 0]]
    assert list(labels[S.TIMESTAMP].dt.day) == [9, 10, 21]  # START is Jan 1: day offsets 8, 9, 20
    held = relabelled.events("valid")[[S.USER_IDX, S.ITEM_IDX]].to_numpy().tolist()
    assert held == [[0, 1], [1, 3], [2, 0]]
    assert len(relabelled.events("train")) == 7 and len(relabelled.interactions) == 10
    pd.testing.assert_frame_equal(dataset.interactions, before)  # the original is not mutated


def test_holdout_keeps_single_event_users_and_drops_later_splits() -> None:
    dataset = build_dataset([(0, 0, 0.0), (0, 1, 1.0), (0, 2, 2.0), (0, 3, 3.0), (1, 2, 0.0)], 2, 4, ["x"] * 4)
    interactions = dataset.interactions.copy()
    interactions[S.SPLIT] = ["train", "train", "valid", "test", "train"]  # u0: 2 train events; u1: 1
    dataset = Dataset(interactions, dataset.items, dataset.users, dataset.manifest)
    relabelled, labels = holdout_last_train_event(dataset)
    assert labels[[S.USER_IDX, S.ITEM_IDX]].to_numpy().tolist() == [[0, 1]]
    assert relabelled.events("train")[[S.USER_IDX, S.ITEM_IDX]].to_numpy().tolist() == [[0, 0], [1, 2]]
    assert relabelled.events("test").empty and len(relabelled.events("valid")) == 1


def test_features_at_the_label_time_ignore_the_label_event() -> None:
    # each user's label (u0 i1 d8, u1 i3 d9, u2 i0 d20): features cut at its time are the same with or without
    # that event in the history
    dataset = toy_shop()
    _, labels = holdout_last_train_event(dataset)
    candidates = pd.DataFrame({S.USER_IDX: [0, 0, 1, 2, 2, 2], S.ITEM_IDX: [3, 4, 0, 0, 1, 4]})
    cut = labels.set_index(S.USER_IDX)[S.TIMESTAMP]
    with_labels = ranking_features(candidates, dataset, cut)
    for user, item, stamp in labels.itertuples(index=False, name=None):
        events = dataset.interactions
        label_row = (events[S.USER_IDX] == user) & (events[S.ITEM_IDX] == item) & (events[S.TIMESTAMP] == stamp)
        assert label_row.sum() == 1
        without = Dataset(events[~label_row].reset_index(drop=True), dataset.items, dataset.users, dataset.manifest)
        mine = candidates[S.USER_IDX].to_numpy() == user
        pd.testing.assert_frame_equal(with_labels[mine], ranking_features(candidates, without, cut)[mine])


def test_rerank_scores_put_candidates_above_the_rest_in_the_rankers_order() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, per_user = 4, 30, 8
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    frame = pd.DataFrame({S.USER_IDX: users, S.ITEM_IDX: items, "signal": rng.normal(size=len(users)),
                          "noise": rng.normal(size=len(users))})
    labels = (frame["signal"].to_numpy() > 0.5).astype(int)
    ranker = LGBMRanker({"min_data_in_leaf": 1}, num_boost_round=10, num_threads=1)
    ranker.fit(frame[["signal", "noise"]], labels, users)
    scores = rerank_scores(ranker, frame, n_users + 1, n_items)  # the last user has no candidates
    raw = ranker.predict(frame)
    model = ScoreMatrix(scores[:n_users], shop_with_splits(n_users=n_users, n_items=n_items).restricted_to("train"))
    for user in range(n_users):
        mine = frame[S.USER_IDX].to_numpy() == user
        row = scores[user]
        assert np.isfinite(row).sum() == per_user and row[np.isfinite(row)].min() > 0  # above -inf and above 0
        by_item = dict(zip(items[mine], raw[mine]))
        top = np.argsort(-row, kind="stable")[:per_user]
        assert set(top) == set(items[mine])
        assert all(by_item[a] >= by_item[b] for a, b in pairwise(top))  # the ranker's order
        ranked, _ = model.rank(scores[[user]], k=n_items)  # the evaluation path: candidates only, then -1
        assert set(ranked[0][:per_user]) == set(items[mine]) and np.all(ranked[0][per_user:] == -1)
    assert np.all(np.isneginf(scores[n_users]))  # a user without candidates gets nothing


def test_the_sparse_rank_matrix_ranks_exactly_as_the_dense_one() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items, per_user = 6, 40, 9
    users = np.repeat(np.arange(n_users - 1), per_user)  # the last user has no candidates
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users - 1)])
    frame = pd.DataFrame({S.USER_IDX: users, S.ITEM_IDX: items})
    raw = rng.integers(0, 4, size=len(frame)).astype(np.float64)  # many exact ties: they stay tied
    dense = score_matrix(frame, raw, n_users, n_items)
    sparse = rank_matrix(frame, raw, n_users, n_items)
    assert sparse.nnz == len(frame) and sparse.dtype == np.float32
    history = shop_with_splits(n_users=n_users, n_items=n_items).restricted_to("train")
    as_dense, as_sparse = ScoreMatrix(dense, history), ScoreMatrix(sparse, history)
    everyone = np.arange(n_users)
    np.testing.assert_array_equal(as_sparse.score_users(everyone), dense)
    for k in (1, 4, n_items):  # candidates ranked from the CSR: the dense rows' answer, seen items left out or not
        for exclude_seen in (True, False):
            for got, expected in zip(as_sparse.recommend_indices(everyone, k, exclude_seen),
                                     as_dense.recommend_indices(everyone, k, exclude_seen)):
                np.testing.assert_array_equal(got, expected)
    seen_candidates = history.user_item_matrix(binary=True).multiply(sparse > 0)
    assert seen_candidates.nnz > 0  # the case above leaves some candidates out as seen


def shop_with_splits(n_users: int = 40, n_items: int = 24, seed: int = 0) -> Dataset:
    """Users walk through one of two item blocks in order (so the next item is predictable), 6-10 events each,
    then leave-last-out: last = test, second-to-last = valid."""
    rng = np.random.default_rng(seed)
    events = []
    for user in range(n_users):
        block, start = (user % 2) * (n_items // 2), int(rng.integers(0, n_items // 2))
        for step in range(int(rng.integers(6, 11))):
            events.append((user, block + (start + step) % (n_items // 2), float(user + step)))
    dataset = build_dataset(events, n_users, n_items, ["a" if i < n_items // 2 else "b" for i in range(n_items)])
    interactions = dataset.interactions.copy()  # events are in (user, time) order
    from_end = interactions.groupby(S.USER_IDX).cumcount(ascending=False).to_numpy()
    interactions[S.SPLIT] = np.select([from_end == 0, from_end == 1], ["test", "valid"], "train")
    return Dataset(interactions, dataset.items, dataset.users, dataset.manifest)


def test_train_ranker_smoke_and_evaluation_counts_misses(tmp_path: Path) -> None:
    dataset = shop_with_splits()
    settings = SourceSettings(tower=TINY_TOWER, baselines=SMALL_BASELINES, cache_dir=tmp_path)
    trained = train_ranker(dataset, settings, per_source_k=5,
                           ranker=LGBMRanker({"min_data_in_leaf": 2}, num_boost_round=20, num_threads=1))
    assert {LABEL, MERGED_RANK, "two_tower_score", "content_rank"} <= set(trained.train_frame.columns)
    assert LABEL not in trained.features and trained.ranker.best_iteration >= 1
    assert 0 < trained.label_recall["valid"] <= 1
    train = dataset.restricted_to("train")
    model = reranked_model(trained.ranker, trained.valid_frame, train)
    result = evaluate(model, dataset, "valid", ks=(10,), beyond_accuracy=False)
    hits = result.per_user["HR@10"].to_numpy()
    assert result.summary["users"] == dataset.n_users
    assert hits.mean() <= trained.label_recall["valid"] + 1e-9  # a label outside the candidates is a miss
    # the cached two-tower is reused: a second fit of the same stage loads it and proposes the same items
    again = fit_sources(train, settings, "train")
    users = np.arange(dataset.n_users)
    np.testing.assert_array_equal(again[0].candidates(users, 5)[0], trained.valid_sources[0].candidates(users, 5)[0])


def test_ranking_frame_labels_and_score_matrix_shape() -> None:
    dataset = shop_with_splits(n_users=10)
    train = dataset.restricted_to("train")
    sources = fit_sources(train, SourceSettings(baselines=SMALL_BASELINES))
    labels = dataset.events("valid")[[S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP]]
    frame = ranking_frame(sources, train, labels[S.USER_IDX].to_numpy(), labels, per_source_k=3)
    keys = set(zip(frame.loc[frame[LABEL] == 1, S.USER_IDX], frame.loc[frame[LABEL] == 1, S.ITEM_IDX]))
    assert keys == set(zip(labels[S.USER_IDX], labels[S.ITEM_IDX])) & set(zip(frame[S.USER_IDX], frame[S.ITEM_IDX]))
    assert (frame.groupby(S.USER_IDX)[MERGED_RANK].min() == 1).all()
    with pytest.raises(ValueError, match="n_users, n_items"):
        ScoreMatrix(np.zeros((2, 2), np.float32), train)

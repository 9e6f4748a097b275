"""Candidate sources and their merge: known answers computed by hand, then invariants over every real source."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from tests.models.conftest import build_dataset, checkerboard_events

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.errors import NotFittedError
from foryou.models import ranking
from foryou.models.baselines import ALS, EASE, ItemKNN, RecentPop
from foryou.models.ranking import tie_break_order
from foryou.models.two_tower import TwoTower
from foryou.rerank import (
    CandidateSource,
    ContentSource,
    CooccurrenceSource,
    ModelSource,
    als_source,
    item_item_source,
    merge_candidates,
    per_source_recall,
    recent_items_matrix,
    recent_popularity_source,
    two_tower_source,
)
from foryou.rerank.candidates import recent_items, recent_row
from foryou.rerank.merge import proposed_only
from foryou.rerank.transitions import TransitionSource

# Four items, four users (user, item, day):  u0: 0, 1   u1: 0, 1, 2   u2: 1, 2, 3   u3: 3, 0
# Pairs held together: u0 {0,1}; u1 {0,1} {0,2} {1,2}; u2 {1,2} {1,3} {2,3}; u3 {0,3}, so off the diagonal
# C[0,1] = 2, C[0,2] = 1, C[0,3] = 1, C[1,2] = 2, C[1,3] = 1, C[2,3] = 1.
FOUR_ITEMS = [(0, 0, 0.0), (0, 1, 1.0), (1, 0, 0.0), (1, 1, 1.0), (1, 2, 2.0), (2, 1, 0.0), (2, 2, 1.0),
              (2, 3, 2.0), (3, 3, 0.0), (3, 0, 1.0)]


def four_item_dataset() -> Dataset:
    return build_dataset(FOUR_ITEMS, n_users=4, n_items=4, categories=["x"] * 4)


def as_dict(items: np.ndarray, scores: np.ndarray) -> dict[int, float]:
    return {int(item): float(score) for item, score in zip(items, scores) if item >= 0}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_recent_items_keep_the_last_n_distinct_items_with_decay() -> None:
    # u0 sees 0, 1, then 0 again: item 0 is the most recent (weight 1), item 1 the one before (0.5), item 2 none
    dataset = build_dataset([(0, 2, 0.0), (0, 0, 1.0), (0, 1, 2.0), (0, 0, 3.0)], 1, 3, ["x"] * 3)
    recent = recent_items_matrix(dataset.interactions, 1, 3, last_n=2, decay=0.5).toarray()
    np.testing.assert_allclose(recent, [[1.0, 0.5, 0.0]])


def test_cooccurrence_scores_by_hand() -> None:
    source = CooccurrenceSource(last_n=1).fit(four_item_dataset())
    items, scores = source.candidates(np.array([0, 3]), k=4, exclude_seen=True)
    # u0's last item is 1: C[1, :] = [2, -, 2, 1]; 0 and 1 are seen.  u3's last item is 0: C[0, :] = [-, 2, 1, 1]
    assert as_dict(items[0], scores[0]) == {2: 2.0, 3: 1.0}
    assert as_dict(items[1], scores[1]) == {1: 2.0, 2: 1.0}
    assert items.shape == (2, 4) and list(items[0][2:]) == [-1, -1] and np.all(np.isneginf(scores[0][2:]))


def test_cooccurrence_sums_the_last_n_items_and_leaves_out_the_diagonal() -> None:
    source = CooccurrenceSource(last_n=2).fit(four_item_dataset())
    items, scores = source.candidates(np.array([1, 2, 3]), k=4, exclude_seen=False)
    # u1: C[1, :] + C[2, :] = [2+1, 0+2, 2+0, 1+1]; u2: C[2, :] + C[3, :] = [1+1, 2+1, 0+1, 1+0]
    assert as_dict(items[0], scores[0]) == {0: 3.0, 1: 2.0, 2: 2.0, 3: 2.0}
    assert as_dict(items[1], scores[1]) == {0: 2.0, 1: 3.0, 2: 1.0, 3: 1.0}
    # u3: last two are 0 and 3: C[0, :] + C[3, :] = [0+1, 2+1, 1+1, 1+0]
    assert as_dict(items[2], scores[2]) == {0: 1.0, 1: 3.0, 2: 2.0, 3: 1.0}


def test_cooccurrence_decay_and_no_evidence_means_no_candidate() -> None:
    decayed = CooccurrenceSource(last_n=2, decay=0.5).fit(four_item_dataset())
    items, scores = decayed.candidates(np.array([2]), k=4, exclude_seen=False)
    # u2: item 3 most recent (weight 1), item 2 before it (0.5): 0.5 * [1, 2, 0, 1] + [1, 1, 1, 0]
    assert list(items[0]) == [1, 0, 2, 3]
    np.testing.assert_allclose(scores[0], [2.0, 1.5, 1.0, 0.5])
    single = CooccurrenceSource(last_n=1).fit(four_item_dataset())
    items, _ = single.candidates(np.array([3]), k=4, exclude_seen=False)
    assert sorted(items[0][:3]) == [1, 2, 3] and items[0][3] == -1  # item 0 only co-occurs with itself: left out


@pytest.mark.parametrize("pair_counts", [False, True])
@pytest.mark.parametrize("decay", [1.0, 0.7])
def test_one_history_scores_as_the_batch_does(decay: float, pair_counts: bool) -> None:
    # The service's one-user path must give the batch path's numbers, on a log with repeats and popular items,
    # whether it reads the users who hold the items or the kept item-pair counts.
    rng = np.random.default_rng(3)
    events = [(int(user), int(item), float(day)) for day, (user, item) in
              enumerate(zip(rng.integers(0, 40, 600), np.minimum(rng.zipf(1.5, 600) - 1, 59)))]
    source = CooccurrenceSource(last_n=4, decay=decay).fit(build_dataset(events, 40, 60, ["x"] * 60))
    assert source.pairs is not None  # a fit keeps the counts within their budget
    if pair_counts:
        assert source.pairs.diagonal().sum() == 0 and source.pairs[3, 5] == source.pairs[5, 3] > 0
    else:
        assert not source.keep_pair_counts(budget_bytes=0) and source.pairs is None
    for history in (rng.integers(0, 60, 9), np.array([0, 0, 1])):
        batch = source.scores_recent(recent_row(history, 60, 4, decay))[0]
        np.testing.assert_allclose(source.scores_one(*recent_items(history, 4, decay)), batch, rtol=1e-6)
        if decay == 1.0:
            assert np.array_equal(source.scores_one(*recent_items(history, 4, decay)), batch)  # integer counts
    np.testing.assert_array_equal(source.scores_one(np.zeros(0, np.int64), np.zeros(0, np.float32)),
                                  np.full(60, -np.inf, np.float32))


@pytest.mark.parametrize("decay", [1.0, 0.7])
def test_batch_scores_from_pair_counts_equal_those_from_the_histories(decay: float) -> None:
    # A fitted source scores a block of users from the kept pair counts: the numbers of the two products it
    # replaces (equal for integer counts; to float rounding with decayed weights), -inf where nothing co-occurs.
    rng = np.random.default_rng(5)
    events = [(int(user), int(item), float(day)) for day, (user, item) in
              enumerate(zip(rng.integers(0, 50, 500), np.minimum(rng.zipf(1.4, 500) - 1, 79)))]
    kept = CooccurrenceSource(last_n=3, decay=decay).fit(build_dataset(events, 50, 80, ["x"] * 80))
    counted = CooccurrenceSource(last_n=3, decay=decay).fit(build_dataset(events, 50, 80, ["x"] * 80))
    assert kept.pairs is not None and not counted.keep_pair_counts(budget_bytes=0)
    users = np.arange(50)
    from_pairs, from_histories = kept.scores(users), counted.scores(users)
    assert np.array_equal(np.isneginf(from_pairs), np.isneginf(from_histories))
    assert np.isneginf(from_pairs).any() and np.isfinite(from_pairs).any()
    if decay == 1.0:
        assert np.array_equal(from_pairs, from_histories)
    np.testing.assert_allclose(from_pairs, from_histories, rtol=1e-5)  # the diagonal, subtracted, rounds


def test_pair_counts_are_kept_only_within_their_budget() -> None:
    # 3 users holding 2, 3 and 1 items: at most 4 + 9 + 1 = 14 stored pairs, 8 bytes each
    dataset = build_dataset([(0, 0, 0.0), (0, 1, 1.0), (1, 0, 2.0), (1, 1, 3.0), (1, 2, 4.0), (2, 2, 5.0)], 3, 3,
                            ["x"] * 3)
    dropped = CooccurrenceSource().fit(dataset)
    assert not dropped.keep_pair_counts(budget_bytes=14 * 8 - 1) and dropped.pairs is None
    source = CooccurrenceSource().fit(dataset)
    assert source.keep_pair_counts(budget_bytes=14 * 8) and source.pairs is not None
    assert source.pairs.toarray().tolist() == [[0, 2, 1], [2, 0, 1], [1, 1, 0]]  # by hand


def test_content_source_by_hand() -> None:
    # u0 saw item 0 then item 1; u1 has no history. Profile = 1 * (0, 1) + 0.5 * (1, 0) = (0.5, 1)
    dataset = build_dataset([(0, 0, 0.0), (0, 1, 1.0)], n_users=2, n_items=4, categories=["x"] * 4)
    vectors = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [1.0, -1.0]])
    source = ContentSource(vectors, last_n=2, decay=0.5).fit(dataset)
    items, scores = source.candidates(np.array([0, 1]), k=3, exclude_seen=True)
    # cos((0.5, 1), (1, 1)) = 1.5 / sqrt(2.5); cos((0.5, 1), (1, -1)) = -0.5 / sqrt(2.5)
    assert list(items[0]) == [2, 3, -1]
    np.testing.assert_allclose(scores[0][:2], [1.5 / math.sqrt(2.5), -0.5 / math.sqrt(2.5)], rtol=1e-6)
    assert list(items[1]) == [-1, -1, -1]  # no history, no content profile


def test_content_source_needs_one_vector_per_item_and_a_fit() -> None:
    with pytest.raises(ValueError, match="3 item vectors for a catalog of 4"):
        ContentSource(np.ones((3, 2))).fit(four_item_dataset())
    with pytest.raises(NotFittedError):
        CooccurrenceSource().candidates(np.array([0]), k=2)


class FixedSource:
    """A source answering fixed lists: user -> [(item, score), ...] best first; `evidence`: user -> {item: score}
    it scores beyond its list (10 items)."""

    def __init__(self, name: str, lists: dict[int, list[tuple[int, float]]],
                 evidence: dict[int, dict[int, float]] | None = None) -> None:
        self.name = name
        self.lists = lists
        self.evidence = evidence or {}

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        scores = np.full((len(user_idx), 10), -np.inf, dtype=np.float32)
        for row, user in enumerate(user_idx.tolist()):
            for item, score in [*self.lists.get(user, []), *self.evidence.get(user, {}).items()]:
                scores[row, item] = score
        return scores

    def candidates(self, user_idx: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        items = np.full((len(user_idx), k), -1, dtype=np.int64)
        scores = np.full((len(user_idx), k), -np.inf, dtype=np.float32)
        for row, user in enumerate(user_idx):
            for column, (item, score) in enumerate(self.lists.get(int(user), [])[:k]):
                items[row, column], scores[row, column] = item, score
        return items, scores

    def top(self, user_idx: np.ndarray, scores: np.ndarray, k: int,
            exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self.candidates(user_idx, k, exclude_seen)  # the fixed lists, whatever the evidence


def test_merge_by_hand() -> None:
    a = FixedSource("a", {0: [(5, 0.9), (6, 0.8), (7, 0.7)], 1: [(1, 0.5)]})
    b = FixedSource("b", {0: [(7, 3.0), (8, 2.0)]})
    assert isinstance(a, CandidateSource)
    frame = merge_candidates([a, b], np.array([0, 1]), {"a": 3, "b": 2}, total=3)
    # user 0: best ranks 7 -> 1 (b), 5 -> 1 (a), 6 -> 2, 8 -> 2; 7 wins the tie on 1/3 + 1 > 1; 6 and 8 tie on
    # best rank 2 and on 1/2, so the fixed random item order decides, and the 4th is cut (total = 3)
    tie = tie_break_order(9)
    third = min((6, 8), key=lambda item: tie[item])
    assert list(frame.columns) == [S.USER_IDX, S.ITEM_IDX, "a_score", "a_rank", "b_score", "b_rank", "merged_rank"]
    assert frame[S.USER_IDX].tolist() == [0, 0, 0, 1]
    assert frame[S.ITEM_IDX].tolist() == [7, 5, third, 1]
    assert frame["merged_rank"].tolist() == [1, 2, 3, 1]
    row = frame.iloc[0]
    assert row["a_rank"] == 3 and row["b_rank"] == 1 and row["a_score"] == pytest.approx(0.7) and row["b_score"] == 3
    assert frame.iloc[1]["b_rank"] == 3 and np.isnan(frame.iloc[1]["b_score"])  # sentinel: k + 1, score NaN
    assert np.isnan(frame.iloc[3]["b_score"]) and frame.iloc[3]["b_rank"] == 3


def test_complete_fills_a_sources_score_where_it_did_not_propose_the_row() -> None:
    a = FixedSource("a", {0: [(5, 0.9), (6, 0.8)], 1: [(1, 0.5)]}, evidence={0: {8: 0.1}, 1: {2: 0.3}})
    b = FixedSource("b", {0: [(8, 2.0)], 1: [(2, 1.0)]}, evidence={0: {5: 1.5}})
    before = merge_candidates([a, b], np.array([0, 1]), 2, total=None)
    done = merge_candidates([a, b], np.array([1, 0]), 2, total=None, complete=True)  # any order of the users
    keyed = done.set_index([S.USER_IDX, S.ITEM_IDX])
    # u0: a scores 8 beyond its list, b scores 5 but not 6; u1: a scores 2, b has nothing on 1
    assert keyed.loc[(0, 8), "a_score"] == pytest.approx(0.1) and keyed.loc[(0, 5), "b_score"] == 1.5
    assert np.isnan(keyed.loc[(0, 6), "b_score"]) and np.isnan(keyed.loc[(1, 1), "b_score"])
    assert keyed.loc[(1, 2), "a_score"] == pytest.approx(0.3)
    # what each source proposed is unchanged: its own scores and every rank (k + 1: not proposed)
    proposed = before["a_score"].notna()
    np.testing.assert_array_equal(done.loc[proposed, "a_score"], before.loc[proposed, "a_score"])
    for column in ("a_rank", "b_rank", "merged_rank", S.ITEM_IDX):
        np.testing.assert_array_equal(done[column], before[column])
    assert keyed.loc[(0, 8), "a_rank"] == 3 and keyed.loc[(0, 5), "b_rank"] == 3


def test_recall_by_hand() -> None:
    a = FixedSource("a", {0: [(5, 1.0), (6, 0.5)], 1: [(1, 1.0)]})
    b = FixedSource("b", {0: [(8, 1.0)], 1: [(2, 1.0), (3, 0.5)]})
    frame = merge_candidates([a, b], np.array([0, 1, 2]), 2, total=None)
    # targets: u0 {6, 8}, u1 {3}, u2 {4} (no candidates): a finds 6 -> (1/2 + 0 + 0) / 3; b finds 8 and 3
    targets = (np.array([0, 0, 1, 2, 0]), np.array([6, 8, 3, 4, 6]))
    recall = per_source_recall(frame, targets, k=2)
    assert recall["a"] == pytest.approx(0.5 / 3) and recall["b"] == pytest.approx(1.5 / 3)
    # merged top-2: u0 -> 5, 8 (best rank 1 each); u1 -> 1, 2; so only 8 is found
    assert recall["union"] == pytest.approx(2.0 / 3) and recall["merged"] == pytest.approx(0.5 / 3)
    assert per_source_recall(frame, targets, k=3)["merged"] == pytest.approx(2.0 / 3)
    at_one = per_source_recall(frame, targets, k=1)  # a's top-1 is 5, b's are 8 and 2; merged top-1: 5 or 8
    assert at_one["a"] == 0.0 and at_one["b"] == pytest.approx(0.5 / 3)


def test_merge_rejects_duplicate_names_and_model_adapters_check_types() -> None:
    a = FixedSource("a", {})
    with pytest.raises(ValueError, match="distinct names"):
        merge_candidates([a, FixedSource("a", {})], np.array([0]), 2)
    with pytest.raises(TypeError, match="expected a fitted ALS"):
        als_source(EASE())  # type: ignore[arg-type]


# ---- invariants over every real source on the checkerboard dataset --------------------------------------------
def split_dataset() -> Dataset:
    """The checkerboard of tests/models with each user's last event moved to the validation split."""
    dataset = build_dataset(checkerboard_events(), 30, 20, ["A"] * 10 + ["B"] * 10)
    events = dataset.interactions.copy()
    last = events.groupby(S.USER_IDX).tail(1).index
    events.loc[last, S.SPLIT] = "valid"
    return Dataset(events, dataset.items, dataset.users, dataset.manifest)


@pytest.fixture(scope="module")
def fitted() -> tuple[Dataset, list[CandidateSource]]:
    dataset = split_dataset()
    train = dataset.restricted_to("train")
    tower = TwoTower(model={"embedding_dim": 8, "hidden_dim": 8, "max_history": 8, "num_layers": 1, "use_text": False},
                     train={"epochs": 2, "batch_size": 8, "device": "cpu"}).fit(train)
    sources: list[CandidateSource] = [
        two_tower_source(tower),
        item_item_source(EASE(l2=10.0).fit(train)),
        item_item_source(ItemKNN(neighbours=5).fit(train)),
        als_source(ALS(factors=8, iterations=5).fit(train)),
        CooccurrenceSource(last_n=3).fit(train),
        TransitionSource(last_n=3).fit(train),
        ContentSource.from_two_tower(tower, dataset.items, last_n=3).fit(train),
        recent_popularity_source(RecentPop().fit(train)),
    ]
    return dataset, sources


def test_sources_never_propose_seen_items_and_answer_padded_shapes(fitted: tuple[Dataset, list]) -> None:
    dataset, sources = fitted
    users = np.arange(dataset.n_users)
    seen = dataset.user_item_matrix("train").toarray() > 0
    for source in sources:
        items, scores = source.candidates(users, k=25, exclude_seen=True)
        assert items.shape == (30, 25) and scores.shape == (30, 25), source.name
        real = items >= 0
        assert not seen[np.repeat(users, 25).reshape(30, 25)[real], items[real]].any(), source.name
        assert np.all(np.diff(np.where(real, scores, -1e30), axis=1)[real[:, 1:]] <= 0), source.name
        assert np.all(real[:, :-1] | ~real[:, 1:]), source.name  # padding only at the end


def test_model_source_is_the_models_own_ranking(fitted: tuple[Dataset, list]) -> None:
    _, sources = fitted
    ease = next(source for source in sources if source.name == "ease")
    assert isinstance(ease, ModelSource)
    items, scores = ease.candidates(np.array([0, 15]), k=5)
    expected, expected_scores = ease.model.recommend_indices(np.array([0, 15]), 5, exclude_seen=True)
    np.testing.assert_array_equal(items, expected)
    np.testing.assert_allclose(scores, expected_scores)


def test_top_from_given_rows_is_candidates_and_leaves_the_rows_as_they_were(fitted: tuple[Dataset, list]) -> None:
    # the merge reads a source's rows again after its top k (ranked in place, seen items set to -inf meanwhile)
    dataset, sources = fitted
    users = np.arange(dataset.n_users)
    for source in sources:
        rows = source.scores(users)
        before = rows.copy()
        items, scores = source.top(users, rows, k=6)
        np.testing.assert_array_equal(rows, before, err_msg=source.name)
        expected_items, expected_scores = source.candidates(users, k=6)
        np.testing.assert_array_equal(items, expected_items, err_msg=source.name)
        np.testing.assert_array_equal(scores, expected_scores, err_msg=source.name)
        before.flags.writeable = False  # rows that cannot be written (a broadcast row) are ranked in a copy
        np.testing.assert_array_equal(source.top(users, before, k=6)[0], expected_items, err_msg=source.name)


def test_completed_frame_is_the_proposed_one_with_every_sources_finite_scores(
        fitted: tuple[Dataset, list], monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, sources = fitted
    users = np.arange(dataset.n_users)
    tie_order = tie_break_order(dataset.n_items)
    proposed = merge_candidates(sources, users, per_source_k=4, total=12, tie_order=tie_order)
    monkeypatch.setattr(ranking, "SCORE_BATCH_BYTES", 4 * dataset.n_items * len(sources) * 7)  # blocks of 7 users
    completed = merge_candidates(sources, users, per_source_k=4, total=12, tie_order=tie_order, complete=True)
    rows_users, rows_items = proposed[S.USER_IDX].to_numpy(), proposed[S.ITEM_IDX].to_numpy()
    for source in sources:
        column = f"{source.name}_score"
        scores = source.scores(users)[rows_users, rows_items]
        expected = np.where(proposed[column].notna(), proposed[column], np.where(np.isfinite(scores), scores, np.nan))
        # the same NaNs; values equal up to float32 rounding (a two-tower scores 7 users in other matmul blocks)
        np.testing.assert_allclose(completed[column].to_numpy(), expected, rtol=1e-5, atol=1e-7, err_msg=source.name)
    assert completed.drop(columns=[f"{source.name}_score" for source in sources]).equals(
        proposed.drop(columns=[f"{source.name}_score" for source in sources]))


def test_merged_frame_ranks_and_limits(fitted: tuple[Dataset, list]) -> None:
    dataset, sources = fitted
    users = np.arange(dataset.n_users)
    union = merge_candidates(sources, users, per_source_k=4, total=None)
    assert not union.duplicated([S.USER_IDX, S.ITEM_IDX]).any()
    for source in sources:
        proposed = union[union[f"{source.name}_score"].notna()]
        for _, ranks in proposed.groupby(S.USER_IDX)[f"{source.name}_rank"]:
            assert sorted(ranks) == list(range(1, len(ranks) + 1)), source.name
        assert (union.loc[union[f"{source.name}_score"].isna(), f"{source.name}_rank"] == 5).all()
    cut = merge_candidates(sources, users, per_source_k=4, total=14)
    assert cut.groupby(S.USER_IDX).size().max() <= 14
    assert not cut.duplicated([S.USER_IDX, S.ITEM_IDX]).any()
    # the documented guarantee: the merged top `total` holds each source's top total // len(sources)
    kept = set(zip(cut[S.USER_IDX], cut[S.ITEM_IDX]))
    for source in sources:
        top = union[union[f"{source.name}_rank"] <= 14 // len(sources)]
        assert set(zip(top[S.USER_IDX], top[S.ITEM_IDX])) <= kept, source.name


def merge_by_rule(sources: list[CandidateSource], users: np.ndarray, k: int, total: int) -> set[tuple[int, int]]:
    """`merge_candidates`' documented rule, one user and one item at a time: best rank, then the larger sum of
    1 / rank, then the fixed random item order; each user's first `total` (user, item) pairs."""
    lists = {source.name: source.candidates(users, k)[0] for source in sources}
    tie = tie_break_order(max(int(items.max()) for items in lists.values()) + 1)
    kept: set[tuple[int, int]] = set()
    for row, user in enumerate(users):
        ranks: dict[int, list[int]] = {}
        for items in lists.values():
            for rank, item in enumerate(items[row], start=1):
                if item >= 0:
                    ranks.setdefault(int(item), []).append(rank)
        order = sorted(ranks, key=lambda item: (min(ranks[item]), -sum(1 / r for r in ranks[item]), tie[item]))
        kept |= {(int(user), item) for item in order[:total]}
    return kept


def test_merge_recall_is_at_least_each_sources(fitted: tuple[Dataset, list]) -> None:
    dataset, sources = fitted
    valid = dataset.events("valid")
    targets = (valid[S.USER_IDX].to_numpy(), valid[S.ITEM_IDX].to_numpy())
    users = np.arange(dataset.n_users)
    k, total = 4, len(sources)  # total < k x sources: the cut drops about a quarter of the union here
    union = merge_candidates(sources, users, per_source_k=k, total=None)
    cut = merge_candidates(sources, users, per_source_k=k, total=total)
    kept = merge_by_rule(sources, users, k, total)
    assert set(zip(cut[S.USER_IDX], cut[S.ITEM_IDX])) == kept
    merged = per_source_recall(cut, targets, k=total)["merged"]
    assert merged == pytest.approx(np.mean([(u, i) in kept for u, i in zip(*targets)]))  # one target per user
    # the documented guarantee: the merged top `total` holds each source's top total // len(sources)
    at_share = per_source_recall(union, targets, k=total // len(sources))
    at_k = per_source_recall(union, targets, k=k)
    for source in sources:
        assert merged >= at_share[source.name], source.name
        items, _ = source.candidates(targets[0], k)  # recall of the source alone, straight from its lists
        assert at_k[source.name] == pytest.approx(np.mean((items == targets[1][:, None]).any(axis=1)))
    union_pairs = set(zip(union[S.USER_IDX], union[S.ITEM_IDX]))
    assert at_k["union"] == pytest.approx(np.mean([(u, i) in union_pairs for u, i in zip(*targets)]))
    assert merged <= at_k["union"]


def test_proposed_only_undoes_complete() -> None:
    a = FixedSource("a", {0: [(5, 0.9), (6, 0.8)]}, evidence={0: {8: 0.1}})
    b = FixedSource("b", {0: [(8, 2.0)]}, evidence={0: {5: 1.5, 6: 0.5}})
    frame = merge_candidates([a, b], np.array([0]), 2, total=None)
    done = merge_candidates([a, b], np.array([0]), 2, total=None, complete=True)
    assert done["b_score"].notna().all()  # b scores every candidate once completed
    undone = proposed_only(done, ["a", "b"], 2)
    pd.testing.assert_frame_equal(undone, frame)
    assert done["b_score"].notna().all()  # the completed frame itself is left as it was

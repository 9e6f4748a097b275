"""Known answers for every metric, computed by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from foryou.evaluation import metrics as M

# User 0: ranked [3, 1, 4, -1] (padded), targets {1, 4, 9}: hits at ranks 2 and 3.
# User 1: ranked [2, 0, 5, 6], targets {2}: hit at rank 1.
# User 2: ranked [7, 8, -1, -1], targets {0}: no hit.
RANKED = np.array([[3, 1, 4, -1], [2, 0, 5, 6], [7, 8, -1, -1]], dtype=np.int64)
TARGETS = [np.array([1, 4, 9, 4]), np.array([2]), np.array([0])]  # the duplicate 4 counts once
L2, L3, L4 = 1 / math.log2(2), 1 / math.log2(3), 1 / math.log2(4)


def test_hit_matrix_marks_targets_and_never_padding() -> None:
    hits = M.hit_matrix(RANKED, [np.array([1, 4, -1]), np.array([2]), np.array([0])])
    # -1 in a target list must not match the -1 padding of user 0.
    assert hits.tolist() == [[False, True, True, False], [True, False, False, False], [False] * 4]


def test_hit_rate_at_k() -> None:
    # k=1: user 0's top-1 is 3 (miss), user 1's is 2 (hit), user 2 miss. k=3: user 0 hits at rank 2.
    assert M.hit_rate_at_k(RANKED, TARGETS, 1).tolist() == [0.0, 1.0, 0.0]
    assert M.hit_rate_at_k(RANKED, TARGETS, 3).tolist() == [1.0, 1.0, 0.0]


def test_recall_divides_by_all_targets() -> None:
    # k=4: user 0 has 2 hits of 3 distinct targets -> 2/3; user 1 1/1; user 2 0/1.
    np.testing.assert_allclose(M.recall_at_k(RANKED, TARGETS, 4), [2 / 3, 1.0, 0.0])
    # k=2: user 0 has 1 hit / 3 targets (not / min(k, 3) = 2).
    np.testing.assert_allclose(M.recall_at_k(RANKED, TARGETS, 2), [1 / 3, 1.0, 0.0])


def test_precision_divides_by_k_even_when_padded() -> None:
    # k=4: user 0 has 2 hits / 4 (the -1 slot counts as a miss); user 1 1/4; user 2 0/4.
    np.testing.assert_allclose(M.precision_at_k(RANKED, TARGETS, 4), [0.5, 0.25, 0.0])


def test_ndcg_at_k() -> None:
    # User 0, k=4: DCG = 1/log2(3) + 1/log2(4); ideal over min(3, 4) = 3 hits: 1 + 1/log2(3) + 1/log2(4).
    # User 1: hit at rank 1 -> DCG = 1, IDCG = 1. User 2: 0.
    expected0 = (L3 + L4) / (L2 + L3 + L4)
    np.testing.assert_allclose(M.ndcg_at_k(RANKED, TARGETS, 4), [expected0, 1.0, 0.0])
    # k=2: user 0 DCG = 1/log2(3), ideal over min(3, 2) = 2 hits: 1 + 1/log2(3).
    np.testing.assert_allclose(M.ndcg_at_k(RANKED, TARGETS, 2)[0], L3 / (L2 + L3))


def test_ndcg_with_k_beyond_list_length() -> None:
    # k=10 on a 4-column list: same DCG, ideal over min(3, 10) = 3 hits, as at k=4.
    np.testing.assert_allclose(M.ndcg_at_k(RANKED, TARGETS, 10), M.ndcg_at_k(RANKED, TARGETS, 4))


def test_mrr_at_k() -> None:
    # User 0's first hit is rank 2 -> 1/2; user 1 rank 1 -> 1; user 2 none -> 0. At k=1 user 0 drops to 0.
    np.testing.assert_allclose(M.mrr_at_k(RANKED, TARGETS, 4), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(M.mrr_at_k(RANKED, TARGETS, 1), [0.0, 1.0, 0.0])


def test_map_at_k() -> None:
    # User 0, k=4: hits at ranks 2 and 3: precision@2 = 1/2, precision@3 = 2/3; sum = 7/6,
    # normalised by min(3, 4) = 3 -> 7/18. User 1: precision@1 = 1 over min(1, 4) = 1 -> 1. User 2: 0.
    np.testing.assert_allclose(M.map_at_k(RANKED, TARGETS, 4), [7 / 18, 1.0, 0.0])
    # k=2: user 0 only the rank-2 hit: (1/2) / min(3, 2) = 1/4.
    np.testing.assert_allclose(M.map_at_k(RANKED, TARGETS, 2)[0], 0.25)


@pytest.mark.parametrize("metric", list(M.ACCURACY_METRICS.values()))
def test_empty_targets_are_undefined_not_zero(metric) -> None:
    values = metric(RANKED, [np.array([1]), np.array([], dtype=np.int64), np.array([7])], 4)
    assert math.isnan(values[1])
    assert values[0] > 0 and values[2] > 0


def test_all_padding_row_scores_zero() -> None:
    ranked = np.array([[-1, -1]], dtype=np.int64)
    for metric in M.ACCURACY_METRICS.values():
        assert metric(ranked, [np.array([0])], 2).tolist() == [0.0]


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        M.ndcg_at_k(RANKED, TARGETS, 0)
    with pytest.raises(ValueError, match="2 target lists for 3 ranked rows"):
        M.recall_at_k(RANKED, TARGETS[:2], 3)


def test_catalog_coverage() -> None:
    # Top-2 items: {3, 1}, {2, 0}, {7, 8} -> 6 distinct of 10 items. Top-4: adds 4, 5, 6 -> 9 of 10 (-1 ignored).
    assert M.catalog_coverage(RANKED, 2, 10) == pytest.approx(0.6)
    assert M.catalog_coverage(RANKED, 4, 10) == pytest.approx(0.9)


def test_diversity_categories_from_sets_and_sparse() -> None:
    # Items 0..3: {a}, {a, b}, {b}, {} . List [0, 1, 2]: pairs (0,1) share a, (0,2) share nothing,
    # (1,2) share b -> 1 disjoint pair of 3 = 1/3. List [0, 3, -1]: one pair (0,3), item 3 has no category
    # -> 1.0. List [2, -1, -1]: no pair -> NaN.
    categories = [{"a"}, {"a", "b"}, {"b"}, set()]
    ranked = np.array([[0, 1, 2], [0, 3, -1], [2, -1, -1]])
    values = M.intra_list_diversity_categories(ranked, 3, categories)
    np.testing.assert_allclose(values[:2], [1 / 3, 1.0])
    assert math.isnan(values[2])
    matrix = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1], [0, 0]]))
    np.testing.assert_allclose(M.intra_list_diversity_categories(ranked, 3, matrix)[:2], [1 / 3, 1.0])


def test_diversity_embeddings() -> None:
    # Items: 0 = (1, 0), 1 = (2, 0) (same direction), 2 = (0, 3) (orthogonal).
    # List [0, 1, 2]: 1 - cos = 0, 1, 1 for pairs (0,1), (0,2), (1,2) -> mean 2/3. List [0, 1]: 0.
    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    ranked = np.array([[0, 1, 2], [0, 1, -1]])
    np.testing.assert_allclose(M.intra_list_diversity_embeddings(ranked, 3, embeddings), [2 / 3, 0.0], atol=1e-12)


def test_diversity_embeddings_leave_out_items_without_a_vector() -> None:
    # Item 3 is a zero row (no content): it has no direction, so its pairs are not counted as diverse.
    # List [0, 1, 3]: only the pair (0, 1) counts -> 0 (2/3 if item 3's pairs counted as 1). List [1, 3]: no
    # measurable pair -> NaN, not 1.
    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    values = M.intra_list_diversity_embeddings(np.array([[0, 1, 3], [1, 3, -1]]), 3, embeddings)
    assert values[0] == pytest.approx(0.0)
    assert math.isnan(values[1])


def test_novelty() -> None:
    # 8 training users; item users = [8, 4, 2, 0]. p = 1, 1/2, 1/4, 1/8 (item 3 counted as 1 user).
    # -log2 p = 0, 1, 2, 3. List [0, 3] -> (0 + 3) / 2 = 1.5; list [1, 2, -1] -> (1 + 2) / 2 = 1.5;
    # list [2, -1, -1] -> 2.
    ranked = np.array([[0, 3, -1], [1, 2, -1], [2, -1, -1]])
    np.testing.assert_allclose(M.novelty(ranked, 3, np.array([8, 4, 2, 0]), 8), [1.5, 1.5, 2.0])


def test_popularity_percentiles_and_bias() -> None:
    # Popularity [5, 1, 1, 9]: ascending ranks 3, 1.5, 1.5, 4 -> percentiles (r - 0.5) / 4 =
    # 0.625, 0.25, 0.25, 0.875; their mean is 0.5. List [3, 0] -> (0.875 + 0.625) / 2 = 0.75; list [1, -1] -> 0.25.
    popularity = np.array([5, 1, 1, 9])
    percentiles = M.popularity_percentiles(popularity)
    np.testing.assert_allclose(percentiles, [0.625, 0.25, 0.25, 0.875])
    assert percentiles.mean() == pytest.approx(0.5)
    np.testing.assert_allclose(M.popularity_bias(np.array([[3, 0], [1, -1]]), 2, popularity), [0.75, 0.25])


def test_diversity_embeddings_match_the_pairwise_definition() -> None:
    # The O(k d) identity against the definition, pair by pair, on random lists with padding and empty rows.
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 5))
    embeddings[[3, 7]] = 0.0
    ranked = np.array([rng.permutation(30)[:6] for _ in range(40)])
    ranked[::5, 4:] = -1
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    expected = []
    for row in ranked:
        items = [i for i in row if i >= 0 and np.any(embeddings[i])]
        pairs = [1 - unit[a] @ unit[b] for a in items for b in items if a != b]
        expected.append(np.mean(pairs) if pairs else np.nan)
    np.testing.assert_allclose(M.intra_list_diversity_embeddings(ranked, 6, embeddings), expected, atol=1e-12)


def test_hits_and_target_counts_match_a_per_user_set_computation() -> None:
    rng = np.random.default_rng(0)
    targets = [rng.integers(0, 40, size=rng.integers(0, 6)) for _ in range(300)]  # duplicates and empty lists
    ranked = np.where(rng.random((300, 10)) < 0.1, -1, rng.integers(0, 40, size=(300, 10)))
    expected = np.array([[item >= 0 and item in set(t.tolist()) for item in row] for row, t in zip(ranked, targets)])
    np.testing.assert_array_equal(M.hit_matrix(ranked, targets), expected)
    counts = np.array([len(set(t.tolist())) for t in targets], dtype=np.float64)
    recall = np.where(counts > 0, expected.sum(axis=1) / np.maximum(counts, 1), np.nan)
    np.testing.assert_array_equal(M.recall_at_k(ranked, targets, 10), recall)

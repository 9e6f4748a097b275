"""EASE against its closed form on a 3x3 example; the sparse (SANSA) engine and when it is chosen."""

import importlib.util
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import build_dataset

from foryou.config import BaselinesConfig
from foryou.errors import ConfigError
from foryou.models.base import Recommender
from foryou.models.baselines import EASE
from foryou.models.baselines import ease as ease_module
from foryou.models.baselines.ease import (
    DENSE_MAX_SECONDS,
    FINETUNE_STEPS,
    choose_engine,
    dense_max_items,
    dense_max_items_in,
    dense_seconds,
    ease_weights,
    sansa_factors,
)
from foryou.models.registry import build_baselines

needs_sansa = pytest.mark.skipif(importlib.util.find_spec("sansa") is None,
                                 reason="the sparse engine needs foryou[sparse] (sansa; libsuitesparse-dev)")


def test_ease_weights_match_closed_form_by_hand() -> None:
    # X = [[1,1,0],[0,1,1],[1,1,1]], lambda = 1
    # X^T X = [[2,2,1],[2,3,2],[1,2,2]]; G = X^T X + I = [[3,2,1],[2,4,2],[1,2,3]]; det(G) = 16
    # P = G^-1 = adj(G)/16 = [[8,-4,0],[-4,8,-4],[0,-4,8]] / 16
    # B_ij = -P_ij / P_jj = -P_ij / 0.5 -> B = [[0, .5, 0], [.5, 0, .5], [0, .5, 0]]
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=np.float32))
    expected = np.array([[0, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0]])
    np.testing.assert_allclose(ease_weights(x, 1.0), expected, atol=1e-6)


def test_ease_weights_match_numpy_inverse_on_random_data() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 12)) < 0.3).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 25.0 * np.eye(12))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(x), 25.0), expected, atol=1e-6)


def test_ease_scores_are_history_times_weights() -> None:
    # same X as above: user 0 saw items 0 and 1 -> scores = B[0] + B[1] = [.5, .5, .5]; item 2 is the only unseen
    dataset = build_dataset(
        [(0, 0, 0), (0, 1, 1), (1, 1, 2), (1, 2, 3), (2, 0, 4), (2, 1, 5), (2, 2, 6)],
        n_users=3,
        n_items=3,
        categories=["x"] * 3,
    )
    model = EASE(l2=1.0).fit(dataset)
    ids, scores = model.recommend(["u00"], k=3)
    assert list(ids[0]) == ["i02"]
    np.testing.assert_allclose(scores[0], [0.5], atol=1e-6)
    np.testing.assert_allclose(
        model.score_histories(sp.csr_matrix([[0.0, 0.0, 3.0]])), [[0, 0.5, 0]], atol=1e-6
    )


def test_ease_rejects_non_positive_lambda() -> None:
    with pytest.raises(ValueError, match="l2 \\(lambda\\) must be positive"):
        EASE(l2=0.0)


def test_choose_engine_dense_up_to_the_limit_sparse_above() -> None:
    assert choose_engine(100, 100)[0] == "dense"
    engine, limit, why = choose_engine(101, 100)
    assert (engine, limit) == ("sparse", 100)
    assert "101 items > 100 (baselines.ease_dense_max_items)" in why


def test_dense_limit_from_time_is_the_catalog_whose_inverse_fits_the_budget(monkeypatch) -> None:
    # 2 n^3 flops at 50 GFLOP/s a thread: 10,000 items take 40 s on one thread, 20 s on two
    assert dense_seconds(10_000, 1) == pytest.approx(40.0)
    assert dense_seconds(10_000, 2) == pytest.approx(20.0)
    assert dense_max_items_in(40.0, 1) in (9_999, 10_000)  # the cube root, rounded down
    monkeypatch.setattr(ease_module, "available_memory_bytes", lambda: 1 << 40)  # memory is no limit here
    monkeypatch.setattr(ease_module, "blas_threads", lambda: 1)
    engine, limit, why = choose_engine(12_000, None, max_seconds=40.0)  # 69 s > 40 s: sparse
    assert engine == "sparse" and limit in (9_999, 10_000)
    assert "an estimated 40 s on 1 thread(s), baselines.ease_dense_max_seconds" in why and "~69 s" in why
    assert choose_engine(9_000, None, max_seconds=40.0)[0] == "dense"
    assert choose_engine(12_000, None, max_seconds=None)[0] == "dense"  # no time limit: memory alone
    monkeypatch.setattr(ease_module, "blas_threads", lambda: 2)  # twice the cores: 2^(1/3) x the catalog
    assert choose_engine(12_000, None, max_seconds=40.0)[0] == "dense"


def test_default_time_budget_of_the_config_is_the_models() -> None:
    assert BaselinesConfig().ease_dense_max_seconds == DENSE_MAX_SECONDS == EASE().dense_max_seconds


def test_dense_limit_from_memory_is_twelve_bytes_per_pair_in_half() -> None:
    # 24 GiB available -> 12 GiB for the fit -> sqrt(12 GiB / 12 B) = sqrt(2**30) = 32768 items
    assert dense_max_items(24 * 2**30) == 32768
    assert dense_max_items(0) == 0


@needs_sansa
def test_sparse_ease_matches_dense_when_it_keeps_every_weight() -> None:
    # density 1 (weights_per_item >= n_items): SANSA's factors multiply to the exact inverse, so the off-diagonal
    # scores equal the closed form's
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    (first, second), factorizer = sansa_factors(x, 25.0, weights_per_item=12)
    assert factorizer == "cholmod"
    product = (first @ second).toarray()
    off_diagonal = ~np.eye(12, dtype=bool)
    np.testing.assert_allclose(product[off_diagonal], ease_weights(x, 25.0)[off_diagonal], atol=1e-4)


@needs_sansa
def test_sparse_ease_recommends_like_dense_unseen_and_sorted(tiny_dataset, tmp_path) -> None:
    model = EASE(l2=1.0, dense_max_items=5).fit(tiny_dataset)  # 20 items > 5: sparse
    assert model.params()["engine"] == "sparse" and model.params()["dense_max_items"] == 5
    users = [f"u{index:02d}" for index in range(30)]
    ids, scores = model.recommend(users, k=5)
    _, dense_scores = EASE(l2=1.0, engine="dense").fit(tiny_dataset).recommend(users, k=5)
    seen = tiny_dataset.user_item_matrix(binary=True)
    for index, (row, row_scores) in enumerate(zip(ids, scores)):
        items = [int(item[1:]) for item in row]
        block = range(10) if index < 15 else range(10, 20)
        assert set(items[:2]) <= set(block), (index, row)  # users never mix blocks: the best are their block's
        assert not set(items) & set(seen[index].indices), (index, row)
        assert np.all(np.diff(row_scores) <= 0)
        np.testing.assert_allclose(row_scores, dense_scores[index], atol=0.01)  # all weights kept: ~dense
    model.save(tmp_path / "ease")
    loaded = Recommender.load(tmp_path / "ease")
    assert loaded.params()["engine"] == "sparse"
    np.testing.assert_allclose(loaded.score_users(np.arange(30)), model.score_users(np.arange(30)), atol=1e-6)


@needs_sansa
def test_sparse_ease_falls_back_to_incomplete_cholesky_when_the_exact_factor_does_not_fit(tiny_dataset,
                                                                                          monkeypatch) -> None:
    import sansa
    from sksparse.cholmod import CholmodOutOfMemoryError

    class ExactFactorTooBig(sansa.SANSA):
        def fit(self, matrix):
            if self.factorization_method == sansa.CHOLMODGramianFactorizerConfig().factorization_method:
                raise CholmodOutOfMemoryError("out of memory (code -2)")
            return super().fit(matrix)

    steps = []  # the approximate inverse's refinement steps, per factor tried: fewer after the incomplete one
    inverter = sansa.UMRUnitLowerTriangleInverterConfig
    monkeypatch.setattr(sansa, "UMRUnitLowerTriangleInverterConfig",
                        lambda scans, finetune_steps: steps.append(finetune_steps) or inverter(scans, finetune_steps))
    monkeypatch.setattr(sansa, "SANSA", ExactFactorTooBig)
    model = EASE(l2=1.0, engine="sparse").fit(tiny_dataset)
    assert model.params()["sparse_factorizer"] == "icf"
    assert steps == [FINETUNE_STEPS["cholmod"], FINETUNE_STEPS["icf"]] == [10, 3]
    users = np.arange(30)
    scores = model.score_users(users)
    assert np.isfinite(scores).all() and scores.shape == (30, 20)
    with pytest.raises(CholmodOutOfMemoryError):  # asked for the exact factor only: no silent substitute
        EASE(l2=1.0, engine="sparse", sparse_factorizer="cholmod").fit(tiny_dataset)


def test_forced_dense_engine_ignores_the_limit(tiny_dataset) -> None:
    model = EASE(l2=1.0, engine="dense", dense_max_items=5).fit(tiny_dataset)
    assert model.params()["engine"] == "dense" and model.weights[0].shape == (20, 20)


@needs_sansa
def test_config_limit_makes_the_default_baselines_fit_sparse_ease(tiny_dataset) -> None:
    lowered = build_baselines(BaselinesConfig(enabled=["ease"], ease_l2=1.0, ease_dense_max_items=10))["ease"]
    assert lowered.fit(tiny_dataset).params()["engine"] == "sparse"  # 20 items > 10
    default = build_baselines(BaselinesConfig(enabled=["ease"], ease_l2=1.0))["ease"]
    assert default.fit(tiny_dataset).params()["engine"] == "dense"  # 20 items fit in any machine's memory


def test_sparse_engine_without_sansa_names_the_extra_to_install(tiny_dataset, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sansa", None)  # import sansa now raises ImportError
    with pytest.raises(ConfigError, match=r"EASE over 20 items needs .*foryou\[sparse\]"):
        EASE(l2=1.0, engine="sparse").fit(tiny_dataset)

"""Intervals and paired tests of the report: hand-checked small cases and scipy.stats.bootstrap on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap

from foryou.data import schema as S
from foryou.evaluation.comparisons import Interval, interval, paired_table, paired_test
from foryou.evaluation.protocol import EvaluationResult
from foryou.evaluation.significance import bootstrap_interval


def test_one_model_interval_by_hand() -> None:
    # Users [0, 1]: a resample of 2 users has mean 0 (1/4), 0.5 (1/2) or 1 (1/4): quantiles 2.5% / 97.5% = 0, 1.
    assert bootstrap_interval(np.array([0.0, 1.0]), n_resamples=20_000, seed=1) == (0.5, 0.0, 1.0)
    # Every user scores 0.3: nothing to resample, the interval has no width.
    assert bootstrap_interval(np.full(7, 0.3)) == pytest.approx((0.3, 0.3, 0.3))


@pytest.mark.parametrize("kind", ["hits", "ndcg"])
def test_interval_matches_scipy_bootstrap(kind: str) -> None:
    rng = np.random.default_rng(4)
    # 400 users: HR-like 0/1 values (10% hits) or NDCG-like values (70% zeros, the rest in (0, 1]).
    values = (rng.uniform(size=400) < 0.1).astype(float) if kind == "hits" else \
        np.where(rng.uniform(size=400) < 0.7, 0.0, rng.uniform(0.2, 1.0, size=400))
    mean, low, high = bootstrap_interval(values, n_resamples=20_000, seed=0)
    reference = bootstrap((values,), np.mean, n_resamples=20_000, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(1)).confidence_interval
    assert mean == pytest.approx(values.mean())
    # The interval is ~0.06 wide; two Monte Carlo estimates of its ends agree to well under a tenth of that.
    assert low == pytest.approx(reference.low, abs=0.004)
    assert high == pytest.approx(reference.high, abs=0.004)


def test_paired_interval_matches_scipy_paired_bootstrap() -> None:
    rng = np.random.default_rng(2)
    b = rng.uniform(size=300)
    a = np.clip(b + rng.normal(0.02, 0.1, size=300), 0, 1)
    test = paired_test(pd.Series(a), pd.Series(b))
    reference = bootstrap((a, b), lambda x, y: np.mean(x - y), paired=True, n_resamples=20_000,
                          method="percentile", random_state=np.random.default_rng(3)).confidence_interval
    assert test.difference.mean == pytest.approx(np.mean(a - b))
    assert test.difference.low == pytest.approx(reference.low, abs=0.003)
    assert test.difference.high == pytest.approx(reference.high, abs=0.003)


def test_paired_test_uses_only_the_users_both_models_were_scored_on() -> None:
    # Common users 2 and 3: differences 0.5 - 0.5 = 0 and 1 - 0 = 1 -> mean 0.5 over 2 users (user 4's 9 ignored).
    a = pd.Series([1.0, 0.5, 1.0], index=[1, 2, 3])
    b = pd.Series([0.5, 0.0, 9.0], index=[2, 3, 4])
    test = paired_test(a, b)
    assert test.users == 2 and test.difference.mean == pytest.approx(0.5)
    assert str(paired_test(a, pd.Series([0.1], index=[7]))) == "—"  # no common user: nothing measured


def test_empty_and_missing_values_print_a_dash() -> None:
    assert str(interval(pd.Series([], dtype=float))) == "—"
    assert str(Interval(0.1, 0.05, 0.15)) == "0.1000 [0.0500, 0.1500]"


def _result(ndcg: np.ndarray) -> EvaluationResult:
    per_user = pd.DataFrame({S.USER_IDX: np.arange(len(ndcg)), "NDCG@10": ndcg})
    return EvaluationResult({"NDCG@10": float(np.nanmean(ndcg))}, per_user, pd.DataFrame(), np.zeros((0, 10)))


def test_paired_table_separates_a_consistent_gain_from_noise() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(size=500)
    results = {"base": _result(base),
               "ahead": _result(base + 0.05),  # +0.05 on every user: beyond noise, p at its floor
               "noisy": _result(base + rng.normal(0.0, 0.2, size=500))}  # no gain, just noise
    table = paired_table(results, "NDCG@10", {"best baseline (base)": "base"}).set_index("model")
    column = table["vs best baseline (base)"]
    assert column["base"] == "—"
    assert column["ahead"] == "+0.0500 [+0.0500, +0.0500], p=<0.001"
    noisy = paired_test(results["noisy"].per_user.set_index(S.USER_IDX)["NDCG@10"], pd.Series(base))
    assert not noisy.beyond_noise and noisy.p_value > 0.05
    assert column["noisy"] == str(noisy)

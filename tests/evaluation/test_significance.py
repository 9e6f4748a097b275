"""Known answers for the paired bootstrap, worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from foryou.evaluation.significance import paired_bootstrap


def test_constant_difference_has_a_zero_width_interval_and_the_smallest_p() -> None:
    # Every user gains exactly 0.25, so every resampled mean is 0.25 and no resample is <= 0:
    # p = 2 * (0 + 1) / (99 + 1) = 0.02.
    b = np.array([0.0, 0.5, 0.1, 0.3, 0.0])
    mean, low, high, p = paired_bootstrap(b + 0.25, b, n_resamples=99, seed=0)
    assert (mean, low, high) == pytest.approx((0.25, 0.25, 0.25))
    assert p == pytest.approx(0.02)


def test_identical_models_are_never_significant() -> None:
    # Every difference is 0: both tails hold all 2000 resamples, so p = min(1, 2 * 2001 / 2001) = 1.
    a = np.array([0.2, 0.0, 1.0, 0.63])
    assert paired_bootstrap(a, a.copy(), n_resamples=2000, seed=3) == (0.0, 0.0, 0.0, 1.0)


def test_two_users_match_the_exact_resampling_distribution() -> None:
    # Differences [0, 1]: a resample of 2 users has mean 0 (prob 1/4), 0.5 (1/2) or 1 (1/4).
    # So the 2.5% / 97.5% quantiles are 0 and 1, and p = 2 * P(mean <= 0) = 0.5 (up to resampling noise).
    mean, low, high, p = paired_bootstrap(np.array([0.3, 1.0]), np.array([0.3, 0.0]), n_resamples=20_000, seed=1)
    assert (mean, low, high) == (0.5, 0.0, 1.0)
    assert p == pytest.approx(0.5, abs=0.02)


def test_interval_ends_are_the_quantiles_of_the_resampled_means() -> None:
    # Differences [0, 0, 0, 1]: a resampled mean is Binomial(4, 1/4) / 4, whose CDF is
    # 0.316 (mean 0), 0.738 (0.25), 0.949 (0.5), 0.996 (0.75), 1 (1). So the 95% interval is [0, 0.75],
    # the 80% interval [0, 0.5], and p = 2 * P(mean <= 0) = 2 * 0.316 = 0.633.
    a, b = np.array([0.0, 0.0, 0.0, 1.0]), np.zeros(4)
    mean, low, high, p = paired_bootstrap(a, b, n_resamples=20_000, seed=2)
    assert (mean, low, high) == (0.25, 0.0, 0.75)
    assert p == pytest.approx(0.633, abs=0.02)
    assert paired_bootstrap(a, b, n_resamples=20_000, seed=2, confidence=0.8)[1:3] == (0.0, 0.5)


def test_pairing_detects_a_small_consistent_gain_that_unpaired_spread_would_hide() -> None:
    # 300 users whose NDCG varies widely (0..1), model a is ahead by 0.01 on every user but one.
    rng = np.random.default_rng(0)
    b = rng.uniform(0.0, 0.9, size=300)
    a = b + 0.01
    a[0] = b[0] - 0.01
    mean, low, high, p = paired_bootstrap(a, b, n_resamples=1000, seed=0)
    assert mean == pytest.approx((299 * 0.01 - 0.01) / 300)
    assert 0.0 < low < mean < high
    assert p < 0.01


def test_swapping_the_models_mirrors_the_result_and_a_seed_reproduces_it() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    mean, low, high, p = paired_bootstrap(a, b, n_resamples=500, seed=7)
    assert paired_bootstrap(a, b, n_resamples=500, seed=7) == (mean, low, high, p)
    assert paired_bootstrap(b, a, n_resamples=500, seed=7) == pytest.approx((-mean, -high, -low, p))
    assert paired_bootstrap(a, b, n_resamples=500, seed=8) != (mean, low, high, p)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros(3), np.zeros(4), "same length"),
        (np.zeros(0), np.zeros(0), "at least one user"),
        (np.array([0.1, np.nan]), np.zeros(2), "NaN"),
    ],
)
def test_bad_inputs_say_what_is_wrong(a: np.ndarray, b: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b)

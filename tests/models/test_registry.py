"""The registry builds what the config enables, with the config's parameters."""

import pytest

from foryou.config import BaselinesConfig
from foryou.models.baselines import ALS, EASE, ItemKNN, MostPop, RecentPop
from foryou.models.registry import BASELINE_GRIDS, build_baseline, build_baselines


def test_build_baselines_uses_config_params() -> None:
    config = BaselinesConfig(enabled=["ease", "most_pop", "als"], ease_l2=123.0, als_factors=16)
    models = build_baselines(config, seed=7)
    assert list(models) == ["ease", "most_pop", "als"]
    assert isinstance(models["ease"], EASE) and models["ease"].l2 == 123.0
    assert isinstance(models["most_pop"], MostPop)
    assert isinstance(models["als"], ALS) and models["als"].factors == 16 and models["als"].seed == 7


def test_default_config_builds_all_five() -> None:
    models = build_baselines(BaselinesConfig())
    assert {type(m) for m in models.values()} == {MostPop, RecentPop, ItemKNN, EASE, ALS}


def test_every_grid_point_builds() -> None:
    assert len(BASELINE_GRIDS["als"]) == 8  # 2 factors x 2 regularization x 2 alpha
    for name, grid in BASELINE_GRIDS.items():
        for params in grid:
            assert build_baseline(name, params).params().items() >= params.items()


def test_unknown_baseline_is_named() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'svd'"):
        build_baseline("svd", {})

"""Builds the baselines a run config enables, and the small grids the quality benchmark tunes on validation."""

from __future__ import annotations

from typing import Any

from foryou.config import BaselinesConfig, SparkConfig
from foryou.models.base import Recommender
from foryou.models.baselines import ALS, EASE, ItemKNN, MostPop, RecentPop
from foryou.models.baselines.spark_als import SparkALS

# Constructor-argument grids per baseline name; the benchmark fits each point on train and keeps the best on
# validation. Small on purpose: 2 CPU cores.
BASELINE_GRIDS: dict[str, list[dict[str, Any]]] = {
    "most_pop": [{}],
    "recent_pop": [{"half_life_days": days} for days in (1.0, 7.0, 30.0, 90.0)],
    "item_knn": [{"neighbours": k} for k in (20, 50, 100, 200)],
    "ease": [{"l2": l2} for l2 in (10.0, 50.0, 100.0, 250.0, 500.0, 1000.0)],
    "als": [
        {"factors": factors, "regularization": reg, "alpha": alpha, "iterations": 15}
        for factors in (64, 128)
        for reg in (0.01, 0.1)
        for alpha in (1.0, 10.0)
    ],
}

BASELINE_CLASSES: dict[str, type[Recommender]] = {
    "most_pop": MostPop,
    "recent_pop": RecentPop,
    "item_knn": ItemKNN,
    "ease": EASE,
    "als": ALS,
}


def build_baselines(config: BaselinesConfig, seed: int = 0,
                    spark: SparkConfig | None = None) -> dict[str, Recommender]:
    """The enabled baselines, unfitted, keyed by name in the order `config.enabled` lists them; ALS on Spark
    (`spark`, default local) when `config.als_engine` says so."""
    als_settings: dict[str, Any] = {"factors": config.als_factors, "regularization": config.als_regularization,
                    "alpha": config.als_alpha, "iterations": config.als_iterations, "seed": seed}
    factories = {
        "most_pop": lambda: MostPop(),
        "recent_pop": lambda: RecentPop(half_life_days=config.recent_pop_half_life_days),
        "item_knn": lambda: ItemKNN(neighbours=config.item_knn_neighbours),
        "ease": lambda: EASE(l2=config.ease_l2, engine=config.ease_engine, dense_max_items=config.ease_dense_max_items,
                             dense_max_seconds=config.ease_dense_max_seconds,
                             weights_per_item=config.ease_weights_per_item),
        "als": lambda: (SparkALS(**als_settings, spark=spark) if config.als_engine == "spark"
                        else ALS(**als_settings)),
    }
    return {name: factories[name]() for name in config.enabled}


def build_baseline(name: str, params: dict[str, Any]) -> Recommender:
    """One baseline by name with explicit constructor arguments (a point of `BASELINE_GRIDS`)."""
    if name not in BASELINE_CLASSES:
        raise ValueError(f"unknown baseline '{name}'; known: {', '.join(BASELINE_CLASSES)}")
    return BASELINE_CLASSES[name](**params)

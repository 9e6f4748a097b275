"""What the search may change, per family, and how a trial's parameters become config settings.

Parameter names are config paths ("model.max_history"), so a trial's parameters are written back as they are;
`model.content` switches every content input of the item tower on (as configured) or off (id-only).
Every range includes the configured value: it is the first trial, so the search can only improve on it.
"""

from __future__ import annotations

from typing import Any

import optuna

from foryou.config import RunConfig
from foryou.tuning.shape import HISTORY_WINDOWS

CONTENT = "model.content"
CONTENT_FIELDS = ("use_text", "use_categorical", "use_numeric")


def _choices(values: tuple[Any, ...], current: Any) -> list[Any]:
    return sorted({*values, current})


def _span(low: float, high: float, current: float) -> tuple[float, float]:
    return min(low, current), max(high, current)


def suggest_two_tower(trial: optuna.Trial, base: RunConfig) -> dict[str, Any]:
    """One point of the two-tower space around `base` (the settings that matter most on the benchmark sets)."""
    model, loss, train = base.model, base.loss, base.train
    params: dict[str, Any] = {
        "model.user_tower": trial.suggest_categorical(
            "model.user_tower", _choices(("transformer", "attention", "gru", "mean"), model.user_tower)),
        "model.max_history": trial.suggest_categorical(
            "model.max_history", _choices(HISTORY_WINDOWS, model.max_history)),
        "model.embedding_dim": trial.suggest_categorical(
            "model.embedding_dim", _choices((32, 64, 128), model.embedding_dim)),
        "model.dropout": trial.suggest_float("model.dropout", *_span(0.0, 0.5, model.dropout)),
        "model.id_dropout": trial.suggest_float("model.id_dropout", *_span(0.0, 0.5, model.id_dropout)),
        "loss.kind": trial.suggest_categorical("loss.kind", _choices(("full_softmax", "sampled_softmax"), loss.kind)),
        "loss.temperature": trial.suggest_float("loss.temperature", *_span(0.02, 0.5, loss.temperature), log=True),
        "train.learning_rate": trial.suggest_float(
            "train.learning_rate", *_span(1e-4, 1e-2, train.learning_rate), log=True),
        "train.batch_size": trial.suggest_categorical(
            "train.batch_size", _choices((16, 32, 64, 128), train.batch_size)),
        "train.whole_history": trial.suggest_categorical("train.whole_history", [False, True]),
        "train.weight_average": trial.suggest_categorical(
            "train.weight_average", _choices((0.0, 0.9, 0.99), train.weight_average)),
    }
    if has_content(base):
        params[CONTENT] = trial.suggest_categorical(CONTENT, [False, True])
    return params


def two_tower_start(base: RunConfig) -> dict[str, Any]:
    """The configured settings as trial parameters: the study's first trial."""
    start = {"model.user_tower": base.model.user_tower, "model.max_history": base.model.max_history,
             "model.embedding_dim": base.model.embedding_dim, "model.dropout": base.model.dropout,
             "model.id_dropout": base.model.id_dropout, "loss.kind": base.loss.kind,
             "loss.temperature": base.loss.temperature, "train.learning_rate": base.train.learning_rate,
             "train.batch_size": base.train.batch_size, "train.whole_history": base.train.whole_history,
             "train.weight_average": base.train.weight_average}
    if has_content(base):
        start[CONTENT] = True
    return start


def has_content(config: RunConfig) -> bool:
    return any(getattr(config.model, name) for name in CONTENT_FIELDS)


def suggest_baseline(trial: optuna.Trial, family: str, base: RunConfig) -> dict[str, Any]:
    """One point of a baseline's space, as `baselines.*` settings."""
    current = base.baselines
    if family == "ease":
        return {"baselines.ease_l2": trial.suggest_float("baselines.ease_l2", *_span(1.0, 5000.0, current.ease_l2),
                                                         log=True)}
    if family == "item_knn":
        low, high = _span(5, 400, current.item_knn_neighbours)
        return {"baselines.item_knn_neighbours": trial.suggest_int("baselines.item_knn_neighbours", int(low),
                                                                   int(high), log=True)}
    if family == "als":
        return {"baselines.als_factors": trial.suggest_categorical(
                    "baselines.als_factors", _choices((32, 64, 128, 256), current.als_factors)),
                "baselines.als_regularization": trial.suggest_float(
                    "baselines.als_regularization", *_span(1e-3, 1.0, current.als_regularization), log=True),
                "baselines.als_alpha": trial.suggest_float(
                    "baselines.als_alpha", *_span(0.5, 50.0, current.als_alpha), log=True)}
    raise ValueError(f"no search space for baseline '{family}'")


def baseline_start(family: str, base: RunConfig) -> dict[str, Any]:
    current = base.baselines
    starts: dict[str, dict[str, Any]] = {
        "ease": {"baselines.ease_l2": current.ease_l2},
        "item_knn": {"baselines.item_knn_neighbours": current.item_knn_neighbours},
        "als": {"baselines.als_factors": current.als_factors, "baselines.als_regularization": current.als_regularization,
                "baselines.als_alpha": current.als_alpha}}
    return starts[family]


def with_params(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """`base` with trial parameters (config paths) applied; validated like a loaded config."""
    raw = base.model_dump(mode="json", exclude_unset=False)
    for path, value in params.items():
        if path == CONTENT:
            for name in CONTENT_FIELDS:
                raw["model"][name] = raw["model"][name] and bool(value)
            continue
        section, key = path.split(".")
        raw[section][key] = value
    return RunConfig.model_validate(raw)

"""What a pipeline run derived from its data and what it will fit, in words, printed before training starts.

A long run should say up front which settings the data chose and why (the rules of `shape`, quoted with the
numbers they read) and which models it fits, so that nobody waits an hour to learn it trained the wrong thing.
"""

from __future__ import annotations

from typing import Any

from foryou.config import RunConfig
from foryou.tuning.shape import (
    BATCH_RANGE,
    FULL_SOFTMAX_LOGITS,
    SMALL_LOG_EVENTS,
    STEPS_PER_EPOCH,
    TEXT_COVERAGE,
    DataShape,
    derived_settings,
    full_softmax_logits,
    user_tower_choices,
)


def _reasons(shape: DataShape) -> dict[str, str]:
    """Setting -> why the rule chose its value, with the numbers of this data."""
    small = shape.train_events <= SMALL_LOG_EVENTS
    log_size = f"{shape.train_events:,} train events {'<=' if small else '>'} {SMALL_LOG_EVENTS:,}"
    return {
        "model.max_history": f"the smallest window covering 3 users in 4 (p75 history: {shape.history_p75:.0f})",
        "model.use_text": f"{shape.text_coverage:.0%} of items have text (threshold {TEXT_COVERAGE:.0%})",
        "loss.kind": (f"{shape.train_events:,} train events x {shape.items:,} items = "
                      f"{full_softmax_logits(shape):.2g} logits an epoch "
                      f"{'<=' if full_softmax_logits(shape) <= FULL_SOFTMAX_LOGITS else '>'} {FULL_SOFTMAX_LOGITS:.0e} "
                      "(above it a full-softmax epoch takes minutes: negatives are sampled)"),
        "loss.temperature": "the rule's value for both softmax losses",
        "train.whole_history": log_size,
        "train.batch_size": f"about {STEPS_PER_EPOCH} steps per epoch, within {BATCH_RANGE}",
        "train.learning_rate": "follows the batch size (3e-3 up to 32, else 1e-3)",
        "train.weight_average": "averaged weights for whole-history epochs" if small else "no averaging",
        "train.epochs": "at most; early stopping on validation NDCG@10 ends sooner",
        "train.patience": log_size,
    }


def _models(config: RunConfig, shape: DataShape) -> list[str]:
    train = config.train
    towers = user_tower_choices(config, shape)
    tower = ("the user tower the search chooses" if config.tune.budget is not None else
             f"a {towers[0]} user tower" if len(towers) == 1 else
             f"one fit per user tower ({', '.join(towers)}: {shape.train_events:,} train events <= "
             f"{SMALL_LOG_EVENTS:,}), the best on validation kept")
    lines = [(f"two_tower: {tower}; at most {train.epochs} epochs (patience {train.patience}) on train, "
              "early-stopped on validation NDCG@10, then refitted on train + valid for the best epoch count")]
    if config.tune.budget is not None:
        lines.insert(0, f"search: {config.tune.budget} on validation over {', '.join(config.tune.families)} first")
    lines.append(f"baselines: {', '.join(config.baselines.enabled) or 'none'}")
    if config.ranking.enabled:
        rankers = "LightGBM and MLP rankers" if config.ranking.mlp else "a LightGBM ranker"
        lines.append(f"ranking stage: {rankers} and hybrid blends over {config.ranking.candidates} merged "
                     f"candidates per user ({config.ranking.per_source_k} per source), on two windows")
    return lines


def describe_plan(config: RunConfig, shaped: RunConfig, shape: DataShape) -> list[str]:
    """The lines to print before training: the data's shape, each setting derived from it (those `config` does
    not set) with its reason, and the models `shaped` (the config after `with_shaped_defaults`) fits."""
    derived = derived_settings(config, shape)
    reasons = _reasons(shape)
    lines = [(f"data: {shape.users:,} users, {shape.items:,} items, {shape.train_events:,} train events; history "
             f"p50 {shape.history_p50:.0f} / p75 {shape.history_p75:.0f} events; text on {shape.text_coverage:.0%} "
             "of items")]
    settings: list[tuple[str, Any]] = [(f"{section}.{key}", value) for section, chosen in derived.items()
                                       for key, value in chosen.items()]
    if settings:
        lines.append("derived from the data (not set in the config):")
        lines += [f"  {name} = {value}: {reasons.get(name, 'data-shaped default')}" for name, value in settings]
    else:
        lines.append("every data-shaped setting is set in the config")
    lines.append("models to fit:")
    lines += [f"  {line}" for line in _models(shaped, shape)]
    return lines

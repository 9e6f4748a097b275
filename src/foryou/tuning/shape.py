"""Two-tower defaults that follow the data's shape: what `foryou pipeline` trains when nobody tunes anything.

Every rule reads the train split only and is documented at the end of configs/reference.yaml. A setting
the user's config names explicitly (in YAML or with --set) is never replaced.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from foryou.config import RunConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset

logger = logging.getLogger(__name__)

HISTORY_WINDOWS = (10, 20, 50, 100, 200)  # max_history: the smallest of these that covers 3 users in 4
SMALL_LOG_EVENTS = 200_000  # up to this many train events an epoch may visit every event (whole_history)
STEPS_PER_EPOCH = 40  # batch size: the largest power of two that still gives this many steps per epoch
BATCH_RANGE = (16, 256)
TEXT_COVERAGE = 0.5  # below this share of items with text, the frozen text embedding is mostly noise
# A full-softmax epoch scores every train target against the whole catalog: about train events x items logits
# (online retail: 1.3e9, 10 s an epoch on 2 cores; a 60k-item shop of 80k train events: 4.8e9, 118 s; 1M events
# x 100k items: 8e10, ~30 min at the 60k shop's rate). Above this many, an epoch samples its negatives instead.
FULL_SOFTMAX_LOGITS = 2e9
# The user towers a small log's first fit tries, the best on validation kept: whether the order of a history
# matters is a property of the data (a shop's next purchase follows the last ones; a rating dump's order is noise),
# and on these logs a fit takes seconds to a minute. The causal transformer first: it wins ties.
USER_TOWERS = ("transformer", "attention")


@dataclass(frozen=True)
class DataShape:
    """What the rules read: sizes of the train split, history lengths and text coverage of the catalog."""

    users: int
    items: int
    train_events: int
    history_p50: float
    history_p75: float
    text_coverage: float  # share of items with a non-empty text field; 0 when the catalog has no text field

    @classmethod
    def of(cls, dataset: Dataset) -> DataShape:
        train = dataset.events("train")
        lengths = train.groupby(S.USER_IDX).size().to_numpy() if len(train) else np.zeros(1)
        return cls(users=int(dataset.n_users), items=int(dataset.n_items), train_events=len(train),
                   history_p50=float(np.percentile(lengths, 50)), history_p75=float(np.percentile(lengths, 75)),
                   text_coverage=_text_coverage(dataset))


def _text_coverage(dataset: Dataset) -> float:
    fields = [name for name in dataset.item_fields.text if name in dataset.items.columns]
    if not fields or dataset.n_items == 0:
        return 0.0
    filled = np.zeros(len(dataset.items), dtype=bool)
    for name in fields:
        filled |= dataset.items[name].fillna("").astype(str).str.strip().str.len().to_numpy() > 0
    return float(filled.mean())


def full_softmax_logits(shape: DataShape) -> float:
    """About how many logits a full-softmax epoch computes on this log: each train event against every item."""
    return float(shape.train_events) * float(shape.items)


def shaped_settings(shape: DataShape) -> dict[str, dict[str, Any]]:
    """Section -> setting -> value for a log of this shape (the rules of configs/reference.yaml)."""
    max_history = next((size for size in HISTORY_WINDOWS if size >= shape.history_p75), HISTORY_WINDOWS[-1])
    whole_history = shape.train_events <= SMALL_LOG_EVENTS
    windows = (shape.train_events / max_history + shape.users) if whole_history else shape.users
    batch = 2 ** int(np.floor(np.log2(max(windows / STEPS_PER_EPOCH, 1.0))))
    batch = int(np.clip(batch, *BATCH_RANGE))
    return {
        "model": {"max_history": max_history, "use_text": shape.text_coverage >= TEXT_COVERAGE},
        "loss": {"kind": "full_softmax" if full_softmax_logits(shape) <= FULL_SOFTMAX_LOGITS else "sampled_softmax",
                 "temperature": 0.1},
        "train": {"whole_history": whole_history, "batch_size": batch,
                  "learning_rate": 3e-3 if batch <= 32 else 1e-3,
                  "weight_average": 0.99 if whole_history else 0.0,
                  "epochs": 80, "patience": 10 if whole_history else 8},
    }


def user_tower_choices(config: RunConfig, shape: DataShape) -> tuple[str, ...]:
    """The user towers the first two-tower fit tries (the best on validation NDCG@10 is kept): the config's own
    when it names one, `USER_TOWERS` on a small log (whole-history epochs: cheap fits), else the default one."""
    if "user_tower" in config.model.model_fields_set or shape.train_events > SMALL_LOG_EVENTS:
        return (config.model.user_tower,)
    return USER_TOWERS


def derived_settings(config: RunConfig, shape: DataShape) -> dict[str, dict[str, Any]]:
    """Section -> setting -> value of the shaped settings that `config` does not set explicitly."""
    derived = {}
    for section, settings in shaped_settings(shape).items():
        explicit = getattr(config, section).model_fields_set
        chosen = {key: value for key, value in settings.items() if key not in explicit}
        if chosen:
            derived[section] = chosen
    return derived


def with_shaped_defaults(config: RunConfig, shape: DataShape) -> RunConfig:
    """`config` with every shaped setting it does not set explicitly replaced by the rule's value (logged).
    A run derives this once, from `DataShape.of` its dataset, and passes the result down."""
    derived = derived_settings(config, shape)
    if derived:
        logger.info("data shape %s -> defaults %s", asdict(shape), derived)
    return config.model_copy(update={section: getattr(config, section).model_copy(update=chosen)
                                     for section, chosen in derived.items()})

"""Data-shaped defaults: the rules on hand-made shapes, and that explicit settings are never replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from foryou.config import load_config
from foryou.data.prepare import prepare_dataset
from foryou.tuning.shape import DataShape, shaped_settings, with_shaped_defaults

# the two shared sets, as their train splits look (610 / 4,213 users; p75 history 168 / 97 events)
MOVIELENS = DataShape(users=610, items=9_724, train_events=99_616, history_p50=70, history_p75=168, text_coverage=1.0)
RETAIL = DataShape(users=4_213, items=3_497, train_events=379_102, history_p50=41, history_p75=97, text_coverage=1.0)
TINY = DataShape(users=1_500, items=150, train_events=6_000, history_p50=4, history_p75=6, text_coverage=0.2)


def test_long_small_log_visits_every_event_in_small_batches() -> None:
    settings = shaped_settings(MOVIELENS)
    assert settings["model"]["max_history"] == 200  # 168 -> the next window up
    # windows per epoch: 99,616 / 200 + 610 = 1,108; / 40 steps = 27.7 -> the power of two below, 16
    assert settings["train"] == {"whole_history": True, "batch_size": 16, "learning_rate": 3e-3,
                                 "weight_average": 0.99, "epochs": 80, "patience": 10}
    assert settings["model"]["use_text"] is True
    assert settings["loss"] == {"kind": "full_softmax", "temperature": 0.1}


def test_large_log_trains_on_last_windows_in_larger_batches() -> None:
    settings = shaped_settings(RETAIL)
    assert settings["model"]["max_history"] == 100
    # last windows only: 4,213 windows / 40 = 105 -> 64
    assert settings["train"] == {"whole_history": False, "batch_size": 64, "learning_rate": 1e-3,
                                 "weight_average": 0.0, "epochs": 80, "patience": 8}


def test_sampled_softmax_once_an_epoch_would_score_more_than_2e9_logits() -> None:
    at_limit = DataShape(users=50_000, items=20_000, train_events=100_000, history_p50=10, history_p75=20,
                         text_coverage=0.0)  # 100,000 x 20,000 = 2e9 logits an epoch
    above = DataShape(**{**at_limit.__dict__, "train_events": 100_001})
    assert shaped_settings(at_limit)["loss"] == {"kind": "full_softmax", "temperature": 0.1}
    assert shaped_settings(above)["loss"] == {"kind": "sampled_softmax", "temperature": 0.1}
    assert shaped_settings(RETAIL)["loss"]["kind"] == "full_softmax"  # 379,102 x 3,497 = 1.3e9
    assert shaped_settings(MOVIELENS)["loss"]["kind"] == "full_softmax"
    # the 82k-item catalog that picked a full softmax at 3.6 min an epoch, and a 1M-event 100k-item shop
    for items, events in ((82_000, 1_000_000), (100_000, 800_000)):
        shape = DataShape(**{**at_limit.__dict__, "items": items, "train_events": events})
        assert shaped_settings(shape)["loss"]["kind"] == "sampled_softmax"


def test_tiny_catalog_with_short_histories_and_little_text() -> None:
    settings = shaped_settings(TINY)
    assert settings["model"] == {"max_history": 10, "use_text": False}
    assert settings["train"]["batch_size"] == 32  # (6,000 / 10 + 1,500) / 40 = 52.5 -> the power of two below


@pytest.fixture(scope="module")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shape")
    lines = ["user,sku,ts"] + [f"u{user},i{(user + step) % 12},{1_700_000_000 + 60 * step}"
                               for user in range(30) for step in range(4 + user % 5)]
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    (root / "items.csv").write_text("sku,title\n" + "".join(f"i{item},thing {item}\n" for item in range(12)))
    path = root / "run.yaml"
    path.write_text(f"""
output_dir: {root / 'run'}
data:
  source: generic
  interactions: {{path: {root / 'events.csv'}, columns: {{user_id: user, item_id: sku, timestamp: ts}},
                  event_type: purchase}}
  items: {{path: {root / 'items.csv'}, columns: {{item_id: sku}}, text: [title]}}
model: {{max_history: 7}}
train: {{learning_rate: 0.01}}
""")
    return path


def test_explicit_settings_win_and_the_rest_follow_the_shape(small_config: Path) -> None:
    config = load_config(small_config, ["train.batch_size=8"])
    dataset = prepare_dataset(config, progress=False).dataset
    shaped = with_shaped_defaults(config, DataShape.of(dataset))
    assert shaped.model.max_history == 7 and shaped.train.learning_rate == 0.01 and shaped.train.batch_size == 8
    expected = shaped_settings(DataShape.of(dataset))
    assert shaped.train.whole_history is expected["train"]["whole_history"] is True
    assert shaped.loss.temperature == 0.1 and shaped.model.use_text is True  # every item has a title
    assert with_shaped_defaults(shaped, DataShape.of(dataset)) == shaped  # applying the rules again changes nothing


def test_shape_reads_the_train_split(small_config: Path) -> None:
    dataset = prepare_dataset(load_config(small_config), progress=False).dataset
    shape = DataShape.of(dataset)
    assert shape.train_events == len(dataset.events("train")) < len(dataset.interactions)
    assert (shape.users, shape.items, shape.text_coverage) == (30, 12, 1.0)

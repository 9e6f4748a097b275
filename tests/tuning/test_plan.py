"""The plan printed before training: each derived setting with its reason, the explicit ones left out."""

from __future__ import annotations

from pathlib import Path

from foryou.config import load_config
from foryou.tuning.plan import describe_plan
from foryou.tuning.shape import DataShape, derived_settings, shaped_settings, with_shaped_defaults

# 1,500 users, 150 items, 6,000 train events, p75 history 6, text on 20% of items
TINY = DataShape(users=1_500, items=150, train_events=6_000, history_p50=4, history_p75=6, text_coverage=0.2)


def test_derived_settings_come_with_their_reason_and_the_models_follow(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"""
output_dir: {tmp_path / 'run'}
data: {{source: generic, interactions: {{path: {tmp_path / 'e.csv'}, columns: {{user_id: u, item_id: i}}}}}}
train: {{learning_rate: 0.01}}
baselines: {{enabled: [most_pop, ease]}}
ranking: {{mlp: false}}
""")
    config = load_config(path)
    derived = derived_settings(config, TINY)
    assert "learning_rate" not in derived["train"]  # set in the config: not the data's choice
    assert derived["model"] == shaped_settings(TINY)["model"] == {"max_history": 10, "use_text": False}
    lines = describe_plan(config, with_shaped_defaults(config, TINY), TINY)
    assert lines[0] == ("data: 1,500 users, 150 items, 6,000 train events; history p50 4 / p75 6 events; "
                        "text on 20% of items")
    assert "  model.max_history = 10: the smallest window covering 3 users in 4 (p75 history: 6)" in lines
    assert "  model.use_text = False: 20% of items have text (threshold 50%)" in lines
    assert ("  loss.kind = full_softmax: 6,000 train events x 150 items = 9e+05 logits an epoch <= 2e+09 (above it "
            "a full-softmax epoch takes minutes: negatives are sampled)") in lines
    assert not any("learning_rate" in line for line in lines)
    assert ("  two_tower: one fit per user tower (transformer, attention: 6,000 train events <= 200,000), the best on "
            "validation kept; at most 80 epochs (patience 10) on train, early-stopped on validation NDCG@10, then "
            "refitted on train + valid for the best epoch count") in lines
    assert "  baselines: most_pop, ease" in lines
    assert any(line.startswith("  ranking stage: a LightGBM ranker and hybrid blends") for line in lines)


def test_a_named_user_tower_or_a_large_log_fits_one_tower(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"""
output_dir: {tmp_path / 'run'}
data: {{source: generic, interactions: {{path: {tmp_path / 'e.csv'}, columns: {{user_id: u, item_id: i}}}}}}
model: {{user_tower: gru}}
""")
    named = load_config(path)
    assert any(line.startswith("  two_tower: a gru user tower; at most") for line in describe_plan(named, named, TINY))
    unnamed = named.model_copy(update={"model": named.model.__class__()})
    large = DataShape(users=4_213, items=3_497, train_events=379_102, history_p50=41, history_p75=97, text_coverage=1.0)
    assert any(line.startswith("  two_tower: a transformer user tower; at most")
               for line in describe_plan(unnamed, unnamed, large))
    assert any(line.startswith("  two_tower: one fit per user tower (transformer, attention: ")
               for line in describe_plan(unnamed, unnamed, TINY))

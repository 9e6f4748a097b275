"""The report's served-strategy table: each strategy against the served one on the same validation users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from foryou.config import load_config
from foryou.workflow import served_section


def test_the_served_strategy_is_tested_against_the_best_other(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"""
output_dir: {tmp_path / 'run'}
data: {{source: generic, interactions: {{path: {tmp_path / 'e.csv'}, columns: {{user_id: u, item_id: i}}}}}}
serving: {{default_strategy: reranked_mlp}}
""")
    base = pd.Series(np.random.default_rng(0).uniform(0.0, 0.5, size=200))
    # reranked_mlp: 0.01 ahead of base on every user; ease: base plus wide noise (the best other, within noise of
    # the served one); two_tower: 0.2 behind base on every user (far behind, beyond noise).
    users = {"reranked_mlp": base + 0.01, "ease": base + np.random.default_rng(1).normal(0.0, 0.3, size=200),
             "two_tower": base - 0.2}
    validation = {name: float(values.mean()) for name, values in users.items()}
    ((heading, table),) = served_section(load_config(path), validation, [], users).items()
    assert ": reranked_mlp minus the best other, ease, is " in heading and heading.endswith("within noise")
    rows = table.set_index("strategy")
    assert rows.loc["reranked_mlp", "served by default"] == "yes"
    assert rows.loc["reranked_mlp", "valid, minus the served (95% CI, p)"] == "—"
    assert rows.loc["two_tower", "valid, minus the served (95% CI, p)"] == "-0.2100 [-0.2100, -0.2100], p=<0.001"
    assert rows.loc["two_tower", "test NDCG@10"] == "—"  # no test result given: a dash, not a number

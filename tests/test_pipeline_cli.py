"""pipeline -> bundle -> recommend through the real CLI on a small generated log (a smoke train, 1 epoch)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from foryou.cli import app
from foryou.serving.bundle import load_bundle

runner = CliRunner()
N_USERS, N_ITEMS, EVENTS_PER_USER = 40, 24, 8
SAMPLED_USERS = 30  # evaluation.max_users below the 40 users: valid and test are scored on a stated sample


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two taste groups (even users like items 0-11, odd users 12-23), then the whole pipeline once."""
    root = tmp_path_factory.mktemp("pipeline")
    rng = np.random.default_rng(0)
    lines = ["user,sku,ts,action"]
    for user in range(N_USERS):
        offset = 0 if user % 2 == 0 else N_ITEMS // 2
        for position, item in enumerate(rng.choice(N_ITEMS // 2, EVENTS_PER_USER, replace=False)):
            lines.append(f"u{user},i{offset + item},{1_700_000_000 + 3600 * position},purchase")
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    (root / "items.csv").write_text("sku,title,group\n" + "".join(
        f"i{item},item number {item},{'left' if item < N_ITEMS // 2 else 'right'}\n" for item in range(N_ITEMS)))
    config = root / "run.yaml"
    config.write_text(f"""
name: smoke
output_dir: {root / 'run'}
data:
  source: generic
  interactions:
    path: {root / 'events.csv'}
    columns: {{user_id: user, item_id: sku, timestamp: ts, event_type: action}}
  items:
    path: {root / 'items.csv'}
    columns: {{item_id: sku}}
    text: [title]
    categorical: [group]
model: {{use_text: false, max_history: 10, embedding_dim: 16}}
train: {{epochs: 2, batch_size: 16}}
evaluation: {{max_users: {SAMPLED_USERS}}}
ranking: {{max_train_users: 25}}
tracking: {{mlflow: false}}
""")
    result = runner.invoke(app, ["pipeline", str(config), "-q"])
    assert result.exit_code == 0, result.output
    return root / "run"


def test_pipeline_writes_report_and_bundle(finished_run: Path) -> None:
    report = (finished_run / "report.md").read_text()
    models_table = report.split("## Models", 1)[1].split("\n\n", 2)[1]  # | model | fit time (s) | chosen params |
    for model in ("two_tower", "most_pop", "ease", "als", "item_knn"):
        assert re.search(rf"^\| {model} \| \d+\.\d{{2}} \| ", models_table, re.MULTILINE), f"no {model} row"
    assert (finished_run / "report.html").exists()
    meta = json.loads((finished_run / "bundle" / "bundle.json").read_text())
    assert meta["model"] == "two_tower" and 0.0 <= meta["test_metrics"]["two_tower"]["NDCG@10"] <= 1.0


def test_report_states_the_sample_its_metrics_are_computed_on(finished_run: Path) -> None:
    report = (finished_run / "report.md").read_text()
    assert (f"a uniform sample (seeded) of {SAMPLED_USERS} of the {N_USERS} users with a valid or test event "
            "(evaluation.max_users)") in report
    meta = json.loads((finished_run / "bundle" / "bundle.json").read_text())
    assert {result["users"] for result in meta["test_metrics"].values()} == {SAMPLED_USERS}  # every model, same
    # the served choice's paired test reads the per-user validation scores of the same sample (for the ranking
    # stage's strategies, those of its own fit)
    assert meta["served_choice"]["users"] == SAMPLED_USERS


def test_report_shows_the_strategy_the_bundle_serves(finished_run: Path) -> None:
    report = (finished_run / "report.md").read_text()
    table = report.split("## Served strategy", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("|").split("|") for line in table.splitlines()[2:]]
    valid = {row[0].strip(): float(row[1]) for row in rows}
    served = [row[0].strip() for row in rows if row[3].strip() == "yes"]
    meta = json.loads((finished_run / "bundle" / "bundle.json").read_text())
    assert served == [meta["default_strategy"]]
    # a strategy better on validation is left unserved only when it is not ahead beyond noise
    best, choice = max(valid, key=valid.__getitem__), meta["served_choice"]
    assert served[0] == best or (choice["best_on_validation"] == best and choice["beyond_noise"] is False)
    assert {"two_tower", "ease", "collab", "item_knn", "popular", "reranked_lgbm"} <= set(valid)


def test_bundle_round_trip_gives_the_same_recommendations(finished_run: Path) -> None:
    bundle = load_bundle(finished_run / "bundle")
    again = load_bundle(finished_run / "bundle")
    first_items, first_scores = bundle.model.recommend(["u0", "u1"], k=5)
    second_items, second_scores = again.model.recommend(["u0", "u1"], k=5)
    for a, b in zip(first_items, second_items):
        assert list(a) == list(b)
    for a, b in zip(first_scores, second_scores):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_recommend_prints_items_and_rejects_unknown_users(finished_run: Path) -> None:
    result = runner.invoke(app, ["recommend", str(finished_run / "bundle"), "--user", "u0", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "user u0: top 3" in result.output and "item number" in result.output
    unknown = runner.invoke(app, ["recommend", str(finished_run / "bundle"), "--user", "nobody"])
    assert unknown.exit_code == 2 and "unknown user id(s): 'nobody'" in unknown.output


def test_recommend_on_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    result = runner.invoke(app, ["recommend", str(tmp_path), "--user", "u0"])
    assert result.exit_code == 2 and "is not a foryou bundle" in result.output

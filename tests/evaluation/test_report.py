"""write_report writes both files with every section and every image, from tiny inputs."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from foryou.evaluation.protocol import EvaluationResult
from foryou.evaluation.report import ModelReport, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _result(ndcg: float) -> EvaluationResult:
    metrics = {"NDCG@10": ndcg, "HR@10": 2 * ndcg}
    segments = pd.DataFrame([
        {"segment": "activity 1-5", "users": 2, "targets": 2, **metrics},
        {"segment": "activity >5", "users": 1, "targets": 1, **metrics},
        {"segment": "cold items", "users": 1, "targets": 1, "NDCG@10": 0.0, "HR@10": 0.0},
        {"segment": "targets already known (unavoidable miss)", "users": 0, "targets": 0,
         "NDCG@10": np.nan, "HR@10": np.nan},
    ])
    ranked = np.array([[0, 1, 2], [3, 1, -1], [2, 0, 4]])
    summary = {**metrics, "coverage@10": 0.8, "diversity_embedding@10": np.nan, "users": 3.0}
    # Every user scores the mean: the bootstrap intervals have no width and a difference is constant.
    per_user = pd.DataFrame({"user_idx": [0, 1, 2], **{name: [value] * 3 for name, value in metrics.items()}})
    return EvaluationResult(summary, per_user, segments, ranked)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    out = tmp_path_factory.mktemp("report")
    history = [{"epoch": 1, "loss": 2.0, "valid_NDCG@10": 0.1}, {"epoch": 2, "loss": 1.0, "valid_NDCG@10": 0.2},
               {"epoch": 3, "loss": 0.5, "valid_NDCG@10": None}]  # an epoch without validation is a gap
    markdown, page = write_report(
        out,
        [ModelReport("pop", _result(0.1), 0.5, {}), ModelReport("two|tower", _result(0.3), 12.25, {"dim": 8})],
        title="Tiny <report>",
        dataset_summary={"users": 3, "items": 5},
        training_history={"two|tower": history},
        embeddings={"two|tower items": np.random.default_rng(0).normal(size=(5, 4))},
        item_popularity=np.array([5, 4, 3, 0, 1]),
        baselines=["pop"],
        served="two|tower",
        diversity_space="the catalog's content (text)",
    )
    return out, markdown.read_text(), page.read_text()


def test_markdown_has_every_section_and_linked_images(written) -> None:
    out, markdown, _ = written
    for heading in ("# Tiny <report>", "## Dataset", "## Models", "## By user activity",
                    "## Cold items and already-known targets", "## Popularity of recommendations",
                    "## Embedding diagnostics", "## Training curves"):
        assert heading in markdown
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(images) == ["embeddings_two_tower_items.png", "models_ndcg_hr.png", "popularity.png",
                              "segments_activity.png", "training_two_tower.png"]
    for name in images:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)


def test_markdown_tables_hold_the_numbers(written) -> None:
    _, markdown, _ = written
    assert "| two\\|tower | 12.25 | dim=8 |" in markdown  # a "|" in a name must not break the table
    assert "| NDCG@10 | 0.1000 | 0.3000 |" in markdown
    assert "| users | 3 | 3 |" in markdown
    assert "| 1-5 | 2 | 0.1000 | 0.3000 |" in markdown  # activity bucket: users, then NDCG@10 per model
    assert "| targets already known (unavoidable miss) | pop | 0 | 0 | — | — |" in markdown
    assert "| diversity_embedding@10 | — | — |" in markdown  # not measured: a dash, never a default


def test_every_model_has_intervals_and_paired_tests(written) -> None:
    _, markdown, _ = written
    assert "| model | users | NDCG@10 | HR@10 |" in markdown
    assert "| pop | 3 | 0.1000 [0.1000, 0.1000] | 0.2000 [0.2000, 0.2000] |" in markdown
    assert "## Paired tests on NDCG@10" in markdown
    assert "| model | vs best baseline (pop) | vs served (two\\|tower) |" in markdown
    # two|tower is 0.2 ahead of pop on each of the 3 users: p = 2 * (0 + 1) / (2000 + 1) < 0.001.
    assert "| pop | — | -0.2000 [-0.2000, -0.2000], p=<0.001 |" in markdown
    assert "| two\\|tower | +0.2000 [+0.2000, +0.2000], p=<0.001 | — |" in markdown
    assert "measured for every model in one space: the catalog's content (text)." in markdown


def test_html_is_self_contained_and_escaped(written) -> None:
    _, _, page = written
    assert "<title>Tiny &lt;report&gt;</title>" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)
    assert 'src="models_ndcg_hr.png"' not in page  # nothing referenced outside the file


def test_optional_sections_are_left_out(tmp_path: Path) -> None:
    markdown, _ = write_report(tmp_path, [ModelReport("pop", _result(0.1), 0.0)], title="t", dataset_summary={})
    text = markdown.read_text()
    assert "## Models" in text
    assert "Popularity" not in text and "Embedding" not in text and "Training curves" not in text


def test_needs_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one ModelReport"):
        write_report(tmp_path, [], title="t", dataset_summary={})

"""The report's HTML in a real browser at 1,280 px: every chart loads and is shown at 100%, inside the page.

Needs Debian's chromium and chromedriver (`make setup` installs them); without them the test is skipped, as
tests/serving/test_playground.py does. The screenshot is kept in the test's tmp folder for a look by eye.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.headless_chromium import chromium_session

from foryou.evaluation.plots import PAGE_WIDTH_PX
from foryou.evaluation.protocol import EvaluationResult
from foryou.evaluation.report import ModelReport, write_report

WINDOW_WIDTH = 1280
# The names of a demo run: nine strategies with long names are what made the old legend cover the bars.
MODELS = ["two_tower", "ease", "item_knn", "als", "recent_pop", "reranked_lgbm", "reranked_mlp", "hybrid",
          "reranked_lgbm_diverse"]


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium session 1,280 px wide, at scale 1."""
    with chromium_session(f"--window-size={WINDOW_WIDTH},1000", "--force-device-scale-factor=1") as driver:
        yield driver


def _result(rng: np.random.Generator, level: float) -> EvaluationResult:
    users = 300
    ndcg = np.where(rng.uniform(size=users) < level * 3, rng.uniform(0.2, 1.0, size=users), 0.0)
    hits = (ndcg > 0).astype(float)
    per_user = pd.DataFrame({"user_idx": np.arange(users), "NDCG@10": ndcg, "HR@10": hits})
    buckets = [f"activity {name}" for name in ("1-5", "6-20", "21-100", ">100")]
    segments = pd.DataFrame([{"segment": name, "users": 75, "targets": 75, "NDCG@10": ndcg[i::4].mean(),
                              "HR@10": hits[i::4].mean()} for i, name in enumerate(buckets)]
                            + [{"segment": "cold items", "users": 3, "targets": 3, "NDCG@10": 0.0, "HR@10": 0.0}])
    ranked = rng.integers(0, 200, size=(users, 10))
    summary = {"NDCG@10": ndcg.mean(), "HR@10": hits.mean(), "users": float(users)}
    return EvaluationResult(summary, per_user, segments, ranked)


@pytest.fixture
def report_html(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    results = [ModelReport(name, _result(rng, 0.03 + 0.01 * i), 1.0) for i, name in enumerate(MODELS)]
    history = [{"epoch": e, "loss": 3.0 / e, "valid_NDCG@10": 0.05 + 0.01 * e} for e in range(1, 9)]
    _, page = write_report(tmp_path, results, title="browser check", dataset_summary={"users": 300},
                           training_history={"two_tower": history},
                           embeddings={"two_tower": rng.normal(size=(200, 16))},
                           item_popularity=rng.integers(0, 50, size=200), baselines=["ease", "item_knn", "als"],
                           served="reranked_mlp", diversity_space="the catalog's content")
    return page


def test_every_chart_loads_at_full_size_within_the_page(browser: Any, report_html: Path, tmp_path: Path) -> None:
    browser.get(report_html.as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => ({complete: i.complete, natural: i.naturalWidth,"
        " width: i.getBoundingClientRect().width, right: i.getBoundingClientRect().right,"
        " alt: i.alt}));")
    page = browser.execute_script("return {client: document.documentElement.clientWidth,"
                                  " scroll: document.documentElement.scrollWidth};")
    assert [image["alt"].split()[0] for image in images] == ["NDCG@10", "NDCG@10", "popularity", "two_tower", "two_tower"]
    for image in images:
        assert image["complete"] and image["natural"] > 0, image["alt"]
        assert image["natural"] <= PAGE_WIDTH_PX, image  # drawn for the page, not 2,640 px wide
        assert image["width"] == pytest.approx(image["natural"], abs=1), image  # shown at 100%, not shrunk
        assert image["right"] <= page["client"], image  # inside the page
    assert page["scroll"] <= page["client"]  # no sideways scrolling at 1,280 px
    height = browser.execute_script("return document.documentElement.scrollHeight;")
    browser.set_window_size(WINDOW_WIDTH, height)
    assert browser.save_screenshot(str(tmp_path / "report.png"))

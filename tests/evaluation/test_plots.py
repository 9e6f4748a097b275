"""The report's figures read at 100%: page-wide, and no legend drawn over the data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from foryou.evaluation import plots
from foryou.evaluation.comparisons import Interval

MODELS = ["two_tower", "ease", "item_knn", "als", "recent_pop", "reranked_lgbm", "reranked_mlp", "hybrid"]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, plt.Figure]]:
    """Every figure of a report with eight models, kept open (by name) to measure its layout."""
    figures: dict[str, plt.Figure] = {}

    def keep(figure: plt.Figure, path: Path) -> Path:
        figure.canvas.draw()
        figures[path.stem] = figure
        return path

    monkeypatch.setattr(plots, "_save", keep)
    rng = np.random.default_rng(0)
    spans = {metric: {name: Interval(m, m - 0.01, m + 0.01) for name, m in zip(MODELS, rng.uniform(0.02, 0.2, 8))}
             for metric in ("NDCG@10", "HR@10")}
    plots.metric_panels(spans, tmp_path / "models.png")
    table = pd.DataFrame(rng.uniform(size=(4, 8)), index=["1-5", "6-20", "21-100", ">100"], columns=MODELS)
    plots.segment_bars(table, "NDCG@10", tmp_path / "segments.png")
    ranked = {name: rng.integers(0, 100, size=(50, 10)) for name in MODELS}
    plots.popularity_histogram(ranked, 10, rng.integers(0, 30, size=100), tmp_path / "popularity.png")
    yield figures
    for figure in figures.values():
        plt.close(figure)


def test_figures_are_page_wide(drawn: dict[str, plt.Figure]) -> None:
    for name, figure in drawn.items():
        width = figure.get_size_inches()[0] * figure.dpi
        assert width == pytest.approx(plots.PAGE_WIDTH_PX), name


def test_no_legend_covers_an_axes(drawn: dict[str, plt.Figure]) -> None:
    assert not drawn["models"].legends and not any(axis.get_legend() for axis in drawn["models"].axes)
    for name in ("segments", "popularity"):
        figure = drawn[name]
        (legend,) = figure.legends
        box = legend.get_window_extent()  # in pixels of the drawn figure
        for axis in figure.axes:
            assert not box.overlaps(axis.get_window_extent()), name
        assert box.x1 <= figure.bbox.x1 + 1  # and it is inside the picture

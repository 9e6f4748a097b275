"""The report's figures, one function each: data in, PNG path out (matplotlib Agg, no display needed).

Every figure is as wide as the report's page (PAGE_WIDTH_PX), so it reads at 100% without scaling, and every
legend sits outside the axes, so it never covers the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from foryou.evaluation.comparisons import Interval
from foryou.evaluation.metrics import popularity_percentiles

_DPI = 100
PAGE_WIDTH_PX = 1000  # the report page's content width (report.py's style): figures are drawn at this width
_WIDTH = PAGE_WIDTH_PX / _DPI
_LEGEND = {"loc": "outside right upper", "fontsize": 8}


def _figure(height: float, columns: int = 1) -> tuple[plt.Figure, np.ndarray]:
    """A page-wide figure of `columns` panels whose layout keeps outside legends and labels in the canvas."""
    figure, axes = plt.subplots(1, columns, figsize=(_WIDTH, height), layout="constrained", squeeze=False)
    return figure, axes[0]


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def metric_panels(values: Mapping[str, Mapping[str, Interval]], path: Path) -> Path:
    """One panel per metric (metric -> model -> mean with its interval): a horizontal bar per model, its
    interval as an error bar and its mean written beside it; model names on the axis, so no legend."""
    models = list(next(iter(values.values()))) if values else []
    figure, axes = _figure(1.1 + 0.3 * len(models), columns=max(len(values), 1))
    positions = np.arange(len(models))
    for axis, (metric, by_model) in zip(axes, values.items()):
        spans = [by_model[name] for name in models]
        means = np.array([span.mean for span in spans])
        lows, highs = np.array([span.low for span in spans]), np.array([span.high for span in spans])
        errors = np.nan_to_num(np.vstack([means - lows, highs - means]))
        axis.barh(positions, np.nan_to_num(means), xerr=errors, color="tab:blue", alpha=0.75, capsize=3)
        right = float(np.nanmax(highs, initial=0.0)) or 1.0
        for y, mean, high in zip(positions, means, highs):
            label = "—" if np.isnan(mean) else f"{mean:.3f}"
            axis.text((0.0 if np.isnan(high) else high) + 0.02 * right, y, label, va="center", fontsize=8)
        axis.set_xlim(0.0, 1.2 * right)
        axis.set_yticks(positions, models if axis is axes[0] else [""] * len(models))
        axis.invert_yaxis()
        axis.set_title(metric, fontsize=10)
        axis.set_xlabel("mean over test users, 95% bootstrap interval", fontsize=8)
    return _save(figure, path)


def segment_bars(table: pd.DataFrame, metric: str, path: Path) -> Path:
    """Bars of `metric` per user-activity bucket (rows of `table`) for each model (columns)."""
    figure, (axis,) = _figure(3.6)
    table.plot.bar(ax=axis, rot=0, legend=False)
    axis.set_xlabel("training events per user")
    axis.set_ylabel(metric)
    figure.legend(**_LEGEND)
    return _save(figure, path)


def popularity_histogram(ranked: Mapping[str, np.ndarray], k: int, item_popularity: np.ndarray, path: Path) -> Path:
    """Distribution of the popularity percentile of recommended top-k items per model, against the catalog's."""
    percentiles = popularity_percentiles(item_popularity)
    bins = np.linspace(0.0, 1.0, 21).tolist()
    figure, (axis,) = _figure(3.6)
    axis.hist(percentiles, bins=bins, density=True, histtype="stepfilled", alpha=0.25, color="grey", label="catalog")
    for name, lists in ranked.items():
        top = lists[:, :k]
        axis.hist(percentiles[top[top >= 0]], bins=bins, density=True, histtype="step", linewidth=1.6, label=name)
    axis.set_xlabel(f"popularity percentile of recommended items (top-{k}); 1 = most popular")
    axis.set_ylabel("density")
    figure.legend(**_LEGEND)
    return _save(figure, path)


def embedding_diagnostics(embeddings: np.ndarray, path: Path, sample: int = 1000, seed: int = 0) -> Path:
    """Norm histogram and the distribution of pairwise cosine similarity over a seeded sample of rows."""
    vectors = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    rows = np.random.default_rng(seed).choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    unit = vectors[rows] / np.maximum(norms[rows, None], 1e-12)
    cosine = (unit @ unit.T)[np.triu_indices(len(rows), k=1)]
    figure, (left, right) = _figure(3.4, columns=2)
    left.hist(norms, bins=40, color="tab:blue")
    left.set_xlabel("L2 norm")
    left.set_ylabel("items")
    right.hist(cosine, bins=40, range=(-1.0, 1.0), color="tab:orange")
    right.set_xlabel(f"pairwise cosine similarity ({len(rows)} sampled items)")
    right.set_ylabel("pairs")
    return _save(figure, path)


def training_curves(history: Sequence[Mapping[str, float | None]], metric_key: str | None, path: Path) -> Path:
    """Loss (left) and the validation metric (right) per epoch; `metric_key` None leaves the right empty; epochs
    without a value (None: no validation) are gaps."""
    epochs = [row.get("epoch", index + 1) for index, row in enumerate(history)]
    figure, (left, right) = _figure(3.4, columns=2)
    left.plot(epochs, [_value(row, "loss") for row in history], marker="o", markersize=3)
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    if metric_key is not None:
        right.plot(epochs, [_value(row, metric_key) for row in history], marker="o", markersize=3,
                   color="tab:green")
        right.set_ylabel(metric_key)
    right.set_xlabel("epoch")
    return _save(figure, path)


def _value(row: Mapping[str, float | None], key: str) -> float:
    value = row.get(key)
    return np.nan if value is None else float(value)


def trials_over_time(trials: pd.DataFrame, metric: str, path: Path) -> Path:
    """A search's trials (columns family, finished_s, value, state): each a dot at the time it ended, and each
    family's best so far as a step line."""
    figure, (axis,) = _figure(3.6)
    for family, rows in trials.sort_values("finished_s").groupby("family", sort=False):
        minutes = rows["finished_s"].to_numpy() / 60
        points = axis.scatter(minutes, rows["value"], s=14, label=family,
                              marker="o" if family == "two_tower" else "s")
        axis.step(minutes, np.maximum.accumulate(rows["value"].to_numpy()), where="post",
                  color=points.get_facecolor()[0], linewidth=1)
    axis.set_xlabel("minutes since the search began")
    axis.set_ylabel(f"validation {metric}")
    figure.legend(**_LEGEND)
    return _save(figure, path)

"""The report's figures, one function each: data in, PNG path out (matplotlib Agg, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from foryou.evaluation.metrics import popularity_percentiles

_DPI = 110


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def metric_bars(summaries: Mapping[str, Mapping[str, float]], metrics: Sequence[str], path: Path) -> Path:
    """Grouped bars: one group per metric, one bar per model."""
    figure, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(summaries) * len(metrics)), 3.6))
    width = 0.8 / max(len(summaries), 1)
    positions = np.arange(len(metrics))
    for offset, (name, summary) in enumerate(summaries.items()):
        values = [summary.get(metric, np.nan) for metric in metrics]
        bars = axis.bar(positions + offset * width, values, width, label=name)
        axis.bar_label(bars, fmt="%.3f", fontsize=7)
    axis.set_xticks(positions + width * (len(summaries) - 1) / 2, metrics)
    axis.set_ylabel("mean over test users")
    axis.legend(fontsize=8)
    return _save(figure, path)


def segment_bars(table: pd.DataFrame, metric: str, path: Path) -> Path:
    """Bars of `metric` per user-activity bucket (rows of `table`) for each model (columns)."""
    figure, axis = plt.subplots(figsize=(7.0, 3.6))
    table.plot.bar(ax=axis, rot=0)
    axis.set_xlabel("training events per user")
    axis.set_ylabel(metric)
    axis.legend(fontsize=8)
    return _save(figure, path)


def popularity_histogram(ranked: Mapping[str, np.ndarray], k: int, item_popularity: np.ndarray, path: Path) -> Path:
    """Distribution of the popularity percentile of recommended top-k items per model, against the catalog's."""
    percentiles = popularity_percentiles(item_popularity)
    bins = np.linspace(0.0, 1.0, 21).tolist()
    figure, axis = plt.subplots(figsize=(7.0, 3.6))
    axis.hist(percentiles, bins=bins, density=True, histtype="stepfilled", alpha=0.25, color="grey", label="catalog")
    for name, lists in ranked.items():
        top = lists[:, :k]
        axis.hist(percentiles[top[top >= 0]], bins=bins, density=True, histtype="step", linewidth=1.6, label=name)
    axis.set_xlabel(f"popularity percentile of recommended items (top-{k}); 1 = most popular")
    axis.set_ylabel("density")
    axis.legend(fontsize=8)
    return _save(figure, path)


def embedding_diagnostics(embeddings: np.ndarray, path: Path, sample: int = 1000, seed: int = 0) -> Path:
    """Norm histogram and the distribution of pairwise cosine similarity over a seeded sample of rows."""
    vectors = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    rows = np.random.default_rng(seed).choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    unit = vectors[rows] / np.maximum(norms[rows, None], 1e-12)
    cosine = (unit @ unit.T)[np.triu_indices(len(rows), k=1)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
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
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
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
    figure, axis = plt.subplots(figsize=(7.0, 3.6))
    for family, rows in trials.sort_values("finished_s").groupby("family", sort=False):
        minutes = rows["finished_s"].to_numpy() / 60
        points = axis.scatter(minutes, rows["value"], s=14, label=family,
                              marker="o" if family == "two_tower" else "s")
        axis.step(minutes, np.maximum.accumulate(rows["value"].to_numpy()), where="post",
                  color=points.get_facecolor()[0], linewidth=1)
    axis.set_xlabel("minutes since the search began")
    axis.set_ylabel(f"validation {metric}")
    axis.legend(fontsize=8)
    return _save(figure, path)

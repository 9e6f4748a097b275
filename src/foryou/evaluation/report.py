"""An evaluation report for people: report.md (PNGs next to it) and a self-contained report.html.

Both are rendered from one list of blocks (heading, paragraph, table, image), so they always say the same.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foryou.evaluation import plots
from foryou.evaluation.comparisons import CONFIDENCE, intervals, paired_table
from foryou.evaluation.protocol import EvaluationResult

logger = logging.getLogger(__name__)

_EMPTY_HISTORY: Mapping[str, Sequence[Mapping[str, float | None]]] = {}
_EMPTY_EMBEDDINGS: Mapping[str, np.ndarray] = {}
_EMPTY_SECTIONS: Mapping[str, pd.DataFrame] = {}
_EMPTY_IMAGES: Mapping[str, Path] = {}


@dataclass
class ModelReport:
    """One model's evaluation plus how it was obtained (fit wall-clock seconds, chosen hyperparameters)."""

    name: str
    result: EvaluationResult
    fit_seconds: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Block:
    kind: str  # "h1" | "h2" | "p" | "table" | "image"
    text: str = ""
    table: pd.DataFrame | None = None
    image: Path | None = None


def write_report(
    out_dir: Path,
    results: Sequence[ModelReport],
    *,
    title: str,
    dataset_summary: Mapping[str, Any],
    training_history: Mapping[str, Sequence[Mapping[str, float | None]]] = _EMPTY_HISTORY,
    embeddings: Mapping[str, np.ndarray] = _EMPTY_EMBEDDINGS,
    item_popularity: np.ndarray | None = None,
    sections: Mapping[str, pd.DataFrame] = _EMPTY_SECTIONS,
    images: Mapping[str, Path] = _EMPTY_IMAGES,
    baselines: Sequence[str] = (),
    served: str | None = None,
    diversity_space: str | None = None,
) -> tuple[Path, Path]:
    """Write report.md, report.html and their PNGs into `out_dir`; returns (markdown path, html path).

    training_history: model name -> one dict per epoch with "loss" and a validation "...NDCG@10" key.
    embeddings: name -> (n, d) vectors for norm / cosine diagnostics. item_popularity: (n_items,) training
    users per item, for the popularity-of-recommendations plot. sections: heading -> table, appended after the
    models (e.g. the ranking stage's validation scores and feature importance). images: caption -> a PNG in
    `out_dir`, shown after the sections (e.g. the search's trials over time). baselines: the names of the
    results that are baselines (the best of them on test NDCG@k is every model's first paired reference);
    served: the result of the strategy served by default (the second). diversity_space: where
    diversity_embedding was measured, the same space for every model (None: it was not).
    """
    if not results:
        raise ValueError("write_report needs at least one ModelReport")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    k = _main_k(results[0].result.summary)
    blocks = [_Block("h1", title), _Block("h2", "Dataset"), _Block("table", table=_key_values(dataset_summary))]
    blocks += _model_blocks(out_dir, results, k, diversity_space)
    blocks += _comparison_blocks(results, k, baselines, served)
    blocks += _segment_blocks(out_dir, results, k)
    for heading, table in sections.items():
        blocks += [_Block("h2", heading), _Block("table", table=table)]
    blocks += [_Block("image", caption, image=path) for caption, path in images.items()]
    if item_popularity is not None:
        blocks += _popularity_blocks(out_dir, results, k, item_popularity)
    blocks += _embedding_blocks(out_dir, embeddings)
    blocks += _training_blocks(out_dir, training_history)
    markdown_path, html_path = out_dir / "report.md", out_dir / "report.html"
    markdown_path.write_text(_render_markdown(blocks), encoding="utf-8")
    html_path.write_text(_render_html(title, blocks), encoding="utf-8")
    logger.info("wrote %s and %s", markdown_path, html_path)
    return markdown_path, html_path


def _main_k(summary: Mapping[str, float]) -> int:
    ks = sorted({int(key.split("@")[1]) for key in summary if key.startswith("NDCG@")})
    if not ks:
        raise ValueError("the evaluation summary has no NDCG@k metric: evaluate with at least one k")
    return 10 if 10 in ks else ks[0]


def _key_values(mapping: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({"": list(mapping), "value": [_format(value) for value in mapping.values()]})


def _format(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "—" if np.isnan(value) else f"{value:.4f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _model_blocks(out_dir: Path, results: Sequence[ModelReport], k: int, space: str | None) -> list[_Block]:
    runs = pd.DataFrame({
        "model": [r.name for r in results],
        "fit time (s)": [f"{r.fit_seconds:.2f}" for r in results],
        "chosen params": [", ".join(f"{key}={value}" for key, value in r.params.items()) or "-" for r in results],
    })
    metrics = pd.DataFrame({r.name: r.result.summary for r in results})
    metrics = metrics.map(_format).rename_axis("metric").reset_index()
    if "users" in metrics["metric"].values:
        users_row = metrics["metric"] == "users"
        metrics.loc[users_row, metrics.columns[1:]] = [[_format(int(r.result.summary["users"])) for r in results]]
    evaluated = {r.name: r.result for r in results}
    spans = {metric: intervals(evaluated, metric) for metric in (f"NDCG@{k}", f"HR@{k}")}
    shown = pd.DataFrame({"model": list(evaluated),
                          "users": [_format(int(r.result.summary["users"])) for r in results],
                          **{metric: [str(span) for span in by_model.values()] for metric, by_model in spans.items()}})
    chart = plots.metric_panels(spans, out_dir / "models_ndcg_hr.png")
    diversity = (f"diversity_embedding@k: mean over each list's item pairs of 1 − cosine similarity, measured "
                 f"for every model in one space: {space}." if space is not None else
                 "diversity_embedding@k: not measured (no item space shared by every model was given).")
    return [
        _Block("h2", "Models"),
        _Block("table", table=runs),
        _Block("p", f"NDCG@{k} and HR@{k}: mean over test users with its {CONFIDENCE:.0%} bootstrap interval "
                    "(users resampled with replacement):"),
        _Block("table", table=shown),
        _Block("image", f"NDCG@{k} and HR@{k} per model with {CONFIDENCE:.0%} intervals", image=chart),
        _Block("p", "Every summary metric, models side by side (means over evaluated users; — where a value "
                    f"cannot be measured). {diversity}"),
        _Block("table", table=metrics),
    ]


def _comparison_blocks(results: Sequence[ModelReport], k: int, baselines: Sequence[str],
                       served: str | None) -> list[_Block]:
    """Paired tests of every model against the best baseline on test and against the served strategy."""
    metric = f"NDCG@{k}"
    names = [r.name for r in results]
    references = {}
    candidates = [r for r in results if r.name in baselines]
    if candidates:
        best = max(candidates, key=lambda r: np.nan_to_num(r.result.summary.get(metric, np.nan), nan=-1.0))
        references[f"best baseline ({best.name})"] = best.name
    if served is not None and served in names:
        references[f"served ({served})"] = served
    if not references:
        return []
    table = paired_table({r.name: r.result for r in results}, metric, references)
    return [
        _Block("h2", f"Paired tests on {metric}"),
        _Block("p", f"Each cell: the model's mean {metric} minus the reference's over the same test users, its "
                    f"{CONFIDENCE:.0%} paired bootstrap interval and two-sided p-value (not corrected for the "
                    "number of comparisons). An interval that excludes 0 is a difference beyond noise."),
        _Block("table", table=table),
    ]


def _segment_blocks(out_dir: Path, results: Sequence[ModelReport], k: int) -> list[_Block]:
    metric = f"NDCG@{k}"
    frames = {r.name: r.result.segments.set_index("segment") for r in results}
    activity = pd.DataFrame({name: frame[metric] for name, frame in frames.items()})
    activity = activity[activity.index.str.startswith("activity ")]
    activity.index = activity.index.str.removeprefix("activity ")
    users = next(iter(frames.values()))["users"]
    shown = activity.map(_format)
    shown.insert(0, "users", [_format(int(users[f"activity {bucket}"])) for bucket in activity.index])
    chart = plots.segment_bars(activity.dropna(how="all"), metric, out_dir / "segments_activity.png")
    special = [
        {"segment": segment, "model": name, "users": int(frame.loc[segment, "users"]),
         "targets": int(frame.loc[segment, "targets"]), f"HR@{k}": _format(frame.loc[segment, f"HR@{k}"]),
         metric: _format(frame.loc[segment, metric])}
        for name, frame in frames.items()
        for segment in frame.index
        if not segment.startswith("activity ")
    ]
    return [
        _Block("h2", "By user activity"),
        _Block("p", f"{metric} by number of training events per user."),
        _Block("table", table=shown.rename_axis("training events").reset_index()),
        _Block("image", f"{metric} by user activity", image=chart),
        _Block("h2", "Cold items and already-known targets"),
        _Block("p", "Cold items: targets never seen in training. Already-known targets are in the user's "
                    "history, so they are excluded from the ranking and always missed."),
        _Block("table", table=pd.DataFrame(special)),
    ]


def _popularity_blocks(
    out_dir: Path, results: Sequence[ModelReport], k: int, item_popularity: np.ndarray
) -> list[_Block]:
    ranked = {r.name: r.result.ranked for r in results}
    chart = plots.popularity_histogram(ranked, k, item_popularity, out_dir / "popularity.png")
    return [
        _Block("h2", "Popularity of recommendations"),
        _Block("p", f"Popularity percentile of top-{k} items against the catalog (flat). Mass on the right "
                    "means the model favours already popular items."),
        _Block("image", "popularity percentiles", image=chart),
    ]


def _embedding_blocks(out_dir: Path, embeddings: Mapping[str, np.ndarray]) -> list[_Block]:
    if not embeddings:
        return []
    blocks = [_Block("h2", "Embedding diagnostics")]
    for name, vectors in embeddings.items():
        chart = plots.embedding_diagnostics(vectors, out_dir / f"embeddings_{_slug(name)}.png")
        blocks += [_Block("p", f"{name}: {vectors.shape[0]:,} vectors of dimension {vectors.shape[1]}."),
                   _Block("image", f"{name} embedding norms and cosine similarities", image=chart)]
    return blocks


def _training_blocks(out_dir: Path, history: Mapping[str, Sequence[Mapping[str, float | None]]]) -> list[_Block]:
    blocks = [_Block("h2", "Training curves")] if any(history.values()) else []
    for name, epochs in history.items():
        if not epochs:
            continue
        metric_key = next((key for key in epochs[0] if "NDCG@10" in key), None)
        chart = plots.training_curves(epochs, metric_key, out_dir / f"training_{_slug(name)}.png")
        blocks += [_Block("p", f"{name}: {len(epochs)} epochs."), _Block("image", f"{name} training", image=chart)]
    return blocks


def _markdown_table(table: pd.DataFrame) -> str:
    header = [str(column).replace("|", "\\|") for column in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(value).replace("|", "\\|") for value in row) + " |" for row in table.to_numpy()]
    return "\n".join(lines)


def _render_markdown(blocks: Sequence[_Block]) -> str:
    parts = []
    for block in blocks:
        if block.kind in ("h1", "h2"):
            parts.append(("# " if block.kind == "h1" else "## ") + block.text)
        elif block.kind == "table":
            parts.append(_markdown_table(block.table))  # type: ignore[arg-type]
        elif block.kind == "image":
            parts.append(f"![{block.text}]({block.image.name})")  # type: ignore[union-attr]
        else:
            parts.append(block.text)
    return "\n\n".join(parts) + "\n"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
    "img{max-width:100%}"
)


def _render_html(title: str, blocks: Sequence[_Block]) -> str:
    parts = []
    for block in blocks:
        if block.kind in ("h1", "h2"):
            parts.append(f"<{block.kind}>{html.escape(block.text)}</{block.kind}>")
        elif block.kind == "table":
            parts.append(block.table.to_html(index=False, escape=True, border=0))  # type: ignore[union-attr]
        elif block.kind == "image":
            encoded = base64.b64encode(block.image.read_bytes()).decode("ascii")  # type: ignore[union-attr]
            parts.append(f'<img alt="{html.escape(block.text)}" src="data:image/png;base64,{encoded}">')
        else:
            parts.append(f"<p>{html.escape(block.text)}</p>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")

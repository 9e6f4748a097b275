"""Full-catalog evaluation of a fitted Recommender on one split: summary, per-user table and segments.

The model must have been fitted on the splits before `split` (train for "valid", train + valid for "test"):
its `seen` matrix is then each user's known history, which `recommend_indices(exclude_seen=True)` removes.
Targets that are already known stay in the targets (they are unavoidable misses) and are counted apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.evaluation import metrics as M
from foryou.models.base import Recommender
from foryou.models.ranking import users_per_batch

logger = logging.getLogger(__name__)

COLD_ITEMS = "cold items"
KNOWN_TARGETS = "targets already known (unavoidable miss)"


@dataclass
class EvaluationResult:
    """summary: metric name -> value; per_user: one row per evaluated user (same order as `ranked`);
    segments: one row per activity bucket, cold items and known targets; ranked: (users, max(ks)) indices."""

    summary: dict[str, float]
    per_user: pd.DataFrame
    segments: pd.DataFrame
    ranked: np.ndarray


def evaluate(
    model: Recommender,
    dataset: Dataset,
    split: str = "test",
    ks: Sequence[int] = (10, 20, 50),
    *,
    batch_size: int = 1024,
    activity_buckets: Sequence[int] = (5, 20, 100),
    beyond_accuracy: bool = True,
    item_embeddings: np.ndarray | None = None,
) -> EvaluationResult:
    """Rank the whole catalog for every user with a target in `split` and score the lists.

    `activity_buckets` are upper bounds on a user's training events ("0", "1-5", "6-20", "21-100", ">100").
    `item_embeddings` (n_items, d): the one space in which every compared model's embedding diversity is
    measured (see `diversity_space`); None leaves diversity_embedding unmeasured (NaN), because each model's
    own vectors would make the numbers incomparable across models.
    Cheap mode for early stopping: `ks=(10,), beyond_accuracy=False`.
    """
    ks = _check_ks(ks)
    _check_split(dataset, split)
    _check_model(model, dataset)
    user_idx, targets = _targets(dataset, split)
    if not len(user_idx):
        logger.warning("no user has an event in split %r: nothing to evaluate", split)
    ranked = _rank(model, user_idx, max(ks), batch_size)
    train = dataset.events(*_prior_splits(split))
    per_user = _per_user_frame(user_idx, targets, ranked, ks, train, activity_buckets)
    summary: dict[str, float] = {}
    for k in ks:
        for name in M.ACCURACY_METRICS:
            summary[f"{name}@{k}"] = float(np.nanmean(per_user[f"{name}@{k}"])) if len(user_idx) else float("nan")
    if beyond_accuracy:
        _add_beyond_accuracy(summary, per_user, dataset, ranked, ks, train, item_embeddings)
    summary["users"] = float(len(user_idx))
    segments = _segments(per_user, model, dataset, ranked, targets, ks, train)
    return EvaluationResult(summary, per_user, segments, ranked)


def evaluated_users_note(dataset: Dataset) -> str:
    """Which users valid and test scores are computed on, in words for the report and the log."""
    scored = dataset.events(*S.SPLITS[1:])[S.USER_IDX].nunique()
    if dataset.evaluated_users is None:
        return f"all {scored:,} users with a valid or test event"
    return (f"a uniform sample (seeded) of {len(dataset.evaluated_users):,} of the {scored:,} users with a valid "
            "or test event (evaluation.max_users)")


def validation_ndcg(dataset: Dataset) -> Callable[[Recommender], float]:
    """The early-stopping score of a model fitted on `dataset`'s train split: NDCG@10 on its "valid" split."""
    return validation_metric(dataset, "NDCG@10")


def validation_metric(dataset: Dataset, metric: str) -> Callable[[Recommender], float]:
    """`metric` ("NDCG@10", "HR@10", "MRR@10", ...) on the "valid" split of a model fitted on train."""
    k = int(metric.split("@")[1])

    def score(model: Recommender) -> float:
        return float(evaluate(model, dataset, split="valid", ks=(k,), beyond_accuracy=False).summary[metric])

    return score


def evaluate_many(
    models: Mapping[str, Recommender], dataset: Dataset, split: str = "test", **options: Any
) -> pd.DataFrame:
    """One row per model (index: model name) with every summary metric; options go to `evaluate`."""
    rows = {name: evaluate(model, dataset, split, **options).summary for name, model in models.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive cut-offs such as (10, 20), got {ks}")
    return ks


def _check_split(dataset: Dataset, split: str) -> None:
    if split not in S.SPLITS or split == S.SPLITS[0]:
        raise ValueError(f"split must be one of {S.SPLITS[1:]} (the model is fitted on the splits before it)")


def _check_model(model: Recommender, dataset: Dataset) -> None:
    if model.n_items != dataset.n_items or model.seen is None or model.seen.shape[0] != dataset.n_users:
        raise ValueError(
            f"model was fitted on {model.n_items} items / {0 if model.seen is None else model.seen.shape[0]} "
            f"users but the dataset has {dataset.n_items} items / {dataset.n_users} users: fit it on "
            "dataset.restricted_to(...) of this same dataset"
        )


def _prior_splits(split: str) -> tuple[str, ...]:
    return S.SPLITS[: S.SPLITS.index(split)]


def _targets(dataset: Dataset, split: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Evaluated users with at least one event in `split` (ascending) and each one's distinct target items."""
    events = dataset.evaluation_events(split)[[S.USER_IDX, S.ITEM_IDX]].drop_duplicates().sort_values([S.USER_IDX, S.ITEM_IDX])
    users = events[S.USER_IDX].to_numpy(np.int64)
    items = events[S.ITEM_IDX].to_numpy(np.int64)
    user_idx, starts = np.unique(users, return_index=True)
    return user_idx, np.split(items, starts[1:]) if len(user_idx) else []


def _rank(model: Recommender, user_idx: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    k = min(k, model.n_items)
    batch_size = users_per_batch(model.n_items, batch_size)
    batches = [
        model.recommend_indices(user_idx[start : start + batch_size], k, exclude_seen=True)[0]
        for start in range(0, len(user_idx), batch_size)
    ]
    return np.concatenate(batches) if batches else np.zeros((0, k), np.int64)


def _bucket_labels(bounds: Sequence[int]) -> list[str]:
    labels, low = ["0"], 1
    for high in bounds:
        labels.append(f"{low}-{high}" if high > low else str(high))
        low = high + 1
    return [*labels, f">{bounds[-1]}" if bounds else ">0"]


def _activity_bucket(n_events: np.ndarray, bounds: Sequence[int]) -> pd.Categorical:
    bounds = sorted(int(b) for b in bounds if b > 0)
    labels = _bucket_labels(bounds)
    codes = np.where(n_events == 0, 0, 1 + np.searchsorted(np.asarray(bounds), n_events, side="left"))
    return pd.Categorical.from_codes(codes, categories=labels)


def _accuracy_columns(ranked: np.ndarray, targets: list[np.ndarray], ks: Sequence[int]) -> dict[str, np.ndarray]:
    return {f"{name}@{k}": metric(ranked, targets, k) for k in ks for name, metric in M.ACCURACY_METRICS.items()}


def _per_user_frame(
    user_idx: np.ndarray,
    targets: list[np.ndarray],
    ranked: np.ndarray,
    ks: Sequence[int],
    train: pd.DataFrame,
    buckets: Sequence[int],
) -> pd.DataFrame:
    counts = np.bincount(train[S.USER_IDX].to_numpy(np.int64), minlength=int(user_idx.max(initial=-1)) + 1)
    n_train = counts[user_idx] if len(user_idx) else np.zeros(0, np.int64)
    frame = pd.DataFrame(
        {
            S.USER_IDX: user_idx,
            "n_train_events": n_train,
            "activity": _activity_bucket(n_train, buckets),
            "n_targets": np.fromiter((len(t) for t in targets), np.int64, count=len(targets)),
        }
    )
    return pd.concat([frame, pd.DataFrame(_accuracy_columns(ranked, targets, ks))], axis=1)


def item_user_counts(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """(n_items,) number of distinct training users per item: the popularity novelty and bias refer to."""
    pairs = train[[S.USER_IDX, S.ITEM_IDX]].drop_duplicates()
    return np.bincount(pairs[S.ITEM_IDX].to_numpy(np.int64), minlength=n_items)


def item_category_sets(dataset: Dataset) -> list[set[str]] | None:
    """Per item, the set of "field=value" of its categorical fields (multi-valued lists expanded); None if none."""
    fields = [name for name in dataset.item_fields.categorical if name in dataset.items]
    if not fields:
        return None
    sets: list[set[str]] = [set() for _ in range(dataset.n_items)]
    for name in fields:
        for item, value in enumerate(dataset.items[name].tolist()):
            values = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
            sets[item].update(f"{name}={part}" for part in values if part is not None and not pd.isna(part))
    return sets


def _add_beyond_accuracy(
    summary: dict[str, float],
    per_user: pd.DataFrame,
    dataset: Dataset,
    ranked: np.ndarray,
    ks: Sequence[int],
    train: pd.DataFrame,
    item_embeddings: np.ndarray | None,
) -> None:
    popularity = item_user_counts(train, dataset.n_items)
    n_train_users = max(int(train[S.USER_IDX].nunique()), 1)
    categories = item_category_sets(dataset)
    for k in ks:
        summary[f"coverage@{k}"] = M.catalog_coverage(ranked, k, dataset.n_items) if len(ranked) else 0.0
        columns = {
            f"novelty@{k}": M.novelty(ranked, k, popularity, n_train_users),
            f"popularity_bias@{k}": M.popularity_bias(ranked, k, popularity),
        }
        columns[f"diversity_embedding@{k}"] = (np.full(len(ranked), np.nan) if item_embeddings is None else
                                               M.intra_list_diversity_embeddings(ranked, k, item_embeddings))
        if categories is not None:
            columns[f"diversity_category@{k}"] = M.intra_list_diversity_categories(ranked, k, categories)
        for name, values in columns.items():
            per_user[name] = values
            summary[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _segments(
    per_user: pd.DataFrame,
    model: Recommender,
    dataset: Dataset,
    ranked: np.ndarray,
    targets: list[np.ndarray],
    ks: Sequence[int],
    train: pd.DataFrame,
) -> pd.DataFrame:
    """Metrics per activity bucket, then on cold-item targets and on already-known targets alone."""
    metric_names = [f"{name}@{k}" for k in ks for name in M.ACCURACY_METRICS]
    rows = []
    for bucket, group in per_user.groupby("activity", observed=False):
        rows.append({"segment": f"activity {bucket}", "users": len(group), "targets": int(group["n_targets"].sum()),
                     **{name: float(group[name].mean()) if len(group) else np.nan for name in metric_names}})
    trained_items = np.zeros(dataset.n_items, dtype=bool)
    trained_items[train[S.ITEM_IDX].to_numpy(np.int64)] = True
    seen = model.seen if model.seen is not None else sp.csr_matrix((dataset.n_users, dataset.n_items))
    user_idx = per_user[S.USER_IDX].to_numpy(np.int64)
    cold = [t[~trained_items[t]] for t in targets]
    lengths = np.fromiter((len(t) for t in targets), np.int64, count=len(targets))
    flat = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    is_known = np.zeros(len(flat), dtype=bool)
    if len(flat):
        is_known = np.asarray(seen[np.repeat(user_idx, lengths), flat]).ravel() > 0
    known = [t[mask] for t, mask in zip(targets, np.split(is_known, np.cumsum(lengths)[:-1]))]
    for name, subset in ((COLD_ITEMS, cold), (KNOWN_TARGETS, known)):
        rows.append(_subset_row(name, ranked, subset, ks, metric_names))
    return pd.DataFrame(rows, columns=["segment", "users", "targets", *metric_names])


def _subset_row(
    name: str, ranked: np.ndarray, subset: list[np.ndarray], ks: Sequence[int], metric_names: list[str]
) -> dict[str, Any]:
    keep = np.fromiter((len(t) > 0 for t in subset), dtype=bool, count=len(subset))
    kept = [t for t, flag in zip(subset, keep) if flag]
    row: dict[str, Any] = {"segment": name, "users": int(keep.sum()), "targets": sum(len(t) for t in kept)}
    if kept:
        row.update({key: float(np.mean(values)) for key, values in _accuracy_columns(ranked[keep], kept, ks).items()})
    else:
        row.update({key: np.nan for key in metric_names})
    return row

"""The ranker's training protocol: sources fitted on one window, features up to each label, labels after it.

Leave-last-out gives each user a train history, a validation event and a test event. The ranker must learn on
labels that the candidate sources never saw, so `holdout_last_train_event` takes each user's last train event
out of train and makes it the training label; the sources are fitted on what remains ("train-minus-last").
`train_ranker` then builds

  - the training frame: sources fitted on train-minus-last, candidates for the held-out users, features from
    train-minus-last before each label's time, label = the held-out event;
  - the validation frame: sources fitted on train, features from train before each validation event,
    label = the validation event (LightGBM early-stops on its NDCG@10);

and `rerank_scores` turns a scored frame into a full-catalog score matrix (candidates by their rank under the
ranker, non-candidates -inf) so that `foryou.evaluation.protocol.evaluate` scores it like any model: a target that no
source proposed is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.models.base import Recommender
from foryou.models.ranking import tie_break_order
from foryou.models.registry import build_baseline
from foryou.models.sparse_rows import stored_rows
from foryou.models.two_tower import TwoTower
from foryou.rerank.candidates import (
    CandidateSource,
    ContentSource,
    CooccurrenceSource,
    ModelSource,
    als_source,
    item_item_source,
    recent_popularity_source,
    two_tower_source,
)
from foryou.rerank.features import HistoryEnd, feature_columns, ranking_features
from foryou.rerank.lgbm import LGBMRanker
from foryou.rerank.merge import merge_candidates
from foryou.rerank.transitions import TransitionSource

logger = logging.getLogger(__name__)

LABEL = "label"
HELD_OUT_SPLIT = "valid"
PerSourceK = int | Mapping[str, int]
DEFAULT_BASELINES: dict[str, dict[str, Any]] = {
    "ease": {"l2": 50.0}, "item_knn": {"neighbours": 50},
    "als": {"factors": 128, "regularization": 0.01, "alpha": 10.0, "iterations": 15},
    "recent_pop": {"half_life_days": 30.0},
}
_WRAP: dict[str, Callable[[Any, str], ModelSource]] = {
    "als": als_source, "recent_pop": recent_popularity_source, "ease": item_item_source, "item_knn": item_item_source,
}


@dataclass
class SourceSettings:
    """What `fit_sources` fits. `tower`: TwoTower keyword arguments (model / loss / train / features sections;
    None: no two-tower and no content source); `baselines`: name -> constructor arguments of EASE, ItemKNN, ALS,
    RecentPop; `last_n`: recent items read by co-occurrence, transitions and content; `cache_dir`: fitted two-towers are
    saved there per stage and reused when the settings and the training data are the same."""

    tower: dict[str, Any] | None = None
    baselines: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_BASELINES))
    last_n: int = 5
    cache_dir: Path | None = None


def fit_sources(dataset: Dataset, settings: SourceSettings, stage: str = "fit") -> list[CandidateSource]:
    """Every source fitted on all interactions of `dataset` (the caller restricts it): two-tower, the baselines,
    co-occurrence, transitions and content (the two-tower's content-only item vectors). `stage` names the cache entry."""
    sources: list[CandidateSource] = []
    tower = _two_tower(dataset, settings, stage) if settings.tower is not None else None
    if tower is not None:
        sources.append(two_tower_source(tower))
    for name, params in settings.baselines.items():
        model = build_baseline(name, params).fit(dataset)
        sources.append(_WRAP[name](model, name) if name in _WRAP else ModelSource(model, name))
    sources.append(CooccurrenceSource(last_n=settings.last_n).fit(dataset))
    sources.append(TransitionSource(last_n=settings.last_n).fit(dataset))
    if tower is not None:
        sources.append(ContentSource.from_two_tower(tower, dataset.items, last_n=settings.last_n).fit(dataset))
    return sources


def _two_tower(dataset: Dataset, settings: SourceSettings, stage: str) -> TwoTower:
    """Fit (or load from the cache) the two-tower of `settings` on `dataset`."""
    assert settings.tower is not None
    key = json.dumps({"tower": settings.tower, "events": len(dataset.interactions),
                      "items": int(dataset.interactions[S.ITEM_IDX].sum()), "users": dataset.n_users},
                     sort_keys=True, default=str)
    directory = None
    if settings.cache_dir is not None:
        directory = Path(settings.cache_dir) / f"{stage}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
        if (directory / "done").exists():
            logger.info("two-tower (%s) loaded from %s", stage, directory)
            loaded = Recommender.load(directory)
            assert isinstance(loaded, TwoTower)
            return loaded
    start = time.perf_counter()
    tower = TwoTower(**settings.tower).fit(dataset)
    logger.info("two-tower (%s) fitted in %.0f s", stage, time.perf_counter() - start)
    if directory is not None:
        tower.save(directory)
        (directory / "done").write_text(key)
    return tower


def train_minus_last_event(dataset: Dataset) -> Dataset:
    """Train minus each user's last train event (`holdout_last_train_event`): what the stage's label sources see."""
    return holdout_last_train_event(dataset)[0].restricted_to("train")


def holdout_last_train_event(dataset: Dataset) -> tuple[Dataset, pd.DataFrame]:
    """-> (a dataset whose "train" is train minus each user's last train event and whose "valid" is that event,
    labels (n_held_out_users, 3): user_idx, item_idx, timestamp).

    Only users with >= 2 train events give one up (a user keeps at least one train event). The original valid
    and test events are dropped: they lie after the held-out window. `dataset` is not modified.
    """
    train = dataset.events("train")
    order = [column for column in (S.USER_IDX, S.TIMESTAMP, S.SOURCE_ORDER) if column in train]
    ordered = train.sort_values(order, kind="stable")
    sizes = ordered.groupby(S.USER_IDX)[S.ITEM_IDX].transform("size").to_numpy()
    is_last = ~ordered.duplicated(S.USER_IDX, keep="last").to_numpy()
    held_out = ordered.index[is_last & (sizes >= 2)]
    interactions = train.copy()
    interactions.loc[held_out, S.SPLIT] = HELD_OUT_SPLIT
    labels = interactions.loc[held_out, [S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP]].sort_values(S.USER_IDX)
    relabelled = Dataset(interactions.reset_index(drop=True), dataset.items, dataset.users, dataset.manifest)
    return relabelled, labels.reset_index(drop=True)


def split_labels(dataset: Dataset, split: str) -> pd.DataFrame:
    """(n_users_with_an_event, 3) user_idx, item_idx, timestamp: each evaluated user's first event of `split` (one
    per user under leave-last-out)."""
    events = dataset.evaluation_events(split)
    first = events.sort_values([S.USER_IDX, S.TIMESTAMP], kind="stable").drop_duplicates(S.USER_IDX)
    return first[[S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP]].reset_index(drop=True)


def ranking_frame(sources: Sequence[CandidateSource], history: Dataset, users: np.ndarray,
                  labels: pd.DataFrame | None, per_source_k: PerSourceK,
                  history_end: HistoryEnd | None = None, total: int | None = None,
                  complete: bool = True) -> pd.DataFrame:
    """Candidates of `users` (train items of `history` excluded by the sources) with features and a label.

    Rows: the union of every source's top `per_source_k` (cut to `total` per user by `merge_candidates`), sorted
    by (user_idx, merged_rank); columns: user_idx, item_idx, `<source>_score` (on every row the source scores,
    as `merge_candidates` completes it; unless not `complete`: only where it proposed the row) / `_rank`,
    merged_rank, the `ranking_features` columns computed from `history` (the data the sources were fitted on)
    strictly before each user's `history_end` (default: the user's label time), then `label` (1 where (user, item)
    is in `labels`, else 0; all 0 without labels).
    """
    users = np.unique(np.asarray(users, dtype=np.int64))
    if history_end is None:
        if labels is None:
            raise ValueError("give history_end (a time or user_idx -> time) when there are no labels")
        history_end = labels.drop_duplicates(S.USER_IDX).set_index(S.USER_IDX)[S.TIMESTAMP]
    frame = merge_candidates(sources, users, per_source_k, total=total, tie_order=tie_break_order(history.n_items),
                             complete=complete)
    frame = ranking_features(frame, history, history_end)
    frame[LABEL] = np.zeros(len(frame), dtype=np.int64)
    if labels is not None and len(frame):
        width = np.int64(history.n_items)
        wanted = labels[S.USER_IDX].to_numpy(np.int64) * width + labels[S.ITEM_IDX].to_numpy(np.int64)
        keys = frame[S.USER_IDX].to_numpy(np.int64) * width + frame[S.ITEM_IDX].to_numpy(np.int64)
        frame[LABEL] = np.isin(keys, wanted).astype(np.int64)
    return frame


def label_recall(frame: pd.DataFrame, n_users: int) -> float:
    """Share of `n_users` labelled users whose label is among their candidates (the ceiling of any reranker)."""
    return float(frame.loc[frame[LABEL] > 0, S.USER_IDX].nunique() / max(n_users, 1))


def with_a_positive(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of users that have at least one positive label: the only groups lambdarank learns from."""
    positive = frame.groupby(S.USER_IDX)[LABEL].transform("max").to_numpy() > 0
    return frame[positive].reset_index(drop=True)


@dataclass
class TrainedRanker:
    """The ranker with the frames it saw and the sources behind the validation frame (fitted on train)."""

    ranker: LGBMRanker
    features: list[str]
    train_frame: pd.DataFrame
    valid_frame: pd.DataFrame
    valid_sources: list[CandidateSource]
    label_recall: dict[str, float]


SourceFitter = Callable[[Dataset, str], list[CandidateSource]]


def train_ranker(dataset: Dataset, settings: SourceSettings, per_source_k: PerSourceK = 100,
                 ranker: LGBMRanker | None = None, fit: SourceFitter | None = None) -> TrainedRanker:
    """Fit sources on train-minus-last (label: the held-out event) and on train (label: the validation event),
    then LightGBM lambdarank on the first frame with early stopping on the second one's NDCG@10.

    Users whose label no source proposed carry no signal for lambdarank and are left out of both LightGBM sets
    (they stay misses when `rerank_scores` + `evaluate` score the full validation split). `fit(data, stage)`
    replaces `fit_sources(data, settings, stage)`, e.g. to reuse cached models.
    """
    fit = fit or (lambda data, stage: fit_sources(data, settings, stage))
    held_out, train_labels = holdout_last_train_event(dataset)
    fit_data = held_out.restricted_to("train")
    train_frame = ranking_frame(fit(fit_data, "train-minus-last"), fit_data, train_labels[S.USER_IDX].to_numpy(),
                                train_labels, per_source_k)
    train_data = dataset.restricted_to("train")
    valid_labels = split_labels(dataset, "valid")
    valid_sources = fit(train_data, "train")
    valid_frame = ranking_frame(valid_sources, train_data, valid_labels[S.USER_IDX].to_numpy(), valid_labels,
                                per_source_k)
    recall = {"train": label_recall(train_frame, len(train_labels)),
              "valid": label_recall(valid_frame, len(valid_labels))}
    logger.info("labels among the candidates: train %.3f, valid %.3f; %d / %d rows", recall["train"],
                recall["valid"], len(train_frame), len(valid_frame))
    features = feature_columns(train_frame, exclude=(LABEL,))
    learn, stop = with_a_positive(train_frame), with_a_positive(valid_frame)
    if learn.empty or stop.empty:
        raise ValueError("no user has its label among the candidates: raise per_source_k or add sources")
    ranker = ranker or LGBMRanker()
    ranker.fit(learn[features], learn[LABEL].to_numpy(), learn[S.USER_IDX].to_numpy(),
               valid=(stop[features], stop[LABEL].to_numpy(), stop[S.USER_IDX].to_numpy()))
    return TrainedRanker(ranker, features, train_frame, valid_frame, valid_sources, recall)


def rerank_scores(ranker: LGBMRanker, frame: pd.DataFrame, n_users: int, n_items: int) -> np.ndarray:
    """(n_users, n_items) float32: each candidate of `frame` scores its dense rank among its user's candidates by
    the ranker's raw score (1 = lowest, exact ties stay tied), everything else (non-candidates, users absent
    from the frame) -inf. A full-catalog top-k then returns exactly the candidates in the ranker's order (raw
    float64 scores cast to float32 could merge near-equal values) and a target outside them is always a miss."""
    return score_matrix(frame, ranker.predict(frame) if len(frame) else np.zeros(0), n_users, n_items)


def score_matrix(frame: pd.DataFrame, raw_scores: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """`rerank_scores` for any per-row scores (a ranker's, a hybrid's): dense ranks per user, -inf elsewhere."""
    scores = np.full((n_users, n_items), -np.inf, dtype=np.float32)
    if not len(frame):
        return scores
    scores[frame[S.USER_IDX].to_numpy(np.int64), frame[S.ITEM_IDX].to_numpy(np.int64)] = candidate_ranks(
        frame, raw_scores)
    return scores


def rank_matrix(frame: pd.DataFrame, raw_scores: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """`score_matrix` as a (n_users, n_items) float32 CSR of the candidates' ranks alone (all >= 1; `ScoreMatrix`
    reads the absent entries as -inf): memory grows with the candidates, not with users x items (4.8 GB dense
    at 20,000 users and 60,000 items)."""
    ranks = candidate_ranks(frame, raw_scores) if len(frame) else np.zeros(0, np.float32)
    where = (frame[S.USER_IDX].to_numpy(np.int64), frame[S.ITEM_IDX].to_numpy(np.int64))
    return sp.csr_matrix((ranks, where), shape=(n_users, n_items), dtype=np.float32)


def candidate_ranks(frame: pd.DataFrame, raw_scores: np.ndarray) -> np.ndarray:
    """(n,) float32 dense rank of each row's raw score among its user's rows (1 = lowest, exact ties tied)."""
    raw = pd.Series(np.asarray(raw_scores, np.float64), index=frame.index)
    return raw.groupby(frame[S.USER_IDX].to_numpy()).rank(method="dense").to_numpy(np.float32)


class ScoreMatrix(Recommender):
    """Precomputed (n_users, n_items) scores as a Recommender, so `evaluate` can rank them: `seen` is the history
    of the data the sources were fitted on (excluded at evaluation, as for every model). `scores` is dense, or a
    CSR whose absent entries score -inf (`rank_matrix`), densified a batch of users at a time."""

    name = "reranked_lgbm"

    def __init__(self, scores: np.ndarray | sp.csr_matrix, history: Dataset) -> None:
        super().__init__()
        if scores.shape != (history.n_users, history.n_items):
            raise ValueError(f"scores {scores.shape} must be (n_users, n_items) = "
                             f"({history.n_users}, {history.n_items})")
        self.scores = scores
        self._remember(history)

    def _fit(self, dataset: Dataset) -> None:
        raise TypeError("ScoreMatrix holds precomputed scores: build a new one instead of fitting it")

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = np.asarray(user_idx, dtype=np.int64)
        if not sp.issparse(self.scores):
            return self.scores[user_idx].copy()
        rows = self.scores[user_idx]
        dense = np.full(rows.shape, -np.inf, dtype=np.float32)
        dense[stored_rows(rows), rows.indices] = rows.data
        return dense

    def recommend_indices(self, user_idx: np.ndarray, k: int, exclude_seen: bool = True,
                          item_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A CSR's candidates are ranked where they are stored, not as rows of the whole catalog; same answer."""
        if not sp.issparse(self.scores):
            return super().recommend_indices(user_idx, k, exclude_seen, item_mask)
        assert self.seen is not None
        user_idx = np.asarray(user_idx, dtype=np.int64)
        return self.rank(self.scores[user_idx], k, self.seen[user_idx] if exclude_seen else None, item_mask)

    def item_embeddings(self) -> np.ndarray:
        raise NotImplementedError("a ScoreMatrix holds ranked scores, not item vectors: measure its diversity in "
                                  "a space shared by every model (evaluate(..., item_embeddings=...))")


def reranked_model(ranker: LGBMRanker, frame: pd.DataFrame, history: Dataset) -> ScoreMatrix:
    """The reranked candidates of `frame` as an evaluable model over `history` (the sources' fit data)."""
    raw = ranker.predict(frame) if len(frame) else np.zeros(0)
    return ScoreMatrix(rank_matrix(frame, raw, history.n_users, history.n_items), history)

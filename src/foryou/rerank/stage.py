"""The ranking stage a bundle serves: its sources' models per time window, the fitted rankers and hybrids.

`fit_ranking_stage` follows the protocol of `foryou.rerank.protocol`: sources refitted on train minus each user's
last train event make the rankers' training frame (label: that event), sources fitted on train make the
validation frame (label: the validation event), on which LightGBM and the MLP early-stop, the blend weights are
tuned and every strategy gets its validation NDCG@10 under the full-catalog protocol. The bundle then serves
the stage over sources refitted on train + validation, like every other model.

Strategies: `reranked_lgbm` (LightGBM lambdarank), `reranked_mlp` (MLP over features and two-tower vectors),
`hybrid` (weighted blend of normalised source scores), `hybrid_rrf` (reciprocal rank fusion).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from foryou.config import RankingConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.evaluation.comparisons import per_user
from foryou.evaluation.protocol import EvaluationResult, evaluate
from foryou.models.base import Recommender
from foryou.models.baselines.popularity import RecentPop
from foryou.models.two_tower import TwoTower
from foryou.rerank.candidates import CandidateSource, ContentSource, CooccurrenceSource, ModelSource
from foryou.rerank.features import FeatureRows, feature_columns
from foryou.rerank.hybrid import HybridBlend, added, reciprocal_rank_fusion
from foryou.rerank.lgbm import LGBMRanker
from foryou.rerank.merge import proposed_only
from foryou.rerank.mlp import PREDICT_ROWS, MLPRanker
from foryou.rerank.online import CatalogFeatures
from foryou.rerank.protocol import (
    LABEL,
    ScoreMatrix,
    holdout_last_train_event,
    label_recall,
    rank_matrix,
    ranking_frame,
    split_labels,
    with_a_positive,
)
from foryou.rerank.transitions import TransitionSource

logger = logging.getLogger(__name__)

RERANKED_LGBM, RERANKED_MLP, HYBRID, HYBRID_RRF = "reranked_lgbm", "reranked_mlp", "hybrid", "hybrid_rrf"
STAGE_STRATEGIES = (RERANKED_LGBM, RERANKED_MLP, HYBRID, HYBRID_RRF)
ITEM_ITEM_SOURCES = ("ease", "item_knn", "als")  # baselines that are candidate sources (ALS: the `collab` strategy)
STAGE_FILE, CATALOG_FILE, LGBM_DIR, MLP_DIR = "stage.json", "catalog_features.npz", "lgbm", "mlp"
Vectors = tuple[np.ndarray, np.ndarray]
Parts = dict[str, np.ndarray]  # a hybrid score's additive parts, feature -> (n,)
MLP_BATCH_GROUPS = 64  # users per MLP step: enough steps per epoch on a catalog of a few thousand users
SCORE_ROWS = 4 * PREDICT_ROWS  # frame rows a ranker scores at a time offline: a multiple of the MLP's own chunk,
# so that chunking leaves its numbers unchanged


@dataclass
class FrameVectors:
    """The two-tower vectors of a frame's users and of the catalog, gathered per row on demand: any chunk of the
    frame's rows gets the vectors the whole frame would, without (n, d) arrays for all of its rows."""

    users: np.ndarray  # (u,) sorted distinct user_idx of the frame
    user_vectors: np.ndarray  # (u, d)
    item_vectors: np.ndarray  # (n_items, d)

    def rows(self, frame: pd.DataFrame) -> Vectors:
        """(user vectors, item vectors), one row per frame row (the MLP ranker's inputs)."""
        where = np.searchsorted(self.users, frame[S.USER_IDX].to_numpy(np.int64))
        return self.user_vectors[where], self.item_vectors[frame[S.ITEM_IDX].to_numpy(np.int64)]


@dataclass
class SourceModels:
    """The models behind the candidate sources of one time window, all fitted on the same interactions."""

    two_tower: TwoTower
    baselines: dict[str, Recommender]  # source name (ease, item_knn, als) -> fitted baseline
    recent_pop: Recommender
    cooccurrence: CooccurrenceSource
    transitions: TransitionSource
    content: ContentSource | None

    @classmethod
    def fit(cls, data: Dataset, two_tower: TwoTower, baselines: Mapping[str, Recommender],
            recent_pop: Recommender, last_n: int) -> SourceModels:
        """Wrap fitted models and fit the co-occurrence, transition and content sources on `data` (their window)."""
        content = None
        if two_tower.has_content():
            content = ContentSource.from_two_tower(two_tower, data.items, last_n=last_n).fit(data)
        return cls(two_tower, {name: model for name, model in baselines.items() if name in ITEM_ITEM_SOURCES},
                   recent_pop, CooccurrenceSource(last_n=last_n).fit(data), TransitionSource(last_n=last_n).fit(data),
                   content)

    def sources(self) -> list[CandidateSource]:
        """In a fixed order, so that the merged frame's columns are the same in every window and in serving."""
        listed: list[CandidateSource] = [ModelSource(self.two_tower, TwoTower.name)]
        listed += [ModelSource(model, name) for name, model in self.baselines.items()]
        listed += [ModelSource(self.recent_pop, "recent_pop"), self.cooccurrence, self.transitions]
        return listed + ([self.content] if self.content is not None else [])

    def vectors(self, frame: pd.DataFrame) -> Vectors:
        """(user vectors, item vectors) of the two-tower, one row per frame row (the MLP ranker's inputs)."""
        return self.frame_vectors(frame).rows(frame)

    def frame_vectors(self, frame: pd.DataFrame) -> FrameVectors:
        """The vectors of the frame's users (computed once, together) and of the catalog."""
        users = np.unique(frame[S.USER_IDX].to_numpy(np.int64))
        return FrameVectors(users, self.two_tower.user_vectors(users), self.two_tower.retrieval_vectors())


@dataclass
class RankingStage:
    """What serving needs to rank a user's merged candidates; `validation_ndcg` per strategy picks the default."""

    settings: RankingConfig
    source_names: list[str]
    feature_names: list[str]
    lgbm: LGBMRanker
    mlp: MLPRanker | None
    blend: HybridBlend
    catalog: CatalogFeatures
    validation_ndcg: dict[str, float]
    label_recall: dict[str, float]
    # the rankers read each source's score on every candidate it scores (`merge_candidates`' `complete`), or only on
    # those it proposed: whichever ranks better on validation (complete on online retail, MovieLens and the demo)
    complete_scores: bool = True
    # per strategy, each validation user's NDCG@10 (index: user_idx) from the fit, for the paired test of the
    # served choice; not saved with the stage
    validation_users: dict[str, pd.Series] = field(default_factory=dict, repr=False, compare=False)

    @property
    def strategies(self) -> list[str]:
        return [name for name in STAGE_STRATEGIES if name != RERANKED_MLP or self.mlp is not None]

    def scores(self, strategy: str, frame: FeatureRows, vectors: Vectors | None = None,
               parts: Parts | None = None) -> np.ndarray:
        """(n,) scores of merged, featured candidates under `strategy` (higher first; compare within a user);
        `parts`: the hybrid's `parts` of this frame, when the caller has them already."""
        if strategy == RERANKED_LGBM:
            return self.lgbm.predict(frame)
        if strategy == RERANKED_MLP and self.mlp is not None:
            return self.mlp.predict(frame, vectors)
        parts = self.parts(strategy, frame) if parts is None else parts
        if parts is None:
            raise ValueError(f"unknown ranking-stage strategy {strategy!r}; known: {', '.join(self.strategies)}")
        return added(parts, len(frame[S.USER_IDX]))

    def as_read(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A `ranking_frame` (every source's score completed) as this stage's rankers read it."""
        return frame if self.complete_scores else proposed_only(frame, self.source_names, self.settings.per_source_k)

    def parts(self, strategy: str, frame: FeatureRows) -> Parts | None:
        """A hybrid's score as additive parts (feature -> (n,)): each weighted source's scaled score for `hybrid`,
        each source's reciprocal rank for `hybrid_rrf`; None for the learned rankers."""
        if strategy == HYBRID:
            return {f"{name}_score": values for name, values in self.blend.parts(frame).items()}
        if strategy == HYBRID_RRF:
            return {f"{name}_rank": reciprocal_rank_fusion(frame, [name]) for name in self.source_names}
        return None

    def contributions(self, strategy: str, frame: FeatureRows, rows: np.ndarray,
                      parts: Parts | None = None) -> list[list[tuple[str, float]]] | None:
        """Per chosen row of `frame`, (feature, contribution) pairs that add up to its score, largest first; None
        for the MLP, whose score has no exact additive split. `parts`: as for `scores`."""
        if strategy == RERANKED_LGBM:
            chosen = frame.iloc[rows] if isinstance(frame, pd.DataFrame) else {
                name: np.asarray(values)[rows] for name, values in frame.items()}
            return self.lgbm.explain(chosen)
        parts = self.parts(strategy, frame) if parts is None else parts
        if parts is None:
            return None
        return [sorted(((name, float(values[row])) for name, values in parts.items()), key=lambda pair: -pair[1])
                for row in np.asarray(rows).tolist()]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.lgbm.save(directory / LGBM_DIR)
        if self.mlp is not None:
            self.mlp.save(directory / MLP_DIR)
        self.catalog.save(directory / CATALOG_FILE)
        meta = {"settings": self.settings.model_dump(), "source_names": self.source_names,
                "feature_names": self.feature_names, "blend": self.blend.to_dict(),
                "validation_ndcg": self.validation_ndcg, "label_recall": self.label_recall,
                "complete_scores": self.complete_scores}
        (directory / STAGE_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> RankingStage:
        meta = json.loads((directory / STAGE_FILE).read_text())
        mlp = MLPRanker.load(directory / MLP_DIR) if (directory / MLP_DIR).exists() else None
        return cls(RankingConfig(**meta["settings"]), list(meta["source_names"]), list(meta["feature_names"]),
                   LGBMRanker.load(directory / LGBM_DIR), mlp, HybridBlend.from_dict(meta["blend"]),
                   CatalogFeatures.load(directory / CATALOG_FILE), dict(meta["validation_ndcg"]),
                   dict(meta["label_recall"]), bool(meta.get("complete_scores", False)))  # older stages: proposed only


WindowFitter = Callable[[Dataset], SourceModels]


def fit_ranking_stage(dataset: Dataset, settings: RankingConfig, train_sources: SourceModels,
                      fit_window: WindowFitter, seed: int = 0) -> RankingStage:
    """Train the rankers on labels their sources never saw and tune the hybrids, all chosen on validation.

    `train_sources`: the sources fitted on the train split; `fit_window(data)`: the same sources fitted on
    `data` (called once, on train minus each user's last train event).
    """
    held_out, train_labels = holdout_last_train_event(dataset)
    train_labels = sampled_labels(train_labels, settings.max_train_users, seed)
    fit_data = held_out.restricted_to("train")
    window = fit_window(fit_data)
    train_frame = ranking_frame(window.sources(), fit_data, train_labels[S.USER_IDX].to_numpy(), train_labels,
                                settings.per_source_k, total=settings.candidates)
    train_data = dataset.restricted_to("train")
    valid_labels = split_labels(dataset, "valid")
    valid_frame = ranking_frame(train_sources.sources(), train_data, valid_labels[S.USER_IDX].to_numpy(),
                                valid_labels, settings.per_source_k, total=settings.candidates)
    recall = {"train": label_recall(train_frame, len(train_labels)),
              "valid": label_recall(valid_frame, len(valid_labels))}
    logger.info("ranking stage: labels among the candidates: train %.3f, valid %.3f (%d / %d rows)",
                recall["train"], recall["valid"], len(train_frame), len(valid_frame))
    if with_a_positive(train_frame).empty or with_a_positive(valid_frame).empty:
        raise ValueError("no user has its label among the candidates: raise ranking.per_source_k")
    names = [source.name for source in train_sources.sources()]
    catalog = CatalogFeatures.from_dataset(train_data)
    fitted = []
    for complete in (True, False):  # the rankers on every source's completed scores, then on proposed ones only
        stage = RankingStage(settings, names, feature_columns(train_frame, exclude=(LABEL,)), LGBMRanker(),
                             None, HybridBlend(), catalog, {}, recall, complete)
        fitted.append(_fit_rankers(stage, stage.as_read(train_frame), stage.as_read(valid_frame), window,
                                   train_sources, dataset, seed))
    best = max(fitted, key=lambda stage: max(stage.validation_ndcg.values()))  # ties: the first, complete
    logger.info("ranking stage: best validation NDCG@10 %.4f with complete source scores, %.4f without: %s",
                max(fitted[0].validation_ndcg.values()), max(fitted[1].validation_ndcg.values()),
                "complete" if best.complete_scores else "proposed only")
    return best


def _fit_rankers(stage: RankingStage, train_frame: pd.DataFrame, valid_frame: pd.DataFrame, window: SourceModels,
                 train_sources: SourceModels, dataset: Dataset, seed: int) -> RankingStage:
    """`stage` with its rankers and blend fitted on the frames as it reads them, and its validation scores."""
    settings, features = stage.settings, stage.feature_names
    learn, stop = with_a_positive(train_frame), with_a_positive(valid_frame)
    stage.lgbm = LGBMRanker(num_boost_round=settings.lgbm_rounds, seed=seed).fit(
        learn[features], learn[LABEL].to_numpy(), learn[S.USER_IDX].to_numpy(),
        valid=(stop[features], stop[LABEL].to_numpy(), stop[S.USER_IDX].to_numpy()))
    if settings.mlp:
        stage.mlp = MLPRanker(epochs=settings.mlp_epochs, batch_groups=MLP_BATCH_GROUPS, seed=seed).fit(
            learn[features], learn[LABEL].to_numpy(), learn[S.USER_IDX].to_numpy(),
            valid=(stop[features], stop[LABEL].to_numpy(), stop[S.USER_IDX].to_numpy()),
            vectors=window.vectors(learn), valid_vectors=train_sources.vectors(stop))
    stage.blend = HybridBlend().fit(valid_frame, stage.source_names)
    validation = evaluate_stage(stage, train_sources, dataset, "valid", valid_frame, ks=(10,), beyond_accuracy=False)
    stage.validation_ndcg = {name: float(result.summary["NDCG@10"]) for name, result in validation.items()}
    stage.validation_users = {name: per_user(result, "NDCG@10") for name, result in validation.items()}
    logger.info("ranking stage (%s source scores): validation NDCG@10 %s",
                "complete" if stage.complete_scores else "proposed", stage.validation_ndcg)
    return stage


def sampled_labels(labels: pd.DataFrame, max_users: int | None, seed: int) -> pd.DataFrame:
    """The labels of at most `max_users` users (one label per user), drawn uniformly with `seed`; in user order.
    The rankers need tens of thousands of examples, not every user of a large log: their frame costs
    users x candidates rows of features."""
    if max_users is None or len(labels) <= max_users:
        return labels
    kept = np.sort(np.random.default_rng(seed).choice(len(labels), size=max_users, replace=False))
    logger.info("ranking stage: the rankers learn from %d of %d users' held-out events (ranking.max_train_users)",
                max_users, len(labels))
    return labels.iloc[kept].reset_index(drop=True)


def evaluate_stage(stage: RankingStage, sources: SourceModels, dataset: Dataset, split: str,
                   frame: pd.DataFrame | None = None, **options: object) -> dict[str, EvaluationResult]:
    """Every strategy of `stage` over `sources` (fitted on the splits before `split`), scored on `split` under
    the full-catalog protocol: a target that no source proposed is a miss. `frame`: the labelled candidates as
    the stage reads them (`as_read`), built here when None."""
    before = {"valid": ("train",), "test": ("train", "valid")}[split]
    history = dataset.restricted_to(*before)
    if frame is None:
        labels = split_labels(dataset, split)
        frame = ranking_frame(sources.sources(), history, labels[S.USER_IDX].to_numpy(), labels,
                              stage.settings.per_source_k, total=stage.settings.candidates,
                              complete=stage.complete_scores)  # no scoring pass the stage would not read
    vectors = sources.frame_vectors(frame) if stage.mlp is not None else None
    results = {}
    for strategy in stage.strategies:
        ranks = rank_matrix(frame, frame_scores(stage, strategy, frame, vectors), history.n_users, history.n_items)
        results[strategy] = evaluate(ScoreMatrix(ranks, history), dataset, split, **options)  # type: ignore[arg-type]
    return results


def frame_scores(stage: RankingStage, strategy: str, frame: pd.DataFrame,
                 vectors: FrameVectors | None = None) -> np.ndarray:
    """`stage.scores` over a whole offline frame (`vectors`: for the MLP). The rankers score a row alone, so
    they take SCORE_ROWS rows at a time with only those rows' vectors and features in memory; the hybrids
    scale per user and read a few columns, so they take the frame at once."""
    if strategy not in (RERANKED_LGBM, RERANKED_MLP):
        return stage.scores(strategy, frame)
    parts = []
    for start in range(0, len(frame), SCORE_ROWS):
        chunk = frame.iloc[start:start + SCORE_ROWS]
        rows = vectors.rows(chunk) if strategy == RERANKED_MLP and vectors is not None else None
        parts.append(stage.scores(strategy, chunk, rows))
    return np.concatenate(parts) if parts else np.zeros(0, np.float64)


def recent_popularity(data: Dataset) -> Recommender:
    """The recent-popularity source: the same model as the service's `popular` fallback."""
    return RecentPop().fit(data)

"""The ranking stage: candidates from several sources, merged per user, then reranked.

`candidates` owns the first step: each `CandidateSource` proposes (b, k) items per user with a score and a rank
(`transitions`: the sequential source, what others chose next);
`merge` unions them into one frame per (user, item) (`merge_candidates`), and `per_source_recall` measures what
each source and the merge can still find. `features` adds interpretable features computed before a cut, `lgbm` ranks
with LightGBM lambdarank, and `protocol` trains it on labels the sources never saw (each user's last train
event held out) and scores the reranked candidates under the full-catalog evaluation protocol.
"""

from foryou.rerank.candidates import (
    CandidateSource,
    ContentSource,
    CooccurrenceSource,
    ModelSource,
    als_source,
    item_item_source,
    recent_items_matrix,
    recent_popularity_source,
    two_tower_source,
)
from foryou.rerank.merge import merge_candidates, per_source_recall
from foryou.rerank.protocol import (
    SourceSettings,
    fit_sources,
    holdout_last_train_event,
    ranking_frame,
    rerank_scores,
    reranked_model,
    train_ranker,
)
from foryou.rerank.transitions import TransitionSource

__all__ = [
    "CandidateSource",
    "ContentSource",
    "CooccurrenceSource",
    "ModelSource",
    "SourceSettings",
    "TransitionSource",
    "als_source",
    "fit_sources",
    "holdout_last_train_event",
    "item_item_source",
    "merge_candidates",
    "per_source_recall",
    "ranking_frame",
    "recent_items_matrix",
    "recent_popularity_source",
    "rerank_scores",
    "reranked_model",
    "train_ranker",
    "two_tower_source",
]

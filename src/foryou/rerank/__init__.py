"""The ranking stage: candidates from several sources, merged per user, then reranked.

`candidates` owns the first step: each `CandidateSource` proposes (b, k) items per user with a score and a rank,
`merge_candidates` unions them into one frame per (user, item), and `per_source_recall` measures what each
source and the merge can still find.
"""

from foryou.rerank.candidates import (
    CandidateSource,
    ContentSource,
    CooccurrenceSource,
    ModelSource,
    als_source,
    item_item_source,
    merge_candidates,
    per_source_recall,
    recent_items_matrix,
    recent_popularity_source,
    two_tower_source,
)

__all__ = [
    "CandidateSource",
    "ContentSource",
    "CooccurrenceSource",
    "ModelSource",
    "als_source",
    "item_item_source",
    "merge_candidates",
    "per_source_recall",
    "recent_items_matrix",
    "recent_popularity_source",
    "two_tower_source",
]

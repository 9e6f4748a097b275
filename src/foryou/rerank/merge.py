"""The merge of the candidate sources' lists per user, and recall per source.

`merge_candidates` unions every source's lists into one frame with one row per (user, item) and each source's
score and rank as columns, which is what a ranker reads as features (completed: each source's score also where
it did not propose the row); the service merges one user's lists with `merge_lists`. `per_source_recall`
measures what each source and the merge can still find.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from foryou.data import schema as S
from foryou.models.ranking import tie_break_order, users_per_batch
from foryou.rerank.candidates import CandidateSource

MERGED_RANK = "merged_rank"
LongList = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # (users, items, scores, ranks) of a source's candidates


def merge_candidates(sources: Sequence[CandidateSource], user_idx: np.ndarray,
                     per_source_k: int | Mapping[str, int], total: int | None = 200,
                     exclude_seen: bool = True, tie_order: np.ndarray | None = None,
                     complete: bool = False) -> pd.DataFrame:
    """One row per proposed (user, item): user_idx, item_idx, then per source `<name>_score` (NaN when the source
    did not propose the item) and `<name>_rank` (1..k, or k + 1 when not proposed), then `merged_rank`.

    Rule: the union of every source's top `per_source_k` (an int or name -> k), ordered per user by the item's
    best rank in any source, ties by the sum of reciprocal ranks (items several sources agree on first), then by
    a fixed random item order (`tie_order`, see `merged_columns`); `merged_rank` is the position in that order and rows past `total` are dropped
    (None: keep the whole union). Best rank interleaves the sources, so the merged top `total` holds each
    source's top total // len(sources). Rows are sorted by (user_idx, merged_rank).

    `complete`: each `<name>_score` is also filled on the rows the source did not propose but scores (a finite
    score in `scores`): a ranker then reads every source's evidence on every candidate, not only on the source's
    own top k (on online retail's validation split +1.2-1.4% NDCG@10 for every ranker). `<name>_rank` still
    tells whether the source proposed the row.
    """
    return pd.DataFrame(merged_columns(sources, user_idx, per_source_k, total, exclude_seen, tie_order, complete))


def merged_columns(sources: Sequence[CandidateSource], user_idx: np.ndarray,
                   per_source_k: int | Mapping[str, int], total: int | None = 200,
                   exclude_seen: bool = True, tie_order: np.ndarray | None = None,
                   complete: bool = False) -> dict[str, np.ndarray]:
    """`merge_candidates` as column name -> array, numpy only. `tie_order`: the fixed random rank per item of the
    last tie-break (default `tie_break_order` over the largest candidate index + 1, which the service precomputes
    over its catalog instead of drawing a permutation per request).

    Completed columns are made a block of users at a time, every source's score rows of the block held together:
    a source's top k and its scores on the other sources' candidates come from one scoring pass, where scoring
    the frame again would cost as much as finding the candidates did."""
    names = [source.name for source in sources]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if not sources or duplicates:
        raise ValueError(f"need sources with distinct names, got {names}")
    ks = {name: int(per_source_k[name] if isinstance(per_source_k, Mapping) else per_source_k) for name in names}
    user_idx = np.asarray(user_idx, dtype=np.int64)
    width = len(tie_order) if tie_order is not None else 0  # no tie order: width unknown, most users per batch
    if not complete or not len(user_idx):
        batch = users_per_batch(width)
        lists = {source.name: _long_list(source, user_idx, ks[source.name], exclude_seen, batch) for source in sources}
        return merge_lists(lists, ks, total, tie_order)
    batch = users_per_batch(width * len(sources))
    blocks = [_completed_block(sources, user_idx[start:start + batch], ks, total, exclude_seen, tie_order)
              for start in range(0, len(user_idx), batch)]
    return {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}


def _completed_block(sources: Sequence[CandidateSource], users: np.ndarray, ks: Mapping[str, int],
                     total: int | None, exclude_seen: bool, tie_order: np.ndarray | None) -> dict[str, np.ndarray]:
    """The merged, completed columns of one block of users, from one `scores` call per source."""
    rows = {source.name: source.scores(users) for source in sources}
    lists = {source.name: _flat_list(users, *source.top(users, rows[source.name], ks[source.name], exclude_seen))
             for source in sources}
    columns = merge_lists(lists, ks, total, tie_order)
    order = np.argsort(users, kind="stable")
    row_of = order[np.searchsorted(users, columns[S.USER_IDX], sorter=order)]
    items = columns[S.ITEM_IDX]
    for name, scores in rows.items():
        values = columns[f"{name}_score"]
        missing = np.flatnonzero(np.isnan(values))
        found = scores[row_of[missing], items[missing]]
        values[missing] = np.where(np.isfinite(found), found, np.nan)
    return columns


def merge_lists(lists: Mapping[str, LongList], ks: Mapping[str, int], total: int | None = 200,
                tie_order: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`merged_columns` of the sources' lists (name -> (users, items, scores, ranks) of every real candidate,
    rank 1 first; `ks`: the k each source was asked for): the service builds one user's lists itself."""
    if not lists:
        raise ValueError("need at least one source's list to merge")
    names = list(lists)
    users, items, scores, ranks = (np.concatenate([np.asarray(found[part]) for found in lists.values()])
                                   for part in range(4))
    source = np.repeat(np.arange(len(names)), [len(found[3]) for found in lists.values()])
    width = int(items.max(initial=-1)) + 1
    keys, where = np.unique(users.astype(np.int64) * width + items, return_inverse=True)
    # every source's score and rank per merged row, one (sources, rows) table each: one scatter, not one per source
    score_table = np.full((len(names), len(keys)), np.nan, dtype=np.float32)
    score_table[source, where] = scores
    rank_table = np.repeat(np.array([ks[name] + 1 for name in names], np.int32)[:, None], len(keys), axis=1)
    rank_table[source, where] = ranks
    best = np.full(len(keys), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, where, ranks)
    fusion = np.bincount(where, weights=1.0 / ranks.astype(np.float64), minlength=len(keys))  # in list order
    key_users, key_items = keys // max(width, 1), keys % max(width, 1)
    tie = tie_break_order(width) if tie_order is None else tie_order
    order = np.lexsort((tie[key_items], -fusion, best, key_users))
    key_users = key_users[order]
    starts = np.flatnonzero(np.r_[True, key_users[1:] != key_users[:-1]]) if len(keys) else np.zeros(0, np.int64)
    merged_rank = (np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)])) + 1).astype(np.int32)
    if total is not None:
        kept = merged_rank <= total
        order, key_users, merged_rank = order[kept], key_users[kept], merged_rank[kept]
    score_table, rank_table = score_table[:, order], rank_table[:, order]
    columns = {S.USER_IDX: key_users, S.ITEM_IDX: key_items[order]}
    for row, name in enumerate(names):
        columns[f"{name}_score"] = score_table[row]
        columns[f"{name}_rank"] = rank_table[row]
    columns[MERGED_RANK] = merged_rank
    return columns


def proposed_only(frame: pd.DataFrame, names: Sequence[str], per_source_k: int) -> pd.DataFrame:
    """`frame` as `merge_candidates` makes it without `complete`: each source's `<name>_score` NaN where its
    `<name>_rank` is past `per_source_k` (it did not propose the row). Only the score columns are new; the others
    are shared."""
    out = frame.copy(deep=False)
    for name in names:
        scores = out[f"{name}_score"].to_numpy(np.float32).copy()
        scores[out[f"{name}_rank"].to_numpy() > per_source_k] = np.nan
        out[f"{name}_score"] = scores
    return out


def per_source_recall(frame: pd.DataFrame, targets: tuple[np.ndarray, np.ndarray], k: int = 200) -> dict[str, float]:
    """Mean over target users of (distinct targets found) / (distinct targets): for each source alone (its
    `<name>_rank` <= k), for "merged" (`merged_rank` <= k) and for "union" (every row of `frame`).

    `targets` = (user_idx, item_idx) arrays, e.g. the validation events while the sources were fitted on train
    (never the test split during development). Users without any candidate count as 0. Measure the sources on the
    uncut union (`merge_candidates(..., total=None)`): a cut frame has lost some of each source's items.
    """
    pairs = pd.DataFrame({S.USER_IDX: np.asarray(targets[0], np.int64), S.ITEM_IDX: np.asarray(targets[1], np.int64)})
    pairs = pairs.drop_duplicates()
    if pairs.empty:
        raise ValueError("no targets to measure recall on")
    width = int(max(pairs[S.ITEM_IDX].max(), frame[S.ITEM_IDX].max() if len(frame) else 0)) + 1
    target_keys = pairs[S.USER_IDX].to_numpy() * width + pairs[S.ITEM_IDX].to_numpy()
    users, per_user = np.unique(pairs[S.USER_IDX].to_numpy(), return_inverse=True)
    counts = np.bincount(per_user, minlength=len(users))
    frame_keys = frame[S.USER_IDX].to_numpy(np.int64) * width + frame[S.ITEM_IDX].to_numpy(np.int64)
    names = [column[: -len("_score")] for column in frame.columns if column.endswith("_score")]
    selections = {name: (frame[f"{name}_rank"].to_numpy() <= k) & frame[f"{name}_score"].notna().to_numpy()
                  for name in names}
    selections["merged"] = frame[MERGED_RANK].to_numpy() <= k
    selections["union"] = np.ones(len(frame), dtype=bool)
    recall = {}
    for name, chosen in selections.items():
        hits = np.isin(target_keys, frame_keys[chosen])
        recall[name] = float(np.mean(np.bincount(per_user, weights=hits, minlength=len(users)) / counts))
    return recall


def _long_list(source: CandidateSource, user_idx: np.ndarray, k: int, exclude_seen: bool, batch: int) -> LongList:
    """(users, items, scores, ranks) of every real candidate of `source`, computed `batch` users at a time."""
    blocks = [user_idx[start:start + batch] for start in range(0, len(user_idx), batch)]
    parts = [_flat_list(users, *source.candidates(users, k, exclude_seen)) for users in blocks]
    if not parts:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int32))
    users, items, scores, ranks = (np.concatenate([part[position] for part in parts]) for position in range(4))
    return users, items, scores, ranks


def _flat_list(users: np.ndarray, items: np.ndarray, scores: np.ndarray) -> LongList:
    """A source's (b, k) answer for `users` (items padded with -1) as (users, items, scores, ranks) of its real
    candidates."""
    n_users, k = items.shape
    real = items >= 0
    owners = np.repeat(users, k).reshape(n_users, k)
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), (n_users, 1))
    return owners[real], items[real].astype(np.int64), scores[real].astype(np.float32), ranks[real]

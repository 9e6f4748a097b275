"""Candidate sources for the ranking stage.

A source proposes, for each user, up to k items with a score and a rank (1 = best). Fitted recommenders become
sources through `ModelSource` (two-tower by its full scores offline, where the service uses its ANN index;
EASE / ItemKNN; ALS; recent popularity); two sources are defined here: `CooccurrenceSource` (items bought or
watched together with the user's last n items) and `ContentSource` (content similarity to the user's recent
items). `foryou.rerank.merge` unions their lists per user.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from typing_extensions import Self

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.errors import NotFittedError
from foryou.models.base import Recommender
from foryou.models.baselines.als import ALS
from foryou.models.baselines.history import ItemItemRecommender
from foryou.models.baselines.popularity import RecentPop
from foryou.models.ranking import tie_break_order, top_k, unit_rows
from foryou.models.sparse_rows import csr_positions, csr_rows, stored_rows
from foryou.models.two_tower import TwoTower

PAIR_COUNT_BYTES = 256 * 2**20  # the co-occurrence pair counts a fitted source or a service keeps: ~32M item pairs
CONTENT_DECAY = 0.8  # the content source's recency weight: the j-th most recent item weighs 0.8**j
ModelT = TypeVar("ModelT")


@runtime_checkable
class CandidateSource(Protocol):
    """Anything that proposes items per user: `name` labels its columns in the merged frame."""

    name: str

    def candidates(self, user_idx: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """user_idx (b,) -> item indices (b, k) int64 best first, padded with -1, and scores (b, k) float32 padded
        with -inf. Fewer than k real items when the source has no evidence for more (or the catalog is smaller)."""
        ...

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """(b, n_items) float32 score of every item for each user (seen items too); -inf where the source has
        no evidence. The ranking stage reads a source's score on the candidates other sources proposed."""
        ...

    def top(self, user_idx: np.ndarray, scores: np.ndarray, k: int,
            exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """`candidates` of `user_idx` from their rows of `scores` (as `scores` gives them): the merge reads both
        from one scoring pass. `scores` keeps its values, except that NaN may become -inf (both: no evidence) and +inf
        the largest float32, as ranking reads them."""
        ...


class ModelSource:
    """A fitted `Recommender` as a source: its `recommend_indices` (full scores, seen items left out)."""

    def __init__(self, model: Recommender, name: str | None = None) -> None:
        self.model = model
        self.name = name or model.name

    def candidates(self, user_idx: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self.top(user_idx, self.scores(user_idx), k, exclude_seen)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.score_users(np.asarray(user_idx, dtype=np.int64)), dtype=np.float32)

    def top(self, user_idx: np.ndarray, scores: np.ndarray, k: int,
            exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The model's `recommend_indices` from given score rows."""
        seen = self.model.seen
        assert seen is not None
        excluded = seen[np.asarray(user_idx, dtype=np.int64)] if exclude_seen else None
        with _restored_at(scores, excluded):
            return _pad(*self.model.rank(scores, k, excluded, overwrite=True), k)


def two_tower_source(model: TwoTower, name: str = "two_tower") -> ModelSource:
    """The two-tower model by exact inner product over the catalog (the offline twin of the service's ANN)."""
    return ModelSource(_expect(model, TwoTower), name)


def item_item_source(model: ItemItemRecommender, name: str | None = None) -> ModelSource:
    """EASE or ItemKNN: history @ item-item matrix."""
    return ModelSource(_expect(model, ItemItemRecommender), name)


def als_source(model: ALS, name: str = "als") -> ModelSource:
    return ModelSource(_expect(model, ALS), name)


def recent_popularity_source(model: RecentPop, name: str = "recent_pop") -> ModelSource:
    """The same time-decayed bestseller list for every user, minus what they already have."""
    return ModelSource(_expect(model, RecentPop), name)


def recent_items_matrix(events: pd.DataFrame, n_users: int, n_items: int, last_n: int,
                        decay: float = 1.0) -> sp.csr_matrix:
    """(n_users, n_items) float32 CSR: each user's `last_n` most recent distinct items, the j-th most recent
    (j = 0, 1, ...) weighted decay**j. An item seen several times counts once, at its latest event."""
    if last_n < 1:
        raise ValueError(f"last_n must be a positive integer, got {last_n!r}")
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay!r}")
    order = [column for column in (S.USER_IDX, S.TIMESTAMP, S.SOURCE_ORDER) if column in events]
    pairs = events.sort_values(order, kind="stable")[[S.USER_IDX, S.ITEM_IDX]]
    latest = pairs.drop_duplicates(keep="last")
    recency = latest.groupby(S.USER_IDX).cumcount(ascending=False).to_numpy()
    keep = recency < last_n
    weights = recency_weights(last_n, decay)[recency[keep]]
    rows = latest[S.USER_IDX].to_numpy(np.int64)[keep]
    cols = latest[S.ITEM_IDX].to_numpy(np.int64)[keep]
    return sp.csr_matrix((weights, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)


def recency_weights(n: int, decay: float) -> np.ndarray:
    """(n,) float32 decay**j: the weight of a history's j-th most recent distinct item (j = 0 the latest)."""
    return np.power(decay, np.arange(n)).astype(np.float32)


def recent_items(items: np.ndarray, last_n: int, decay: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(distinct items, float32 weights) of one history's `last_n` latest distinct items (history oldest first),
    latest first: `recent_items_matrix`'s row for it, as arrays."""
    latest_first = np.asarray(items, np.int64)[::-1]
    distinct = latest_first[np.sort(np.unique(latest_first, return_index=True)[1])][:last_n]
    return distinct, recency_weights(len(distinct), decay)


def recent_row(items: np.ndarray, n_items: int, last_n: int, decay: float = 1.0) -> sp.csr_matrix:
    """(1, n_items) float32 CSR of one history (item indices, oldest first): `recent_items_matrix`'s row for it."""
    distinct, weights = recent_items(items, last_n, decay)
    return sp.csr_matrix((weights, (np.zeros(len(distinct), np.int64), distinct)), shape=(1, n_items))


class HistorySource:
    """Shared part of the sources fitted here: the seen matrix, the recent items and the top-k path."""

    name: str

    def __init__(self, last_n: int, decay: float) -> None:
        self.last_n = int(last_n)
        self.decay = float(decay)
        self.seen: sp.csr_matrix | None = None
        self.recent: sp.csr_matrix | None = None
        self._tie_order = np.zeros(0, dtype=np.int64)

    def _fit_history(self, dataset: Dataset) -> None:
        self.seen = dataset.user_item_matrix(binary=True)
        self.recent = recent_items_matrix(dataset.interactions, dataset.n_users, dataset.n_items, self.last_n,
                                          self.decay)
        self._tie_order = tie_break_order(dataset.n_items)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """(b, n_items) float32 of fitted users; -inf where the source has no evidence (never proposed)."""
        if self.recent is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        return self.scores_recent(self.recent[np.asarray(user_idx, dtype=np.int64)])

    def scores_recent(self, recent: sp.csr_matrix) -> np.ndarray:
        """(b, n_items) from recent-item rows (as `recent_items_matrix` or `recent_row` make), for any history."""
        raise NotImplementedError

    def candidates(self, user_idx: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        self._check(k)
        user_idx = np.asarray(user_idx, dtype=np.int64)
        return self._top(user_idx, self.scores(user_idx), k, exclude_seen)

    def top(self, user_idx: np.ndarray, scores: np.ndarray, k: int,
            exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        self._check(k)
        assert self.seen is not None
        user_idx = np.asarray(user_idx, dtype=np.int64)
        with _restored_at(scores, self.seen[user_idx] if exclude_seen else None):
            return self._top(user_idx, np.require(scores, np.float32, ["W"]), k, exclude_seen)

    def _check(self, k: int) -> None:
        if self.seen is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")

    def _top(self, user_idx: np.ndarray, scores: np.ndarray, k: int,
             exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """The top k of `scores` (changed here: the caller's copy) less each user's seen items."""
        assert self.seen is not None
        if exclude_seen:
            seen = self.seen[user_idx]
            scores[stored_rows(seen), seen.indices] = -np.inf
        return _pad(*top_k(scores, k, self._tie_order, overwrite=True), k)


class CooccurrenceSource(HistorySource):
    """score(u, j) = sum over u's last n training items i of w_i * C[i, j], C[i, j] = number of users whose history
    holds both i and j (i != j), w_i = decay**recency. Items that co-occur with none of them are not proposed.

    Computed as recent @ C with the item x item counts C when they fit their budget (`keep_pair_counts`), else as
    recent @ X^T @ X with the binary user-item matrix X, never materialising C, minus the diagonal (an item
    co-occurs with itself in every history that holds it).
    """

    def __init__(self, last_n: int = 5, decay: float = 1.0, name: str = "cooccurrence") -> None:
        super().__init__(last_n, decay)
        self.name = name
        self.item_users: sp.csr_matrix | None = None
        self.item_counts = np.zeros(0, dtype=np.float32)
        self.pairs: sp.csr_matrix | None = None  # item x item counts, when kept (`keep_pair_counts`)

    def fit(self, dataset: Dataset) -> Self:
        """Learn from all interactions of `dataset` (the caller restricts it to the training splits); the pair
        counts are kept when they fit their budget (`keep_pair_counts`)."""
        self._fit_history(dataset)
        assert self.seen is not None
        self._count(self.seen)
        self.keep_pair_counts()
        return self

    @classmethod
    def from_seen(cls, seen: sp.csr_matrix, last_n: int = 5, decay: float = 1.0) -> CooccurrenceSource:
        """The source over a stored binary user-item matrix, for `scores_recent` only (what the service needs)."""
        return cls(last_n, decay)._count(sp.csr_matrix(seen, dtype=np.float32))

    def _count(self, seen: sp.csr_matrix) -> Self:
        self.seen = seen
        self.item_users = seen.T.tocsr()
        self.item_counts = np.asarray(seen.sum(axis=0), dtype=np.float32).ravel()
        self.pairs = None
        return self

    @property
    def n_items(self) -> int:
        return len(self.item_counts)

    def keep_pair_counts(self, budget_bytes: int = PAIR_COUNT_BYTES) -> bool:
        """Keep C, the held-together count of every item pair (X^T X without its diagonal, float32, sorted
        indices), when its bound fits `budget_bytes`: a request then reads its last items' rows of C instead of
        every item of every user who holds them, and a batch of users costs a third of the two products (1,024
        users of a 100,000-item shop: 2.0 s against 5.8 s). The bound, sum over users of (history length)^2 stored
        pairs at 8 bytes each, is read from the matrix before anything is built. True when kept; counts kept before
        are dropped when they do not fit."""
        assert self.seen is not None and self.item_users is not None
        lengths = np.diff(self.seen.indptr).astype(np.int64)
        if int((lengths ** 2).sum()) * 8 > budget_bytes:
            self.pairs = None
            return False
        pairs = sp.csr_matrix(self.item_users @ self.seen, dtype=np.float32)
        pairs.setdiag(0)
        pairs.eliminate_zeros()
        pairs.sort_indices()
        self.pairs = pairs
        return True

    def scores_recent(self, recent: sp.csr_matrix) -> np.ndarray:
        """(b, n_items) from recent-item rows (as `recent_items_matrix` or `recent_row` make), for any history."""
        assert self.item_users is not None and self.seen is not None
        if self.pairs is not None:  # the kept pair counts: the recent items' rows of C, weighted
            scores = np.asarray((recent @ self.pairs).toarray(), dtype=np.float32)
            scores[scores <= 0] = -np.inf
            return scores
        shared = recent @ self.item_users  # (b, n_users): weighted overlap of u's recent items with each history
        scores = np.asarray((shared @ self.seen).toarray(), dtype=np.float32)
        # each recent item co-occurs with itself in every history that holds it: not a pair, taken out
        np.subtract.at(scores, (stored_rows(recent), recent.indices), recent.data * self.item_counts[recent.indices])
        scores[scores <= 0] = -np.inf
        return scores

    def scores_one(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(n_items,) float32 `scores_recent` of one history's recent `items` and their `weights` (as
        `recent_items` gives them), without scipy's per-call overhead: a request scores one user. The users who
        hold the items, weighted by the items they hold, then every item those users hold (the matrix is binary)."""
        assert self.item_users is not None and self.seen is not None
        items = np.asarray(items, np.int64)
        if self.pairs is not None:  # the kept pair counts: the items' rows of C, weighted, added per column
            owner, positions = csr_positions(self.pairs, items)
            weighted = np.asarray(weights, np.float64)[owner] * self.pairs.data[positions]
            scores = np.bincount(self.pairs.indices[positions], weights=weighted,
                                 minlength=len(self.item_counts)).astype(np.float32)
            scores[scores <= 0] = -np.inf
            return scores
        owner, users = csr_rows(self.item_users, items)
        users, where = np.unique(users, return_inverse=True)
        user_weights = np.bincount(where, weights=np.asarray(weights, np.float64)[owner], minlength=len(users))
        holder, held = csr_rows(self.seen, users)
        scores = np.bincount(held, weights=user_weights[holder], minlength=len(self.item_counts)).astype(np.float32)
        scores[items] -= np.asarray(weights, np.float32) * self.item_counts[items]
        scores[scores <= 0] = -np.inf
        return scores


class ContentSource(HistorySource):
    """Cosine between each item's content vector and the recency-weighted mean of the user's last n items' unit
    vectors (the j-th most recent weighted decay**j). Users without training items get no candidates."""

    def __init__(self, item_vectors: np.ndarray, last_n: int = 5, decay: float = CONTENT_DECAY,
                 name: str = "content") -> None:
        super().__init__(last_n, decay)
        self.name = name
        self.unit = unit_rows(np.asarray(item_vectors, dtype=np.float32))

    @classmethod
    def from_two_tower(cls, model: TwoTower, items: pd.DataFrame, **options: object) -> ContentSource:
        """Content-only item-tower vectors (no id embedding, no bias) of `items` (the catalog, in item_idx order)."""
        vectors = _expect(model, TwoTower).encode_items(items, content_only=True)[:, :-1]
        return cls(vectors, **options)  # type: ignore[arg-type]

    def fit(self, dataset: Dataset) -> Self:
        if len(self.unit) != dataset.n_items:
            raise ValueError(f"{len(self.unit)} item vectors for a catalog of {dataset.n_items} items: encode the "
                             "dataset's items table, in item_idx order")
        self._fit_history(dataset)
        return self

    def scores_recent(self, recent: sp.csr_matrix) -> np.ndarray:
        """(b, n_items) from recent-item rows, for any history."""
        profiles = content_profiles(recent, self.unit)
        scores = profiles @ self.unit.T
        scores[~profiles.any(axis=1)] = -np.inf
        return scores.astype(np.float32)


def content_profiles(recent: sp.csr_matrix | np.ndarray, unit: np.ndarray) -> np.ndarray:
    """(b, d) float32 unit direction of each row's recency-weighted sum of item vectors: recent (b, n) weights (as
    `recent_row` makes them), unit (n, d) unit content vectors. A row without recent items stays zero. The one
    content profile of a user: `ContentSource`, the service's `content` strategy and its ranking stage."""
    return unit_rows(np.asarray(recent @ unit, dtype=np.float32))


@contextmanager
def _restored_at(scores: np.ndarray, excluded: sp.csr_matrix | None) -> Iterator[None]:
    """Put back the values of `scores` at the `excluded` entries (a (b, n_items) sparse pattern) when the block
    ends: ranking in place sets them to -inf, where a copy of the rows would take 0.4 GB of fresh memory per
    1,024 users per source at 100,000 items."""
    if excluded is None or not scores.flags.writeable:  # read-only rows are ranked in a copy
        yield
        return
    where = (stored_rows(excluded), excluded.indices)
    kept = scores[where]
    try:
        yield
    finally:
        scores[where] = kept


def _pad(indices: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen (b, m <= k) results to (b, k) with -1 / -inf, so every source answers the same shape."""
    missing = k - indices.shape[1]
    if missing <= 0:
        return indices, scores.astype(np.float32)
    return (np.pad(indices, ((0, 0), (0, missing)), constant_values=-1),
            np.pad(scores.astype(np.float32), ((0, 0), (0, missing)), constant_values=-np.inf))


def _expect(model: ModelT, kind: type) -> ModelT:
    if not isinstance(model, kind):
        raise TypeError(f"expected a fitted {kind.__name__}, got {type(model).__name__}")
    return model

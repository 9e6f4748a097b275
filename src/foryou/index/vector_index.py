"""An inner-product item index over a faiss index, with labels that can be added, replaced and removed.

faiss addresses vectors by row (0..ntotal-1) and HNSW cannot delete rows, so every kind works the same way: a
label maps to its current row; removing or replacing a label turns its old row into a tombstone that searches
skip through an IDSelector; once tombstones pass `COMPACT_FRACTION` of the rows the index is rebuilt from the
live vectors. One RLock guards every method, so the service may search from many threads while one upserts.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from foryou.config import IndexConfig
from foryou.errors import DataFileError, UnknownIdError

KINDS = ("exact", "hnsw", "ivf")
FAISS_CLASSES: dict[str, Any] = {"exact": faiss.IndexFlat, "hnsw": faiss.IndexHNSWFlat, "ivf": faiss.IndexIVFFlat}
COMPACT_FRACTION = 0.2      # rebuild once this share of the rows are tombstones
EXACT_SCAN_ROWS = 4096      # a filter passing at most this many rows is scored exactly: cheaper and never short
EXACT_CHUNK_ROWS = 65_536   # rows scored at once by the exact scan, to bound its memory
INDEX_FILE, LABELS_FILE, META_FILE = "index.faiss", "labels.npy", "index.json"
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


class VectorIndex:
    """Top-k items by inner product. Build one with `foryou.index.build_index`, or `VectorIndex.load`."""

    def __init__(self, kind: str, index: Any, config: IndexConfig, row_labels: np.ndarray | None = None) -> None:
        """Wrap a faiss `index` of `kind`; `row_labels` (ntotal,) gives each row's label, -1 for a tombstone."""
        if kind not in KINDS or not isinstance(index, FAISS_CLASSES[kind]):
            raise ValueError(f"kind {kind!r} does not match a faiss {type(index).__name__}")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("the faiss index must use the inner-product metric")
        labels = np.empty(0, np.int64) if row_labels is None else np.asarray(row_labels, np.int64)
        if labels.shape != (index.ntotal,):
            raise ValueError(f"{labels.shape[0]} row labels for an index of {index.ntotal} rows")
        live = np.flatnonzero(labels >= 0)
        if len(np.unique(labels[live])) != len(live):
            raise ValueError("a label is stored on more than one live row")
        # label -> its live row, -1 where none: labels are catalog indices (dense), so an array, which a request
        # reads for hundreds of labels in one numpy step
        self._label_rows = np.full(int(labels.max(initial=-1)) + 1, -1, np.int64)
        self._label_rows[labels[live]] = live
        self.kind = kind
        self.dim: int = index.d
        self.config = config
        self._index: Any = index
        self._row_labels = labels
        self._tombstones = int(index.ntotal - len(live))
        self._live_selector: Any = None  # IDSelectorBitmap of the live rows, built on demand
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return self._live

    @property
    def _live(self) -> int:
        """Live items: the rows less the tombstones."""
        return int(self._index.ntotal) - self._tombstones

    def contains(self, label: int) -> bool:
        """True when `label` is a live item of the index."""
        with self._lock:
            return 0 <= int(label) < len(self._label_rows) and bool(self._label_rows[int(label)] >= 0)

    def ids(self) -> np.ndarray:
        """Labels of the live items, ascending, int64."""
        with self._lock:
            return np.sort(self._row_labels[self._row_labels >= 0])

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add `vectors` (n, d) under labels `ids` (n,); a label already present gets the new vector."""
        labels = as_labels(ids, "ids", unique=True)
        vectors = as_vectors(vectors, self.dim, "vectors")
        if len(vectors) != len(labels):
            raise ValueError(f"{len(labels)} ids for {len(vectors)} vectors")
        with self._lock:
            self._bury(self._rows_of(labels))
            first_row = self._index.ntotal
            self._index.add(vectors)
            self._row_labels = np.concatenate([self._row_labels, labels])
            if len(labels) and labels.max() >= len(self._label_rows):  # room for the new labels, grown geometrically
                grown = np.full(max(int(labels.max()) + 1, 2 * len(self._label_rows)), -1, np.int64)
                grown[: len(self._label_rows)] = self._label_rows
                self._label_rows = grown
            self._label_rows[labels] = np.arange(first_row, first_row + len(labels))
            self._live_selector = None  # the cached bitmap ends before the new rows: they would be skipped
            self.compact()

    def remove(self, ids: np.ndarray) -> None:
        """Take labels out of every future result; labels not in the index are ignored."""
        labels = as_labels(ids, "ids")
        with self._lock:
            self._bury(self._rows_of(labels))
            self.compact()

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors (n, d) float32 of labels `ids` (n,), in that order; unknown labels raise UnknownIdError."""
        labels = as_labels(ids, "ids")
        with self._lock:
            rows = self._rows_or_minus_one(labels)
            if (rows < 0).any():
                raise UnknownIdError(f"item labels not in the index: {labels[rows < 0][:20].tolist()}")
            return self._index.reconstruct_batch(rows)

    def inner_products(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(n,) float32 inner product of `query` (d,) with the stored vector of each label of `ids` (what a search
        scores it), NaN for labels not in the index."""
        labels = as_labels(ids, "ids")
        products = np.full(len(labels), np.nan, dtype=np.float32)
        with self._lock:
            rows = self._rows_or_minus_one(labels)
            found = rows >= 0
            if found.any():
                products[found] = self._index.reconstruct_batch(rows[found]) @ np.asarray(query, np.float32)
        return products

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               denied: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k live labels by inner product for queries (b, d): labels (b, k) int64 padded with -1, scores
        (b, k) float32 padded with -inf, best first. Results come from `allowed` (if given) and never from
        `denied`; every query gets min(k, items passing the filters) results, whatever the kind."""
        queries = as_vectors(queries, self.dim, "queries")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        k = int(k)
        with self._lock:
            denied_rows = self._rows_of(as_labels(denied, "denied")) if denied is not None else _NO_ROWS
            rows = None if allowed is None else np.setdiff1d(self._rows_of(as_labels(allowed, "allowed")),
                                                             denied_rows)
            n_passing = len(rows) if rows is not None else self._live - len(denied_rows)
            filtered = allowed is not None or len(denied_rows) > 0
            if n_passing == 0:
                found, scores = _top_k(np.empty((len(queries), 0), np.float32), _NO_ROWS, k)
            elif filtered and n_passing <= EXACT_SCAN_ROWS and self.kind != "exact":
                found, scores = self._exact_top_k(queries, self._passing_rows(rows, denied_rows), k)
            else:
                found, scores = self._ann_top_k(queries, k, rows, denied_rows)
                short = found[:, min(k, n_passing) - 1] < 0
                if short.any():  # a selective filter can starve an HNSW / IVF search
                    found[short], scores[short] = self._exact_top_k(
                        queries[short], self._passing_rows(rows, denied_rows), k)
            if len(self._row_labels):
                labels = np.where(found >= 0, self._row_labels[np.maximum(found, 0)], -1)
            else:  # every item removed and compacted away
                labels = np.full_like(found, -1)
            return labels.astype(np.int64), np.where(found >= 0, scores, -np.inf).astype(np.float32)

    def memory_bytes(self) -> int:
        """Approximate RAM held (vectors, HNSW graph or IVF lists, label maps), for capacity planning."""
        with self._lock:
            index, rows = self._index, self._index.ntotal
            size = rows * self.dim * 4 + self._row_labels.nbytes + self._label_rows.nbytes
            if self.kind == "hnsw":
                graph = index.hnsw
                size += graph.neighbors.size() * 4 + graph.offsets.size() * 8 + graph.levels.size() * 4
            elif self.kind == "ivf":
                size += rows * 16 + index.nlist * self.dim * 4  # stored ids + direct map, centroids
            return int(size)

    def save(self, directory: Path) -> None:
        """Write index.faiss, labels.npy (row -> label, -1 = tombstone) and index.json into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            faiss.write_index(self._index, str(directory / INDEX_FILE))
            np.save(directory / LABELS_FILE, self._row_labels, allow_pickle=False)
            meta = {"format": FORMAT_VERSION, "kind": self.kind, "dim": self.dim,
                    "config": self.config.model_dump(mode="json")}
            (directory / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> VectorIndex:
        """Read what `save` wrote; a missing or damaged file raises DataFileError naming it."""
        directory = Path(directory)
        meta_path, labels_path, index_path = (directory / name for name in (META_FILE, LABELS_FILE, INDEX_FILE))
        try:
            meta = json.loads(meta_path.read_text())
            kind, dim, config = meta["kind"], int(meta["dim"]), IndexConfig.model_validate(meta["config"])
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT_VERSION}")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataFileError(f"{meta_path}: cannot read the index description ({error})") from error
        try:
            row_labels = np.load(labels_path, allow_pickle=False)
            if row_labels.ndim != 1 or row_labels.dtype.kind != "i":
                raise ValueError(f"expected a 1-D integer array, got {row_labels.dtype} {row_labels.shape}")
        except (OSError, ValueError, EOFError) as error:
            raise DataFileError(f"{labels_path}: cannot read the row labels ({error})") from error
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as error:
            reason = str(error).splitlines()[-1] if str(error) else "unreadable"
            raise DataFileError(f"{index_path}: cannot read the faiss index ({reason})") from error
        if index.d != dim or kind not in KINDS or not isinstance(index, FAISS_CLASSES[kind]):
            raise DataFileError(f"{index_path} holds a {type(index).__name__} of dimension {index.d}, "
                                f"{meta_path} says kind {kind!r} of dimension {dim}")
        try:
            return cls(kind, index, config, row_labels)
        except ValueError as error:
            raise DataFileError(f"{index_path} and {labels_path} do not match: {error}") from error

    def _rows_of(self, labels: np.ndarray) -> np.ndarray:
        """Sorted unique rows of the live labels among `labels`; the others are ignored."""
        rows = self._rows_or_minus_one(labels)
        return np.unique(rows[rows >= 0])

    def _rows_or_minus_one(self, labels: np.ndarray) -> np.ndarray:
        """Each label's row, -1 when not live."""
        rows = np.full(len(labels), -1, np.int64)
        inside = labels < len(self._label_rows)
        rows[inside] = self._label_rows[labels[inside]]
        return rows

    def _passing_rows(self, rows: np.ndarray | None, denied_rows: np.ndarray) -> np.ndarray:
        """`rows` when the filter listed them, else every live row not denied."""
        if rows is not None:
            return rows
        return np.setdiff1d(np.flatnonzero(self._row_labels >= 0), denied_rows, assume_unique=True)

    def _bury(self, rows: np.ndarray) -> None:
        """Turn live `rows` into tombstones."""
        if len(rows) == 0:
            return
        self._label_rows[self._row_labels[rows]] = -1
        self._row_labels[rows] = -1
        self._tombstones += len(rows)
        self._live_selector = None

    def compact(self, min_fraction: float = COMPACT_FRACTION) -> None:
        """Rebuild from the live vectors once tombstones pass `min_fraction` of the rows (IVF keeps its trained
        centroids); searches wait meanwhile. Every write calls it with the default; 0 forces a rebuild."""
        with self._lock:
            rows = self._index.ntotal
            if self._tombstones == 0 or self._tombstones <= min_fraction * rows:
                return
            logger.info("rebuilding the %s index: %d of %d rows are tombstones", self.kind, self._tombstones, rows)
            live = np.flatnonzero(self._row_labels >= 0)
            vectors = self._index.reconstruct_batch(live) if len(live) else np.empty((0, self.dim), np.float32)
            labels = self._row_labels[live]
            self._index.reset()
            self._index.add(vectors)
            self._row_labels = labels
            self._label_rows[:] = -1
            self._label_rows[labels] = np.arange(len(labels))
            self._tombstones = 0
            self._live_selector = None

    def _ann_top_k(self, queries: np.ndarray, k: int, rows: np.ndarray | None,
                   denied_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """faiss search restricted by an IDSelector to `rows` (if listed) or to live, non-denied rows."""
        parts: list[Any] = []  # faiss's Python wrapper keeps every selector alive as long as what refers to it
        if rows is not None:
            parts.append(faiss.IDSelectorBatch(rows))
        else:
            if self._tombstones:
                parts.append(self._live_rows_selector())
            if len(denied_rows):
                parts.append(faiss.IDSelectorNot(faiss.IDSelectorBatch(denied_rows)))
        selector = faiss.IDSelectorAnd(*parts) if len(parts) == 2 else (parts[0] if parts else None)
        params: dict[str, Any] = {} if selector is None else {"sel": selector}
        # faiss's bundled stubs describe its SWIG layer, not the Python wrappers used here: hence the ignores
        if self.kind == "hnsw":
            params["efSearch"] = self.config.hnsw_ef_search
            search_params = faiss.SearchParametersHNSW(**params)  # type: ignore[attr-defined]
        elif self.kind == "ivf":
            params["nprobe"] = min(self.config.ivf_nprobe, self._index.nlist)
            search_params = faiss.SearchParametersIVF(**params)  # type: ignore[call-arg]
        else:
            search_params = faiss.SearchParameters(**params) if params else None
        scores, found = self._index.search(queries, k, params=search_params)
        return found, scores

    def _live_rows_selector(self) -> Any:
        """IDSelectorBitmap of the live rows (bit i of byte i // 8 is row i), cached until the next mutation."""
        if self._live_selector is None:
            bits = np.packbits(self._row_labels >= 0, bitorder="little")
            self._live_selector = faiss.IDSelectorBitmap(bits)  # type: ignore[call-arg, arg-type]
        return self._live_selector

    def _exact_top_k(self, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k rows among `rows` for queries (b, d), scanning EXACT_CHUNK_ROWS rows at a time."""
        best_rows = np.empty((len(queries), 0), np.int64)
        best_scores = np.empty((len(queries), 0), np.float32)
        for start in range(0, len(rows), EXACT_CHUNK_ROWS):
            chunk = rows[start:start + EXACT_CHUNK_ROWS]
            scores = queries @ self._index.reconstruct_batch(chunk).T
            best_rows, best_scores = _top_k(np.hstack([best_scores, scores]), np.hstack(
                [best_rows, np.broadcast_to(chunk, scores.shape)]), k)
        return _top_k(best_scores, best_rows, k)


_NO_ROWS = np.empty(0, np.int64)


def _top_k(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k of scores (b, n) with their rows (n,) or (b, n), sorted, padded with row -1 / score -inf."""
    rows = np.broadcast_to(rows, scores.shape)
    take = min(k, scores.shape[1])
    if take < scores.shape[1]:
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        scores, rows = np.take_along_axis(scores, part, 1), np.take_along_axis(rows, part, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, rows = np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)
    pad = ((0, 0), (0, k - take))
    return (np.pad(rows, pad, constant_values=-1).astype(np.int64),
            np.pad(scores, pad, constant_values=-np.inf).astype(np.float32))


def as_vectors(array: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    """`array` as C-contiguous float32 (n, dim), or ValueError naming `what` and the problem."""
    vectors = np.asarray(array)
    if vectors.ndim != 2 or (dim is not None and vectors.shape[1] != dim) or vectors.shape[1] < 1:
        expected = f"(n, {dim})" if dim is not None else "(n, d) with d >= 1"
        raise ValueError(f"{what} must have shape {expected}, got {vectors.shape}")
    if not np.issubdtype(vectors.dtype, np.number) or np.issubdtype(vectors.dtype, np.complexfloating):
        raise ValueError(f"{what} must be real numbers, got dtype {vectors.dtype}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise ValueError(f"{what} contain NaN or infinite values in rows {bad[:10].tolist()}")
    return vectors


def as_labels(array: np.ndarray, what: str, unique: bool = False) -> np.ndarray:
    """`array` as int64 labels (n,) >= 0 (-1 pads results), or ValueError naming `what` and the problem."""
    labels = np.asarray(array)
    if labels.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of integer labels, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what} must be integer labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if (labels < 0).any():
        raise ValueError(f"{what} must be >= 0, got {labels[labels < 0][:10].tolist()}")
    if unique and len(np.unique(labels)) != len(labels):
        values, counts = np.unique(labels, return_counts=True)
        raise ValueError(f"{what} repeat labels {values[counts > 1][:10].tolist()}")
    return labels

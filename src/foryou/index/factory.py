"""Build a VectorIndex from the `index` config section: choose exact / HNSW / IVF, create and train it."""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from foryou.config import IndexConfig
from foryou.index.vector_index import VectorIndex, as_vectors

MIN_POINTS_PER_LIST = 39  # faiss k-means warns when a centroid gets fewer training points


def choose_kind(n_items: int, config: IndexConfig) -> str:
    """The configured kind; for "auto", exact below `exact_below` items (fast enough there, perfect recall),
    HNSW above."""
    if config.kind != "auto":
        return config.kind
    return "exact" if n_items < config.exact_below else "hnsw"


def ivf_nlist(n_items: int, config: IndexConfig) -> int:
    """IVF lists: configured or 4 * sqrt(n), capped so each list trains on >= MIN_POINTS_PER_LIST vectors."""
    wanted = config.ivf_nlist or round(4 * math.sqrt(n_items))
    return max(1, min(wanted, n_items // MIN_POINTS_PER_LIST))


def build_index(vectors: np.ndarray, ids: np.ndarray, config: IndexConfig) -> VectorIndex:
    """Index item `vectors` (n, d) float32 under labels `ids` (n,) int64; IVF is trained on these vectors."""
    vectors = as_vectors(vectors, None, "vectors")
    kind = choose_kind(len(vectors), config)
    index = VectorIndex(kind, new_faiss_index(kind, vectors, config), config)
    index.upsert(ids, vectors)
    return index


def new_faiss_index(kind: str, train: np.ndarray, config: IndexConfig) -> Any:
    """An empty inner-product faiss index of `kind` for vectors like `train` (n, d); IVF is trained on them."""
    dim = train.shape[1]
    if kind == "exact":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = config.hnsw_ef_construction
        hnsw.hnsw.efSearch = config.hnsw_ef_search
        return hnsw
    if kind == "ivf":
        if len(train) == 0:
            raise ValueError("an IVF index is trained on the vectors it is built from: got none "
                             "(use index.kind 'exact' or 'auto' for an empty catalog)")
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, ivf_nlist(len(train), config),
                                 faiss.METRIC_INNER_PRODUCT)
        ivf.train(train)
        ivf.nprobe = config.ivf_nprobe
        ivf.make_direct_map(True)  # row -> vector lookups (reconstruct) for exact scans and vectors()
        return ivf
    raise ValueError(f"unknown index kind {kind!r}: expected exact, hnsw or ivf")

"""Approximate nearest-neighbour item retrieval by inner product: exact, HNSW or IVF behind one factory."""

from foryou.index.factory import build_index, choose_kind, ivf_nlist
from foryou.index.vector_index import VectorIndex

__all__ = ["VectorIndex", "build_index", "choose_kind", "ivf_nlist"]

"""EASE (Steck 2019): a closed-form item-item linear autoencoder with a zero diagonal.

G = X^T X + lambda I, P = G^-1, B = -P / diag(P) (column-wise), diag(B) = 0; scores = X_u B.
The dense closed form needs O(n_items^2) memory (12 bytes per item pair while fitting: 43 GB at 60k items) and
O(n_items^3) time (the inverse ran past 4 minutes at 20k items on one shared core), so above the catalog size
that fits in the memory available and in a time budget EASE is fitted by SANSA (Spisak et al. 2023): a sparse
LDL^T of G and a sparse approximate inverse, B ~ W^T W_r with two sparse factors of about `weights_per_item`
entries per item.
Supports `score_histories`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from foryou.data.dataset import Dataset
from foryou.errors import ConfigError
from foryou.models.baselines.history import ItemItemRecommender, dense_product
from foryou.resources import available_memory_bytes

logger = logging.getLogger(__name__)

EaseEngine = Literal["auto", "dense", "sparse"]
SparseFactorizer = Literal["auto", "cholmod", "icf"]
DENSE_BYTES_PER_PAIR = 12  # float64 Gram inverted in place + the float32 weights it becomes
DENSE_MEMORY_SHARE = 0.5  # of the available memory: the rest of the pipeline keeps other models alongside
# The dense inverse costs about 2 n^3 flops; LAPACK's inverse ran at 72-89 GFLOP/s on one core of a 2-core x86
# machine (n = 3,000-5,000): the estimate takes a lower rate, as larger matrices leave the cache and cores are shared
DENSE_FLOPS_PER_THREAD = 50e9
DENSE_MAX_SECONDS = 60.0  # auto: the estimated dense fit above which SANSA fits (baselines.ease_dense_max_seconds)
# Refinement steps of SANSA's approximate inverse per factorizer (the library's default is 10). After the incomplete
# Cholesky, whose error dominates, 3 steps recommend as well as 10 (valid NDCG@10, online retail: 0.0432 both;
# ml-latest-small: 0.0256 vs 0.0266, inside its noise) and fit a 100,000-item shop in 68 s instead of 113 s; after
# CHOLMOD's exact factor the steps matter (ml-latest-small 0.0308 with 3) and cost little beside the factor.
FINETUNE_STEPS: dict[str, int] = {"cholmod": 10, "icf": 3}


def ease_weights(user_items: sp.spmatrix, l2: float) -> np.ndarray:
    """(n_items, n_items) float32 EASE weights B for a binary (n_users, n_items) matrix."""
    matrix = sp.csr_matrix(user_items, dtype=np.float64)
    gram = np.asarray((matrix.T @ matrix).toarray(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    inverse /= -np.diag(inverse)[np.newaxis, :]
    np.fill_diagonal(inverse, 0.0)
    return inverse.astype(np.float32)


SparseFactors = tuple[sp.csr_matrix, sp.csr_matrix]


def sansa_factors(user_items: sp.spmatrix, l2: float, weights_per_item: int,
                  factorizer: SparseFactorizer = "auto") -> tuple[SparseFactors, SparseFactorizer]:
    """Two sparse float32 (n_items, n_items) factors whose product approximates the EASE weights B (its
    diagonal is about -1 instead of 0: only the seen items it scores, which are excluded, differ), and the
    factorizer used. "auto": CHOLMOD's exact Cholesky of the Gram matrix, sparsified (as good as dense EASE on
    the shared sets); where that factor does not fit in memory (1M events over 100k items), SANSA's incomplete
    Cholesky (ICF), which fits in bounded memory but recommends worse (valid NDCG@10 0.039 against 0.066 on
    online retail)."""
    try:
        from sansa import (
            SANSA,
            CHOLMODGramianFactorizerConfig,
            ICFGramianFactorizerConfig,
            SANSAConfig,
            UMRUnitLowerTriangleInverterConfig,
        )
        from sksparse.cholmod import (
            CholmodOutOfMemoryError,
            CholmodTooLargeError,
            CholmodTypeConversionWarning,
        )
    except ImportError as exc:
        raise ConfigError(f"EASE over {user_items.shape[1]} items needs the sparse engine, which needs the "
                          "foryou[sparse] extra (sansa; apt-get install libsuitesparse-dev first), or raise "
                          "baselines.ease_dense_max_items, or drop ease from baselines.enabled") from exc

    logging.getLogger("sansa").setLevel(logging.ERROR)  # INFO per step and advice on its own density settings
    n_items = user_items.shape[1]
    matrix = sp.csr_matrix(user_items, dtype=np.float32)

    def fit(gramian: Any, steps: int) -> SparseFactors:
        inverter = UMRUnitLowerTriangleInverterConfig(scans=1, finetune_steps=steps)
        config = SANSAConfig(l2=l2, weight_matrix_density=min(1.0, weights_per_item / max(n_items, 1)),
                             gramian_factorizer_config=gramian, lower_triangle_inverter_config=inverter)
        with warnings.catch_warnings():  # 64-bit indices, needed past ~100k items, are converted (noted, not an issue)
            warnings.simplefilter("ignore", CholmodTypeConversionWarning)
            first, second = SANSA(config).fit(matrix).weights
        return sp.csr_matrix(first, dtype=np.float32), sp.csr_matrix(second, dtype=np.float32)

    if factorizer != "icf":
        try:
            return fit(CHOLMODGramianFactorizerConfig(), FINETUNE_STEPS["cholmod"]), "cholmod"
        except (CholmodOutOfMemoryError, CholmodTooLargeError) as exc:
            if factorizer == "cholmod":
                raise
            logger.warning("EASE sparse: CHOLMOD's exact factor of %d items does not fit (%s); SANSA's incomplete "
                           "Cholesky instead (bounded memory, weaker recommendations)", n_items, exc)
    return fit(ICFGramianFactorizerConfig(reordering_use_long=True), FINETUNE_STEPS["icf"]), "icf"


def dense_max_items(available_bytes: int) -> int:
    """The largest catalog whose dense fit takes at most DENSE_MEMORY_SHARE of `available_bytes`."""
    return math.isqrt(int(available_bytes * DENSE_MEMORY_SHARE) // DENSE_BYTES_PER_PAIR)


def dense_seconds(n_items: int, threads: int) -> float:
    """The estimated seconds of a dense fit's inverse on `threads` cores (2 n^3 flops at DENSE_FLOPS_PER_THREAD)."""
    return 2.0 * float(n_items) ** 3 / (DENSE_FLOPS_PER_THREAD * max(threads, 1))


def dense_max_items_in(seconds: float, threads: int) -> int:
    """The largest catalog whose dense fit is estimated to take at most `seconds` on `threads` cores."""
    return int((seconds * DENSE_FLOPS_PER_THREAD * max(threads, 1) / 2.0) ** (1 / 3))


def blas_threads() -> int:
    """The threads of the BLAS pools loaded now (what the dense inverse will use): the run's thread cap."""
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1)


def choose_engine(n_items: int, max_items: int | None,
                  max_seconds: float | None = None) -> tuple[Literal["dense", "sparse"], int, str]:
    """(engine, limit, why): dense up to `max_items` items; None: the smaller of what fits in half the memory
    available now and what is estimated to fit in `max_seconds` on this run's BLAS threads (None: no time limit)."""
    threads = blas_threads()
    if max_items is not None:
        limit, source = max_items, "baselines.ease_dense_max_items"
    else:
        available = available_memory_bytes()
        limit, source = dense_max_items(available), f"half of the {available / 2**30:.1f} GiB available"
        if max_seconds is not None:
            by_time = dense_max_items_in(max_seconds, threads)
            if by_time < limit:
                limit, source = by_time, (f"an estimated {max_seconds:g} s on {threads} thread(s), "
                                          "baselines.ease_dense_max_seconds")
    needed = f"{DENSE_BYTES_PER_PAIR * n_items**2 / 2**30:.1f} GiB and ~{dense_seconds(n_items, threads):.0f} s"
    if n_items <= limit:
        return "dense", limit, f"{n_items} items <= {limit} ({source}); dense fit needs {needed}"
    return "sparse", limit, f"{n_items} items > {limit} ({source}); a dense fit would need {needed}"


class EASE(ItemItemRecommender):
    """Scores = binary history @ B; `l2` is the lambda of the closed form (larger: smoother, more popular).

    `engine`: auto picks dense while the catalog has at most `dense_max_items` items (None: while the dense fit
    takes at most half the available memory and, with `dense_max_seconds`, is estimated to take at most that
    long), sparse (SANSA) above. `params()` of a fitted model names the
    engine it used and the limit it compared against.
    """

    name = "ease"

    def __init__(self, l2: float = 50.0, engine: EaseEngine = "auto", dense_max_items: int | None = None,
                 weights_per_item: int = 50, dense_max_seconds: float | None = DENSE_MAX_SECONDS,
                 sparse_factorizer: SparseFactorizer = "auto") -> None:
        if l2 <= 0:
            raise ValueError(
                f"l2 (lambda) must be positive so that X^T X + lambda I is invertible, got {l2!r}"
            )
        if weights_per_item < 1:
            raise ValueError(f"weights_per_item must be a positive integer, got {weights_per_item!r}")
        super().__init__()
        self.l2 = float(l2)
        self.engine: EaseEngine = engine
        self.dense_max_items = dense_max_items
        self.dense_max_seconds = dense_max_seconds
        self.sparse_factorizer: SparseFactorizer = sparse_factorizer
        self.weights_per_item = int(weights_per_item)
        self.used_engine: Literal["dense", "sparse"] | None = None
        self.weights: tuple[np.ndarray | sp.spmatrix, ...] | None = None  # dense: (B,); sparse: two factors

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "engine": self.used_engine or self.engine, "dense_max_items": self.dense_max_items,
                "dense_max_seconds": self.dense_max_seconds, "weights_per_item": self.weights_per_item,
                "sparse_factorizer": self.sparse_factorizer}

    def _fit(self, dataset: Dataset) -> None:
        start = time.perf_counter()
        engine, limit, why = choose_engine(dataset.n_items, self.dense_max_items, self.dense_max_seconds)
        if self.engine != "auto":
            engine, why = self.engine, f"baselines.ease_engine is {self.engine}"
        matrix = dataset.user_item_matrix(binary=True)
        if engine == "dense":  # C order: scoring reads whole rows; an F-ordered B is copied by scipy on every call
            self.weights = (np.ascontiguousarray(ease_weights(matrix, self.l2)),)
        else:
            self.weights, self.sparse_factorizer = sansa_factors(matrix, self.l2, self.weights_per_item,
                                                                 self.sparse_factorizer)
            why += f"; factorizer {self.sparse_factorizer}"
        self.used_engine = engine
        self.dense_max_items = limit if self.dense_max_items is None else self.dense_max_items
        logger.info("EASE %s: %s; lambda=%g, fitted in %.1fs", engine, why, self.l2, time.perf_counter() - start)

    def item_item_factors(self) -> tuple[np.ndarray | sp.spmatrix, ...]:
        assert self.weights is not None
        return self.weights

    def item_embeddings(self) -> np.ndarray:
        """Rows of B: items that reconstruct the same other items are similar (sparse: B's rows, densified)."""
        self._check_fitted()
        assert self.weights is not None
        return self.weights[0] if self.used_engine == "dense" else dense_product(self.weights)

    def _save_state(self, directory: Path) -> None:
        assert self.weights is not None
        if self.used_engine == "dense":
            np.save(directory / "ease_weights.npy", np.asarray(self.weights[0]))
            return
        for position, factor in enumerate(self.weights):
            sp.save_npz(directory / f"ease_factor_{position}.npz", factor)

    def _load_state(self, directory: Path) -> None:
        if (directory / "ease_weights.npy").exists():
            self.used_engine = "dense"
            self.weights = (np.ascontiguousarray(np.load(directory / "ease_weights.npy")),)
        else:
            self.used_engine = "sparse"
            self.weights = (sp.load_npz(directory / "ease_factor_0.npz").tocsr(),
                            sp.load_npz(directory / "ease_factor_1.npz").tocsr())

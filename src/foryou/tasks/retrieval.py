"""The retrieval task: InfoNCE over query and item vectors, full-catalog or sampled, in the style of TFRS.

Towers only encode; this module owns the loss, the negatives and the logQ correction.
- full softmax: cross-entropy of every query against the whole catalog (exact; best when the catalog fits),
  computed in cache-sized row blocks so that the (queries x catalog) logits are never held in memory.
- sampled softmax: the positives of the batch (in-batch negatives, positive on the diagonal) plus `num_negatives`
  shared items drawn uniformly or by popularity (mixed by `popularity_negative_fraction`). With logQ correction
  each candidate's logit loses log(expected number of draws of that item), which makes the sampled loss an
  unbiased stand-in for the full softmax; a negative equal to the row's positive (an accidental hit) is masked.

Data-parallel training (torchrun, N processes, each with batch_size / N windows): sampled softmax takes a
`gather` that collects every process's positives (with gradients), so each row's in-batch negatives are the whole
global batch, as in one process, and logQ counts the gathered batch size. Full softmax needs nothing: each
process scores its own queries against the whole catalog, which every process holds (the catalog is re-encoded
from the shared weights each step, so replicating it costs compute, not communication), and DDP averages the
gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from foryou.config import LossConfig

ItemEncoder = Callable[[Tensor], Tensor]
# (targets (n,), vectors (n, d)) of this process's batch -> every process's (m,), (m, d), and where ours start
BatchGather = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, int]]
_MIN_PROBABILITY = 1e-12
_BLOCK_ELEMENTS = 1 << 20  # logits per block of the full softmax: 4 MB, cache-sized


class RetrievalTask:
    """Computes the retrieval loss; holds the item popularity used for popularity negatives and logQ."""

    def __init__(self, config: LossConfig, item_counts: np.ndarray, seed: int = 0,
                 gather: BatchGather | None = None) -> None:
        """`item_counts` (n_items,): training target counts per item, the popularity distribution; `gather`:
        with several training processes, collects their batch positives (`distributed.gather_batch`)."""
        self.config = config
        self.gather = gather
        counts = torch.as_tensor(np.asarray(item_counts, dtype=np.float64))
        if counts.ndim != 1 or len(counts) == 0:
            raise ValueError("item_counts must be a non-empty 1-d array with one count per item")
        total = float(counts.sum())
        self.n_items = len(counts)
        self.popularity = (counts / total if total > 0 else torch.full_like(counts, 1.0 / len(counts))).float()
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self, queries: Tensor, targets: Tensor, encode_items: ItemEncoder, weights: Tensor | None = None) -> Tensor:
        """Weighted mean InfoNCE loss.

        queries (n, d) query vectors; targets (n,) item indices; encode_items maps item indices (m,) to item
        vectors (m, d); weights (n,) per-example loss weights or None (all 1).
        """
        if self.config.kind == "full_softmax":
            catalog = encode_items(torch.arange(self.n_items, device=queries.device))
            return self.full_softmax(queries, targets, catalog, weights)
        return self.sampled_softmax(queries, targets, encode_items, weights)

    def full_softmax(self, queries: Tensor, targets: Tensor, catalog: Tensor, weights: Tensor | None = None,
                     bias: Tensor | None = None, allowed: Tensor | None = None) -> Tensor:
        """Cross-entropy of (n, d) queries against the (n_items, d) catalog, logits = q.v / temperature + bias.

        bias (n_items,) is a per-item logit offset; allowed (n_items,) bool keeps only those items as candidates.
        """
        offset = bias
        if allowed is not None:
            offset = (bias if bias is not None else catalog.new_zeros(len(catalog))).masked_fill(~allowed, float("-inf"))
        losses = softmax_cross_entropy(queries / self.config.temperature, catalog, targets, offset)
        return _weighted_mean(losses, weights)

    def sampled_softmax(
        self, queries: Tensor, targets: Tensor, encode_items: ItemEncoder, weights: Tensor | None = None,
        negatives: Tensor | None = None,
    ) -> Tensor:
        """InfoNCE over the batch positives (every process's, with `gather`) and shared sampled negatives;
        `negatives`: drawn beforehand with `sample_negatives` (a caller that encodes them with the batch), or None."""
        if negatives is None:
            negatives = self.sample_negatives(self.config.num_negatives).to(targets.device)
        positives, vectors, first = targets, encode_items(targets), 0
        if self.gather is not None:
            positives, vectors, first = self.gather(targets, vectors)
        candidates = torch.cat([positives, negatives])
        labels = torch.arange(first, first + len(targets), device=targets.device)
        logits = self.candidate_logits(queries, targets, torch.cat([vectors, encode_items(negatives)]), candidates,
                                       len(negatives), labels)
        return _weighted_mean(F.cross_entropy(logits.float(), labels, reduction="none"), weights)

    def candidate_logits(
        self, queries: Tensor, targets: Tensor, candidate_vectors: Tensor, candidates: Tensor, n_sampled: int,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Logits (n, m + k) of queries (n, d) against candidates (m + k, d): m batch positives, then k sampled.

        The m batch positives are the n rows' own (m = n) or, gathered over processes, every process's; labels
        (n,) is the column of each row's positive (None: column i for row i). Without in-batch negatives the
        other positives are masked out. With logQ correction each column loses log(expected draws):
        m * popularity for the batch positives (with in-batch negatives; otherwise the sampler's own k * q),
        k * q for the sampled ones.
        """
        n_batch = len(candidates) - n_sampled
        logits = queries @ candidate_vectors.T / self.config.temperature
        if self.config.logq_correction:
            logits = logits - self._log_expected_draws(candidates, n_batch, n_sampled).to(logits.dtype)
        rows = torch.arange(len(targets), device=targets.device)
        masked = torch.zeros_like(logits, dtype=torch.bool)
        if self.config.remove_accidental_hits:
            masked |= candidates.unsqueeze(0) == targets.unsqueeze(1)
        if not self.config.in_batch_negatives:
            masked[:, :n_batch] = True
        masked[rows, rows if labels is None else labels] = False
        return logits.masked_fill(masked, float("-inf"))

    def sample_negatives(self, count: int) -> Tensor:
        """`count` item indices: a `popularity_negative_fraction` share by popularity, the rest uniformly."""
        n_popular = round(count * self.config.popularity_negative_fraction)
        popular = torch.multinomial(self.popularity, n_popular, replacement=True, generator=self.generator) \
            if n_popular else torch.zeros(0, dtype=torch.long)
        uniform = torch.randint(0, self.n_items, (count - n_popular,), generator=self.generator)
        return torch.cat([popular, uniform])

    def negative_probability(self, items: Tensor) -> Tensor:
        """Probability that one sampled negative is each of `items` under the uniform/popularity mixture."""
        share = self.config.popularity_negative_fraction
        return share * self.popularity.to(items.device)[items] + (1.0 - share) / self.n_items

    def _log_expected_draws(self, candidates: Tensor, n_in_batch: int, n_sampled: int) -> Tensor:
        """log of how often each candidate is expected among the candidates: batch positives follow popularity."""
        popularity = self.popularity.to(candidates.device)
        if self.config.in_batch_negatives:
            in_batch = n_in_batch * popularity[candidates[:n_in_batch]]
        else:
            in_batch = n_sampled * self.negative_probability(candidates[:n_in_batch])
        sampled = n_sampled * self.negative_probability(candidates[n_in_batch:])
        return torch.log(torch.cat([in_batch, sampled]).clamp_min(_MIN_PROBABILITY))


def softmax_cross_entropy(queries: Tensor, catalog: Tensor, targets: Tensor, offset: Tensor | None = None) -> Tensor:
    """(n,) cross-entropy of logits queries @ catalog.T + offset against targets (n,): queries (n, d), catalog
    (m, d), offset (m,) or None. Computed over row blocks that stay in cache and are recomputed in the backward
    pass, so the (n, m) logits are never held: time and memory stay linear in m, without the page faults and
    passes over n x m memory that a materialised matrix costs on CPU (the full-softmax step's largest cost)."""
    return _ChunkedSoftmaxCrossEntropy.apply(queries, catalog, targets, offset)


class _ChunkedSoftmaxCrossEntropy(torch.autograd.Function):
    """Exact softmax cross-entropy in blocks of ~`_BLOCK_ELEMENTS` logits (fp32, also under CUDA autocast)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx: Any, queries: Tensor, catalog: Tensor, targets: Tensor, offset: Tensor | None) -> Tensor:
        log_norm = torch.empty(len(queries), dtype=queries.dtype, device=queries.device)
        for rows in _blocks(len(queries), len(catalog)):
            log_norm[rows] = torch.logsumexp(_logits(queries[rows], catalog, offset), dim=1)
        ctx.save_for_backward(queries, catalog, targets, offset, log_norm)
        picked = (queries * catalog[targets]).sum(1)
        return log_norm - (picked if offset is None else picked + offset[targets])

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        """d loss / d logits = grad * (softmax - one_hot(target)); the one-hot part is added once at the end."""
        queries, catalog, targets, offset, log_norm = ctx.saved_tensors
        grad_queries = torch.empty_like(queries)
        grad_catalog = torch.zeros_like(catalog)
        grad_offset = None if offset is None else torch.zeros_like(offset)
        for rows in _blocks(len(queries), len(catalog)):
            probs = _logits(queries[rows], catalog, offset).sub_(log_norm[rows, None]).exp_().mul_(grad[rows, None])
            torch.mm(probs, catalog, out=grad_queries[rows])
            grad_catalog.addmm_(probs.T, queries[rows])
            if grad_offset is not None:
                grad_offset += probs.sum(0)
        grad_queries -= grad[:, None] * catalog[targets]
        grad_catalog.index_add_(0, targets, queries * -grad[:, None])
        if grad_offset is not None:
            grad_offset.index_add_(0, targets, -grad)
        return grad_queries, grad_catalog, None, grad_offset


def _logits(queries: Tensor, catalog: Tensor, offset: Tensor | None) -> Tensor:
    return queries @ catalog.T if offset is None else torch.addmm(offset, queries, catalog.T)


def _blocks(n_rows: int, n_columns: int) -> list[slice]:
    size = max(1, _BLOCK_ELEMENTS // max(n_columns, 1))
    return [slice(start, start + size) for start in range(0, n_rows, size)]


def _weighted_mean(losses: Tensor, weights: Tensor | None) -> Tensor:
    if weights is None:
        return losses.mean()
    weights = weights.to(losses.dtype)
    return (losses * weights).sum() / weights.sum().clamp_min(_MIN_PROBABILITY)

"""The full-softmax loss computed in row blocks equals the plain cross-entropy, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from foryou.tasks import retrieval
from foryou.tasks.retrieval import softmax_cross_entropy


@pytest.mark.parametrize("with_offset", [False, True])
def test_blocks_match_cross_entropy_values_and_gradients(monkeypatch: pytest.MonkeyPatch, with_offset: bool) -> None:
    monkeypatch.setattr(retrieval, "_BLOCK_ELEMENTS", 7 * 11)  # 7 rows per block: 3 blocks, the last one short
    torch.manual_seed(0)
    queries, catalog = torch.randn(17, 5, requires_grad=True), torch.randn(11, 5, requires_grad=True)
    offset = torch.randn(11).masked_fill(torch.arange(11) == 4, float("-inf")).requires_grad_() if with_offset else None
    targets = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 0, 0, 3, 3, 10, 1, 2])
    upstream = torch.rand(17)  # per-row weights, as the weighted mean gives them
    logits = queries @ catalog.T + (offset if offset is not None else 0)
    expected = F.cross_entropy(logits, targets, reduction="none")
    inputs = [tensor for tensor in (queries, catalog, offset) if tensor is not None]
    expected_grads = torch.autograd.grad((expected * upstream).sum(), inputs)
    actual = softmax_cross_entropy(queries, catalog, targets, offset)
    actual_grads = torch.autograd.grad((actual * upstream).sum(), inputs)
    torch.testing.assert_close(actual, expected)
    for got, want in zip(actual_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_a_disallowed_target_costs_an_infinite_loss() -> None:
    offset = torch.tensor([0.0, float("-inf")])
    loss = softmax_cross_entropy(torch.ones(1, 2), torch.eye(2), torch.tensor([1]), offset)
    assert torch.isinf(loss).all()

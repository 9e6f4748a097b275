"""RetrievalTask against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from foryou.config import LossConfig
from foryou.tasks.retrieval import RetrievalTask


def _task(**overrides: object) -> RetrievalTask:
    # popularity of 4 items from counts [1, 1, 2, 4] / 8 = [0.125, 0.125, 0.25, 0.5]
    return RetrievalTask(LossConfig(**overrides), np.array([1, 1, 2, 4]))


def test_full_softmax_matches_hand_computation() -> None:
    # q = [1, 0]; catalog rows [1,0], [0,1], [0,0]; temperature 0.5 -> logits [2, 0, 0]
    # target 0: loss = -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2)
    task = RetrievalTask(LossConfig(temperature=0.5), np.array([1, 1, 1]))
    catalog = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    loss = task.full_softmax(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), catalog)
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-6)


def test_full_softmax_weights_average_per_example_losses() -> None:
    # row 0 target 0: loss a = log(1 + 2e^-2); row 1 target 1 with q = [1, 0]: logits [2, 0, 0], loss b = 2 + a
    # weights [1, 3]: (a + 3 (2 + a)) / 4 = a + 1.5
    task = RetrievalTask(LossConfig(temperature=0.5), np.array([1, 1, 1]))
    catalog = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    queries = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss = task.full_softmax(queries, torch.tensor([0, 1]), catalog, torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-2)) + 1.5, rel=1e-6)


def test_full_softmax_adds_item_bias_and_drops_disallowed_items() -> None:
    # q = [1, 0]; catalog [1,0], [0,1], [0,0]; temperature 0.5 -> q.v / t = [2, 0, 0]; bias [0, ln 2, 5]
    # item 2 not allowed -> logits [2, ln 2, -inf]; target 0: loss = -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2)
    task = RetrievalTask(LossConfig(temperature=0.5), np.array([1, 1, 1]))
    catalog = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    loss = task.full_softmax(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), catalog,
                             bias=torch.tensor([0.0, math.log(2), 5.0]), allowed=torch.tensor([True, True, False]))
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-6)


def test_logq_correction_subtracts_log_expected_draws() -> None:
    # 2 rows with targets [0, 3] (in-batch), 1 sampled negative item 2; popularity_negative_fraction 0.5:
    # in-batch expected draws n * p: 2 * 0.125 = 0.25 (item 0), 2 * 0.5 = 1 (item 3);
    # sampled: k * (0.5 * p + 0.5 / 4) = 1 * (0.125 + 0.125) = 0.25 (item 2). All dots 0 -> logits = -log(draws).
    task = _task(temperature=1.0, logq_correction=True, remove_accidental_hits=False)
    queries = torch.zeros(2, 2)
    logits = task.candidate_logits(queries, torch.tensor([0, 3]), torch.zeros(3, 2), torch.tensor([0, 3, 2]), 1)
    expected = -torch.log(torch.tensor([0.25, 1.0, 0.25]))
    torch.testing.assert_close(logits, expected.expand(2, 3))


def test_accidental_hits_are_masked_but_not_the_positive() -> None:
    # targets [1, 1]: row 0's column 1 (row 1's positive, same item) is an accidental hit, as is row 1's column 0;
    # the sampled negative (item 1 again) is a hit for both rows.
    task = _task(temperature=1.0, logq_correction=False)
    logits = task.candidate_logits(torch.ones(2, 2), torch.tensor([1, 1]), torch.ones(3, 2), torch.tensor([1, 1, 1]), 1)
    assert torch.isfinite(logits.diagonal()).all()
    assert torch.isinf(logits[0, 1]) and torch.isinf(logits[1, 0]) and torch.isinf(logits[:, 2]).all()


def test_without_in_batch_negatives_other_positives_are_excluded() -> None:
    # in_batch_negatives off: row 0 sees its positive (column 0) and the sampled column 2 only.
    task = _task(temperature=1.0, logq_correction=False, in_batch_negatives=False)
    logits = task.candidate_logits(torch.ones(2, 2), torch.tensor([0, 3]), torch.ones(3, 2), torch.tensor([0, 3, 2]), 1)
    assert torch.isinf(logits[0, 1]) and torch.isinf(logits[1, 0])
    assert logits[0, 0].item() == pytest.approx(2.0) and logits[0, 2].item() == pytest.approx(2.0)


def test_sampled_softmax_loss_by_hand() -> None:
    # targets [0, 1] plus 3 uniform negatives; all vectors equal and no correction, so every finite logit is
    # equal and a row's loss is log(its number of finite columns): accidental hits of its target are masked.
    task = RetrievalTask(LossConfig(kind="sampled_softmax", temperature=1.0, num_negatives=3,
                                    popularity_negative_fraction=0.0, logq_correction=False), np.ones(10))
    encode = lambda items: torch.ones(len(items), 2)
    loss = task.loss(torch.ones(2, 2), torch.tensor([0, 1]), encode)
    drawn = RetrievalTask(task.config, np.ones(10)).sample_negatives(3)  # same seed -> the same 3 negatives
    candidates = torch.cat([torch.tensor([0, 1]), drawn])
    finite = [int(((candidates != target) | (torch.arange(5) == row)).sum()) for row, target in enumerate([0, 1])]
    assert loss.item() == pytest.approx(float(np.mean(np.log(finite))), rel=1e-6)


def test_popularity_negatives_follow_counts() -> None:
    # fraction 1: all negatives by popularity; item 3 has p = 0.5, item 0 p = 0.125, so 3 is drawn ~4x as often.
    task = _task(popularity_negative_fraction=1.0)
    counts = torch.bincount(task.sample_negatives(20000), minlength=4).float()
    assert counts[3] / counts[0] == pytest.approx(4.0, rel=0.15)


def test_full_softmax_gradient_lowers_loss() -> None:
    task = RetrievalTask(LossConfig(), np.ones(5))
    queries = torch.randn(4, 8, requires_grad=True)
    catalog = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    targets = torch.tensor([0, 1, 2, 3])
    before = task.full_softmax(torch.nn.functional.normalize(queries, dim=-1), targets, catalog)
    before.backward()
    with torch.no_grad():
        stepped = queries - 0.1 * queries.grad
    after = task.full_softmax(torch.nn.functional.normalize(stepped, dim=-1), targets, catalog)
    assert after.item() < before.item()


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="temperature"):
        LossConfig(temperature=0.0)
    with pytest.raises(ValueError, match="non-empty 1-d array"):
        RetrievalTask(LossConfig(), np.ones(0))

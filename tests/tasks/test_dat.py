"""DAT losses against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from foryou.config import DatConfig
from foryou.tasks.dat import (
    AugmentedVectors,
    adaptive_mimic_loss,
    category_alignment_loss,
    covariance,
    dat_loss,
)


def test_adaptive_mimic_by_hand_and_stop_gradient() -> None:
    # pair 0: |a_u - v|^2 = |[1,0] - [0,1]|^2 = 2, |a_v - u|^2 = |[0,0] - [1,0]|^2 = 1 -> 3
    # pair 1: a_u = v, a_v = u -> 0; mean = 1.5; weights [1, 0] -> 3
    aug_users = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    aug_items = torch.tensor([[0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    users = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    items = torch.tensor([[0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    loss = adaptive_mimic_loss(aug_users, aug_items, users, items)
    assert loss.item() == pytest.approx(1.5)
    assert adaptive_mimic_loss(aug_users, aug_items, users, items, torch.tensor([1.0, 0.0])).item() == pytest.approx(3)
    loss.backward()
    assert users.grad is None and items.grad is None  # the tower outputs are targets only
    assert aug_users.grad is not None and aug_items.grad is not None


def test_covariance_by_hand() -> None:
    # x = [0, 2], y = [0, 2]: var = ((-1)^2 + 1^2) / 1 = 2, cov = 2
    vectors = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    torch.testing.assert_close(covariance(vectors), torch.full((2, 2), 2.0))


def test_category_alignment_by_hand() -> None:
    # major (0): [[0,0],[2,2]] -> C = [[2,2],[2,2]]; minor 1: [[0,0],[0,2]] -> C = [[0,0],[0,2]]
    # ||diff||^2 = 4 + 4 + 4 + 0 = 12; category 2 has one item (skipped), -1 = no category (skipped)
    vectors = torch.tensor([[0.0, 0.0], [2.0, 2.0], [0.0, 0.0], [0.0, 2.0], [5.0, 5.0], [9.0, 9.0]])
    categories = torch.tensor([0, 0, 1, 1, 2, -1])
    assert category_alignment_loss(vectors, categories, major=0).item() == pytest.approx(12.0)


def test_category_alignment_needs_two_major_items() -> None:
    vectors = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert category_alignment_loss(vectors, torch.tensor([0, 1, 1]), major=0).item() == 0.0


def test_dat_loss_weights_the_parts() -> None:
    # mimic 1.5 (as above) x 0.5 + alignment 12 x 0.1 = 0.75 + 1.2 = 1.95
    aug_users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    aug_items = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    users = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    items = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    mimic_only = dat_loss(DatConfig(enabled=True, mimic_weight=0.5, category_weight=0.1), aug_users, aug_items,
                          users, items, None, 0)
    assert mimic_only.item() == pytest.approx(0.75)
    vectors = torch.tensor([[0.0, 0.0], [2.0, 2.0], [0.0, 0.0], [0.0, 2.0]])
    total = dat_loss(DatConfig(enabled=True, mimic_weight=0.5, category_weight=0.1), aug_users.repeat(2, 1),
                     aug_items.repeat(2, 1), users.repeat(2, 1), vectors, torch.tensor([0, 0, 1, 1]), 0)
    # mimic part with item vectors `vectors`: pair-wise |a_u - v|^2: [1,0]-[0,0]=1, [0,1]-[2,2]=5, [1,0]-[0,0]=1,
    # [0,1]-[0,2]=1 -> 8; |a_v - u|^2 as before: 1, 0, 1, 0 -> 2; mean (8 + 2) / 4 = 2.5 -> 1.25 + 1.2 = 2.45
    assert total.item() == pytest.approx(2.45)


def test_augmented_vectors_unknown_user_is_zero() -> None:
    vectors = AugmentedVectors(n_users=3, n_items=2, dim=4)
    assert vectors.users.weight.shape == (4, 4) and vectors.items.weight.shape == (2, 4)
    assert torch.count_nonzero(vectors.users(torch.tensor([0]))) == 0

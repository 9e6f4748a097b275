"""Dual Augmented Two-tower (DAT, Yu et al. 2021): information exchange between the towers + category alignment.

Each user and each item gets an augmented vector, fed into its own tower. The adaptive-mimic loss makes the
augmented vector of a positive pair's user mimic the item tower's output and vice versa (the target is detached:
stop-gradient), so each tower sees a summary of what the other tower finds relevant. The category alignment loss
pulls the covariance of the item vectors of minor categories towards that of the major category, so that
categories with few examples get vectors as well spread as the big one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from foryou.config import DatConfig


class AugmentedVectors(nn.Module):
    """One augmented vector per user (index 0 = unknown user) and per item; (b,) indices -> (b, d)."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users + 1, dim)
        self.items = nn.Embedding(n_items, dim)
        nn.init.normal_(self.users.weight, std=0.01)
        nn.init.normal_(self.items.weight, std=0.01)
        with torch.no_grad():
            self.users.weight[0].zero_()


def adaptive_mimic_loss(aug_users: Tensor, aug_items: Tensor, user_vectors: Tensor, item_vectors: Tensor,
                        weights: Tensor | None = None) -> Tensor:
    """Mean squared distance of each augmented vector to the other tower's (detached) output, positives only.

    aug_users, aug_items, user_vectors, item_vectors: (n, d) for n positive (user, item) pairs; weights (n,) or None.
    """
    per_pair = ((aug_users - item_vectors.detach()) ** 2).sum(-1) + ((aug_items - user_vectors.detach()) ** 2).sum(-1)
    if weights is None:
        return per_pair.mean()
    return (per_pair * weights).sum() / weights.sum().clamp_min(1e-12)


def covariance(vectors: Tensor) -> Tensor:
    """(n, d) -> (d, d) sample covariance (divided by n - 1)."""
    centred = vectors - vectors.mean(0, keepdim=True)
    return centred.T @ centred / max(len(vectors) - 1, 1)


def category_alignment_loss(item_vectors: Tensor, categories: Tensor, major: int) -> Tensor:
    """Sum over minor categories c in the batch of ||C(major) - C(c)||_F^2 (categories with < 2 items skipped).

    item_vectors (n, d); categories (n,) category index per row (negative = none); major: the major category.
    Zero when the batch holds fewer than two items of the major category.
    """
    loss = item_vectors.new_zeros(())
    is_major = categories == major
    if int(is_major.sum()) < 2:
        return loss
    major_cov = covariance(item_vectors[is_major])
    for category in torch.unique(categories):
        selected = categories == category
        if int(category) == major or int(category) < 0 or int(selected.sum()) < 2:
            continue
        loss = loss + ((major_cov - covariance(item_vectors[selected])) ** 2).sum()
    return loss


def dat_loss(config: DatConfig, aug_users: Tensor, aug_items: Tensor, user_vectors: Tensor, item_vectors: Tensor,
             categories: Tensor | None, major: int, weights: Tensor | None = None) -> Tensor:
    """mimic_weight x adaptive-mimic + category_weight x category alignment (when categories are known)."""
    loss = config.mimic_weight * adaptive_mimic_loss(aug_users, aug_items, user_vectors, item_vectors, weights)
    if categories is not None and config.category_weight > 0:
        loss = loss + config.category_weight * category_alignment_loss(item_vectors, categories, major)
    return loss

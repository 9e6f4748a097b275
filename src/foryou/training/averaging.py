"""Exponential moving average of a module's parameters, for validation and the final model.

With a constant learning rate the weights after the last step carry that step's noise, so validation NDCG jumps
from epoch to epoch and the epoch early stopping picks is partly luck. The average over the last ~1 / (1 - decay)
steps is smoother and usually better; training itself continues from the raw weights. Early on the decay is
min(decay, (1 + n) / (10 + n)) after n updates (as TensorFlow's ExponentialMovingAverage does), so that a short
run is not averaged towards its random initial weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


class WeightAverage:
    """Keeps the average; `swap_in` puts it into the module (for validation or as the result), `swap_out` undoes it."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.averaged = AveragedModel(module, multi_avg_fn=_warming_ema(decay))
        self._raw: list[torch.Tensor] | None = None

    def update(self, module: nn.Module) -> None:
        """After each optimiser step."""
        self.averaged.update_parameters(module)

    @torch.no_grad()
    def swap_in(self, module: nn.Module) -> None:
        self._raw = [parameter.detach().clone() for parameter in module.parameters()]
        for parameter, average in zip(module.parameters(), self.averaged.module.parameters(), strict=True):
            parameter.copy_(average)

    @torch.no_grad()
    def swap_out(self, module: nn.Module) -> None:
        if self._raw is None:
            return
        for parameter, raw in zip(module.parameters(), self._raw, strict=True):
            parameter.copy_(raw)
        self._raw = None


Tensors = list[Tensor] | tuple[Tensor, ...]


def _warming_ema(decay: float) -> Callable[[Tensors, Tensors, Tensor | int], None]:
    """AveragedModel's multi_avg_fn: average <- average + (1 - decay_n) (new - average), decay_n warming up."""

    @torch.no_grad()
    def update(averages: Tensors, news: Tensors, n_averaged: Tensor | int) -> None:
        step_decay = min(decay, (1.0 + float(n_averaged)) / (10.0 + float(n_averaged)))
        for average, new in zip(averages, news, strict=True):
            average.lerp_(new, 1.0 - step_decay)

    return update

"""Exponential moving average of a module's parameters, for validation and the final model.

With a constant learning rate the weights after the last step carry that step's noise, so validation NDCG jumps
from epoch to epoch and the epoch early stopping picks is partly luck. The average over the last ~1 / (1 - decay)
steps is smoother and usually better; training itself continues from the raw weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """Keeps the average; `swap_in` puts it into the module (for validation or as the result), `swap_out` undoes it."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.averaged = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay))
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

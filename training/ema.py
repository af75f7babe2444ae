"""Exponential moving average (EMA) of a network's weights: what the zoo publishes.

The EMA is a full copy of the network (kept in eval mode, no gradients) so that validation can
sample from it directly and its `state_dict()` is exactly what goes into `model.safetensors`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay used after optimiser step `step` (0-based).

    The decay ramps up as `(1 + step) / (10 + step)` until it reaches `decay`: with a fixed 0.999
    the average of a short run would still be dominated by the random initial weights (after
    1,000 steps 37 % of the weight would sit on them), which ruins short CPU runs and tests.

    Args:
        step: number of optimiser steps already taken before this update (>= 0).
        decay: the asymptotic decay in [0, 1).

    Returns:
        The decay in [0, decay].
    """
    return min(decay, (1.0 + step) / (10.0 + step))


class EMA:
    """An EMA copy of a network, updated in place after each optimiser step.

    Args:
        model: the trained network (unwrapped: not the DDP wrapper). Its parameters and floating
            point buffers are tracked; the copy lives on the same device, in float32.
        decay: asymptotic decay, e.g. 0.999 (see `ema_decay_at` for the warm-up).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).float().eval().requires_grad_(False)
        self._ema_params = [p for p in self.module.parameters()]
        self._ema_buffers = [b for b in self.module.buffers() if b.is_floating_point()]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend the current weights of `model` in: ema <- ema + (1 - decay) (param - ema).

        Args:
            model: the network being trained (same architecture as the copy).
            step: number of optimiser steps taken before the one just applied (0-based).
        """
        weight = 1.0 - ema_decay_at(step, self.decay)
        params = [p.detach().float() for p in model.parameters()]
        # One fused kernel over all tensors: the EMA must cost little next to the training step.
        torch._foreach_lerp_(self._ema_params, params, weight)
        buffers = [b.detach().float() for b in model.buffers() if b.is_floating_point()]
        if buffers:
            # Buffers (e.g. normalisation statistics) are copied, not averaged, as is customary.
            torch._foreach_copy_(self._ema_buffers, buffers)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA weights, name -> tensor (float32), as the network's own `state_dict`."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore EMA weights saved by `state_dict`."""
        self.module.load_state_dict(state)

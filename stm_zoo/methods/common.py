"""What the families share: the network call signature, the regression norm, seeded draws.

Norm rule (flow matching and DDIM alike): the paper writes its objectives (Eqs. 3, 4, 7) with an
unsquared norm ||.||. We default to the squared L2 norm (mean squared error) because its minimiser
is the conditional *mean* E[target | x_t, cond]: for flow matching that mean is exactly the
marginal velocity whose ODE carries noise to the data distribution (Lipman et al. 2023), and for
DDIM it is the noise estimate behind the score (Ho et al. 2020, and the "simple" loss of Nichol &
Dhariwal's code that the paper builds on). An L1 norm regresses the conditional *median* instead,
which defines no such flow; it is available as `norm="l1"` for experiments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch

Norm = Literal["l2", "l1"]

Prediction = Literal["native", "x0"]
"""What the network outputs: the family's own target ("native": the velocity for flow matching,
the noise for DDIM, as in the paper) or the clean image x0, from which the sampler derives that
target. x0 networks are built with `UNetConfig.residual`, so they start as the identity."""

TimeSampling = Literal["uniform", "grid", "logit-normal"]
"""How training draws the time: uniformly (the paper), from the times the 2-, 5- and 10-step
samplers evaluate the network at ("grid"), or from a logit-normal density (Esser et al. 2024)."""

SAMPLER_STEPS: tuple[int, ...] = (2, 5, 10)
"""The sampler step counts the zoo evaluates (paper Tables II-IV); "grid" trains at their times."""

NetworkFn = Callable[[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None], torch.Tensor]
"""`net(x, t, cond) -> (B, 1, H, W)`: the `stm_zoo.nn.UNet` call signature."""


def regression_loss(prediction: torch.Tensor, target: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Mean over all elements of (prediction - target)**2 ("l2") or |prediction - target| ("l1").

    Computed in fp32 whatever the network's compute dtype (bf16 under autocast).
    """
    diff = prediction.float() - target.float()
    if norm == "l2":
        return diff.square().mean()
    if norm == "l1":
        return diff.abs().mean()
    raise ValueError(f"unknown loss norm {norm!r}: use 'l2' or 'l1'")


def standard_normal(
    shape: Sequence[int], generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Float32 N(0, 1) draws from `generator`, made on the generator's device then moved.

    Drawing on the generator's device means a CPU generator gives the same numbers whatever device
    the model runs on (reproducible runs across CPU and GPU).
    """
    draw = torch.randn(tuple(shape), generator=generator, device=generator.device)
    return draw.to(device)


def uniform(
    shape: Sequence[int], generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Float32 U[0, 1) draws from `generator` (same device rule as `standard_normal`)."""
    draw = torch.rand(tuple(shape), generator=generator, device=generator.device)
    return draw.to(device)


def randint(
    high: int, shape: Sequence[int], generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Int64 uniform draws from {0, ..., high - 1} (same device rule as `standard_normal`)."""
    draw = torch.randint(high, tuple(shape), generator=generator, device=generator.device)
    return draw.to(device)

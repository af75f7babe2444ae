"""Flow matching (paper Eqs. 6-8): the straight noise-to-data path, its loss and the RK2 sampler.

Time convention (the only one in this project, matching Eq. 6 with t := t/T in [0, 1]):

    x_t = t * x0 + (1 - t) * eps,    eps ~ N(0, I),
    t = 0 is pure noise, t = 1 is data,
    velocity v = d x_t / d t = x0 - eps   (Eq. 7's regression target).

Sampling integrates dx/dt = v_theta(x, t) forwards from t = 0 (noise) to t = 1 (the restored
image) with the explicit midpoint rule of Eq. 8. The paper writes Eq. 8 with a decreasing index
(x_{t - dt} from a midpoint at t - dt/2); under Eq. 6, where t grows towards the data, the same rule
reads k1 = v(x, t), k2 = v(x + dt/2 k1, t + dt/2), x <- x + dt k2, which is what `rk2_midpoint`
does.

Loss norm: squared L2 by default (see `stm_zoo.methods.common` for why; `norm="l1"` available).

The network sees t in [0, 1]; its config uses `time_scale=FM_TIME_SCALE` so that the embedded time
spans [0, 1000] like DDIM's step index (`stm_zoo.nn.unet`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stm_zoo.methods.common import (
    SAMPLER_STEPS,
    NetworkFn,
    Norm,
    Prediction,
    TimeSampling,
    regression_loss,
    standard_normal,
    uniform,
)

FM_TIME_SCALE = 1000.0
"""`UNetConfig.time_scale` for flow-matching networks (t in [0, 1] embedded as 1000 t)."""

X0_MIN_REMAINING = 0.05
"""x0 networks: the velocity (x0_hat - x_t) / (1 - t) uses max(1 - t, this) (never hit by the
samplers, whose last evaluation is at t = 1 - 1/(2N))."""

X0_LOSS_WEIGHT_CAP = 1.0
"""x0 networks: Eq. 7's velocity error equals (x0_hat - x0) / (1 - t), i.e. the x0 error weighted by
1 / (1 - t)^2; the weight is capped (as min-SNR weighting does for diffusion, Hang et al. 2023) so
that the near-data times do not dominate. The default cap 1 trains on the plain x0 error, which
the study (docs/benchmarks.md, rows d / d1) found no worse than a cap of 16 at short budgets."""

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
"""`f(x, t) -> dx/dt`: x (B, C, H, W), t a float in [0, 1]."""


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point of the straight path at time t: t * x0 + (1 - t) * eps.

    Args:
        x0: (B, C, H, W) data in [-1, 1].
        eps: (B, C, H, W) standard normal noise.
        t: (B,) times in [0, 1].
    """
    t = t.to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return t * x0 + (1 - t) * eps


def target_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """d x_t / d t along the straight path: x0 - eps (independent of t)."""
    return x0 - eps


def sampler_times(steps: tuple[int, ...] = SAMPLER_STEPS) -> torch.Tensor:
    """Every time at which the RK2 sampler evaluates the network for these step counts.

    N steps evaluate at i/N and (i + 1/2)/N for i < N: 0, 1/4, 1/2, 3/4 for N = 2.
    """
    times = {round((i + half) / n, 6) for n in steps for i in range(n) for half in (0.0, 0.5)}
    return torch.tensor(sorted(times), dtype=torch.float32)


def draw_times(
    b: int, generator: torch.Generator, device: torch.device, sampling: TimeSampling = "uniform"
) -> torch.Tensor:
    """(b,) training times in [0, 1) drawn as `sampling` says (see `common.TimeSampling`)."""
    if sampling == "uniform":
        return uniform((b,), generator, device)
    if sampling == "grid":
        grid = sampler_times()
        index = (uniform((b,), generator, "cpu") * len(grid)).long().clamp_max(len(grid) - 1)
        return grid[index].to(device)
    if sampling == "logit-normal":
        return torch.sigmoid(standard_normal((b,), generator, device)).clamp_max(0.999)
    raise ValueError(f"unknown time sampling {sampling!r}: use uniform, grid or logit-normal")


def velocity_from_x0(x0_hat: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight-path velocity implied by a clean-image estimate: (x0_hat - x) / (1 - t).

    Args:
        x0_hat: (B, C, H, W) predicted clean image. x: the state x_t. t: (B,) times.
    """
    remaining = (1 - t.float()).clamp_min(X0_MIN_REMAINING).view(-1, *([1] * (x.ndim - 1)))
    return (x0_hat.float() - x.float()) / remaining


def start_state(
    cond: torch.Tensor, noise: torch.Tensor, source_sigma: float | None
) -> torch.Tensor:
    """The t = 0 end of the path: pure noise (the paper), or `cond + source_sigma * noise` for a
    flow that starts at the degraded image (InDI, Delbracio & Milanfar 2023)."""
    if source_sigma is None:
        return noise.float()
    return cond.float() + source_sigma * noise.float()


def loss(
    net: NetworkFn,
    x0: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator,
    norm: Norm = "l2",
    prediction: Prediction = "native",
    times: TimeSampling = "uniform",
    source_sigma: float | None = None,
    weight_cap: float = X0_LOSS_WEIGHT_CAP,
) -> torch.Tensor:
    """Flow-matching objective, Eq. 7, for one batch.

    Draws t (uniform, or as `times` says) and eps ~ N(0, I) per sample from `generator`, builds
    x_t (Eq. 6) and regresses the velocity onto x0 - eps. A "native" network outputs the velocity;
    an "x0" network outputs the clean image and the velocity is derived from it
    (`velocity_from_x0`), with the 1 / (1 - t)^2 weight this implies capped at
    `weight_cap` (1: plain x0 regression).

    Args:
        net: the velocity network, called as net(x_t, t, cond) with t (B,) in [0, 1].
        x0: (B, 1, H, W) clean images in [-1, 1].
        cond: (B, 1, H, W) degraded (or slow-axis upsampled) images in [-1, 1].
        generator: the source of t and eps (any device; draws are moved to x0's device).
        norm: "l2" (mean squared error, default) or "l1" (mean absolute error).
        prediction: what the network outputs ("native": velocity; "x0": clean image).
        times: how t is drawn (`common.TimeSampling`).
        source_sigma: None for the paper's noise-to-data path; a float for the path from
            `cond + source_sigma * eps` (see `start_state`).
        weight_cap: x0 networks: the cap on the 1 / (1 - t)^2 weight (>= 1).

    Returns:
        Scalar fp32 loss, differentiable with respect to the network's parameters.
    """
    b = x0.shape[0]
    x0 = x0.float()
    t = draw_times(b, generator, x0.device, times)
    eps = start_state(cond, standard_normal(x0.shape, generator, x0.device), source_sigma)
    x_t = interpolate(x0, eps, t)
    output = net(x_t, t, cond)
    if prediction == "native":
        return regression_loss(output, target_velocity(x0, eps), norm)
    remaining = (1 - t).clamp_min(weight_cap**-0.5).view(-1, 1, 1, 1)
    return regression_loss((output.float() - x0) / remaining, torch.zeros_like(x0), norm)


def rk2_midpoint(velocity_fn: VelocityFn, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate dx/dt = velocity_fn(x, t) from t = 0 to t = 1 with `steps` midpoint steps (Eq. 8).

    Each step of size dt = 1 / steps evaluates the velocity twice:
    k1 = f(x, t), k2 = f(x + dt/2 k1, t + dt/2), x <- x + dt k2. The velocity is never evaluated
    at t = 1, where the straight-path velocity (x0 - x) / (1 - t) is singular.

    Args:
        velocity_fn: any callable f(x, t) returning a tensor shaped like x.
        x: (B, C, H, W) state at t = 0 (the noise); kept in its dtype, at least float32.
        steps: number of steps N >= 1 (2 N velocity evaluations).

    Returns:
        The state at t = 1, same shape, float32 (or float64 when x is float64).
    """
    if steps < 1:
        raise ValueError(f"the RK2 sampler needs at least one step, got {steps}")
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    dt = 1.0 / steps
    for i in range(steps):
        t = i * dt
        k1 = velocity_fn(x, t).to(x.dtype)
        k2 = velocity_fn(x + 0.5 * dt * k1, t + 0.5 * dt).to(x.dtype)
        x = x + dt * k2
    return x


@torch.inference_mode()
def sample(
    net: NetworkFn,
    cond: torch.Tensor,
    steps: int,
    noise: torch.Tensor,
    prediction: Prediction = "native",
    source_sigma: float | None = None,
) -> torch.Tensor:
    """Restore: integrate the learnt velocity from `noise` (t = 0) to the image (t = 1).

    Args:
        net: the velocity network (net(x, t, cond), t (B,) in [0, 1]).
        cond: (B, 1, H, W) degraded (or slow-axis upsampled) images in [-1, 1].
        steps: RK2 steps (the paper evaluates 2, 5 and 10); 2 network evaluations each.
        noise: (B, 1, H, W) standard normal starting point, passed in so that overlapping tiles
            can share one noise field and a seed reproduces a result.
        prediction: what the network outputs (as in `loss`).
        source_sigma: as in `loss`: where the path starts.

    Returns:
        (B, 1, H, W) float32 restored images (about [-1, 1]).
    """
    b = noise.shape[0]

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        times = torch.full((b,), t, dtype=torch.float32, device=x.device)
        output = net(x, times, cond)
        return output if prediction == "native" else velocity_from_x0(output, x, times)

    return rk2_midpoint(velocity, start_state(cond, noise, source_sigma), steps)

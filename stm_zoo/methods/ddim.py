"""DDIM (paper Eqs. 2-5): the cosine schedule, the eps-prediction losses and the DDIM sampler.

Conventions (those of improved-diffusion, which the paper uses):
- step index t in {0, ..., T - 1}, T = 1000; `alphas_cumprod[t]` is Eq. 2's alpha_t (the
  cumulative product), close to 1 at t = 0 and close to 0 at t = T - 1;
- x_t = sqrt(alpha_t) x0 + sqrt(1 - alpha_t) eps (Eq. 2) and the network predicts eps;
- the network receives the integer step index as a float (`time_scale=1` in its config);
- N-step sampling of a noise network visits t = T - T/N, ..., T/N, 0 (improved-diffusion's
  "ddimN" respacing, "leading"); a clean-image ("x0") network's visits T - 1, T - 1 - T/N, ...,
  T/N - 1 ("trailing", Lin et al. 2024), so that its first call sees pure noise exactly where
  training showed it pure noise (see `ddim_timesteps`). Sampling starts from standard normal
  noise at the first visited step, and its last update uses alpha := 1, so it returns the
  predicted x0 itself.

Loss norm: squared L2 by default (see `stm_zoo.methods.common`; `norm="l1"` available).
The schedule is a frozen dataclass of float64 tensors built once and cast at use; the sampler keeps
its state in float32 (float64 when given float64, as the exactness tests do).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from stm_zoo.methods.common import (
    SAMPLER_STEPS,
    NetworkFn,
    Norm,
    Prediction,
    TimeSampling,
    randint,
    regression_loss,
    standard_normal,
)

X0_SNR_RANGE = (1.0, 1.0)
"""x0 networks: Eq. 3's noise error equals the x0 error weighted by the signal-to-noise ratio
alpha_t / (1 - alpha_t), which runs from ~1e5 near t = 0 to ~1e-5 near t = T; that weight is
clipped to this range. (1, 1), the plain clean-image error, is the CPU recipe, as for flow
matching: the few-step samplers start at t near T, where the SNR weight (or min-SNR-5, Hang et al.
2023, which clips only the top) leaves the first and most important prediction untrained."""


def x0_weight_text() -> str:
    """How an x0 network's error is weighted over t, in a card's words."""
    low, high = X0_SNR_RANGE
    if low == high:
        return f"Eq. 3's SNR weight clipped to {low:g} (plain clean-image MSE)"
    return f"clean-image MSE weighted by the SNR clipped to [{low:g}, {high:g}]"


EpsFn = Callable[[torch.Tensor, int], torch.Tensor]
"""`f(x_t, t) -> eps`: x_t (B, C, H, W), t an integer step index in [0, T)."""
DenoiseFn = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
"""`f(x_t, t) -> (x0_hat, eps)`, the clean-image and noise estimates at step t."""
Spacing = Literal["leading", "trailing"]


@dataclass(frozen=True, eq=False)
class CosineSchedule:
    """The cosine noise schedule of Nichol & Dhariwal (2021), as float64 tensors.

    Attributes:
        betas: (T,) float64 per-step noise variances, clipped to `max_beta`.
        alphas_cumprod: (T,) float64 prod_{i <= t} (1 - betas[i]) (Eq. 2's alpha_t), decreasing.
        offset: the schedule's s (0.008), which keeps betas finite near t = 0.
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    offset: float

    @classmethod
    def build(
        cls, steps: int = 1000, offset: float = 0.008, max_beta: float = 0.999
    ) -> CosineSchedule:
        """Build the schedule as improved-diffusion's `betas_for_alpha_bar` does.

        alpha_bar(u) = cos^2(pi/2 (u + s) / (1 + s)) and
        betas[t] = min(1 - alpha_bar((t + 1) / T) / alpha_bar(t / T), max_beta).

        Args:
            steps: T, the number of diffusion steps.
            offset: s.
            max_beta: the clip that keeps the last steps from dividing by alpha_bar(1) = 0.
        """

        def alpha_bar(u: float) -> float:
            return math.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2

        betas = torch.tensor(
            [
                min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta)
                for i in range(steps)
            ],
            dtype=torch.float64,
        )
        return cls(betas=betas, alphas_cumprod=torch.cumprod(1 - betas, dim=0), offset=offset)

    @property
    def num_steps(self) -> int:
        """T, the number of training steps."""
        return int(self.betas.shape[0])

    def alpha(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alphas_cumprod at step indices t, cast to `like`'s dtype and device, (B, 1, ..., 1)."""
        # Cast before moving: some accelerators (MPS) have no float64.
        values = self.alphas_cumprod.to(like.dtype).to(like.device)[t.to(like.device)]
        return values.view(-1, *([1] * (like.ndim - 1)))


COSINE = CosineSchedule.build()
"""The paper's schedule (T = 1000, s = 0.008); built once at import."""


def noised(
    x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, schedule: CosineSchedule = COSINE
) -> torch.Tensor:
    """Eq. 2: sqrt(alpha_t) x0 + sqrt(1 - alpha_t) eps.

    Args:
        x0: (B, C, H, W) data in [-1, 1]. eps: like x0, standard normal.
        t: (B,) int64 step indices in [0, T).
    """
    alpha = schedule.alpha(t, x0)
    return alpha.sqrt() * x0 + (1 - alpha).sqrt() * eps


def predict_x0(
    x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, schedule: CosineSchedule = COSINE
) -> torch.Tensor:
    """Invert Eq. 2 for x0 given (predicted) noise eps.

    Returns:
        (x_t - sqrt(1 - alpha_t) eps) / sqrt(alpha_t), shaped like x_t.
    """
    alpha = schedule.alpha(t, x_t)
    return (x_t - (1 - alpha).sqrt() * eps) / alpha.sqrt()


def draw_steps(
    b: int,
    generator: torch.Generator,
    device: torch.device,
    schedule: CosineSchedule = COSINE,
    sampling: TimeSampling = "uniform",
    spacing: Spacing = "leading",
) -> torch.Tensor:
    """(b,) int64 training step indices: uniform over {0..T-1} (the paper), the steps the 2-, 5-
    and 10-step samplers visit with `spacing` ("grid"), or a logit-normal density over [0, T)
    ("logit-normal")."""
    T = schedule.num_steps
    if sampling == "uniform":
        return randint(T, (b,), generator, device)
    if sampling == "grid":
        visits = {s for n in SAMPLER_STEPS for s in ddim_timesteps(T, n, spacing)}
        grid = torch.tensor(sorted(visits))
        index = randint(len(grid), (b,), generator, "cpu")
        return grid[index].to(device)
    if sampling == "logit-normal":
        u = torch.sigmoid(standard_normal((b,), generator, device))
        return (u * T).long().clamp(0, T - 1)
    raise ValueError(f"unknown time sampling {sampling!r}: use uniform, grid or logit-normal")


def eps_from_x0(
    x0_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: CosineSchedule = COSINE
) -> torch.Tensor:
    """The noise implied by a clean-image estimate: (x_t - sqrt(a_t) x0_hat) / sqrt(1 - a_t)."""
    alpha = schedule.alpha(t.long(), x_t.float())
    return (x_t.float() - alpha.sqrt() * x0_hat.float()) / (1 - alpha).sqrt()


def _noise_batch(
    x0: torch.Tensor,
    generator: torch.Generator,
    schedule: CosineSchedule,
    sampling: TimeSampling = "uniform",
    spacing: Spacing = "leading",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw t (as `sampling` says) and eps ~ N(0, I) per sample; return (t, eps, x_t)."""
    t = draw_steps(x0.shape[0], generator, x0.device, schedule, sampling, spacing)
    eps = standard_normal(x0.shape, generator, x0.device)
    return t, eps, noised(x0, eps, t, schedule)


def loss(
    net: NetworkFn,
    x0: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator,
    norm: Norm = "l2",
    schedule: CosineSchedule = COSINE,
    prediction: Prediction = "native",
    times: TimeSampling = "uniform",
) -> torch.Tensor:
    """DDIM objective, Eq. 3: regress net(x_t, t, cond) onto the noise eps.

    An "x0" network outputs the clean image; its loss is Eq. 3's noise error written on x0, the x0
    error weighted by the signal-to-noise ratio, with that weight clipped to `X0_SNR_RANGE` (by
    default to 1: the plain clean-image error, the same at every t).

    Args:
        net: the noise network, called as net(x_t, t, cond) with t (B,) float step indices.
        x0: (B, 1, H, W) clean images in [-1, 1].
        cond: (B, 1, H, W) degraded (or slow-axis upsampled) images in [-1, 1].
        generator: the source of t and eps (any device; draws move to x0's device).
        norm: "l2" (default) or "l1".
        schedule: the noise schedule.
        prediction: what the network outputs ("native": the noise; "x0": the clean image).
        times: how the step index is drawn (`common.TimeSampling`).

    Returns:
        Scalar fp32 loss.
    """
    x0 = x0.float()
    t, eps, x_t = _noise_batch(x0, generator, schedule, times, spacing_for(prediction))
    output = net(x_t, t.float(), cond)
    if prediction == "native":
        return regression_loss(output, eps, norm)
    alpha = schedule.alpha(t, x0)
    weight = (alpha / (1 - alpha)).clamp(*X0_SNR_RANGE)
    return regression_loss(weight.sqrt() * (output.float() - x0), torch.zeros_like(x0), norm)


def wrapped_phase_difference(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """arg(reference) - arg(estimate) wrapped to (-pi, pi], with finite gradients everywhere.

    Computed as the angle of reference * conj(estimate), so a phase that wraps around +-pi (3.1 vs
    -3.1 rad) differs by 0.08 rad, not 6.2. Where either coefficient is zero the phase is undefined;
    there the difference is 0 and carries no gradient (atan2's gradient would be 0/0).

    Args:
        reference, estimate: complex tensors of the same shape (Fourier coefficients).

    Returns:
        Real tensor of that shape, in radians.
    """
    product = reference * estimate.conj()
    defined = product.abs() > 1e-12
    real = torch.where(defined, product.real, torch.ones_like(product.real))
    imag = torch.where(defined, product.imag, torch.zeros_like(product.imag))
    return torch.atan2(imag, real)


def fourier_terms(
    x0: torch.Tensor, x0_hat: torch.Tensor, norm: Norm = "l2"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The amplitude and phase terms of Eq. 4 between a clean image and its reconstruction.

    Uses the orthonormal 2-D real FFT over (H, W), so amplitudes are on the pixel scale (Parseval)
    and the amplitude term is comparable with L_DM. Phases are compared as wrapped differences.

    Args:
        x0, x0_hat: (B, C, H, W) float images.
        norm: "l2" (mean squared difference) or "l1" (mean absolute difference) for both terms.

    Returns:
        (amplitude term, phase term): scalars; the phase term is in rad (rad^2 for "l2").
    """
    f_ref = torch.fft.rfft2(x0.float(), norm="ortho")
    f_est = torch.fft.rfft2(x0_hat.float(), norm="ortho")
    amplitude = f_ref.abs() - f_est.abs()
    phase = wrapped_phase_difference(f_ref, f_est)
    zeros = torch.zeros_like(amplitude)
    return regression_loss(amplitude, zeros, norm), regression_loss(phase, zeros, norm)


def loss_fft(
    net: NetworkFn,
    x0: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator,
    norm: Norm = "l2",
    schedule: CosineSchedule = COSINE,
    clip_x0: float | None = 1.0,
    prediction: Prediction = "native",
    times: TimeSampling = "uniform",
) -> torch.Tensor:
    """DDIM + FFT objective, Eq. 4: 1/2 L_DM + 1/4 amplitude term + 1/4 phase term.

    An "x0" network's noise estimate is derived from its clean-image output (`eps_from_x0`).

    The reconstruction is x0_hat = (x_t - sqrt(1 - alpha_t) eps_theta) / sqrt(alpha_t), clamped to
    [-clip_x0, clip_x0] as the sampler does: at large t the factor 1 / sqrt(alpha_t) (up to ~2e4)
    amplifies noise-prediction errors so much that an unclamped amplitude term would swamp L_DM;
    clamped pixels pass no gradient, so the Fourier terms train mostly at moderate noise levels.

    Args:
        net, x0, cond, generator, norm, schedule: as in `loss`.
        clip_x0: the data range bound for x0_hat (None: no clamp).

    Returns:
        Scalar fp32 loss.
    """
    x0 = x0.float()
    t, eps, x_t = _noise_batch(x0, generator, schedule, times, spacing_for(prediction))
    eps_hat = net(x_t, t.float(), cond).float()
    if prediction == "x0":
        eps_hat = eps_from_x0(eps_hat, x_t, t, schedule)
    x0_hat = predict_x0(x_t, eps_hat, t, schedule)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
    amplitude, phase = fourier_terms(x0, x0_hat, norm)
    return 0.5 * regression_loss(eps_hat, eps, norm) + 0.25 * amplitude + 0.25 * phase


def ddim_timesteps(num_train_steps: int, steps: int, spacing: Spacing = "leading") -> list[int]:
    """The step indices a `steps`-step DDIM sampler visits, noisiest first.

    "leading" is improved-diffusion's "ddimN" respacing, which the paper's implementation uses:
    the steps round(i T / N) for i = 0..N-1, so T = 1000 gives [500, 0] for N = 2, [800, 600, ..,
    0] for N = 5 and [900, 800, .., 0] for N = 10 (identical to improved-diffusion's integer
    strides; other N are rounded instead of rejected). With eps-prediction, a first step at T - 1
    would yield only clipped noise (x0_hat = (x_t - sqrt(1 - alpha_t) eps) / sqrt(alpha_t)
    multiplies the network's error by 1 / sqrt(alpha_999) ~ 2e4); starting at T - T/N keeps that
    factor at 1.4 (N = 2) to 6 (N = 10). The price: the first network call gets pure noise where
    training showed it x_t = sqrt(alpha) x0 + ..., with alpha_500 ~ 0.5 — a clean-image network
    then copies that noise into its estimate (2-step samples of SSIM ~0.1 on our validation set).

    "trailing" (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed")
    visits round(T - i T / N) - 1: [999, 499] for N = 2, [999, 799, .., 199] for N = 5 and [999,
    899, .., 99] for N = 10. The first call sees pure noise, as in training; a clean-image network
    has no 1 / sqrt(alpha) amplification, and the last step returns its estimate at T/N - 1.

    Args:
        num_train_steps: T.
        steps: N, 1 <= N <= T.
        spacing: "leading" (noise networks) or "trailing" (clean-image networks).

    Returns:
        N distinct descending integers.
    """
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"DDIM steps must be in [1, {num_train_steps}], got {steps}")
    stride = num_train_steps / steps
    if spacing == "trailing":
        return sorted({round(num_train_steps - i * stride) - 1 for i in range(steps)}, reverse=True)
    if spacing != "leading":
        raise ValueError(f"unknown DDIM spacing {spacing!r}: use leading or trailing")
    return sorted({round(i * stride) for i in range(steps)}, reverse=True)


def spacing_for(prediction: Prediction) -> Spacing:
    """The step spacing a network's sampler uses, by what it predicts (`ddim_timesteps`)."""
    return "trailing" if prediction == "x0" else "leading"


def ddim_sample(
    eps_fn: EpsFn,
    schedule: CosineSchedule,
    x_T: torch.Tensor,
    steps: int,
    clip_x0: float | None = 1.0,
) -> torch.Tensor:
    """Deterministic DDIM (eta = 0, Eq. 5) of a noise network over the "leading" steps of
    `ddim_timesteps`.

    From step t to the next visited step t' (alpha_{t'} := 1 after the last):
    x0_hat = (x_t - sqrt(1 - alpha_t) eps) / sqrt(alpha_t), optionally clamped to the data range
    (then eps is recomputed from it, improved-diffusion's clip_denoised), and
    x_{t'} = sqrt(alpha_{t'}) x0_hat + sqrt(1 - alpha_{t'}) eps.

    Args:
        eps_fn: any callable f(x_t, t) -> predicted eps shaped like x_t (t an int step index).
        schedule: the noise schedule (coefficients are taken in float64, then cast).
        x_T: (B, C, H, W) the start, at the first visited step (standard normal noise); its dtype
            is kept, at least float32.
        steps: number of network evaluations N.
        clip_x0: clamp x0_hat to [-clip_x0, clip_x0] (1.0: images normalised to [-1, 1]);
            None disables it.

    Returns:
        x0, shaped like x_T.
    """
    alphas = schedule.alphas_cumprod.tolist()

    def denoise(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        eps = eps_fn(x, t).to(x.dtype)
        return (x - math.sqrt(1 - alphas[t]) * eps) / math.sqrt(alphas[t]), eps

    return ddim_loop(denoise, schedule, x_T, ddim_timesteps(schedule.num_steps, steps), clip_x0)


def ddim_loop(
    denoise: DenoiseFn,
    schedule: CosineSchedule,
    x_T: torch.Tensor,
    visited: list[int],
    clip_x0: float | None = 1.0,
) -> torch.Tensor:
    """The DDIM (eta = 0) updates of `ddim_sample` over the given steps, from any denoiser that
    returns (x0_hat, eps) at (x_t, t): a noise network's or a clean-image network's."""
    x = x_T if x_T.dtype in (torch.float32, torch.float64) else x_T.float()
    alphas = schedule.alphas_cumprod.tolist()
    for i, t in enumerate(visited):
        alpha = alphas[t]
        alpha_next = alphas[visited[i + 1]] if i + 1 < len(visited) else 1.0
        x0_hat, eps = denoise(x, t)
        if clip_x0 is not None:
            x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
            eps = (x - math.sqrt(alpha) * x0_hat) / math.sqrt(1 - alpha)
        x = math.sqrt(alpha_next) * x0_hat + math.sqrt(1 - alpha_next) * eps
    return x


@torch.inference_mode()
def sample(
    net: NetworkFn,
    cond: torch.Tensor,
    steps: int,
    noise: torch.Tensor,
    schedule: CosineSchedule = COSINE,
    prediction: Prediction = "native",
) -> torch.Tensor:
    """Restore with deterministic DDIM from `noise`.

    Args:
        net: the noise network (net(x_t, t, cond), t (B,) float step indices).
        cond: (B, 1, H, W) degraded (or slow-axis upsampled) images in [-1, 1].
        steps: DDIM steps (the paper evaluates 2, 5 and 10); one network evaluation each.
        noise: (B, 1, H, W) standard normal start, passed in so that overlapping tiles can share
            one noise field and a seed reproduces a result.
        schedule: the noise schedule the network was trained with.
        prediction: what the network outputs (as in `loss`).

    Returns:
        (B, 1, H, W) float32 restored images in [-1, 1].
    """
    b = noise.shape[0]

    def call(x: torch.Tensor, t: int) -> torch.Tensor:
        return net(x, torch.full((b,), float(t), dtype=torch.float32, device=x.device), cond)

    if prediction == "native":
        return ddim_sample(call, schedule, noise.float(), steps)

    def denoise(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        x0_hat = call(x, t).to(x.dtype)
        return x0_hat, eps_from_x0(x0_hat, x, torch.tensor([t]), schedule).to(x.dtype)

    visited = ddim_timesteps(schedule.num_steps, steps, spacing_for(prediction))
    return ddim_loop(denoise, schedule, noise.float(), visited)

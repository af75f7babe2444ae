"""Step 2 of the paper's pipeline: multi-tip artefacts (Eq. 1 and its Appendix 2 derivation).

A tip with N - 1 extra apexes images every feature N times. Eq. 1 adds, for each extra apex i, a
displaced copy of the clean heights passed through a sigmoid and a tip-shape kernel K_i:

    f(x, y) = h(x, y) + sum_i K_i( A_i / (1 + exp(c_i - d_i * h(x - ox_i, y - oy_i))) )

with heights h normalised to [0, 1] (step 0). Appendix 2 reads A = I_T e^gamma as the second apex's
current scale, c = gamma + 2 kappa a (apex height difference) and d = kappa (decay constant): only
surface features high enough to reach the second apex's tunnelling range show up in the ghost, which
is why the sigmoid gates the copy rather than adding it linearly.

Choices where the paper is silent (each is a field of `MultiTipConfig`):
- probability: the paper gives the distribution of N but no probability that multi-tip happens at
  all; its separate targeted test set and the other artefacts' 0.3-0.6 rates imply it does not
  always fire. We use 0.5.
- the sigmoid takes the shifted *clean* heights h for every ghost (Eq. 1 literally), not the image
  with the previous ghosts already added.
- offsets: magnitudes |ox|, |oy| ~ U(1, 11) px as in the paper (0.2-3.1 nm apex separations at
  0.195 nm/px, Appendix 2), each with a random sign so the ghost can sit in any quadrant
  (`random_offset_sign=False` keeps the paper's literal positive offsets). Offsets are continuous;
  the copy is shifted with bilinear interpolation.
- the kernel K_i wraps the sigmoid output (Eq. 1 literally, `kernel_position="after_sigmoid"`);
  `"before_sigmoid"` blurs the shifted heights instead (the apex shape acting on the surface first).
- the random kernel (entries ~ U(-0.5, 1), k x k with k in {5, 6}) is divided by the sum of the
  absolute values of its entries: the filtered ghost never exceeds the ghost's own range and a
  kernel whose entries nearly cancel cannot blow up (a unit-sum normalisation would divide by ~0).
  Its DC gain is therefore sum/sum|.| (about 0.6 on average), i.e. random-kernel ghosts are a bit
  fainter than Gaussian or median ones.
- a median of size 1 is the identity (the paper's range includes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from training.degradations import _filters

KERNEL_KINDS = ("gaussian", "median", "random")
KERNEL_POSITIONS = ("after_sigmoid", "before_sigmoid")


@dataclass(frozen=True)
class MultiTipConfig:
    """Distributions of the multi-tip artefact; defaults are the paper's numbers.

    Attributes:
        probability: chance that the artefact is applied at all (our choice; see module docstring).
        tip_counts: possible N (number of extra tips) ...
        tip_count_probabilities: ... and their probabilities (paper: 0.5, 0.3, 0.2).
        offset_range_px: |offset| ~ U(low, high) along y and x, pixels.
        random_offset_sign: give each offset component a random sign (our choice).
        sigmoid_centre_range: c ~ U(low, high).
        sigmoid_steepness_range: d ~ U(low, high), per unit of normalised height.
        amplitude_range: A ~ U(low, high), in normalised height units.
        kernel_probabilities: chance of a Gaussian, median and random kernel.
        gaussian_sigma_range_px: Gaussian kernel sigma ~ U(low, high), pixels.
        median_sizes_px: median window sides, drawn uniformly.
        random_kernel_sizes_px: random kernel sides, drawn uniformly.
        random_kernel_entry_range: random kernel entries ~ U(low, high) before normalisation.
        kernel_position: "after_sigmoid" (Eq. 1) or "before_sigmoid".
    """

    probability: float = 0.5
    tip_counts: tuple[int, ...] = (2, 3, 4)
    tip_count_probabilities: tuple[float, ...] = (0.5, 0.3, 0.2)
    offset_range_px: tuple[float, float] = (1.0, 11.0)
    random_offset_sign: bool = True
    sigmoid_centre_range: tuple[float, float] = (5.0, 9.0)
    sigmoid_steepness_range: tuple[float, float] = (7.0, 10.0)
    amplitude_range: tuple[float, float] = (1.0, 2.5)
    kernel_probabilities: tuple[float, float, float] = (0.3, 0.4, 0.3)
    gaussian_sigma_range_px: tuple[float, float] = (1.0, 3.0)
    median_sizes_px: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    random_kernel_sizes_px: tuple[int, ...] = (5, 6)
    random_kernel_entry_range: tuple[float, float] = (-0.5, 1.0)
    kernel_position: str = "after_sigmoid"


@dataclass(frozen=True)
class TipKernel:
    """The shape kernel K_i of one extra tip.

    Attributes:
        kind: "gaussian", "median" or "random".
        sigma_px: Gaussian standard deviation, pixels (0 for other kinds).
        size_px: median or random kernel side, pixels (0 for Gaussian).
        weights: the random kernel, rows of `size_px` floats after normalisation (empty otherwise).
    """

    kind: str
    sigma_px: float = 0.0
    size_px: int = 0
    weights: tuple[tuple[float, ...], ...] = ()

    def reach_px(self) -> int:
        """Pixels the kernel reads on each side of an output pixel."""
        if self.kind == "gaussian":
            return _filters.gaussian_radius_px(self.sigma_px)
        return self.size_px // 2

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Filter a (H, W) float64 image with this kernel (reflecting at the border)."""
        if self.kind == "gaussian":
            return _filters.gaussian_blur(image, self.sigma_px)
        if self.kind == "median":
            return _filters.median_filter(image, self.size_px)
        return _filters.correlate(image, np.asarray(self.weights, dtype=np.float64))


@dataclass(frozen=True)
class GhostTip:
    """One extra tip of Eq. 1.

    Attributes:
        offset_y_px: displacement of the ghost copy downwards, pixels (oy_i).
        offset_x_px: displacement of the ghost copy to the right, pixels (ox_i).
        amplitude: A_i, normalised height units.
        sigmoid_centre: c_i.
        sigmoid_steepness: d_i, per unit of normalised height.
        kernel: K_i.
    """

    offset_y_px: float
    offset_x_px: float
    amplitude: float
    sigmoid_centre: float
    sigmoid_steepness: float
    kernel: TipKernel


@dataclass(frozen=True)
class MultiTipParams:
    """One draw of the multi-tip artefact.

    Attributes:
        ghosts: the N extra tips.
        kernel_position: "after_sigmoid" (Eq. 1) or "before_sigmoid".
    """

    ghosts: tuple[GhostTip, ...]
    kernel_position: str = "after_sigmoid"


def sample_params(rng: np.random.Generator, cfg: MultiTipConfig) -> MultiTipParams:
    """Draw N ghost tips with their offsets, sigmoid parameters and kernels."""
    if cfg.kernel_position not in KERNEL_POSITIONS:
        raise ValueError(f"kernel_position must be one of {KERNEL_POSITIONS}")
    n = _filters.choose(rng, cfg.tip_counts, cfg.tip_count_probabilities)
    ghosts = []
    for _ in range(n):
        offsets = [_filters.uniform(rng, cfg.offset_range_px) for _ in range(2)]
        if cfg.random_offset_sign:
            offsets = [o if rng.random() < 0.5 else -o for o in offsets]
        ghosts.append(
            GhostTip(
                offset_y_px=offsets[0],
                offset_x_px=offsets[1],
                amplitude=_filters.uniform(rng, cfg.amplitude_range),
                sigmoid_centre=_filters.uniform(rng, cfg.sigmoid_centre_range),
                sigmoid_steepness=_filters.uniform(rng, cfg.sigmoid_steepness_range),
                kernel=_sample_kernel(rng, cfg),
            )
        )
    return MultiTipParams(ghosts=tuple(ghosts), kernel_position=cfg.kernel_position)


def apply(
    image: np.ndarray, params: MultiTipParams, region: tuple[slice, slice] | None = None
) -> np.ndarray:
    """Eq. 1: add the sigmoid-gated, kernel-filtered, displaced copies of `image`.

    Args:
        image: (H, W) float64 clean heights h in [0, 1].
        params: the ghost tips.
        region: (rows, cols) slices with unit step of the output that is needed; the ghosts are
            computed only there (outside it the output is h). Default: the whole image. Each ghost
            is filtered on the region grown by its kernel's reach (clipped to the image, where it
            reflects like the whole-image filter), so inside the region the result equals the
            whole-image one. The kernels, above all large medians, dominate the pipeline's cost.

    Returns:
        (H, W) float64 f = h + sum of ghosts (values may exceed 1; step 9 renormalises).
    """
    h, w = image.shape
    rows, cols = region or (slice(0, h), slice(0, w))
    r0, r1, _ = rows.indices(h)
    c0, c1, _ = cols.indices(w)
    out = image.copy()
    for ghost in params.ghosts:
        k = ghost.kernel.reach_px()
        b0, b1, a0, a1 = max(0, r0 - k), min(h, r1 + k), max(0, c0 - k), min(w, c1 + k)
        shifted = _filters.shift_bilinear(
            image, ghost.offset_y_px, ghost.offset_x_px, rows=(b0, b1), cols=(a0, a1)
        )
        if params.kernel_position == "before_sigmoid":
            shifted = ghost.kernel.apply(shifted)
        copy = ghost.amplitude * expit(ghost.sigmoid_steepness * shifted - ghost.sigmoid_centre)
        if params.kernel_position == "after_sigmoid":
            copy = ghost.kernel.apply(copy)
        out[r0:r1, c0:c1] += copy[r0 - b0 : r1 - b0, c0 - a0 : c1 - a0]
    return out


def reach_px(params: MultiTipParams) -> int:
    """Pixels of input an output pixel depends on in each direction (for the windowed pipeline)."""
    return max(
        (
            _filters.reach_of_shift_px(g.offset_y_px, g.offset_x_px) + g.kernel.reach_px()
            for g in params.ghosts
        ),
        default=0,
    )


def _sample_kernel(rng: np.random.Generator, cfg: MultiTipConfig) -> TipKernel:
    kind = _filters.choose(rng, KERNEL_KINDS, cfg.kernel_probabilities)
    if kind == "gaussian":
        return TipKernel(kind, sigma_px=_filters.uniform(rng, cfg.gaussian_sigma_range_px))
    if kind == "median":
        return TipKernel(kind, size_px=int(rng.choice(cfg.median_sizes_px)))
    size = int(rng.choice(cfg.random_kernel_sizes_px))
    low, high = cfg.random_kernel_entry_range
    entries = rng.uniform(low, high, size=(size, size))
    entries /= np.abs(entries).sum()
    return TipKernel(kind, size_px=size, weights=tuple(tuple(map(float, row)) for row in entries))

"""Step 8 of the paper's pipeline: scan-line noise (tip jumps and pick-up on single lines).

m ~ U{25..35} distinct lines are chosen; on each, one segment of length L ~ U{0..102} px at a
uniformly random position along x (fitting in the line) is perturbed by one of:
- a constant offset ~ U(0, 0.4) (probability 0.3);
- a log-normal profile LN(mu, sigma), mu ~ U(1, 2), sigma ~ U(0.5, 1) (probability 0.45): a sudden
  jump with a gradual recovery;
- a sinusoid (probability 0.25).
All values are in normalised [0, 1] height units.

Choices where the paper is silent (fields of `ScanLineConfig`):
- the log-normal profile is the probability density of LN(mu, sigma) evaluated at t = 1, 2, ..., L
  pixels from the segment start (x in the scan direction), without a further scale factor: it rises
  to its peak at exp(mu - sigma^2) = 1.6-7 px and decays over tens of pixels, and the density's
  peak height, 0.09-0.33, matches the scale of the constant offsets. `lognormal_step_px` rescales t,
  `lognormal_scale` the height.
- the sinusoid has amplitude ~ U(0.02, 0.2) (peak-to-peak up to the largest constant offset),
  period ~ U(3, 20) px and phase ~ U(0, 2 pi).
- one segment per chosen line.
- in SR tasks the noise comes after the slow-axis up-sampling, in the paper's order, so a noisy
  line is one of the k repeated copies of an acquired line (in a real low-resolution scan all k
  copies would carry it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training.degradations import _filters

SEGMENT_KINDS = ("constant", "lognormal", "sine")


@dataclass(frozen=True)
class ScanLineConfig:
    """Distribution of scan-line noise; defaults are the paper's numbers where it gives them.

    Attributes:
        probability: chance that scan-line noise is applied (paper: 0.6).
        line_count_range: m ~ U{low..high} noisy lines (paper: 25-35).
        segment_length_range_px: L ~ U{low..high} pixels (paper: 0-102).
        kind_probabilities: chance of constant, log-normal and sinusoidal segments
            (paper: 0.3, 0.45, 0.25).
        constant_offset_range: constant ~ U(low, high), normalised heights (paper: 0-0.4).
        lognormal_mu_range: mu ~ U(low, high) (paper: 1-2).
        lognormal_sigma_range: sigma ~ U(low, high) (paper: 0.5-1).
        lognormal_step_px: pixels per unit of the log-normal's argument (our choice: 1).
        lognormal_scale: height multiplier of the log-normal density (our choice: 1).
        sine_amplitude_range: sinusoid amplitude ~ U(low, high), normalised heights (our choice).
        sine_period_range_px: sinusoid period ~ U(low, high), pixels (our choice).
    """

    probability: float = 0.6
    line_count_range: tuple[int, int] = (25, 35)
    segment_length_range_px: tuple[int, int] = (0, 102)
    kind_probabilities: tuple[float, float, float] = (0.3, 0.45, 0.25)
    constant_offset_range: tuple[float, float] = (0.0, 0.4)
    lognormal_mu_range: tuple[float, float] = (1.0, 2.0)
    lognormal_sigma_range: tuple[float, float] = (0.5, 1.0)
    lognormal_step_px: float = 1.0
    lognormal_scale: float = 1.0
    sine_amplitude_range: tuple[float, float] = (0.02, 0.2)
    sine_period_range_px: tuple[float, float] = (3.0, 20.0)


@dataclass(frozen=True)
class NoiseSegment:
    """One perturbed stretch of one scan line.

    Attributes:
        row: the scan line, pixels from the top.
        start_px: first perturbed column.
        length_px: number of perturbed columns (may be 0).
        kind: "constant", "lognormal" or "sine".
        offset: constant offset (kind "constant"), normalised heights.
        mu, sigma: log-normal parameters (kind "lognormal").
        step_px, scale: pixels per unit of the log-normal argument and its height multiplier.
        amplitude, period_px, phase_rad: sinusoid parameters (kind "sine").
    """

    row: int
    start_px: int
    length_px: int
    kind: str
    offset: float = 0.0
    mu: float = 0.0
    sigma: float = 0.0
    step_px: float = 1.0
    scale: float = 1.0
    amplitude: float = 0.0
    period_px: float = 0.0
    phase_rad: float = 0.0

    def profile(self) -> np.ndarray:
        """The (length_px,) float64 perturbation added along the segment."""
        j = np.arange(self.length_px, dtype=np.float64)
        if self.kind == "constant":
            return np.full(self.length_px, self.offset)
        if self.kind == "lognormal":
            t = (j + 1.0) / self.step_px
            density = np.exp(-((np.log(t) - self.mu) ** 2) / (2.0 * self.sigma**2)) / (
                t * self.sigma * math.sqrt(2.0 * math.pi)
            )
            return self.scale * density
        return self.amplitude * np.sin(2.0 * math.pi * j / self.period_px + self.phase_rad)


@dataclass(frozen=True)
class ScanLineParams:
    """One draw of scan-line noise.

    Attributes:
        segments: the perturbed segments, one per chosen line, sorted by row.
    """

    segments: tuple[NoiseSegment, ...] = field(default_factory=tuple)


def sample_params(
    rng: np.random.Generator, cfg: ScanLineConfig, image_shape: tuple[int, int]
) -> ScanLineParams:
    """Draw the noisy lines and their segments for an image of `image_shape` (H, W)."""
    h, w = image_shape
    m = min(_filters.integer(rng, cfg.line_count_range), h)
    rows = np.sort(rng.choice(h, size=m, replace=False))
    segments = []
    for row in rows:
        length = min(_filters.integer(rng, cfg.segment_length_range_px), w)
        start = int(rng.integers(0, w - length + 1))
        kind = _filters.choose(rng, SEGMENT_KINDS, cfg.kind_probabilities)
        common = {"row": int(row), "start_px": start, "length_px": length, "kind": kind}
        if kind == "constant":
            segment = NoiseSegment(
                **common, offset=_filters.uniform(rng, cfg.constant_offset_range)
            )
        elif kind == "lognormal":
            segment = NoiseSegment(
                **common,
                mu=_filters.uniform(rng, cfg.lognormal_mu_range),
                sigma=_filters.uniform(rng, cfg.lognormal_sigma_range),
                step_px=cfg.lognormal_step_px,
                scale=cfg.lognormal_scale,
            )
        else:
            segment = NoiseSegment(
                **common,
                amplitude=_filters.uniform(rng, cfg.sine_amplitude_range),
                period_px=_filters.uniform(rng, cfg.sine_period_range_px),
                phase_rad=_filters.uniform(rng, (0.0, 2.0 * math.pi)),
            )
        segments.append(segment)
    return ScanLineParams(segments=tuple(segments))


def apply(image: np.ndarray, params: ScanLineParams) -> np.ndarray:
    """Add each segment's profile to its stretch of `image` (H, W) float64; returns (H, W)."""
    out = image.copy()
    for s in params.segments:
        out[s.row, s.start_px : s.start_px + s.length_px] += s.profile()
    return out

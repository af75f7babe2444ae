"""Step 6 of the paper's pipeline: a sudden tip change part way through the scan.

From a random scan line onwards the image is blurred (the apex got blunter) and, with probability
0.5, shifted by a constant height offset Delta = s * U(0.05, 0.4), s = +-1 (the apex got longer or
shorter), in normalised [0, 1] height units. Lines scanned before the change are untouched.

Choices where the paper is silent (fields of `TipChangeConfig`):
- the blur is Gaussian, like the blunt tip's, but wider: sigma ~ U(1.0, 2.0) px (0.2-0.4 nm at
  0.195 nm/px, comparable to half the 0.768 nm dimer-row spacing) so that the loss of resolution
  is visible next to the 0.3-0.6 px blunt-tip blur.
- the blurred lines are cut from the blur of the whole image, so the first changed line still
  sees the surface above it through the new, blunter apex; the offset is added to every line from
  the change on ("added to the scan line where the blurring begins" and kept: a new apex length
  persists).
- the change line is uniform over 1..H-1, so at least one line is on each side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.degradations import _filters


@dataclass(frozen=True)
class TipChangeConfig:
    """Distribution of tip changes; defaults are the paper's numbers where it gives them.

    Attributes:
        probability: chance that a tip change happens (paper: 0.6).
        blur_sigma_range_px: Gaussian sigma after the change ~ U(low, high), pixels (our choice).
        offset_probability: chance of a height offset with the change (paper: 0.5).
        offset_range: |Delta| ~ U(low, high), normalised height units (paper: 0.05-0.4).
    """

    probability: float = 0.6
    blur_sigma_range_px: tuple[float, float] = (1.0, 2.0)
    offset_probability: float = 0.5
    offset_range: tuple[float, float] = (0.05, 0.4)


@dataclass(frozen=True)
class TipChangeParams:
    """One draw of a tip change.

    Attributes:
        line: first changed row (rows 0..line-1 are untouched).
        blur_sigma_px: Gaussian sigma applied from `line` on, pixels.
        offset: height offset added from `line` on, normalised units (0.0: no offset).
    """

    line: int
    blur_sigma_px: float
    offset: float = 0.0


def sample_params(rng: np.random.Generator, cfg: TipChangeConfig, n_lines: int) -> TipChangeParams:
    """Draw the change line (for an image of `n_lines` rows), the blur and the optional offset."""
    line = int(rng.integers(1, n_lines))
    sigma = _filters.uniform(rng, cfg.blur_sigma_range_px)
    offset = 0.0
    if rng.random() < cfg.offset_probability:
        sign = 1.0 if rng.random() < 0.5 else -1.0
        offset = sign * _filters.uniform(rng, cfg.offset_range)
    return TipChangeParams(line=line, blur_sigma_px=sigma, offset=offset)


def apply(image: np.ndarray, params: TipChangeParams) -> np.ndarray:
    """Blur and offset rows `params.line` onwards of `image` (H, W) float64; returns (H, W)."""
    out = image.copy()
    blurred = _filters.gaussian_blur(image, params.blur_sigma_px)
    out[params.line :] = blurred[params.line :] + params.offset
    return out

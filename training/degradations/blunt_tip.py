"""Step 5 of the paper's pipeline: a blunt tip blurs the whole image.

A Gaussian with sigma ~ U(0.3, 0.6) px, sampled at the pixel centres like scipy's and most image
libraries' Gaussian filters. At sigma = 0.3 px the neighbours' weight is only 0.4 %, so the weakest
draws barely change the image; this is the paper's range, and it matches the paper's observation
that its blunt-tip test set scored like the artefact-free baseline in the x2 SR task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.degradations import _filters


@dataclass(frozen=True)
class BluntTipConfig:
    """Distribution of blunt-tip blur; defaults are the paper's numbers.

    Attributes:
        probability: chance that the artefact is applied (paper: 0.6).
        sigma_range_px: Gaussian sigma ~ U(low, high), pixels (paper: 0.3-0.6).
    """

    probability: float = 0.6
    sigma_range_px: tuple[float, float] = (0.3, 0.6)


@dataclass(frozen=True)
class BluntTipParams:
    """One draw of blunt-tip blur.

    Attributes:
        sigma_px: Gaussian standard deviation, pixels.
    """

    sigma_px: float


def sample_params(rng: np.random.Generator, cfg: BluntTipConfig) -> BluntTipParams:
    """Draw the blur width."""
    return BluntTipParams(sigma_px=_filters.uniform(rng, cfg.sigma_range_px))


def apply(image: np.ndarray, params: BluntTipParams) -> np.ndarray:
    """Blur `image` (H, W) float64 with a Gaussian of `params.sigma_px`; returns (H, W) float64."""
    return _filters.gaussian_blur(image, params.sigma_px)

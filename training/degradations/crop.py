"""Step 4 of the paper's pipeline: a random square crop (128x128 in the paper).

The same crop is cut from the rotated pristine image (the clean target) and from the degraded one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropParams:
    """One crop position.

    Attributes:
        top: first row of the crop in the rotated image, pixels.
        left: first column of the crop in the rotated image, pixels.
        size_px: side of the square crop, pixels.
    """

    top: int
    left: int
    size_px: int


def sample_params(
    rng: np.random.Generator, size_px: int, image_shape: tuple[int, int]
) -> CropParams:
    """Draw a crop position uniformly among all positions that fit in `image_shape` (H, W)."""
    h, w = image_shape
    return CropParams(
        top=int(rng.integers(0, h - size_px + 1)),
        left=int(rng.integers(0, w - size_px + 1)),
        size_px=size_px,
    )


def apply(image: np.ndarray, params: CropParams) -> np.ndarray:
    """The crop of `image` (H, W): a (size_px, size_px) view."""
    return image[
        params.top : params.top + params.size_px, params.left : params.left + params.size_px
    ]

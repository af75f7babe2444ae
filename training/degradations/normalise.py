"""Steps 0 and 9 of the paper's pipeline: min-max normalisation.

Step 0 maps the pristine scan to [0, 1] (every height parameter of the pipeline is in these units);
step 9 maps each output channel, clean and degraded independently, to [-1, 1] (the paper), or
the clean image by the degraded image's map (`with_map_of`, `DegradationConfig.target_scale`).
"""

from __future__ import annotations

import numpy as np

from stm_zoo.preprocess import normalise_tiles


def unit_range_affine(image: np.ndarray) -> tuple[float, float]:
    """(low, scale) with ``(image - low) * scale`` spanning exactly [0, 1].

    The pipeline applies this affine map to a window of the image, so the window gets the same
    values as the normalised full image. A constant image maps to 0 (scale 0).
    """
    low = float(np.min(image))
    span = float(np.max(image)) - low
    return low, (1.0 / span if span > 0 else 0.0)


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """Step 0: `image` (H, W), any units -> (H, W) float64 in [0, 1] (all 0 when constant)."""
    low, scale = unit_range_affine(image)
    return (np.asarray(image, dtype=np.float64) - low) * scale


def to_symmetric_range(image: np.ndarray) -> np.ndarray:
    """Step 9: `image` (H, W) -> (H, W) float32 with min exactly -1 and max exactly 1.

    A constant image (e.g. a flat crop) maps to all zeros. This is `stm_zoo.preprocess.
    normalise_tiles`, the one normalisation that training crops and inference tiles use too.
    """
    normalised, _, _ = normalise_tiles(np.asarray(image, dtype=np.float64))
    return normalised.astype(np.float32)


def with_map_of(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Step 9, shared map: `image` (H, W) mapped by the affine map that takes `reference` onto
    [-1, 1] (`to_symmetric_range`); float32, and it may leave [-1, 1].

    A constant reference has no map: `image` is then centred on 0 with its own span, like
    `to_symmetric_range` (a flat tile maps to all zeros).
    """
    _, low, span = normalise_tiles(np.asarray(reference, dtype=np.float64))
    if float(span.squeeze()) <= 0:
        return to_symmetric_range(image)
    return ((np.asarray(image, dtype=np.float64) - low) / span * 2.0 - 1.0).astype(np.float32)

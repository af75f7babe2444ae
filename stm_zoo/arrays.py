"""The one check every (H, W) image function of stm_zoo starts with: `as_image`."""

from __future__ import annotations

import numpy as np

from stm_zoo.errors import StmZooError


def as_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """`image` as a float64 (H, W) array; refuses other shapes and NaN / inf with a clear error."""
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise StmZooError(f"Expected a 2-D {what} with at least one pixel, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise StmZooError(
            f"The {what} holds NaN or inf values; crop incomplete scan lines first "
            "(Scan.crop_valid())."
        )
    return arr

"""Resampling an image to another pixel size (or grid) over the same physical frame, and back.

Every function takes and returns (H, W) float arrays (computed in float64) that hold no NaN or
inf; pixel sizes are (x, y) pitches in nm.
"""

from __future__ import annotations

import numpy as np

from stm_zoo.arrays import as_image
from stm_zoo.errors import StmZooError


def resample_to_shape(image: np.ndarray, shape: tuple[int, int], order: int = 3) -> np.ndarray:
    """Resample an image onto a (H', W') grid covering the same physical frame.

    Pixel *areas* are aligned (the outer edges of the first and last pixels coincide before and
    after), as `skimage.transform.resize` does, so a scan of size L keeps size L. Interpolation is
    a spline of `order` (3 = cubic: smooth and close to band-limited for atomically resolved
    images; 1 = bilinear never overshoots). Along an axis that shrinks, a Gaussian anti-aliasing
    filter (sigma = (factor - 1) / 2 input pixels) runs first so that the lattice above the new
    Nyquist limit does not alias into moire; an axis whose size does not change is left exactly
    as it is.

    Args:
        image: (H, W) float array, any units.
        shape: target (H', W'), each >= 1.
        order: spline order 0..5.

    Returns:
        (H', W') float64 array, same units.
    """
    img = as_image(image)
    shape = (int(shape[0]), int(shape[1]))
    if shape[0] < 1 or shape[1] < 1:
        raise StmZooError(f"Cannot resample to an empty grid of shape {shape}.")
    if shape == img.shape:
        return img.copy()
    # Imported here: skimage.transform takes a noticeable time to import that --help should not pay.
    from skimage.transform import resize

    factors = np.array(img.shape, dtype=np.float64) / np.array(shape, dtype=np.float64)
    sigma = np.maximum(0.0, (factors - 1.0) / 2.0)
    return resize(
        img,
        shape,
        order=order,
        mode="symmetric",
        anti_aliasing=bool((sigma > 0).any()),
        anti_aliasing_sigma=tuple(sigma),
        preserve_range=True,
    )


def resampled_shape(
    shape: tuple[int, int],
    pixel_size_in_nm: tuple[float, float],
    pixel_size_out_nm: tuple[float, float],
) -> tuple[int, int]:
    """(H', W') that covers the frame of a (H, W) image at about the new pixel size (x, y)."""
    h, w = shape
    px_in, py_in = (float(v) for v in pixel_size_in_nm)
    px_out, py_out = (float(v) for v in pixel_size_out_nm)
    if min(px_in, py_in, px_out, py_out) <= 0:
        raise StmZooError(
            f"Pixel sizes must be positive, got {pixel_size_in_nm} nm and {pixel_size_out_nm} nm."
        )
    return max(1, round(h * py_in / py_out)), max(1, round(w * px_in / px_out))


def resample(
    image: np.ndarray,
    pixel_size_in_nm: tuple[float, float],
    pixel_size_out_nm: tuple[float, float],
    order: int = 3,
) -> np.ndarray:
    """Resample an image from one pixel size to another over the same physical frame.

    The output shape is the frame size divided by the new pixel size, rounded to whole pixels
    (so the realised pixel size can differ from `pixel_size_out_nm` by up to half a pixel over
    the frame). Interpolation and anti-aliasing as in `resample_to_shape`; go back with
    `resample_to_shape(result, image.shape)`.

    Args:
        image: (H, W) float array, any units.
        pixel_size_in_nm: (x, y) pixel pitch of `image` in nm.
        pixel_size_out_nm: (x, y) wanted pixel pitch in nm.
        order: spline order 0..5 (3 = cubic).

    Returns:
        (H', W') float64 array, same units.
    """
    img = as_image(image)
    shape = resampled_shape(img.shape, pixel_size_in_nm, pixel_size_out_nm)
    return resample_to_shape(img, shape, order=order)

"""Small image primitives shared by the degradation steps (sub-pixel shifts, filters, draws).

All functions take and return float64 (H, W) arrays in the pipeline's [0, 1] height units and
never touch global random state. Boundaries follow one rule everywhere: filters reflect at the edge
(scipy's ``mode="reflect"``: d c b a | a b c d) and shifts clamp to the nearest edge pixel. Because
a window cut flush with the image border sees the same rule, the windowed pipeline reproduces the
full-image pipeline (see `training.degradations.pipeline`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

GAUSSIAN_TRUNCATE = 4.0  # scipy's default: the kernel reaches int(4 * sigma + 0.5) pixels


def gaussian_radius_px(sigma_px: float) -> int:
    """How many pixels a Gaussian blur of `sigma_px` reaches on each side."""
    return int(GAUSSIAN_TRUNCATE * sigma_px + 0.5)


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Isotropic Gaussian blur.

    Args:
        image: (H, W) float64.
        sigma_px: standard deviation in pixels (0 returns a copy).

    Returns:
        (H, W) float64, reflecting at the border.
    """
    if sigma_px <= 0:
        return image.copy()
    return ndimage.gaussian_filter(image, sigma_px, mode="reflect", truncate=GAUSSIAN_TRUNCATE)


def median_filter(image: np.ndarray, size_px: int) -> np.ndarray:
    """Square median filter, as ``scipy.ndimage.median_filter(image, size_px)`` in float32.

    scipy's selection per pixel costs ~15 ms for size 9 on 128x128; a partition over a strided
    window view gives the same order statistic (rank ``size**2 // 2``, also for even sizes, with
    scipy's window placement) about three times faster.

    Args:
        image: (H, W) float64.
        size_px: window side in pixels, >= 1.

    Returns:
        (H, W) float64.
    """
    if size_px <= 1:
        return image.copy()
    # float32 halves the memory traffic of the (H, W, size**2) window copy, the dominant cost; the
    # median is one of the window's values, so only their last float32 digit changes.
    image = image.astype(np.float32)
    before = size_px // 2
    after = size_px - 1 - before
    padded = np.pad(image, ((before, after), (before, after)), mode="symmetric")
    windows = sliding_window_view(padded, (size_px, size_px)).reshape(*image.shape, size_px**2)
    rank = size_px**2 // 2
    return np.partition(windows, rank, axis=-1)[..., rank].astype(np.float64)


def correlate(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Correlate with a small kernel (scipy's placement for even sizes), reflecting at borders."""
    return ndimage.correlate(image, weights, mode="reflect")


def shift_bilinear(
    image: np.ndarray,
    dy_px: float,
    dx_px: float,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
) -> np.ndarray:
    """Translate an image by a sub-pixel amount: ``out[y, x] = image(y - dy_px, x - dx_px)``.

    Bilinear interpolation; positions outside the image take the nearest edge pixel.

    Args:
        image: (H, W) float64.
        dy_px: shift down (rows), pixels, any sign.
        dx_px: shift right (columns), pixels, any sign.
        rows: (start, stop) of the output rows to compute (default: all).
        cols: (start, stop) of the output columns to compute (default: all).

    Returns:
        (stop - start) rows by (stop - start) columns of the shifted image, float64.
    """
    h, w = image.shape
    y0, ty = math.floor(dy_px), dy_px - math.floor(dy_px)
    x0, tx = math.floor(dx_px), dx_px - math.floor(dx_px)
    out_rows = np.arange(*(rows or (0, h))) - y0
    out_cols = np.arange(*(cols or (0, w))) - x0
    # image(y - dy) with dy = y0 + ty, 0 <= ty < 1: the source lies between rows y - y0 - 1 and
    # y - y0, weighted ty and 1 - ty (same along x).
    lower = image[np.clip(out_rows, 0, h - 1)]
    mixed = (1.0 - ty) * lower + ty * image[np.clip(out_rows - 1, 0, h - 1)] if ty else lower
    right = mixed[:, np.clip(out_cols, 0, w - 1)]
    if not tx:
        return right
    return (1.0 - tx) * right + tx * mixed[:, np.clip(out_cols - 1, 0, w - 1)]


def shift_rows(image: np.ndarray, shifts_px: np.ndarray) -> np.ndarray:
    """Shift each row along x by its own amount: ``out[i, x] = image[i](x - shifts_px[i])``.

    Linear interpolation within the row; positions outside the row take its nearest end pixel.
    Rows never mix, and a row with shift 0 is copied bit for bit.

    Args:
        image: (H, W) float64.
        shifts_px: (H,) shifts to the right in pixels.

    Returns:
        (H, W) float64.
    """
    h, w = image.shape
    source = np.arange(w)[None, :] - np.asarray(shifts_px, dtype=np.float64)[:, None]
    x0 = np.floor(source)
    t = source - x0
    x0 = x0.astype(np.intp)
    left = np.take_along_axis(image, np.clip(x0, 0, w - 1), axis=1)
    right = np.take_along_axis(image, np.clip(x0 + 1, 0, w - 1), axis=1)
    return (1.0 - t) * left + t * right


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One draw from U(low, high) as a plain float (records stay JSON-friendly)."""
    return float(rng.uniform(bounds[0], bounds[1]))


def integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """One draw from the integers low..high, both inclusive, as a plain int."""
    return int(rng.integers(bounds[0], bounds[1] + 1))


def choose(rng: np.random.Generator, options: tuple, probabilities: tuple[float, ...]):
    """One of `options` drawn with `probabilities` (which must sum to 1)."""
    return options[int(rng.choice(len(options), p=probabilities))]


def reach_of_shift_px(*shifts_px: float) -> int:
    """Pixels an interpolated shift by these amounts reads beyond the output pixel."""
    return int(math.ceil(max((abs(s) for s in shifts_px), default=0.0))) + 1

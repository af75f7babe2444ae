"""Bad-pixel repair: finding values that cannot be measurements and filling them.

`glitch_mask` finds NaN, inf, absurd magnitudes and isolated huge spikes; `inpaint` fills masked
pixels from their neighbours (normalised convolution, then harmonic relaxation).
`stm_zoo.limits.repair_input` applies both to a Scan. Both take (H, W) float arrays that may hold
NaN and inf; rows are scan lines (slow axis y), columns run along the fast axis x.
"""

from __future__ import annotations

import numpy as np

from stm_zoo.errors import StmZooError

GLITCH_MADS = 1000.0
"""A finite value this many robust deviations from the median of the frame and from the median
of its 7 x 7 neighbourhood is a glitch: no surface feature is that much taller than the spread of
the frame's heights, and a real tall feature (many pixels wide) raises its neighbourhood's median
with it."""
ABSURD_MAGNITUDE = 1e18
"""Values of larger magnitude are glitches whatever their neighbours: no STM quantity in SI units
comes near it, and squaring it overflows float32."""
_NEIGHBOURHOOD = 3  # half-width of the neighbourhood whose median an isolated glitch escapes


def glitch_mask(image: np.ndarray) -> np.ndarray:
    """Pixels that cannot be measurements: NaN, inf, absurd magnitudes and isolated huge spikes.

    A finite value is a glitch when its magnitude exceeds `ABSURD_MAGNITUDE`, or when it lies more
    than `GLITCH_MADS` robust deviations (1.4826 x the median absolute deviation; the mean
    absolute deviation where more than half the pixels share one value) from the median of the
    frame *and* from the median of its 7 x 7 neighbourhood, so that real tall features (clusters,
    steps) are kept.

    Args:
        image: (H, W) float array, any units; may hold NaN and inf.

    Returns:
        (H, W) bool, True where the value is unusable.
    """
    arr = np.asarray(image, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(arr) | (np.abs(arr) > ABSURD_MAGNITUDE)
    values = arr[~bad]
    if values.size == 0:
        return bad
    # Robust statistics of up to ~1M evenly spaced values: exact enough, and fast on 4096^2.
    values = values[:: max(1, values.size // 1_000_000)]
    median = float(np.median(values))
    deviation = np.abs(values - median)
    scale = 1.4826 * float(np.median(deviation)) or float(deviation.mean())
    if scale == 0.0:
        return bad
    limit = GLITCH_MADS * scale
    clean = np.where(bad, median, arr)
    ys, xs = np.nonzero(np.abs(clean - median) > limit)
    if ys.size:
        r = _NEIGHBOURHOOD
        padded = np.pad(clean, r, mode="reflect" if min(arr.shape) > r else "edge")
        offsets = np.arange(-r, r + 1)
        # In chunks: a frame whose median sits on a flat terrace may have millions of candidates
        # (a large island), and 49 float64 values each would take gigabytes at once.
        for k in range(0, ys.size, _CANDIDATES_PER_CHUNK):
            y, x = ys[k : k + _CANDIDATES_PER_CHUNK], xs[k : k + _CANDIDATES_PER_CHUNK]
            patches = padded[
                (y + r)[:, None, None] + offsets[None, :, None],
                (x + r)[:, None, None] + offsets[None, None, :],
            ]
            local = np.median(patches.reshape(len(y), -1), axis=1)
            isolated = np.abs(clean[y, x] - local) > limit
            bad[y[isolated], x[isolated]] = True
    return bad


_CANDIDATES_PER_CHUNK = 65_536
"""Spike candidates whose neighbourhoods `glitch_mask` gathers at once (~25 MB of float64)."""


def inpaint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the masked pixels from their neighbours by normalised convolution.

    Each masked pixel gets the Gaussian-weighted mean of the unmasked pixels around it, at the
    smallest scale (sigma = 1, 2, 4, ... px) where they carry enough weight: an isolated pixel is
    filled from its 8 neighbours, a larger hole from its rim, smoothly. Linear time in the image
    size (a few hundredths of a second for 512 x 512), unlike a biharmonic solve.

    Args:
        image: (H, W) float array, any units; masked values are ignored (may be NaN or inf).
        mask: (H, W) bool, True where a value must be filled.

    Returns:
        (H, W) float64, equal to `image` outside the mask.

    Raises:
        StmZooError: when every pixel is masked.
    """
    from scipy.ndimage import gaussian_filter

    arr = np.array(image, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    assert mask.shape == arr.shape, (mask.shape, arr.shape)
    if not mask.any():
        return arr
    known = ~mask
    if not known.any():
        raise StmZooError("Every pixel of the image is unusable (NaN, inf or a glitch).")
    values = np.where(known, arr, 0.0)
    weights = known.astype(np.float64)
    todo = mask.copy()
    sigma = 1.0
    while todo.any():
        if sigma > 2 * max(arr.shape):
            arr[todo] = values[known].mean()
            break
        ys, xs = np.nonzero(todo)
        radius = int(np.ceil(3 * sigma))
        if ys.size * (2 * radius + 1) ** 2 <= 4_000_000:  # few holes: only their neighbourhoods
            num, den = _gaussian_sums_at(values, weights, ys, xs, sigma, radius)
        else:
            num = gaussian_filter(values, sigma, mode="nearest", truncate=3.0)[ys, xs]
            den = gaussian_filter(weights, sigma, mode="nearest", truncate=3.0)[ys, xs]
        ready = den > 0.1
        arr[ys[ready], xs[ready]] = num[ready] / den[ready]
        todo[ys[ready], xs[ready]] = False
        sigma *= 2.0
    return _relax(arr, mask)


def _relax(image: np.ndarray, mask: np.ndarray, work: int = 20_000_000) -> np.ndarray:
    """Jacobi steps of Laplace's equation on the masked pixels (the others fixed), from the
    normalised-convolution fill: holes become harmonic (a tilt or a ramp across a hole is kept
    exactly, not blurred); at most 200 steps and about `work` pixel updates in all."""
    ys, xs = np.nonzero(mask)
    h, w = image.shape
    up, down = np.maximum(ys - 1, 0), np.minimum(ys + 1, h - 1)
    left, right = np.maximum(xs - 1, 0), np.minimum(xs + 1, w - 1)
    for _ in range(min(200, work // ys.size)):
        image[ys, xs] = 0.25 * (
            image[up, xs] + image[down, xs] + image[ys, left] + image[ys, right]
        )
    return image


def _gaussian_sums_at(
    values: np.ndarray, weights: np.ndarray, ys: np.ndarray, xs: np.ndarray, sigma: float, r: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted sums of `values` and `weights` around the pixels (ys, xs) only, with
    edge-replicated borders (as `gaussian_filter(..., mode="nearest")` at those pixels)."""
    offsets = np.arange(-r, r + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    kernel2 = np.outer(kernel, kernel).ravel()
    h, w = values.shape
    rows = np.clip(ys[:, None, None] + offsets[None, :, None], 0, h - 1)
    cols = np.clip(xs[:, None, None] + offsets[None, None, :], 0, w - 1)
    num = values[rows, cols].reshape(len(ys), -1) @ kernel2
    den = weights[rows, cols].reshape(len(ys), -1) @ kernel2
    return num, den

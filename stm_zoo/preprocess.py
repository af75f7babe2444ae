"""Preprocessing between a physical scan and a model tile, with the exact way back.

Owns: bad-pixel repair (glitch detection, inpainting), background levelling (plane /
polynomial), Gwyddion-style row alignment, normalisation to [-1, 1] with its inverse, resampling to
a model's pixel size and back, and `Preprocessing`, the record that composes level -> resample ->
normalise and undoes it for the inference engine.

Every function takes and returns (H, W) float arrays (computed in float64) that hold no NaN or
inf, except `glitch_mask` and `inpaint`, which find and fill them (`stm_zoo.limits.repair_input`
applies them to a Scan). Rows are scan lines (slow axis y, top to bottom), columns run along the
fast axis x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stm_zoo.errors import StmZooError

ROW_ALIGNMENT_METHODS = ("median_diff", "median", "median_diff_local")


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


# --------------------------------------------------------------------------------------------
# Bad pixels
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Levelling
# --------------------------------------------------------------------------------------------


def _poly_terms(shape: tuple[int, int], degree: int, line_factor: int = 1) -> np.ndarray:
    """Monomials u**i * v**j (i + j <= degree) on the pixel grid, as (n_terms, H', W').

    u runs over [-1, 1] across the columns, v over [-1, 1] across the `shape[0]` rows; scaled
    coordinates keep the least-squares system well conditioned for any image size. With
    `line_factor` k > 1 the grid has k lines per original line (row r sits at r / k), so a
    background fitted on measured lines can be evaluated on a super-resolved grid.
    """
    h, w = shape
    u = np.linspace(-1.0, 1.0, w) if w > 1 else np.zeros(1)
    rows = np.arange(h * line_factor) / line_factor
    v = -1.0 + 2.0 * rows / (h - 1) if h > 1 else np.zeros(h * line_factor)
    terms = [
        np.outer(v**j, u ** (total - j)) for total in range(degree + 1) for j in range(total + 1)
    ]
    return np.stack(terms)


def polynomial_background_coefficients(image: np.ndarray, degree: int) -> np.ndarray:
    """Least-squares coefficients of a 2-D polynomial of total degree `degree` fitted to `image`.

    Args:
        image: (H, W) float array, any units.
        degree: total degree, 0 (mean) .. 5; 1 is a plane, 2 the usual tube-scanner bow.

    Returns:
        (n_terms,) coefficients in the order of `_poly_terms`, in the units of `image`.
    """
    img = as_image(image)
    if not 0 <= degree <= 5:
        raise StmZooError(f"Polynomial levelling degree must be 0..5, got {degree}.")
    terms = _poly_terms(img.shape, degree)
    design = terms.reshape(len(terms), -1).T
    coeffs, *_ = np.linalg.lstsq(design, img.ravel(), rcond=None)
    return coeffs


def polynomial_background(
    shape: tuple[int, int], coefficients: np.ndarray, degree: int, line_factor: int = 1
) -> np.ndarray:
    """Evaluate a background from `polynomial_background_coefficients` on the (H*k, W) grid."""
    terms = _poly_terms(shape, degree, line_factor)
    return np.tensordot(coefficients, terms, axes=1)


def level_polynomial(image: np.ndarray, degree: int) -> np.ndarray:
    """Subtract the least-squares 2-D polynomial background of total degree `degree`.

    Args:
        image: (H, W) float array, any units.
        degree: 0 (mean) .. 5; 1 is plane levelling, 2 removes a tube scanner's bow.

    Returns:
        (H, W) float64 array, same units, with the fitted background removed (mean zero).
    """
    img = as_image(image)
    coeffs = polynomial_background_coefficients(img, degree)
    return img - polynomial_background(img.shape, coeffs, degree)


def level_plane(image: np.ndarray) -> np.ndarray:
    """Subtract the least-squares plane a + b*x + c*y (Gwyddion's "Plane level").

    Args:
        image: (H, W) float array, any units.

    Returns:
        (H, W) float64 array, same units, mean zero and no residual tilt.
    """
    return level_polynomial(image, 1)


# --------------------------------------------------------------------------------------------
# Row alignment
# --------------------------------------------------------------------------------------------


def row_offsets(image: np.ndarray, method: str = "median_diff", window: int = 15) -> np.ndarray:
    """Per-line offsets that `align_rows` subtracts.

    - "median_diff" (Gwyddion's "Median of differences"): offset[0] = 0, offset[i] =
      offset[i-1] + median(row[i] - row[i-1]). A feature covering less than half of a line does
      not move the median, so large features and step edges that are not parallel to the fast
      axis survive; a y-tilt (all differences equal) is removed. Caveat, measured on the real
      Si(001):H reference scan: on an atomic lattice the differences between neighbouring lines
      have a skewed distribution, so each median is slightly biased and the cumulative sum
      drifts (its offsets span 0.94 nm over the 512 lines there, 18x the image's std).
    - "median" (Gwyddion's default): offset[i] = median(row[i]); never drifts, but a feature
      covering about half of a line (a terrace edge) makes its lines jump.
    - "median_diff_local" (ours): the median differences minus their running median over
      `window` lines before summing. Line jumps are sparse in y and pass through; the slowly
      varying part (lattice bias, tilt, bow) is kept, so nothing drifts and large features stay.
      Dense line jitter (most lines offset) is handled less well than by "median".

    Unlike Gwyddion the offsets are re-centred to zero mean, so the image keeps its mean level
    (a constant that matters when the image is already in a model's [-1, 1] frame).

    Args:
        image: (H, W) float array, any units.
        method: one of `ROW_ALIGNMENT_METHODS`.
        window: lines in the running median of "median_diff_local" (odd, >= 3).

    Returns:
        (H,) float64 offsets in the units of `image`.
    """
    img = as_image(image)
    if method in ("median_diff", "median_diff_local"):
        steps = np.median(np.diff(img, axis=0), axis=1)
        if method == "median_diff_local" and steps.size:
            if window < 3:
                raise StmZooError(f"The running-median window must be >= 3 lines, got {window}.")
            from scipy.ndimage import median_filter

            steps = steps - median_filter(steps, size=window, mode="nearest")
        offsets = np.concatenate([[0.0], np.cumsum(steps)])
    elif method == "median":
        offsets = np.median(img, axis=1)
    else:
        choices = ", ".join(ROW_ALIGNMENT_METHODS)
        raise StmZooError(f"Unknown row alignment method {method!r}; choose one of {choices}.")
    return offsets - offsets.mean()


def align_rows(image: np.ndarray, method: str = "median_diff", window: int = 15) -> np.ndarray:
    """Shift every scan line by its offset (see `row_offsets`) to remove line-to-line jumps.

    Args:
        image: (H, W) float array, any units.
        method: "median_diff" (default; Gwyddion's "Median of differences", keeps large
            features but drifts on atomic lattices, see `row_offsets`), "median" (per-line
            median) or "median_diff_local" (median differences without their slow part).
        window: running-median window of "median_diff_local", in lines.

    Returns:
        (H, W) float64 array, same units and mean.
    """
    img = as_image(image)
    return img - row_offsets(img, method, window)[:, None]


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalisation:
    """The affine map from physical values to a model's range, and back.

    `apply` maps `source_low` -> `low` and `source_high` -> `high` (values outside the source
    range land outside [low, high]); `invert` is its exact inverse. A flat image has
    `source_low == source_high`: `apply` then gives the middle of the range and `invert` gives
    the flat value back, whatever the model answered.

    Attributes:
        source_low: physical value mapped to `low` (image units, e.g. metres).
        source_high: physical value mapped to `high`.
        low: target value of `source_low` (-1 for the paper's models).
        high: target value of `source_high` (+1).
    """

    source_low: float
    source_high: float
    low: float = -1.0
    high: float = 1.0

    @property
    def is_flat(self) -> bool:
        """True when the source range is empty (a constant image)."""
        return not self.source_high > self.source_low

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Physical values -> model range. x: any shape, image units; returns float64."""
        x = np.asarray(x, dtype=np.float64)
        if self.is_flat:
            return np.full_like(x, 0.5 * (self.low + self.high))
        scale = (self.high - self.low) / (self.source_high - self.source_low)
        return self.low + (x - self.source_low) * scale

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Model range -> physical values. y: any shape, e.g. in [-1, 1]; returns float64."""
        y = np.asarray(y, dtype=np.float64)
        if self.is_flat:
            return np.full_like(y, self.source_low)
        scale = (self.source_high - self.source_low) / (self.high - self.low)
        return self.source_low + (y - self.low) * scale


def normalise(
    image: np.ndarray,
    low: float = -1.0,
    high: float = 1.0,
    percentiles: tuple[float, float] | None = None,
    min_span: float = 0.0,
) -> tuple[np.ndarray, Normalisation]:
    """Map an image's value range onto [low, high], returning the map for the way back.

    Args:
        image: (H, W) float array, any units.
        low, high: target range; the paper normalises every channel to [-1, 1].
        percentiles: None (default, the paper's plain min..max) or (p_low, p_high) in 0..100,
            e.g. (0.5, 99.5), so that a few spikes do not squeeze the image into a narrow band;
            pixels beyond those percentiles then fall slightly outside [low, high].
        min_span: a source range this small or smaller counts as flat (image units); `prepare`
            sets it to the rounding noise that levelling leaves on a pure plane, so that noise
            is not stretched to the full model range.

    Returns:
        (normalised (H, W) float64, Normalisation). A constant image maps to (low + high) / 2.
    """
    img = as_image(image)
    if not high > low:
        raise StmZooError(f"Normalisation range must have high > low, got [{low}, {high}].")
    if percentiles is None:
        source_low, source_high = float(img.min()), float(img.max())
    else:
        p_low, p_high = percentiles
        if not 0.0 <= p_low < p_high <= 100.0:
            raise StmZooError(
                f"Normalisation percentiles must satisfy 0 <= low < high <= 100, got {percentiles}."
            )
        source_low, source_high = (float(v) for v in np.percentile(img, [p_low, p_high]))
    if source_high - source_low <= min_span:
        source_low = source_high = 0.5 * (source_low + source_high)
    norm = Normalisation(source_low, source_high, float(low), float(high))
    return norm.apply(img), norm


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


ROBUST_PERCENTILES = (0.5, 99.5)
"""The percentiles of a tile that `robust_map` sends to -1 and +1."""


def robust_map(tiles):
    """The affine map that sends each image's 0.5 and 99.5 percentiles to -1 and +1.

    Unlike the min/max map, one glitch pixel or line cannot rescale the whole image.

    Args:
        tiles: (..., H, W) numpy array or torch tensor (floating point).

    Returns:
        (low, span) with the last two axes kept at size 1, as `normalise_tiles` returns them:
        `(tiles - low) / span * 2 - 1` applies the map (span is 0 where the percentiles
        coincide, e.g. a flat image).
    """
    q = [p / 100.0 for p in ROBUST_PERCENTILES]
    if isinstance(tiles, np.ndarray):
        flat = tiles.reshape(*tiles.shape[:-2], -1)
        low, high = np.quantile(flat, q, axis=-1)
        return low[..., None, None], (high - low)[..., None, None]
    import torch  # only when given tensors: this module is otherwise numpy-only

    flat = tiles.reshape(*tiles.shape[:-2], -1).float()
    low, high = torch.quantile(flat, torch.tensor(q, dtype=flat.dtype, device=flat.device), dim=-1)
    return low[..., None, None].to(tiles.dtype), (high - low)[..., None, None].to(tiles.dtype)


NEAR_FLAT_RELATIVE_SPAN = 8 * float(np.finfo(np.float32).eps)
"""A tile whose span is at most this fraction of its magnitude is flat: float32 rounding only."""


def normalise_tiles(tiles):
    """Min/max-normalise each image of a batch to [-1, 1] over its last two axes.

    The one normalisation of model inputs and targets: the data pipeline's last step, the random
    training crops and the inference tiles all use it. A flat image maps to all zeros, the middle
    of the range, everywhere; so does a near-flat one, whose span is only float32 rounding of its
    level (at most `NEAR_FLAT_RELATIVE_SPAN` of its magnitude): stretching rounding noise to
    [-1, 1] would hand the model pure noise as if it were a surface.

    Args:
        tiles: (..., H, W) numpy array or torch tensor (floating point).

    Returns:
        (normalised, low, span): normalised like `tiles`; low and span with the last two axes kept
        at size 1, so that `(normalised + 1) / 2 * span + low` gives the input back (span is 0 for
        flat images).
    """
    if isinstance(tiles, np.ndarray):
        low = tiles.min(axis=(-2, -1), keepdims=True)
        high = tiles.max(axis=(-2, -1), keepdims=True)
        span = high - low
        level = np.maximum(np.abs(low), np.abs(high))
        span = np.where(span > NEAR_FLAT_RELATIVE_SPAN * level, span, 0).astype(span.dtype)
        safe = np.where(span > 0, span, 1.0)
        return (
            np.where(span > 0, (tiles - low) / safe * 2.0 - 1.0, 0.0).astype(tiles.dtype),
            low,
            span,
        )
    low = tiles.amin(dim=(-2, -1), keepdim=True)
    high = tiles.amax(dim=(-2, -1), keepdim=True)
    span = high - low
    level = low.abs().maximum(high.abs())
    span = span.where(span > NEAR_FLAT_RELATIVE_SPAN * level, span.new_zeros(()))
    safe = span.clamp_min(0).where(span > 0, span.new_ones(()))
    normalised = ((tiles - low) / safe * 2.0 - 1.0).where(span > 0, tiles.new_zeros(()))
    return normalised, low, span


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


# --------------------------------------------------------------------------------------------
# The composed, invertible pipeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """What `prepare` did to a scan, and `inverse` to undo it on a model's output.

    Levelling is not undone unless `keep_background` was asked for: by default the restored
    scan stays levelled (plane / rows removed) and `describe()` says so for the scan's history.
    Resampling and normalisation are always undone.

    Attributes:
        original_shape: (H, W) of the image given to `prepare`.
        model_shape: (h, w) of the model input.
        pixel_size_nm: (x, y) pixel pitch of the original image.
        model_pixel_size_nm: (x, y) pitch realised on the model grid (whole pixels).
        level_degree: polynomial degree removed (None: no levelling, 1: plane).
        row_alignment: row alignment method applied after levelling, or None.
        normalisation: the map between levelled values and the model range.
        order: spline order used for resampling (both ways).
        keep_background: whether `inverse` adds the removed background back.
        background_coefficients: polynomial coefficients (see `polynomial_background`).
        line_offsets: (H,) row offsets removed by row alignment (zeros without it).
    """

    original_shape: tuple[int, int]
    model_shape: tuple[int, int]
    pixel_size_nm: tuple[float, float]
    model_pixel_size_nm: tuple[float, float]
    level_degree: int | None
    row_alignment: str | None
    normalisation: Normalisation
    order: int = 3
    keep_background: bool = False
    background_coefficients: np.ndarray = field(
        default_factory=lambda: np.zeros(0), compare=False, repr=False
    )
    line_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)

    @property
    def resampled(self) -> bool:
        """True when the model grid differs from the original grid."""
        return self.model_shape != self.original_shape

    def background(self, line_factor: int = 1) -> np.ndarray:
        """The removed background on the original grid, (H * line_factor, W), image units.

        With `line_factor` k (a super-resolved output with k lines per input line) the polynomial
        is evaluated between lines and each line offset covers its block of k lines, the same
        nearest-neighbour convention as the SR input.
        """
        h, w = self.original_shape
        bg = np.zeros((h * line_factor, w))
        if self.level_degree is not None:
            bg += polynomial_background(
                self.original_shape, self.background_coefficients, self.level_degree, line_factor
            )
        if self.row_alignment is not None:
            bg += np.repeat(self.line_offsets, line_factor)[:, None]
        return bg

    def inverse(self, model_output: np.ndarray) -> np.ndarray:
        """Model output -> physical units on the original pixel grid.

        Args:
            model_output: (h * k, w) float array in the model range ([-1, 1]); k = 1 for
                restoration, k = 2 or 4 when a super-resolution model returned k lines for
                every input line.

        Returns:
            (H * k, W) float64 in the original units (levelled unless `keep_background`).
        """
        out = as_image(model_output, "model output")
        h, w = self.model_shape
        k, rem = divmod(out.shape[0], h)
        if out.shape[1] != w or rem or k < 1:
            raise StmZooError(
                f"Model output of shape {out.shape} does not fit the model grid {self.model_shape} "
                "(expected the same width and a whole multiple of its lines)."
            )
        physical = self.normalisation.invert(out)
        target = (self.original_shape[0] * k, self.original_shape[1])
        physical = resample_to_shape(physical, target, order=self.order)
        if self.keep_background:
            physical = physical + self.background(k)
        return physical

    def describe(self) -> str:
        """One line for `Scan.history` stating what was done and what `inverse` undid."""
        steps = []
        if self.level_degree is not None:
            steps.append(
                "plane levelled" if self.level_degree == 1 else f"poly{self.level_degree} levelled"
            )
        if self.row_alignment is not None:
            steps.append(f"rows aligned ({self.row_alignment})")
        kept = "background restored" if self.keep_background else "levelling kept"
        lead = ", ".join(steps) + f" ({kept}); " if steps else ""
        n = self.normalisation
        grid = (
            f"resampled {self.original_shape} -> {self.model_shape} "
            f"({self.pixel_size_nm[0]:.4g}x{self.pixel_size_nm[1]:.4g} -> "
            f"{self.model_pixel_size_nm[0]:.4g}x{self.model_pixel_size_nm[1]:.4g} nm/px, "
            f"spline order {self.order}) and back; "
            if self.resampled
            else ""
        )
        return (
            f"preprocess: {lead}{grid}normalised [{n.source_low:.6g}, {n.source_high:.6g}] "
            f"-> [{n.low:g}, {n.high:g}] and back"
        )


def prepare(
    image: np.ndarray,
    pixel_size_nm: tuple[float, float],
    model_pixel_size_nm: tuple[float, float] | None = None,
    *,
    level_degree: int | None = 1,
    row_alignment: str | None = None,
    keep_background: bool = False,
    percentiles: tuple[float, float] | None = None,
    order: int = 3,
    rtol: float = 1e-3,
) -> tuple[np.ndarray, Preprocessing]:
    """Level -> resample -> normalise a physical image into a model input, keeping the inverse.

    For super-resolution pass the measured lines (H/k, W) and a model pixel size whose y pitch is
    the measured line pitch (k times the model's output pitch); `Preprocessing.inverse` accepts
    the model's k-times-taller output.

    Args:
        image: (H, W) float array in physical units (e.g. metres), NaN-free.
        pixel_size_nm: (x, y) pixel pitch of `image` in nm.
        model_pixel_size_nm: (x, y) pitch the model was trained at (the paper: 100 nm / 512 px
            = 0.1953 nm), or None to keep the grid. Pitches within `rtol` count as equal, so
            a scan already at the model's pitch is never interpolated.
        level_degree: None (no levelling), 1 (plane, default: the paper's data is
            plane-levelled) or 2..5 (polynomial background).
        row_alignment: None (default) or a method of `align_rows`, applied after levelling.
        keep_background: add the removed background (polynomial and row offsets) back in
            `inverse`; by default the result stays levelled.
        percentiles: see `normalise` (default: plain min..max, as in the paper).
        order: spline order for resampling both ways (3 = cubic).
        rtol: relative pixel-size tolerance below which no resampling happens.

    Returns:
        (model input (h, w) float32 in [-1, 1], Preprocessing record).
    """
    img = as_image(image)
    original_shape = (int(img.shape[0]), int(img.shape[1]))
    # Levelling a pure plane leaves only rounding noise (~1e-16 of the input's magnitude).
    rounding = 64 * np.finfo(np.float64).eps * float(np.abs(img).max())
    if level_degree is not None:
        coeffs = polynomial_background_coefficients(img, level_degree)
        img = img - polynomial_background(img.shape, coeffs, level_degree)
    else:
        coeffs = np.zeros(0)
    offsets = np.zeros(img.shape[0])
    if row_alignment is not None:
        offsets = row_offsets(img, row_alignment)
        img = img - offsets[:, None]

    pixel_size = (float(pixel_size_nm[0]), float(pixel_size_nm[1]))
    model_shape = img.shape
    if model_pixel_size_nm is not None and not np.allclose(
        pixel_size, model_pixel_size_nm, rtol=rtol, atol=0.0
    ):
        model_shape = resampled_shape(img.shape, pixel_size, model_pixel_size_nm)
        img = resample_to_shape(img, model_shape, order=order)
    realised = (
        pixel_size[0] * original_shape[1] / model_shape[1],
        pixel_size[1] * original_shape[0] / model_shape[0],
    )
    normalised, norm = normalise(img, percentiles=percentiles, min_span=rounding)
    record = Preprocessing(
        original_shape=original_shape,
        model_shape=(int(model_shape[0]), int(model_shape[1])),
        pixel_size_nm=pixel_size,
        model_pixel_size_nm=realised,
        level_degree=level_degree,
        row_alignment=row_alignment,
        normalisation=norm,
        order=order,
        keep_background=keep_background,
        background_coefficients=coeffs,
        line_offsets=offsets,
    )
    return normalised.astype(np.float32), record

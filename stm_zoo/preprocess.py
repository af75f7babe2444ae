"""Between a physical scan and a model tile: normalisation to [-1, 1], and the composed way back.

Owns: `normalise` / `Normalisation` (one image's affine map to the model range, with its exact
inverse), `normalise_tiles` / `robust_map` (the per-tile maps of training and inference), and
`Preprocessing`, the record that composes level (`stm_zoo.levelling`) -> resample
(`stm_zoo.resampling`) -> normalise and undoes it for the inference engine. Bad-pixel repair
lives in `stm_zoo.bad_pixels`.

Every function takes and returns (H, W) float arrays (computed in float64) that hold no NaN or
inf, except the tile functions, which take (..., H, W) batches. Rows are scan lines (slow axis y,
top to bottom), columns run along the fast axis x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stm_zoo.arrays import as_image
from stm_zoo.errors import StmZooError
from stm_zoo.levelling import polynomial_background, polynomial_background_coefficients, row_offsets
from stm_zoo.resampling import resample_to_shape, resampled_shape

# --------------------------------------------------------------------------------------------
# Normalisation of one image
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
# Normalisation of tiles
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
        background_coefficients: polynomial coefficients (see
            `stm_zoo.levelling.polynomial_background`).
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
        row_alignment: None (default) or a method of `stm_zoo.levelling.align_rows`, applied after
            levelling.
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

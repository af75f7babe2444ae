"""Background levelling: polynomial backgrounds (plane, bow) and Gwyddion-style row alignment.

Every function takes and returns (H, W) float arrays (computed in float64) that hold no NaN or
inf. Rows are scan lines (slow axis y, top to bottom), columns run along the fast axis x.
`stm_zoo.preprocess.Preprocessing` keeps what was removed, so it can be added back.
"""

from __future__ import annotations

import numpy as np

from stm_zoo.arrays import as_image
from stm_zoo.errors import StmZooError

ROW_ALIGNMENT_METHODS = ("median_diff", "median", "median_diff_local")


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

"""Image-quality metrics against a reference: PSNR and SSIM, plain and after an affine fit.

Definitions follow ../shared/design/metrics.md: scikit-image on single-channel images in [-1, 1]
with an explicit `data_range` (2 for [-1, 1]; every table states it). The library owns them so that
training validation and evaluation score with one implementation (numpy, no torch).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DATA_RANGE = 2.0
"""Dynamic range of the model-space images, which live in [-1, 1]."""


def _image_pair(a: ArrayLike, b: ArrayLike, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != ndim:
        raise ValueError(
            f"expected two arrays of the same {ndim}-D shape, got {a.shape} and {b.shape}"
        )
    return a, b


def psnr(a: ArrayLike, b: ArrayLike, data_range: float = DATA_RANGE) -> float:
    """Peak signal-to-noise ratio of one image against its reference, in dB.

    Args:
        a: (H, W) image, e.g. in [-1, 1].
        b: (H, W) reference image on the same scale.
        data_range: max - min of the value range (2 for [-1, 1]).

    Returns:
        10 log10(data_range^2 / MSE); +inf when the images are identical.
    """
    a, b = _image_pair(a, b, 2)
    # Identical images give MSE = 0: PSNR is +inf by definition, not a warning.
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(b, a, data_range=data_range))


def ssim(a: ArrayLike, b: ArrayLike, data_range: float = DATA_RANGE) -> float:
    """Structural similarity of one image against its reference (scikit-image defaults: 7x7
    uniform window, K1 = 0.01, K2 = 0.03).

    Args:
        a: (H, W) image, H and W >= 7.
        b: (H, W) reference image on the same scale.
        data_range: max - min of the value range (2 for [-1, 1]).

    Returns:
        SSIM in [-1, 1]; 1 for identical images.
    """
    a, b = _image_pair(a, b, 2)
    return float(structural_similarity(a, b, data_range=data_range))


def psnr_batch(a: ArrayLike, b: ArrayLike, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image PSNR.

    Args:
        a: (N, H, W) images.
        b: (N, H, W) references.
        data_range: max - min of the value range (2 for [-1, 1]).

    Returns:
        (N,) float64 PSNR in dB.
    """
    a, b = _image_pair(a, b, 3)
    return np.array([psnr(x, y, data_range) for x, y in zip(a, b, strict=True)], dtype=np.float64)


def affine_fit_batch(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Each image of `a` after its best (least-squares) affine map onto its reference in `b`.

    Args:
        a: (N, H, W) images. b: (N, H, W) references.

    Returns:
        (N, H, W) float64 `alpha_i * a_i + beta_i`; a constant image maps to its reference's mean.
    """
    a, b = _image_pair(a, b, 3)
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    var = (xc**2).sum(axis=1, keepdims=True)
    slope = np.where(var > 0, (xc * yc).sum(axis=1, keepdims=True) / np.where(var > 0, var, 1), 0)
    return (slope * xc + y.mean(axis=1, keepdims=True)).reshape(a.shape)


def affine_psnr_batch(a: ArrayLike, b: ArrayLike, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image PSNR after the best affine map of each image onto its reference: structure
    only, blind to the intensity calibration that the [-1, 1] min/max normalisation sets."""
    return psnr_batch(affine_fit_batch(a, b), b, data_range)


def affine_ssim_batch(a: ArrayLike, b: ArrayLike, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image SSIM after the best affine map of each image onto its reference (the SSIM
    counterpart of `affine_psnr_batch`: structure, blind to the intensity calibration)."""
    return ssim_batch(affine_fit_batch(a, b), b, data_range)


def ssim_batch(a: ArrayLike, b: ArrayLike, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image SSIM.

    Args:
        a: (N, H, W) images.
        b: (N, H, W) references.
        data_range: max - min of the value range (2 for [-1, 1]).

    Returns:
        (N,) float64 SSIM.
    """
    a, b = _image_pair(a, b, 3)
    return np.array([ssim(x, y, data_range) for x, y in zip(a, b, strict=True)], dtype=np.float64)

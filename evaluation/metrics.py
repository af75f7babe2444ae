"""Image-quality metrics for evaluation: PSNR and SSIM against a reference, KID and CMMD between
image sets.

Definitions follow ../shared/design/metrics.md:
- PSNR / SSIM (plain and after an affine fit): `stm_zoo.metrics`, which the library owns so that
  training validation scores with the same code; this module hands them on to the evaluation.
- MMD^2 between feature sets, always in float64: the unbiased estimator (diagonals of Kxx and Kyy
  left out) for KID with the cubic polynomial kernel, the biased one (diagonals kept) for CMMD with
  the Gaussian kernel.
- KID: mean and population std over random subsets, as torch-fidelity / torchmetrics compute it.
- CMMD: the google-research/cmmd reference estimator, kernel exp(-||x - y||^2 / (2 sigma^2)) with
  sigma = 10, times 1000. The paper's text writes / sigma^2; we follow the reference code, whose
  numbers the paper reports.

Features come from `evaluation.inception` and `evaluation.clip`; this module only does the
arithmetic (numpy, no torch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from stm_zoo.metrics import (
    DATA_RANGE,
    affine_fit_batch,
    affine_psnr_batch,
    affine_ssim_batch,
    psnr,
    psnr_batch,
    ssim,
    ssim_batch,
)

__all__ = [
    "CMMD_SCALE",
    "CMMD_SIGMA",
    "DATA_RANGE",
    "KIDResult",
    "affine_fit_batch",
    "affine_psnr_batch",
    "affine_ssim_batch",
    "cmmd",
    "gaussian_kernel",
    "kid",
    "mmd2_biased",
    "mmd2_unbiased",
    "polynomial_kernel",
    "psnr",
    "psnr_batch",
    "ssim",
    "ssim_batch",
]

logger = logging.getLogger(__name__)

KID_FULL_KERNEL_MAX_ELEMENTS = 50_000_000
"""Above this many kernel entries (400 MB in float64) KID computes kernels per subset instead."""

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def _feature_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected (n, d) and (m, d) feature arrays, got {x.shape} and {y.shape}")
    return x, y


def polynomial_kernel(
    x: ArrayLike, y: ArrayLike, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> np.ndarray:
    """k(x, y) = (gamma x.y + coef)^degree, KID's kernel.

    Args:
        x: (n, d) features.
        y: (m, d) features.
        degree: polynomial degree.
        gamma: scale of the dot product; None means 1 / d.
        coef: additive constant.

    Returns:
        (n, m) float64 kernel matrix.
    """
    x, y = _feature_pair(x, y)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef) ** degree


def gaussian_kernel(x: ArrayLike, y: ArrayLike, sigma: float) -> np.ndarray:
    """k(x, y) = exp(-||x - y||^2 / (2 sigma^2)), CMMD's kernel (as in the reference code).

    Args:
        x: (n, d) embeddings.
        y: (m, d) embeddings.
        sigma: bandwidth, in embedding units.

    Returns:
        (n, m) float64 kernel matrix.
    """
    x, y = _feature_pair(x, y)
    sq_dist = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    # Rounding can make ||x - x||^2 slightly negative; a distance is never below 0.
    np.maximum(sq_dist, 0.0, out=sq_dist)
    return np.exp(-sq_dist / (2.0 * sigma**2))


def _kernel_triplet(
    kxx: ArrayLike, kyy: ArrayLike, kxy: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kxx = np.asarray(kxx, dtype=np.float64)
    kyy = np.asarray(kyy, dtype=np.float64)
    kxy = np.asarray(kxy, dtype=np.float64)
    m, n = kxy.shape
    if kxx.shape != (m, m) or kyy.shape != (n, n):
        raise ValueError(
            f"kernel shapes do not fit together: Kxx {kxx.shape}, Kyy {kyy.shape}, Kxy {kxy.shape}"
        )
    return kxx, kyy, kxy


def mmd2_unbiased(kxx: ArrayLike, kyy: ArrayLike, kxy: ArrayLike) -> float:
    """Unbiased MMD^2 (diagonals of Kxx and Kyy excluded); can be negative.

    For m = n it is (sum_offdiag Kxx + sum_offdiag Kyy) / (m (m - 1)) - 2 sum Kxy / m^2, the KID
    estimator of torch-fidelity and torchmetrics.

    Args:
        kxx: (m, m) kernel of set X with itself, m >= 2.
        kyy: (n, n) kernel of set Y with itself, n >= 2.
        kxy: (m, n) cross kernel.

    Returns:
        MMD^2 as a float64 Python float.
    """
    kxx, kyy, kxy = _kernel_triplet(kxx, kyy, kxy)
    m, n = kxy.shape
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.sum() / (m * n))


def mmd2_biased(kxx: ArrayLike, kyy: ArrayLike, kxy: ArrayLike) -> float:
    """Biased MMD^2 (diagonals included): mean Kxx + mean Kyy - 2 mean Kxy; never negative for a
    positive-definite kernel, exactly 0 for identical sets.

    Args:
        kxx: (m, m) kernel of set X with itself.
        kyy: (n, n) kernel of set Y with itself.
        kxy: (m, n) cross kernel.

    Returns:
        MMD^2 as a float64 Python float.
    """
    kxx, kyy, kxy = _kernel_triplet(kxx, kyy, kxy)
    return float(kxx.mean() + kyy.mean() - 2.0 * kxy.mean())


@dataclass(frozen=True)
class KIDResult:
    """KID over random subsets.

    Attributes:
        mean: mean unbiased MMD^2 over the subsets.
        std: population standard deviation over the subsets (as torch-fidelity / torchmetrics).
        subsets: number of subsets drawn.
        subset_size: images per subset and per set actually used.
        requested_subset_size: the subset size asked for; larger than `subset_size` when a set had
            fewer images (see `note`).
    """

    mean: float
    std: float
    subsets: int
    subset_size: int
    requested_subset_size: int

    @property
    def reduced(self) -> bool:
        """True when a set was smaller than the requested subset size."""
        return self.subset_size < self.requested_subset_size

    @property
    def note(self) -> str:
        """A sentence for tables when the subset size had to be reduced, else ""."""
        if not self.reduced:
            return ""
        return (
            f"subset size reduced from {self.requested_subset_size} to {self.subset_size} "
            "(the smaller set's size)"
        )


def kid(
    feats_a: ArrayLike,
    feats_b: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 over random subsets.

    Each subset draws `subset_size` rows from each set without replacement (a fresh draw per
    subset). With fewer images than `subset_size` in a set, subsets use min(subset_size, n_a, n_b)
    images, as metrics.md prescribes, and the result says so (`KIDResult.note`).

    Args:
        feats_a: (n_a, d) features, e.g. 2048-d Inception pool features.
        feats_b: (n_b, d) features.
        subsets: number of random subsets (torch-fidelity default 100).
        subset_size: images per subset (torch-fidelity default 1000).
        seed: seed of the subset draws (numpy Generator), so results are reproducible.

    Returns:
        KIDResult with mean and std over subsets.
    """
    a, b = _feature_pair(feats_a, feats_b)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    n_a, n_b = a.shape[0], b.shape[0]
    m = min(subset_size, n_a, n_b)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {n_a} and {n_b}")
    if m < subset_size:
        logger.info("KID subset size reduced from %d to %d (fewer images)", subset_size, m)
    if n_a * n_a + n_b * n_b + n_a * n_b <= KID_FULL_KERNEL_MAX_ELEMENTS:
        # Subset kernels are sub-matrices of the full ones: computing those once beats three
        # (m x d) @ (d x m) products per subset by ~7x for 100 subsets of 1000 out of 2000.
        kaa, kbb, kab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)

        def subset_kernels(ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, ...]:
            return kaa[np.ix_(ia, ia)], kbb[np.ix_(ib, ib)], kab[np.ix_(ia, ib)]
    else:

        def subset_kernels(ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, ...]:
            x, y = a[ia], b[ib]
            return polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)

    rng = np.random.default_rng(seed)
    scores = np.empty(subsets, dtype=np.float64)
    for i in range(subsets):
        ia = rng.choice(n_a, m, replace=False)
        ib = rng.choice(n_b, m, replace=False)
        scores[i] = mmd2_unbiased(*subset_kernels(ia, ib))
    return KIDResult(
        mean=float(scores.mean()),
        std=float(scores.std()),
        subsets=subsets,
        subset_size=m,
        requested_subset_size=subset_size,
    )


def cmmd(
    emb_a: ArrayLike, emb_b: ArrayLike, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE
) -> float:
    """CMMD, the google-research/cmmd estimator: scale * biased MMD^2 with a Gaussian kernel.

    Uses exp(-||x - y||^2 / (2 sigma^2)) as the reference code does (the paper's text writes
    / sigma^2). All pairs are used, diagonals included, so identical sets give exactly 0.

    Args:
        emb_a: (n_a, d) L2-normalised CLIP image embeddings.
        emb_b: (n_b, d) L2-normalised CLIP image embeddings.
        sigma: kernel bandwidth (reference: 10).
        scale: multiplier (reference: 1000).

    Returns:
        CMMD as a float64 Python float.
    """
    a, b = _feature_pair(emb_a, emb_b)
    return scale * mmd2_biased(
        gaussian_kernel(a, a, sigma), gaussian_kernel(b, b, sigma), gaussian_kernel(a, b, sigma)
    )

"""evaluation.metrics: MMD math against torchmetrics and hand cases; PSNR / SSIM are the library's
(their edge cases: tests/test_metrics.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation import metrics
from evaluation.metrics import (
    cmmd,
    gaussian_kernel,
    kid,
    mmd2_biased,
    mmd2_unbiased,
    polynomial_kernel,
)
from stm_zoo import metrics as library_metrics
from stm_zoo.preprocess import normalise_tiles, robust_map


@pytest.fixture(scope="module")
def poly_mmd():
    """torchmetrics' KID estimator (test-only; torchmetrics imports without torchvision)."""
    module = pytest.importorskip(
        "torchmetrics.image.kid", reason="torchmetrics (a dev requirement) is not installed"
    )
    return module.poly_mmd


def _inception_like(rng: np.random.Generator, n: int, d: int = 2048) -> np.ndarray:
    # Pool features are non-negative and sparse-ish; a gamma draw has the same flavour.
    return rng.gamma(0.5, 0.6, size=(n, d))


@pytest.mark.parametrize(
    ("degree", "gamma", "coef"), [(3, None, 1.0), (2, 0.01, 0.5), (3, 1e-3, 0.0)]
)
def test_unbiased_mmd_matches_torchmetrics_poly_mmd(poly_mmd, degree, gamma, coef):
    rng = np.random.default_rng(1)
    x, y = _inception_like(rng, 40), _inception_like(rng, 40) * 1.1
    ours = mmd2_unbiased(
        polynomial_kernel(x, x, degree, gamma, coef),
        polynomial_kernel(y, y, degree, gamma, coef),
        polynomial_kernel(x, y, degree, gamma, coef),
    )
    theirs = poly_mmd(
        torch.from_numpy(x), torch.from_numpy(y), degree=degree, gamma=gamma, coef=coef
    ).item()
    assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-12)
    assert ours != 0.0


def test_kid_with_whole_sets_equals_poly_mmd_and_says_subset_was_reduced(poly_mmd):
    rng = np.random.default_rng(2)
    x, y = _inception_like(rng, 30), _inception_like(rng, 30) + 0.05
    result = kid(x, y, subsets=5, subset_size=1000, seed=0)
    expected = poly_mmd(torch.from_numpy(x), torch.from_numpy(y)).item()
    # Every subset is a permutation of the whole set, so all subsets agree.
    assert result.mean == pytest.approx(expected, rel=1e-10)
    assert result.std == pytest.approx(0.0, abs=1e-12 * abs(expected))
    assert (result.subsets, result.subset_size, result.requested_subset_size) == (5, 30, 1000)
    assert result.reduced
    assert "reduced from 1000 to 30" in result.note


def test_kid_subsets_are_seeded():
    rng = np.random.default_rng(3)
    x, y = _inception_like(rng, 60, 64), _inception_like(rng, 50, 64)
    a = kid(x, y, subsets=10, subset_size=20, seed=7)
    b = kid(x, y, subsets=10, subset_size=20, seed=7)
    c = kid(x, y, subsets=10, subset_size=20, seed=8)
    assert a == b
    assert a.mean != c.mean
    assert a.std > 0
    assert not a.reduced and a.note == ""


def test_kid_full_kernel_and_per_subset_paths_agree(monkeypatch):
    rng = np.random.default_rng(9)
    x, y = _inception_like(rng, 45, 128), _inception_like(rng, 35, 128) * 1.05
    full = kid(x, y, subsets=7, subset_size=25, seed=3)
    monkeypatch.setattr(metrics, "KID_FULL_KERNEL_MAX_ELEMENTS", 0)
    per_subset = kid(x, y, subsets=7, subset_size=25, seed=3)
    assert per_subset.mean == pytest.approx(full.mean, rel=1e-10)
    assert per_subset.std == pytest.approx(full.std, rel=1e-8)
    assert full.std > 0


def test_kid_hand_case_identity_vs_twice_identity():
    # metrics.md: X = I2, Y = 2 I2, d = 2: 1 + 1 - 2 * 18 / 4 = -7 (unbiased can be negative).
    x, y = np.eye(2), 2 * np.eye(2)
    assert mmd2_unbiased(
        polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    ) == pytest.approx(-7.0, abs=1e-12)
    assert kid(x, y, subsets=3).mean == pytest.approx(-7.0, abs=1e-12)


def test_unbiased_mmd_with_unequal_set_sizes_matches_explicit_sums():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(7, 3))
    kxx, kyy, kxy = (polynomial_kernel(a, b) for a, b in ((x, x), (y, y), (x, y)))
    xx = sum(kxx[i, j] for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(kyy[i, j] for i in range(7) for j in range(7) if i != j) / 42
    assert mmd2_unbiased(kxx, kyy, kxy) == pytest.approx(xx + yy - 2 * kxy.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="kernel shapes"):
        mmd2_unbiased(kxx, kxx, kxy)


def test_cmmd_orthogonal_swap_hand_case():
    # (1, 0) against its swap (0, 1): ||x - y||^2 = 2, k = exp(-2 / 200) = e^-0.01.
    value = cmmd(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert value == pytest.approx(19.9003325017, abs=1e-9)
    assert value == pytest.approx(1000 * (2 - 2 * math.exp(-0.01)), rel=1e-13)


def test_cmmd_identical_sets_is_exactly_zero():
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(20, 768))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert cmmd(emb, emb.copy()) == 0.0


def test_cmmd_matches_reference_formula_with_explicit_loops():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(5, 4)), rng.normal(size=(3, 4)) + 0.5

    def k(a, b, sigma):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * sigma**2))

    for sigma in (10.0, 1.5):
        kxx = np.mean([k(a, b, sigma) for a in x for b in x])
        kyy = np.mean([k(a, b, sigma) for a in y for b in y])
        kxy = np.mean([k(a, b, sigma) for a in x for b in y])
        expected = 1000 * (kxx + kyy - 2 * kxy)
        assert cmmd(x, y, sigma=sigma) == pytest.approx(expected, rel=1e-10)
        assert cmmd(x, y, sigma=sigma) > 0
    assert cmmd(x, y, sigma=1.5, scale=1.0) == pytest.approx(
        mmd2_biased(
            gaussian_kernel(x, x, 1.5), gaussian_kernel(y, y, 1.5), gaussian_kernel(x, y, 1.5)
        )
    )


def test_gaussian_kernel_uses_two_sigma_squared():
    x = np.zeros((1, 3))
    y = np.array([[3.0, 4.0, 0.0]])  # ||x - y|| = 5
    assert gaussian_kernel(x, y, sigma=5.0)[0, 0] == pytest.approx(math.exp(-0.5), rel=1e-14)
    assert gaussian_kernel(y, y, sigma=0.1)[0, 0] == 1.0


def test_feature_dimension_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"\(n, d\) and \(m, d\)"):
        cmmd(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 images"):
        kid(np.zeros((1, 4)), np.zeros((3, 4)))


def test_robust_map_ignores_a_glitch_and_agrees_between_numpy_and_torch() -> None:
    rng = np.random.default_rng(1)
    tiles = rng.normal(0, 1, (3, 64, 64))
    glitched = tiles.copy()
    glitched[:, 5, 7] = 1e3
    low, span = robust_map(glitched)
    clean_low, clean_span = robust_map(tiles)
    np.testing.assert_allclose(span, clean_span, rtol=0.05)  # one pixel moves nothing
    assert normalise_tiles(glitched)[2].min() > 900  # where the min/max map jumps 100x
    t_low, t_span = robust_map(torch.from_numpy(glitched))
    np.testing.assert_allclose(t_low.numpy(), low, rtol=1e-6)
    np.testing.assert_allclose(t_span.numpy(), span, rtol=1e-6)
    assert low.shape == span.shape == (3, 1, 1)
    flat_low, flat_span = robust_map(np.full((1, 8, 8), 2.0))
    assert flat_span.item() == 0 and flat_low.item() == 2.0


def test_psnr_and_ssim_are_the_library_functions() -> None:
    # One implementation: training validation (stm_zoo.metrics) and the evaluation tables agree.
    for name in ("psnr", "ssim", "psnr_batch", "ssim_batch", "affine_psnr_batch", "DATA_RANGE"):
        assert getattr(metrics, name) is getattr(library_metrics, name)

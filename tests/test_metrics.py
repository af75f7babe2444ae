"""stm_zoo.metrics: PSNR / SSIM edge cases with an explicit data_range, per-image batches, the
affine-fit variants."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stm_zoo import metrics
from stm_zoo.metrics import psnr, psnr_batch, ssim, ssim_batch


def test_psnr_identical_images_is_inf_without_warning():
    img = np.linspace(-1, 1, 64).reshape(8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr(img, img.copy()) == math.inf


def test_psnr_known_mse_and_explicit_data_range():
    a = np.zeros((16, 16))
    b = np.full((16, 16), 0.1)  # MSE = 0.01
    assert psnr(b, a) == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-10)  # data_range = 2
    assert psnr(b, a, data_range=1.0) == pytest.approx(20.0, abs=1e-10)


def test_ssim_identical_is_one_and_data_range_enters_the_constants():
    rng = np.random.default_rng(7)
    img = rng.uniform(-1, 1, size=(32, 32))
    assert ssim(img, img.copy()) == pytest.approx(1.0, abs=1e-12)
    # Constant images: structure term is 1, luminance term c1 / (mu_b^2 + c1), c1 = (0.01 L)^2.
    a, b = np.zeros((16, 16)), np.full((16, 16), 0.5)
    for data_range in (2.0, 1.0):
        c1 = (0.01 * data_range) ** 2
        assert ssim(a, b, data_range=data_range) == pytest.approx(c1 / (0.25 + c1), rel=1e-6)


def test_batched_metrics_are_per_image():
    rng = np.random.default_rng(8)
    ref = rng.uniform(-1, 1, size=(4, 24, 24))
    out = np.clip(ref + rng.normal(0, 0.1, size=ref.shape), -1, 1)
    p, s = psnr_batch(out, ref), ssim_batch(out, ref)
    assert p.shape == s.shape == (4,)
    assert p.dtype == s.dtype == np.float64
    np.testing.assert_allclose(p, [psnr(o, r) for o, r in zip(out, ref, strict=True)])
    np.testing.assert_allclose(s, [ssim(o, r) for o, r in zip(out, ref, strict=True)])
    with pytest.raises(ValueError, match="same 3-D shape"):
        psnr_batch(out, ref[:3])
    with pytest.raises(ValueError, match="same 2-D shape"):
        ssim(out, ref)


def test_affine_metrics_ignore_intensity_calibration() -> None:
    rng = np.random.default_rng(0)
    clean = np.clip(rng.normal(0, 0.3, (2, 32, 32)), -1, 1)
    rescaled = 0.4 * clean + 0.3  # right structure, wrong calibration
    assert metrics.ssim_batch(rescaled, clean).max() < 0.9
    assert metrics.psnr_batch(rescaled, clean).max() < 20
    np.testing.assert_allclose(metrics.affine_ssim_batch(rescaled, clean), 1.0, atol=1e-6)
    assert metrics.affine_psnr_batch(rescaled, clean).min() > 100
    noisy = clean + rng.normal(0, 0.2, clean.shape)
    assert np.all(metrics.affine_ssim_batch(noisy, clean) < 0.95)  # structure errors still count

"""Levelling, row alignment (stm_zoo.levelling), resampling (stm_zoo.resampling), normalisation
and the composed pipeline (stm_zoo.preprocess), with their inverses."""

from __future__ import annotations

import numpy as np
import pytest

from stm_zoo import levelling, resampling
from stm_zoo import preprocess as pp
from stm_zoo.errors import StmZooError


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w]
    return y.astype(np.float64), x.astype(np.float64)


def _terrace_image(h: int = 96, w: int = 120) -> np.ndarray:
    """A diagonal terrace step, texture along x only and a few local bumps.

    Adjacent lines differ only at the step crossing and on the bumps, so the median of their
    difference is exactly zero: the ground truth for median-of-differences alignment.
    """
    y, x = _grid(h, w)
    step = 0.8 * (x + 0.7 * y > 80)
    texture = 0.1 * np.sin(2 * np.pi * x / 9.0)
    bumps = sum(
        0.5 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8.0)
        for cx, cy in [(20, 15), (90, 30), (50, 70)]
    )
    return step + texture + bumps


def _centred(a: np.ndarray) -> np.ndarray:
    return a - a.mean()


# ----------------------------------------------------------------------------- levelling


def test_level_plane_removes_a_synthetic_plane_exactly() -> None:
    rng = np.random.default_rng(0)
    y, x = _grid(37, 53)
    for _ in range(5):
        a, b, c = rng.normal(size=3) * [1e-9, 1e-10, 1e-10]
        plane = a + b * x + c * y
        assert np.abs(levelling.level_plane(plane)).max() < 1e-22  # metres: exact to rounding


def test_level_plane_keeps_features_and_removes_only_the_tilt() -> None:
    y, x = _grid(64, 64)
    features = np.sin(x / 5.0) * np.cos(y / 7.0)
    tilted = features + 0.3 * x - 0.2 * y + 4.0
    assert np.allclose(levelling.level_plane(tilted), levelling.level_plane(features), atol=1e-10)
    # The features themselves are not a plane: levelling leaves most of their variance.
    assert levelling.level_plane(tilted).std() > 0.9 * features.std()


def test_level_polynomial_removes_a_bow_that_a_plane_cannot() -> None:
    y, x = _grid(50, 70)
    bow = 2e-3 * (x - 30) ** 2 + 1e-3 * (y - 20) ** 2 + 5e-4 * x * y + 0.1 * x
    assert np.abs(levelling.level_polynomial(bow, 2)).max() < 1e-10
    assert np.abs(levelling.level_plane(bow)).max() > 0.1


def test_level_polynomial_refuses_bad_degree_and_nan() -> None:
    with pytest.raises(StmZooError, match="degree"):
        levelling.level_polynomial(np.zeros((4, 4)), 7)
    bad = np.zeros((4, 4))
    bad[1, 2] = np.nan
    with pytest.raises(StmZooError, match="crop_valid"):
        levelling.level_plane(bad)
    with pytest.raises(StmZooError, match="2-D"):
        levelling.level_plane(np.zeros(5))


# ----------------------------------------------------------------------------- row alignment


def test_align_rows_median_diff_removes_random_line_offsets_and_keeps_the_step() -> None:
    rng = np.random.default_rng(1)
    clean = _terrace_image()
    offsets = np.where(rng.random(clean.shape[0]) < 0.4, rng.normal(0, 0.5, clean.shape[0]), 0)
    offsets += 0.6 * (np.arange(clean.shape[0]) >= 40)  # a tip-change jump
    degraded = clean + offsets[:, None]
    before = np.abs(_centred(degraded) - _centred(clean)).max()
    aligned = levelling.align_rows(degraded, "median_diff")
    after = np.abs(_centred(aligned) - _centred(clean)).max()
    assert before > 0.5
    assert after < 1e-9  # exact: the step is kept with its full 0.8 height
    assert np.isclose(aligned.mean(), degraded.mean())  # offsets are re-centred


def test_align_rows_median_breaks_lines_at_a_diagonal_step_where_median_diff_does_not() -> None:
    clean = _terrace_image()
    err_median = np.abs(_centred(levelling.align_rows(clean, "median")) - _centred(clean)).max()
    err_diff = np.abs(_centred(levelling.align_rows(clean, "median_diff")) - _centred(clean)).max()
    assert err_diff < 1e-9
    assert err_median > 0.3


def test_align_rows_median_removes_offsets_on_a_featureless_texture() -> None:
    rng = np.random.default_rng(2)
    y, x = _grid(40, 64)
    clean = 0.2 * np.sin(2 * np.pi * x / 8.0)
    degraded = clean + rng.normal(0, 1, 40)[:, None]
    assert np.abs(_centred(levelling.align_rows(degraded, "median")) - _centred(clean)).max() < 1e-9


def test_median_diff_drifts_on_a_skewed_lattice_and_the_local_variant_does_not() -> None:
    # Bright narrow rows at 45 degrees: differences between lines have a skewed distribution,
    # so every line's median difference is biased the same way and Gwyddion's sum drifts.
    y, x = _grid(128, 128)
    phase = 2 * np.pi * (x + y) / 5.5
    lattice = np.sin(phase) + 0.4 * np.sin(2 * phase)  # asymmetric profile, skewed slopes
    lattice /= lattice.std()
    drift = np.ptp(levelling.row_offsets(lattice, "median_diff"))
    assert drift > 10.0  # in units of the image's standard deviation
    assert np.ptp(levelling.row_offsets(lattice, "median_diff_local")) < 1e-9
    assert np.ptp(levelling.row_offsets(lattice, "median")) < 1e-9


def test_median_diff_local_removes_sparse_jumps_and_keeps_a_y_tilt() -> None:
    clean = _terrace_image() + 0.01 * np.arange(96)[:, None]
    jumps = np.zeros(96)
    jumps[30:] += 0.7
    jumps[61:] -= 0.4
    jumps[75] += 0.9  # a single offset line
    aligned = levelling.align_rows(clean + jumps[:, None], "median_diff_local", window=15)
    assert np.abs(_centred(aligned) - _centred(clean)).max() < 1e-9
    # Gwyddion's plain median of differences flattens the genuine tilt as well.
    flattened = levelling.align_rows(clean, "median_diff")
    assert np.abs(_centred(flattened) - _centred(clean)).max() > 0.4


def test_align_rows_rejects_unknown_method() -> None:
    with pytest.raises(StmZooError, match="median_diff"):
        levelling.align_rows(np.zeros((3, 3)), "modus")


# ----------------------------------------------------------------------------- normalisation


def test_normalise_invert_round_trip_to_float_precision() -> None:
    rng = np.random.default_rng(3)
    image = 1e-10 * rng.normal(size=(33, 47)) + 3e-9  # heights in metres
    normalised, norm = pp.normalise(image)
    assert normalised.min() == -1.0 and normalised.max() == 1.0
    back = norm.invert(normalised)
    assert np.abs(back - image).max() <= 1e-15 * np.abs(image).max()
    assert np.allclose(norm.apply(image), normalised, rtol=0, atol=1e-15)


def test_normalise_custom_range_and_percentiles() -> None:
    rng = np.random.default_rng(4)
    image = rng.normal(size=(64, 64))
    image[5, 5] = 1e3  # a spike
    plain, _ = pp.normalise(image, low=0.0, high=1.0)
    assert plain.min() == 0.0 and plain.max() == 1.0
    assert np.median(plain) < 0.01  # the spike squeezed everything else to the bottom
    robust, norm = pp.normalise(image, percentiles=(1.0, 99.0))
    assert np.isclose(np.percentile(robust, 1.0), -1.0)
    assert np.isclose(np.percentile(robust, 99.0), 1.0)
    assert robust.max() > 100  # the spike stays outside the range (not clipped) ...
    assert np.allclose(norm.invert(robust), image)  # ... so the inverse stays exact
    with pytest.raises(StmZooError, match="percentiles"):
        pp.normalise(image, percentiles=(50.0, 10.0))
    with pytest.raises(StmZooError, match="high > low"):
        pp.normalise(image, low=1.0, high=-1.0)


def test_normalise_flat_image_maps_to_the_middle_and_back() -> None:
    flat = np.full((8, 9), 2.5e-9)
    normalised, norm = pp.normalise(flat)
    assert norm.is_flat
    assert np.all(normalised == 0.0)
    assert np.all(norm.invert(np.linspace(-1, 1, 72).reshape(8, 9)) == 2.5e-9)
    assert np.isfinite(normalised).all()


# ----------------------------------------------------------------------------- resampling


def test_resample_down_then_up_approximates_identity_on_smooth_data() -> None:
    y, x = _grid(128, 128)
    smooth = np.sin(x / 13.0) * np.cos(y / 17.0)
    down = resampling.resample(smooth, (0.2, 0.2), (0.4, 0.4))
    assert down.shape == (64, 64)
    up = resampling.resample_to_shape(down, smooth.shape)
    assert up.shape == smooth.shape
    err = np.abs(up - smooth)
    assert err[8:-8, 8:-8].max() < 0.01  # interior: spline + mild anti-aliasing
    assert np.sqrt(np.mean(err**2)) < 0.005
    nearest = resampling.resample_to_shape(down, smooth.shape, order=0)
    assert np.sqrt(np.mean((nearest - smooth) ** 2)) > 3 * np.sqrt(np.mean(err**2))


def test_resample_shapes_follow_pixel_sizes_per_axis() -> None:
    image = np.random.default_rng(5).normal(size=(100, 150))
    assert resampling.resample(image, (0.2, 0.2), (0.3, 0.1)).shape == (200, 100)
    assert resampling.resample(image, (0.195, 0.39), (0.195, 0.195)).shape == (200, 150)
    assert resampling.resampled_shape((3, 3), (1.0, 1.0), (100.0, 100.0)) == (1, 1)
    with pytest.raises(StmZooError, match="positive"):
        resampling.resample(image, (0.2, 0.0), (0.2, 0.2))


def test_resample_leaves_an_unchanged_axis_exact() -> None:
    rng = np.random.default_rng(6)
    image = rng.normal(size=(40, 64))
    out = resampling.resample(image, (0.2, 0.2), (0.2, 0.1))  # only y is refined
    assert np.allclose(out[:, :], resampling.resample_to_shape(image, (80, 64)))
    same = resampling.resample(image, (0.2, 0.2), (0.2, 0.2))
    assert np.array_equal(same, image)


def test_resample_anti_aliases_a_lattice_beyond_the_new_nyquist_limit() -> None:
    y, x = _grid(128, 128)
    stripes = np.cos(2 * np.pi * x / 2.5)  # 2.5 px period: aliases when halving x
    down = resampling.resample(stripes, (0.2, 0.2), (0.4, 0.2))
    assert down.std() < 0.45 * stripes.std()


# ----------------------------------------------------------------------------- prepare / inverse


def test_prepare_without_resampling_round_trips_the_levelled_image() -> None:
    rng = np.random.default_rng(7)
    y, x = _grid(64, 80)
    image = 1e-10 * (np.sin(x / 4.0) + rng.normal(0, 0.1, (64, 80))) + 1e-11 * x + 2e-9
    model_input, rec = pp.prepare(image, (0.195, 0.195), (0.1953, 0.1953))  # within rtol
    assert not rec.resampled
    assert model_input.dtype == np.float32
    assert model_input.min() == -1.0 and model_input.max() == 1.0
    back = rec.inverse(model_input)
    levelled = levelling.level_plane(image)
    assert back.shape == image.shape
    assert np.abs(back - levelled).max() < 1e-6 * np.ptp(levelled)  # float32 model input
    assert "levelling kept" in rec.describe()


def test_prepare_with_background_kept_restores_the_original_values() -> None:
    rng = np.random.default_rng(8)
    y, x = _grid(48, 48)
    image = np.sin(x / 3.0) + 0.05 * x - 0.02 * y + 10.0 + rng.normal(0, 1, 48)[:, None]
    model_input, rec = pp.prepare(
        image, (0.2, 0.2), None, row_alignment="median", keep_background=True
    )
    # The model input is float32: the way back is exact to float32 precision of the range.
    assert np.abs(rec.inverse(model_input) - image).max() < 1e-6 * np.ptp(image)
    assert "background restored" in rec.describe()


def test_prepare_resamples_to_the_model_pixel_size_and_back() -> None:
    y, x = _grid(100, 140)
    image = np.sin(x / 11.0) + np.cos(y / 9.0)
    model_input, rec = pp.prepare(image, (0.3, 0.3), (0.195, 0.195))
    assert rec.resampled
    assert model_input.shape == (round(100 * 0.3 / 0.195), round(140 * 0.3 / 0.195))
    assert np.allclose(rec.model_pixel_size_nm, (0.3 * 140 / 215, 0.3 * 100 / 154))
    assert model_input.min() == -1.0 and model_input.max() == 1.0
    back = rec.inverse(model_input)
    assert back.shape == image.shape
    levelled = levelling.level_plane(image)
    assert np.sqrt(np.mean((back - levelled) ** 2)) < 0.005 * np.ptp(levelled)
    assert "resampled" in rec.describe()


def test_prepare_inverse_accepts_a_super_resolved_output() -> None:
    # Measured lines of a tilted plane: after levelling the input is flat; with the background
    # kept, the inverse of a flat k-times-taller output is the plane on the fine grid.
    k, h, w = 4, 64, 32
    y, x = _grid(h, w)
    plane = 3.0 + 0.1 * x + 0.05 * y
    lines = plane[::k]
    model_input, rec = pp.prepare(lines, (0.195, 0.78), (0.195, 0.78), keep_background=True)
    assert rec.normalisation.is_flat and np.all(model_input == 0)
    out = rec.inverse(np.zeros((h, w)))
    assert out.shape == (h, w)
    assert np.abs(out - plane).max() < 1e-12
    with pytest.raises(StmZooError, match="model grid"):
        rec.inverse(np.zeros((h + 1, w)))

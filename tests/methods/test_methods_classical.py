"""stm_zoo.methods.classical: Gwyddion-style scar removal, row alignment and line interpolation."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from stm_zoo.errors import StmZooError
from stm_zoo.methods.classical import (
    ClassicalParams,
    classical_restore,
    classical_super_resolve,
    fill_from_neighbour_lines,
    interpolate_lines,
    remove_scars,
    scar_mask,
)

NO_ALIGN = ClassicalParams(row_alignment=None)


def _smooth(h: int = 128, w: int = 128) -> np.ndarray:
    """Smooth, non-separable surface in about [-1, 1] with no component that depends on y only."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return 0.5 * np.sin(x / 9.0) * np.cos(y / 11.0) + 0.4 * np.sin((x + 0.6 * y) / 17.0)


def _textured(h: int = 128, w: int = 128, seed: int = 0) -> np.ndarray:
    """`_smooth` plus fine texture (white, sigma 0.03), like a scan's noise floor.

    Gwyddion's thresholds are relative to the line-to-line RMS; on a noiseless surface that RMS
    is so small that the surface's own slope next to a scar passes them.
    """
    return _smooth(h, w) + np.random.default_rng(seed).normal(0, 0.03, (h, w))


def _add_scars(
    image: np.ndarray, rng: np.random.Generator, n: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Constant-offset segments of single lines (both signs), at least 6 lines apart.

    Closer pairs of same-sign scars make the lines between them look like a scar of the
    opposite sign (a limit of Gwyddion's "both" detection, which this baseline keeps).
    """
    h, w = image.shape
    out, truth = image.copy(), np.zeros(image.shape, dtype=bool)
    rows = rng.choice(np.arange(2, h - 2, 6), size=n, replace=False)
    for r in rows:
        length = int(rng.integers(24, w - 8))
        start = int(rng.integers(0, w - length))
        out[r, start : start + length] += rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6)
        truth[r, start : start + length] = True
    return out, truth


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _reference_mark_scars(z: np.ndarray, p: ClassicalParams, negative: bool) -> np.ndarray:
    """A line-by-line port of Gwyddion's gwy_data_field_mark_scars (libprocess/correct.c).

    Two deliberate differences, shared with the vectorised version: bounding lines near the
    bottom edge are tried with the widths that fit, and a pixel marked by two candidates keeps
    the larger strength (Gwyddion keeps the later one).
    """
    h, w = z.shape
    d = -z if negative else z
    m = np.zeros_like(d)
    diffs = np.diff(z, axis=0)
    rms = np.sqrt((diffs**2).sum() / (h * w))
    max_width = min(p.scar_max_width, h - 2)
    for i in range(h - 2):
        for j in range(w):
            top = d[i + 1, j]
            for k in range(1, max_width + 1):
                if i + k + 1 >= h:
                    break
                bottom = max(d[i, j], d[i + k + 1, j])
                top = min(top, d[i + k, j])
                if top - bottom >= p.scar_threshold_low * rms:
                    for kk in range(1, k + 1):
                        m[i + kk, j] = max(m[i + kk, j], (d[i + kk, j] - bottom) / rms)
                    break
    for i in range(h):
        for j in range(1, w):
            if m[i, j] >= p.scar_threshold_low and m[i, j - 1] >= p.scar_threshold_high:
                m[i, j] = p.scar_threshold_high
        for j in range(w - 1, 0, -1):
            if m[i, j - 1] >= p.scar_threshold_low and m[i, j] >= p.scar_threshold_high:
                m[i, j - 1] = p.scar_threshold_high
    out = np.zeros(d.shape, dtype=bool)
    for i in range(h):
        j = 0
        while j < w:
            if m[i, j] >= p.scar_threshold_high:
                start = j
                while j < w and m[i, j] >= p.scar_threshold_high:
                    j += 1
                if j - start >= p.scar_min_length:
                    out[i, start:j] = True
            else:
                j += 1
    return out


# ----------------------------------------------------------------------------- scars


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scar_mask_matches_a_literal_port_of_gwyddion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, _ = _add_scars(_smooth(40, 48) + rng.normal(0, 0.05, (40, 48)), rng, n=6)
    z[20:23, 5:30] += 0.8  # a 3-line band
    p = ClassicalParams(scar_min_length=8)
    expected = _reference_mark_scars(z, p, False) | _reference_mark_scars(z, p, True)
    assert expected.any()
    assert np.array_equal(scar_mask(z, p), expected)
    positive_only = ClassicalParams(scar_min_length=8, scar_polarity="positive")
    assert np.array_equal(scar_mask(z, positive_only), _reference_mark_scars(z, p, False))


def test_scars_on_a_smooth_image_are_found_and_removed() -> None:
    rng = np.random.default_rng(3)
    clean = _textured()
    scarred, truth = _add_scars(clean, rng)
    mask = scar_mask(scarred)
    assert (mask & truth).sum() >= 0.95 * truth.sum()  # recall
    # Gwyddion's relative thresholds also catch noise-level dips right beside a scar (they
    # are filled from the same bounding lines), but nothing away from the scars.
    near = np.zeros_like(truth)
    for dy in range(-4, 5):
        for dx in range(-2, 3):
            near |= np.roll(truth, (dy, dx), axis=(0, 1))
    assert not (mask & ~near).any()
    restored = remove_scars(scarred)
    before, after = _rmse(scarred, clean), _rmse(restored, clean)
    assert before > 0.05
    assert after < before / 10
    # Only marked pixels change: every pixel outside the mask is returned bit for bit.
    assert np.array_equal(restored[~mask], scarred[~mask])


def test_a_clean_smooth_image_passes_through_unchanged() -> None:
    clean = _smooth() + np.random.default_rng(4).normal(0, 0.01, (128, 128))
    assert not scar_mask(clean).any()
    assert np.array_equal(remove_scars(clean), clean)
    assert np.array_equal(classical_restore(clean, "restore", NO_ALIGN), clean)


def test_scar_polarity_length_and_width_limits() -> None:
    clean = _textured(64, 96)
    z = clean.copy()
    z[20, 10:60] -= 0.5  # negative, long
    z[40, 10:20] += 0.5  # positive, 10 px: shorter than the default 16
    z[50:56, 10:80] += 0.5  # 6 lines: wider than the default 4
    restored = remove_scars(z)
    assert _rmse(restored[20], clean[20]) < 0.05  # was 0.5 off; the fill sees the 0.03 noise
    assert np.array_equal(restored[40], z[40])
    band = (slice(50, 56), slice(10, 80))
    assert np.mean(restored[band] - clean[band]) > 0.4  # kept (noise may nick its edges)
    positive_only = remove_scars(z, ClassicalParams(scar_polarity="positive"))
    assert np.array_equal(positive_only[20], z[20])
    shorter = remove_scars(z, ClassicalParams(scar_min_length=8))
    assert _rmse(shorter[40, 10:20], clean[40, 10:20]) < 0.1


def test_scar_max_width_decides_whether_a_band_is_a_scar() -> None:
    # Texture along x only: lines differ only at the band, so the width search is not cut
    # short by noise inside the band (Gwyddion stops at the first width that passes).
    x = np.arange(96, dtype=np.float64)
    clean = np.tile(0.2 * np.sin(x / 5.0), (64, 1))
    z = clean.copy()
    z[30:36, 10:80] += 0.5
    assert np.array_equal(remove_scars(z), z)
    wider = remove_scars(z, ClassicalParams(scar_max_width=8))
    assert np.abs(wider - clean).max() < 1e-12


def test_fill_interpolates_linearly_between_bounding_lines() -> None:
    z = np.tile(np.arange(10.0)[:, None] ** 2, (1, 3))
    mask = np.zeros_like(z, dtype=bool)
    mask[3:6, 1] = True  # bounded by lines 2 (4.0) and 6 (36.0)
    mask[0:2, 2] = True  # touches the top edge: takes line 2's value
    filled = fill_from_neighbour_lines(z, mask)
    assert np.allclose(filled[3:6, 1], [12.0, 20.0, 28.0])
    assert np.allclose(filled[0:2, 2], 4.0)
    assert np.array_equal(filled[~mask], z[~mask])


def test_lattice_rows_along_the_fast_axis_are_not_taken_for_scars(caplog) -> None:
    y, x = np.mgrid[0:128, 0:128].astype(np.float64)
    rows = np.cos(2 * np.pi * y / 3.94) + 0.1 * np.sin(x / 7.0)  # dimer rows parallel to x
    assert scar_mask(rows).mean() > 0.5  # Gwyddion's detector alone would flatten them
    with caplog.at_level(logging.WARNING, logger="stm_zoo.methods.classical"):
        out = remove_scars(rows)
    assert np.array_equal(out, rows)
    assert "lattice rows" in caplog.text


# ----------------------------------------------------------------------------- restore


def test_restore_removes_line_offsets_and_a_tip_change_jump() -> None:
    rng = np.random.default_rng(5)
    clean = _textured()
    offsets = np.zeros(128)
    offsets[70:] += 0.5  # tip change: every line after 70 higher
    offsets[rng.choice(128, 6, replace=False)] += rng.normal(0, 0.3, 6)
    degraded = clean + offsets[:, None]
    restored = classical_restore(degraded, "restore")
    before = _rmse(degraded - degraded.mean(), clean - clean.mean())
    after = _rmse(restored - restored.mean(), clean - clean.mean())
    assert before > 0.2
    assert after < before / 8


def test_restore_handles_scars_and_offsets_together() -> None:
    rng = np.random.default_rng(6)
    clean = _textured()
    scarred, _ = _add_scars(clean, rng)
    degraded = scarred + 0.4 * (np.arange(128) >= 50)[:, None]
    restored = classical_restore(degraded)
    before = _rmse(degraded - degraded.mean(), clean - clean.mean())
    after = _rmse(restored - restored.mean(), clean - clean.mean())
    assert after < before / 4


def test_restore_barely_changes_the_real_pristine_scan(shared_data) -> None:
    ref = np.load(shared_data / "si001h-reference" / "brockley_23_2_forward.npy")
    assert scar_mask(ref).mean() < 0.005
    restored = classical_restore(ref)
    assert _rmse(restored, ref) < 0.15 * ref.std()


# ----------------------------------------------------------------------------- super-resolution


@pytest.mark.parametrize("method", ["cubic", "linear"])
@pytest.mark.parametrize("factor", [2, 4])
def test_line_interpolation_is_exact_on_linear_in_y_data(method: str, factor: int) -> None:
    y, x = np.mgrid[0:64, 0:40].astype(np.float64)
    ramp = 0.03 * y - 0.01 * x + 0.2 * np.sin(x / 3.0)
    out = interpolate_lines(ramp[::factor], factor, method=method)
    assert out.shape == ramp.shape
    assert np.array_equal(out[::factor], ramp[::factor])  # measured lines, bit for bit
    last = (64 // factor - 1) * factor  # up to the last measured line
    assert np.abs(out[: last + 1] - ramp[: last + 1]).max() < 1e-12
    tail = np.repeat(ramp[last : last + 1], factor, axis=0)  # after the last line: held
    assert np.abs(out[last:] - tail).max() < 1e-12


@pytest.mark.parametrize("factor", [2, 4])
def test_line_interpolation_beats_nearest_neighbour_on_smooth_data(factor: int) -> None:
    clean = _smooth()
    lines = clean[::factor]
    last = (128 // factor - 1) * factor + 1  # compare where there is a line on each side
    nearest = np.repeat(lines, factor, axis=0)
    linear = interpolate_lines(lines, factor, method="linear")
    cubic = interpolate_lines(lines, factor, method="cubic")
    err = {
        k: _rmse(v[:last], clean[:last])
        for k, v in [("nn", nearest), ("lin", linear), ("cub", cubic)]
    }
    assert err["lin"] < err["nn"] / 5
    assert err["cub"] < err["lin"] / 5


@pytest.mark.parametrize(("task", "factor"), [("sr2", 2), ("sr4", 4)])
def test_sr_uses_only_measured_lines_and_matches_the_lines_api(task: str, factor: int) -> None:
    rng = np.random.default_rng(7)
    clean = _smooth(130, 96)  # 130 lines: not a multiple of 4
    lines = clean[::factor]
    upsampled = np.repeat(lines, factor, axis=0)[:130]
    # Glitches on repeated (unmeasured) rows must not matter.
    noisy = upsampled.copy()
    for r in range(1, 130, factor):
        noisy[r] += rng.normal(0, 1.0)
    interpolate_only = ClassicalParams(row_alignment=None, remove_scars=False)
    out = classical_restore(noisy, task, interpolate_only)
    assert out.shape == (130, 96)
    assert np.array_equal(out[::factor], lines)
    assert _rmse(out, clean) < _rmse(upsampled, clean) / 4
    full = classical_restore(noisy, task)
    assert np.array_equal(full, classical_super_resolve(lines, factor, 130))


def test_sr_corrects_a_scar_on_a_measured_line() -> None:
    clean = _textured()
    lines = clean[::2].copy()
    lines[20, 10:90] += 0.5  # measured line 20 = output row 40
    out = classical_super_resolve(lines, 2)
    assert out.shape == (128, 128)
    near = slice(36, 45)
    scarred = _rmse(interpolate_lines(lines, 2)[near], clean[near])
    unscarred = _rmse(interpolate_lines(clean[::2], 2)[near], clean[near])
    assert _rmse(out[near], clean[near]) < min(scarred / 4, 1.5 * unscarred)


def test_shapes_are_preserved_for_every_task() -> None:
    image = _smooth(77, 53)
    for task in ("restore", "sr2", "sr4"):
        assert classical_restore(image, task).shape == (77, 53)
    assert classical_restore(np.zeros((1, 10))).shape == (1, 10)
    assert classical_restore(np.zeros((3, 3)), "sr4").shape == (3, 3)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(StmZooError, match="restore, sr2 or sr4"):
        classical_restore(np.zeros((8, 8)), "sr3")
    with pytest.raises(StmZooError, match="cannot make"):
        interpolate_lines(np.zeros((4, 8)), 4, height=20)
    with pytest.raises(StmZooError, match="polarity"):
        ClassicalParams(scar_polarity="up")
    with pytest.raises(StmZooError, match="thresholds"):
        ClassicalParams(scar_threshold_low=0.9)
    bad = np.zeros((8, 8))
    bad[2, 2] = np.inf
    with pytest.raises(StmZooError, match="crop_valid"):
        classical_restore(bad)


def test_a_512_image_restores_well_under_half_a_second() -> None:
    rng = np.random.default_rng(8)
    image, truth = _add_scars(_textured(512, 512), rng, n=30)
    assert scar_mask(image).sum() >= truth.sum()  # the full path runs, not the guard's exit
    for task in ("restore", "sr2", "sr4"):
        best = min(_timed(classical_restore, image, task) for _ in range(3))
        assert best < 0.5, f"{task}: {best:.3f} s"


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start

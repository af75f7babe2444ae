"""The restore path's limits, repairs and warnings (`stm_zoo.limits`), through every interface."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stm_zoo import limits
from stm_zoo.bad_pixels import glitch_mask, inpaint
from stm_zoo.entry_format import EntryConfig
from stm_zoo.errors import StmZooError
from stm_zoo.io import Scan, load_scan, save_scan
from stm_zoo.io.cli_info import format_si
from stm_zoo.nn import UNetConfig
from stm_zoo.pipeline import RestoreOptions, RestoreResult, restore
from stm_zoo.zoo import LoadedModel

PITCH_M = 100e-9 / 512  # the models' pixel size


def lattice(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Heights in metres: a 0.06 nm lattice with noise and a tilt."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (np.sin(2 * np.pi * x / 3.9) * 0.03 + 0.002 * y + rng.normal(0, 0.005, shape)) * 1e-9


def at_pitch(data: np.ndarray, pitch_m: float = PITCH_M, **fields) -> Scan:
    h, w = data.shape
    return Scan(data.astype(np.float32), scan_size_m=(w * pitch_m, h * pitch_m), **fields)


def classical(scan: Scan | np.ndarray, **options) -> RestoreResult:
    return restore(scan, family="classical", **options)


# --- bad pixels --------------------------------------------------------------------------------


def test_scattered_nan_pixels_are_inpainted_not_cropped() -> None:
    data = lattice((256, 256))
    rng = np.random.default_rng(1)
    holes = rng.choice(data.size, 66, replace=False)  # 0.1 %, on many lines
    broken = data.copy()
    broken.flat[holes] = np.nan
    result = classical(at_pitch(broken))
    assert result.scan.shape == (256, 256)
    assert np.isfinite(result.scan.data).all()
    assert any("inpainted 66 NaN/inf pixels" in w for w in result.warnings)
    assert result.input is not None and np.isfinite(result.input.data).all()
    filled = result.input.data.ravel()[holes]
    assert np.abs(filled - data.ravel()[holes]).max() < 0.5 * np.ptp(data)
    assert any("inpainted" in step for step in result.scan.history)


def test_an_unfinished_scan_keeps_its_complete_lines() -> None:
    data = lattice((128, 128))
    data[100:] = np.nan
    data[99, 40:] = np.nan  # the line being scanned when it stopped
    result = classical(at_pitch(data))
    assert result.scan.shape == (99, 128)
    assert result.scan.scan_size_m[1] == pytest.approx(99 * PITCH_M)
    assert any("kept lines 0..98 of 128" in w for w in result.warnings)


@pytest.mark.parametrize("glitch", [5.8e30, 3e38, -3e38, 1e-3])
def test_glitches_are_masked_and_the_output_stays_in_range(glitch: float) -> None:
    data = lattice((128, 128))
    broken = data.copy()
    broken[40, 50] = glitch
    broken[90, 7] = glitch
    result = classical(at_pitch(broken))
    out = result.scan.data
    assert np.isfinite(out).all()
    assert out.min() > data.min() - np.ptp(data) and out.max() < data.max() + np.ptp(data)
    assert np.ptp(out) > 0.2 * np.ptp(data)  # not flattened by the glitch
    assert any("2 glitch values" in w for w in result.warnings), result.warnings


def test_tall_real_features_are_not_glitches() -> None:
    data = lattice((256, 256))
    data[100:140, 60:110] += 30e-9  # a 30 nm cluster on a 60 pm corrugated terrace
    data[200:, :] += 2e-9  # a step
    assert not glitch_mask(data).any()
    data[10, 10] = data[11, 200] = 1e-6  # single pixels 1 um tall: glitches
    assert np.flatnonzero(glitch_mask(data)).tolist() == [10 * 256 + 10, 11 * 256 + 200]


def test_inpainting_is_fast_and_local_on_512_px() -> None:
    y, x = np.mgrid[:512, :512]
    smooth = np.sin(x / 9.0) + np.cos(y / 13.0)
    mask = np.zeros(smooth.shape, dtype=bool)
    mask.flat[np.random.default_rng(0).choice(smooth.size, 2600, replace=False)] = True
    mask[300:316, 300:316] = True  # and one larger hole
    broken = np.where(mask, np.nan, smooth)
    inpaint(broken, mask)  # warm-up (imports)
    started = time.perf_counter()
    filled = inpaint(broken, mask)
    assert time.perf_counter() - started < 0.5
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[~mask], smooth[~mask])
    assert np.abs(filled - smooth)[mask].max() < 0.15  # of a signal spanning 4


# --- flat channels -------------------------------------------------------------------------


def test_a_flat_channel_is_refused_naming_the_channels_with_signal(tmp_path: Path) -> None:
    shape = (128, 128)
    size = (128 * PITCH_M, 128 * PITCH_M)
    z = np.full(shape, -42e-9) + np.random.default_rng(0).normal(0, 1e-14, shape)
    current = 1e-10 + lattice(shape) * 10
    flat_bias = np.full(shape, 0.5)
    path = save_scan(
        [
            Scan(z, channel="Z", scan_size_m=size),
            Scan(current, channel="Current", unit="A", scan_size_m=size),
            Scan(flat_bias, channel="Bias", unit="V", scan_size_m=size),
        ],
        tmp_path / "constant_height.sxm",
    )
    scan = load_scan(path, channel="Z")
    with pytest.raises(StmZooError, match=r"is flat.*constant-height.*: Current \(--channel Cur"):
        classical(scan)
    assert classical(load_scan(path, channel="Current")).scan.shape == shape


def test_a_flat_array_is_refused() -> None:
    with pytest.raises(StmZooError, match="is flat.*carries signal"):
        classical(np.full((64, 64), 3.0e-9, dtype=np.float32))
    with pytest.raises(StmZooError, match="is flat"):  # a constant channel with one glitch
        data = np.zeros((64, 64), dtype=np.float32)
        data[3, 3] = 3e38
        classical(data)


# --- the model grid ----------------------------------------------------------------------------


def test_a_huge_grid_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    import stm_zoo.resampling

    def no_resampling(*args, **kwargs):
        raise AssertionError("resampled before the limits were checked")

    monkeypatch.setattr(stm_zoo.resampling, "resample_to_shape", no_resampling)
    scan = at_pitch(lattice((256, 256)), pitch_m=10e-6 / 256)  # 10 um frame: a 51200^2 grid
    started = time.perf_counter()
    with pytest.raises(StmZooError, match=r"51,200 x 51,200 px .* at the model's 0.1953 nm/px"):
        classical(scan)
    assert time.perf_counter() - started < 2.0
    with pytest.raises(StmZooError, match=r"more than the 10,000 px"):
        classical(at_pitch(lattice((128, 128))), max_grid_pixels=10_000)


@pytest.mark.parametrize(("pitch_nm", "change"), [(0.016, r"12.2x down"), (120 / 64, r"9.6x up")])
def test_resampling_beyond_the_limits_is_refused_with_what_to_do(
    pitch_nm: float, change: str
) -> None:
    scan = at_pitch(lattice((256, 256) if pitch_nm < 1 else (64, 64)), pitch_m=pitch_nm * 1e-9)
    with pytest.raises(StmZooError, match=rf"resampled {change}.*--no-resample.*trained at"):
        classical(scan)


def test_resampling_within_the_limits_is_reported() -> None:
    result = classical(at_pitch(lattice((128, 128)), pitch_m=0.6e-9))  # 3.1x up
    assert any("resampled 3.07x up" in w for w in result.warnings)
    assert not classical(at_pitch(lattice((128, 128)))).warnings


def test_a_tiny_frame_is_refused() -> None:
    scan = at_pitch(lattice((20, 20)), pitch_m=0.25e-9)  # 5 nm: 26 px on the model grid
    with pytest.raises(StmZooError, match=r"only 26 x 26 px .* fewer than the 32 px"):
        classical(scan)


def test_no_resample_processes_the_files_own_pixels() -> None:
    scan = at_pitch(lattice((256, 256)), pitch_m=0.016e-9)
    result = classical(scan, no_resample=True)
    assert result.scan.shape == (256, 256)
    assert any("12.2x finer than the 0.1953 nm/px" in w for w in result.warnings)
    assert "at the file's own pixels" in result.scan.history[-1]


def test_cli_no_resample_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stm_zoo.__main__ import main

    source = save_scan(at_pitch(lattice((256, 256)), pitch_m=0.016e-9), tmp_path / "fine.gwy")
    code = main(["restore", str(source), "--model", "classical", "-o", str(tmp_path / "a")])
    printed = capsys.readouterr()
    assert code != 0 and "--no-resample" in printed.out + printed.err
    out = tmp_path / "b"
    code = main(["restore", str(source), "--model", "classical", "--no-resample", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "warning: processed at the file's own" in printed.out + printed.err
    (written,) = out.rglob("*.gwy")
    assert load_scan(written).shape == (256, 256)


# --- model outputs -------------------------------------------------------------------------


class NaNNet(nn.Module):
    """A network with broken weights: every output is NaN."""

    def forward(self, x: torch.Tensor | None, t: object, cond: torch.Tensor) -> torch.Tensor:
        return torch.full_like(cond, float("nan"))


def test_non_finite_model_output_is_refused() -> None:
    model = LoadedModel(
        EntryConfig("restore", "ae", "large", UNetConfig.autoencoder()),
        NaNNet(),
        "cpu",
        "float32",
        "x",
    )
    with pytest.raises(StmZooError, match="produced non-finite values.*weights"):
        restore(at_pitch(lattice((128, 128))), model=model)


# --- interfaces ----------------------------------------------------------------------------


def test_result_defaults_to_no_warnings_and_no_input() -> None:
    scan = at_pitch(lattice((32, 32)))
    made = RestoreResult(scan, None, None, 1.0, "restore/classical", RestoreOptions())
    assert made.warnings == [] and made.input is None


def test_format_si_prints_unitless_values_plainly() -> None:
    assert format_si(0.37, "") == "0.37"
    assert format_si(370.0, "") == "370"
    assert format_si(3.7e-10, "m") == "370 pm"
    assert format_si(12.0, "deg") == "12 deg"
    assert format_si(None, "") == "unknown"


def test_the_app_uses_the_same_limits_and_shows_the_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp.limits import AppLimits
    from webapp.models import ModelCache
    from webapp.restoring import RestoreRequest, describe_result, restore_upload

    monkeypatch.setenv("STM_ZOO_APP_TMP", str(tmp_path / "app"))
    data = lattice((128, 128))
    data.flat[np.random.default_rng(2).choice(data.size, 20, replace=False)] = np.nan
    source = tmp_path / "holes.npy"
    np.save(source, data.astype(np.float32))
    request = RestoreRequest(RestoreOptions(family="classical"))
    outcome = restore_upload([str(source)], request, ModelCache(), AppLimits())
    assert outcome.scan.shape == outcome.result.scan.shape == (128, 128)
    assert np.isfinite(outcome.scan.data).all()
    summary = describe_result(outcome)
    assert "inpainted 20 NaN/inf pixels" in summary and "carries no physical size" in summary
    fine = tmp_path / "fine.npy"
    np.save(fine, lattice((256, 256)).astype(np.float32))
    refused = RestoreRequest(RestoreOptions(family="classical"), scan_size_nm=4.0)  # 0.016 nm/px
    with pytest.raises(StmZooError, match=r"12.8x down.*--no-resample"):
        restore_upload([str(fine)], refused, ModelCache(), AppLimits())
    allowed = RestoreRequest(RestoreOptions(family="classical", no_resample=True), scan_size_nm=4.0)
    done = restore_upload([str(fine)], allowed, ModelCache(), AppLimits())
    assert done.result.scan.shape == (256, 256)
    assert AppLimits().max_model_pixels == limits.MAX_GRID_PIXELS

"""The warnings `restore` computes after a run (issue 15): scale, relief, the Si(001):H dimer-row
lattice of the input and of the output, and the share of uncertain pixels."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from stm_zoo import lattice
from stm_zoo.entry_format import EntryConfig
from stm_zoo.io import Scan, load_scan
from stm_zoo.limits import plan_grid
from stm_zoo.nn import UNetConfig
from stm_zoo.pipeline import RestoreResult, quality_warnings, restore
from stm_zoo.zoo import REPO_ZOO_DIR, LoadedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PITCH_NM = 100 / 512  # the models' pixel size
DOMAIN = "outside the model's training domain"


def waves(
    shape: tuple[int, int],
    period_nm: float,
    angles_deg: tuple[float, ...] = (0.0,),
    pitch_nm: float = PITCH_NM,
    amplitude_nm: float = 0.03,
    noise_nm: float = 0.005,
    line_nm: float | None = None,
) -> np.ndarray:
    """Heights in metres: cosines of `period_nm` with wave vectors at `angles_deg` from the fast
    axis (one angle: Si(001)-like rows; 0 and 90: two terraces; 0, 60, 120: hexagonal) plus
    white noise, sampled every `pitch_nm` along lines `line_nm` (default: `pitch_nm`) apart."""
    rng = np.random.default_rng(0)
    y = np.arange(shape[0])[:, None] * (line_nm or pitch_nm)
    x = np.arange(shape[1])[None, :] * pitch_nm
    heights = rng.normal(0.0, noise_nm, shape)
    for angle in np.radians(angles_deg):
        phase = 2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period_nm
        heights = heights + amplitude_nm * np.cos(phase)
    return heights * 1e-9


def at_pitch(
    heights_m: np.ndarray, pitch_nm: float = PITCH_NM, line_nm: float | None = None
) -> Scan:
    h, w = heights_m.shape
    size = (w * pitch_nm * 1e-9, h * (line_nm or pitch_nm) * 1e-9)
    return Scan(heights_m.astype(np.float32), scan_size_m=size)


def classical(scan: Scan | np.ndarray, **options) -> RestoreResult:
    return restore(scan, family="classical", **options)


def lattice_lines(result: RestoreResult) -> list[str]:
    return [w for w in result.warnings if "dimer-row" in w or "lattice" in w]


# --- quiet on Si(001)-like input -----------------------------------------------------------


@pytest.mark.parametrize("angles", [(0.0,), (90.0,), (0.0, 90.0), (45.0, 135.0), (20.0,)])
def test_si001_like_rows_are_recognised(angles: tuple[float, ...]) -> None:
    """Rows along either axis, on two terraces at right angles, or turned: no warning."""
    found = lattice.check_input(waves((256, 256), 0.77, angles), PITCH_NM)
    assert found.warning is None and len(found.rows) == len(angles)


@pytest.mark.parametrize("angles", [(0.0,), (45.0, 135.0)])
def test_si001_like_rows_restored_are_quiet(angles: tuple[float, ...]) -> None:
    assert classical(at_pitch(waves((256, 256), 0.77, angles))).warnings == []


def test_rows_exactly_along_the_fast_axis_lost_by_row_alignment_are_reported() -> None:
    """A true positive: the classical row alignment takes rows lying exactly along the scan
    lines for line offsets and levels them away."""
    (line,) = lattice_lines(classical(at_pitch(waves((256, 256), 0.77, (90.0,)))))
    assert "dimer-row peak at 90 deg (less than 80 %)" in line


def test_rows_with_a_small_calibration_error_are_quiet() -> None:
    assert classical(at_pitch(waves((256, 256), 0.77 * 1.08))).warnings == []


# --- outside the training domain -----------------------------------------------------------


def test_a_nearly_flat_input_is_reported() -> None:
    flat = np.random.default_rng(0).normal(0.0, 2e-12, (128, 128))  # 2 pm noise, no surface
    result = classical(at_pitch(flat))
    (line,) = [w for w in result.warnings if "nearly flat" in w]
    assert "under 20 pm" in line


def test_a_wrong_pixel_size_moves_the_rows_and_is_reported() -> None:
    """Rows drawn 4 px apart, as at the models' 0.195 nm/px, but in a file claiming 0.3 nm/px:
    they appear 1.2 nm apart."""
    rows = waves((256, 256), 4 * PITCH_NM)  # 0.78 nm at the true pitch
    result = classical(at_pitch(rows, pitch_nm=0.3))
    (line,) = lattice_lines(result)
    assert "repeats every 1.2 nm" in line and "not the 0.77 nm" in line and DOMAIN in line
    assert any(w.startswith("resampled 1.54x up") for w in result.warnings)


def test_a_lattice_of_another_period_is_reported() -> None:
    (line,) = lattice_lines(classical(at_pitch(waves((256, 256), 1.5))))
    assert "repeats every 1.5 nm" in line and DOMAIN in line


def test_a_random_smooth_surface_has_no_lattice() -> None:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    hills = ndi.gaussian_filter(rng.normal(0.0, 1.0, (256, 256)), 4.0)
    hills *= 0.3e-9 / hills.std()
    (line,) = lattice_lines(classical(at_pitch(hills)))
    assert "no periodic lattice" in line and DOMAIN in line


@pytest.mark.parametrize(
    ("period_nm", "expected"), [(0.77, "hexagonal"), (0.67, "0.67 nm"), (2.7, "2.7 nm")]
)
def test_a_si111_like_hexagonal_lattice_is_reported(period_nm: float, expected: str) -> None:
    """Three wave vectors 120 degrees apart: at the dimer-row period it is called hexagonal; at
    Si(111)'s 0.67 nm or the 7x7 cell's 2.7 nm it is a lattice of another period."""
    surface = waves((256, 256), period_nm, (0.0, 60.0, 120.0), amplitude_nm=0.02)
    (line,) = lattice_lines(classical(at_pitch(surface)))
    assert expected in line and DOMAIN in line


def test_pixels_too_coarse_for_the_rows_say_the_check_was_skipped() -> None:
    result = classical(at_pitch(waves((128, 128), 2.0, pitch_nm=0.5), pitch_nm=0.5))
    (line,) = lattice_lines(result)
    assert line.startswith("lattice check skipped: its 0.5 nm/px") and "under 0.344 nm/px" in line


def test_an_array_without_a_pixel_size_says_the_pitch_was_assumed() -> None:
    noise = np.random.default_rng(0).normal(0.0, 0.1e-9, (128, 128))
    (line,) = lattice_lines(classical(noise))
    assert line.endswith("(at the assumed 0.1953 nm/px)")


# --- super-resolution inputs ----------------------------------------------------------------


@pytest.mark.parametrize("task", ["sr2", "sr4"])
def test_sr_checks_the_rows_the_line_spacing_can_show(task: str) -> None:
    """Every k-th line of Si(001)-like rows: rows across the fast axis pass; rows along it cannot
    be seen at a line spacing of 0.78 nm (sr4), and the warning says what was looked at."""
    k = int(task[-1])
    across = waves((256 * k, 256), 0.77, (0.0,))[::k]
    assert classical(at_pitch(across, line_nm=k * PITCH_NM), task=task).warnings == []
    along = waves((256 * 4, 256), 0.77, (90.0,))[::4]
    (line,) = lattice_lines(classical(at_pitch(along, line_nm=4 * PITCH_NM), task="sr4"))
    assert "among the orientations its 0.781 nm line spacing can show" in line


# --- what the model did to the rows ---------------------------------------------------------


class BlurNet(nn.Module):
    """An 'autoencoder' that blurs its input over 5x5 px: the rows (4 px apart) fade away."""

    def forward(self, x: torch.Tensor | None, t: object, cond: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(cond, 5, stride=1, padding=2, count_include_pad=False)


def test_a_model_that_smooths_the_rows_away_gets_a_hallucination_hint() -> None:
    y, x = np.mgrid[:256, :256]
    hill = 0.3e-9 * np.exp(-((x - 128) ** 2 + (y - 128) ** 2) / (2 * 60.0**2))
    scan = at_pitch(waves((256, 256), 0.77) + hill)
    model = LoadedModel(
        EntryConfig("restore", "ae", "large", UNetConfig.autoencoder()),
        BlurNet(),
        "cpu",
        "float32",
        "x",
    )
    (line,) = lattice_lines(restore(scan, model=model))
    assert "dimer-row peak" in line and "(less than 80 %)" in line
    assert "invented or smoothed-away structure" in line


def test_moved_or_weakened_peaks_are_named_with_their_thresholds() -> None:
    rows = waves((256, 256), 0.77, (0.0, 90.0))
    found = lattice.check_input(rows, PITCH_NM)
    assert found.warning is None and len(found.rows) == 2
    assert lattice.compare_peaks(found.rows, rows.size, rows, PITCH_NM) is None
    denser = waves((256, 256), 0.77 / 1.08, (0.0, 90.0))
    assert "by 8 % in frequency (more than 5 %)" in lattice.compare_peaks(
        found.rows, rows.size, denser, PITCH_NM
    )
    weaker = waves((256, 256), 0.77, (0.0, 90.0), amplitude_nm=0.02, noise_nm=0.0)
    assert "kept only 44 %" in lattice.compare_peaks(found.rows, rows.size, weaker, PITCH_NM)
    # An SR output with twice the lines compares per pixel: the same rows, nothing lost.
    fine = waves((512, 256), 0.77, (0.0, 90.0), line_nm=PITCH_NM / 2)
    assert lattice.compare_peaks(found.rows, rows.size, fine, (PITCH_NM, PITCH_NM / 2)) is None


# --- uncertainty, scale, robustness, speed ---------------------------------------------------


def test_uncertain_pixels_are_counted_against_a_stated_threshold() -> None:
    scan = at_pitch(waves((128, 128), 0.77))
    result = scan.data.astype(np.float64)
    std = np.zeros_like(result)
    std[:32] = 0.2 * np.ptp(result)  # a quarter of the frame: samples disagree by 20 % of range
    plan = plan_grid(scan, PITCH_NM, 1)
    notes = quality_warnings(scan, result, std, plan, PITCH_NM, 1)
    (line,) = [n for n in notes if "uncertain" in n]
    assert line.startswith("25 % of the pixels are uncertain")
    assert "std across the samples above 10 % of the result's height range" in line


def test_a_moderate_resampling_is_reported_once() -> None:
    result = classical(at_pitch(waves((200, 200), 0.77, pitch_nm=0.25), pitch_nm=0.25))
    assert [w for w in result.warnings if "resampled" in w] == [
        "resampled 1.28x up (0.25 x 0.25 nm/px to the model's 0.1953 nm/px) and back"
    ]
    far = classical(at_pitch(waves((100, 100), 0.77, pitch_nm=0.3), pitch_nm=0.6))
    assert len([w for w in far.warnings if "resampled" in w]) == 1


def test_a_check_that_fails_says_so_instead_of_failing_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args, **kwargs):
        raise ValueError("no spectrum today")

    monkeypatch.setattr(lattice, "check_input", broken)
    result = classical(at_pitch(waves((128, 128), 0.77)))
    assert result.warnings == ["the lattice check could not run (ValueError: no spectrum today)"]


def test_the_checks_cost_well_under_a_tenth_of_a_second_on_512x512() -> None:
    scan = at_pitch(waves((512, 512), 0.77, (0.0, 90.0)))
    plan = plan_grid(scan, PITCH_NM, 1)
    quality_warnings(scan, scan.data, None, plan, PITCH_NM, 1)  # warm the frequency grid
    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        assert quality_warnings(scan, scan.data, None, plan, PITCH_NM, 1) == []
        seconds.append(time.perf_counter() - started)
    assert min(seconds) < 0.1, seconds


# --- real scans ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_scan(shared_data):
    from evaluation.reference import load_reference

    return load_reference(shared_data / "si001h-reference" / "brockley_23_2_forward.npy")


def test_the_real_si001h_reference_is_quiet_with_classical(reference_scan) -> None:
    assert classical(reference_scan).warnings == []


def test_the_real_si001h_reference_is_quiet_with_the_bundled_fm_model(reference_scan) -> None:
    if not (REPO_ZOO_DIR / "restore/fm-small/model.safetensors").is_file():
        pytest.skip("restore/fm-small is not in the bundled zoo")
    result = restore(reference_scan, family="fm", size="small", steps=2, seed=0, device="cpu")
    assert result.warnings == []


def test_several_samples_report_their_uncertain_pixels() -> None:
    if not (REPO_ZOO_DIR / "restore/fm-small/model.safetensors").is_file():
        pytest.skip("restore/fm-small is not in the bundled zoo")
    scan = at_pitch(waves((128, 128), 0.77))
    result = restore(scan, family="fm", size="small", steps=2, seed=0, samples=2, device="cpu")
    assert any("% of the pixels are uncertain" in w for w in result.warnings), result.warnings


@pytest.mark.parametrize("name", ["Si_7x7_028.sxm", "Si_7x7_012.sxm"])
def test_real_si111_7x7_scans_fire_the_lattice_warning(fixtures_dir, name: str) -> None:
    """028 (50 nm at 0.195 nm/px) shows a hexagonal lattice; 012 (200 nm at 0.78 nm/px) is too
    coarse to show any dimer rows."""
    result = classical(load_scan(fixtures_dir / "nanonis" / name))
    (line,) = lattice_lines(result)
    assert ("hexagonal" in line and DOMAIN in line) or "too coarse to show" in line

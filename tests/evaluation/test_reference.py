"""Do no harm on the real near-pristine Si(001):H scan (skips without ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import reference
from stm_zoo.zoo import REPO_ZOO_DIR as REPO_ZOO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_checks_score_an_unchanged_image_as_perfect_and_a_blurred_one_lower() -> None:
    y, x = np.mgrid[:256, :256]
    image = np.sin(2 * np.pi * (x + y) / (0.768 / 0.1953125 * np.sqrt(2)))
    image += np.random.default_rng(0).normal(0, 0.1, image.shape)
    same = reference.check_output("e", 2, image, 3 * image + 1, 0.1953125)
    assert same.psnr_db > 100 and same.peak_shift == pytest.approx(0, abs=1e-6)
    assert same.peak_power == pytest.approx(1, abs=1e-3) and same.passed
    blurred = (image + np.roll(image, 1, 0) + np.roll(image, 1, 1) + np.roll(image, 2, 1)) / 4
    worse = reference.check_output("e", 2, image, blurred, 0.1953125)
    assert worse.psnr_db < 30 and worse.peak_power < 0.8 and not worse.passed


def two_domains(first: float, second: float, period_px: float = 5.4) -> np.ndarray:
    """Rows at +45 and -45 degrees with the given amplitudes, like the reference's two terraces."""
    y, x = np.mgrid[:256, :256]
    k = 2 * np.pi / (period_px * np.sqrt(2))
    return first * np.sin(k * (x + y)) + second * np.sin(k * (x - y))


def test_peaks_are_followed_by_orientation_not_by_rank() -> None:
    """Two domains of nearly equal power: an output that swaps which one is stronger has moved
    nothing, while one whose rows are 10 % denser has."""
    image = two_domains(1.0, 0.95)
    swapped = reference.check_output("e", 2, image, two_domains(0.95, 1.0), 0.1953125)
    assert swapped.peak_shift == pytest.approx(0, abs=1e-3) and swapped.peak_power > 0.85
    denser = reference.check_output("e", 2, image, two_domains(1.0, 0.95, 5.4 / 1.1), 0.1953125)
    assert denser.peak_shift > 0.05 and not denser.passed


@pytest.fixture(scope="module")
def reference_path(shared_data):
    return shared_data / "si001h-reference" / "brockley_23_2_forward.npy"


def test_classical_does_no_harm(reference_path) -> None:
    assert reference.check_model("classical", "small", 1, reference_path).passed


@pytest.mark.parametrize("family", ["fm", "ddim"])
def test_bundled_restore_models_do_no_harm(reference_path, family: str) -> None:
    """The zoo's acceptance check (issue 12 names restore/fm-small; the DDIM entry is held to the
    same): PSNR >= 33 dB against itself after the best affine map, every dimer-row peak within
    5 % in position and >= 80 % in power, at 2 steps."""
    if not (REPO_ZOO / f"restore/{family}-small/model.safetensors").is_file():
        pytest.skip(f"restore/{family}-small is not in the bundled zoo")
    check = reference.check_model(family, "small", 2, reference_path)
    assert check.psnr_db >= reference.MIN_PSNR_DB, check
    assert check.peak_shift <= reference.MAX_PEAK_SHIFT, check
    assert check.peak_power >= reference.MIN_PEAK_POWER, check

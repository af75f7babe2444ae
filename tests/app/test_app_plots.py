"""Pictures a microscopist reads: colour bars in physical units, power spectra, line profiles."""

from __future__ import annotations

import numpy as np
import pytest

from stm_zoo.errors import StmZooError
from stm_zoo.io import Scan
from webapp import plots, previews


def lattice(shape: tuple[int, int] = (64, 96), period_px: float = 8.0) -> np.ndarray:
    """Heights in metres: a +-150 pm corrugation along x with `period_px`, no tilt."""
    xx = np.arange(shape[1])[None, :].repeat(shape[0], axis=0)
    return 150e-12 * np.cos(2 * np.pi * xx / period_px)


# --- colour bars ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value_range", "unit", "labels"),
    [
        ((-210e-12, 160e-12), "m", ["\u2212200 pm", "\u2212100 pm", "0 pm", "100 pm"]),
        ((0.0, 3.2e-9), "m", ["0 nm", "1 nm", "2 nm", "3 nm"]),
        ((95e-12, 131e-12), "A", ["100 pA", "110 pA", "120 pA", "130 pA"]),
        ((0.1, 0.85), "", ["0.2", "0.4", "0.6", "0.8"]),
    ],
)
def test_colour_bar_ticks_read_in_the_unit_the_range_calls_for(
    value_range: tuple[float, float], unit: str, labels: list[str]
):
    ticks = previews.colour_bar_ticks(value_range, unit, max_ticks=6)
    assert [label for _, label in ticks] == labels
    factor = 1e-9 if labels[0].endswith("nm") else 1e-12 if unit else 1.0
    for value, label in ticks:
        shown = float(label.split()[0].replace("\u2212", "-"))
        assert value == pytest.approx(shown * factor)
        assert value_range[0] <= value <= value_range[1]


def test_display_unit_picks_the_prefix_by_span():
    assert previews.display_unit(300e-12, "m") == (1e-12, "pm")
    assert previews.display_unit(2e-9, "m") == (1e-9, "nm")
    assert previews.display_unit(1.5e-6, "m") == (1e-6, "µm")
    assert previews.display_unit(40e-12, "A") == (1e-12, "pA")
    assert previews.display_unit(2e-9, "A") == (1e-9, "nA")
    assert previews.display_unit(0.3, "") == (1.0, "")  # never "300 m" of nothing
    assert previews.display_unit(0.0, "m") == (1.0, "m")


def test_the_colour_bar_is_a_strip_on_the_right_running_low_to_high():
    data = np.linspace(-1e-10, 1e-10, 64 * 64).reshape(64, 64)
    image = previews.render(data, (20e-9, 20e-9), "grey", (256, 256), scale_bar=False, level=False)
    barred = previews.render(
        data, (20e-9, 20e-9), "grey", (256, 256), scale_bar=False, level=False, colour_bar_unit="m"
    )
    assert barred.shape[0] == 256 and barred.shape[1] > 256
    assert np.array_equal(barred[:, :256], image)
    strip = barred[:, 256:].astype(int)
    # The bar's column: greys from white (high) at the top to black (low) at the bottom.
    column = strip[:, 15, 0]
    top, bottom = column[20], column[-20]
    assert top > 200 and bottom < 55


def test_input_and_result_share_one_colour_range_and_the_uncertainty_has_its_own():
    scan = Scan(lattice(), scan_size_m=(12e-9, 8e-9))
    result = scan.replace(data=scan.data * 0.5)
    views = previews.render_views(scan, result, np.full(scan.shape, 5e-12), "gold")
    # The input's +-150 pm, not the result's +-75 pm alone.
    lo, hi = views.value_range
    assert lo == pytest.approx(-150e-12, rel=0.05) and hi == pytest.approx(150e-12, rel=0.05)
    # The same range and unit: the same colour bar, so the two images have the same width.
    assert views.before.shape == views.after.shape
    assert np.array_equal(views.before[:, 512:], views.after[:, 512:])
    assert not np.array_equal(views.before[:, 512:], views.uncertainty[:, 512:])


def test_current_is_shown_as_measured_and_heights_are_levelled():
    tilt = np.tile(np.arange(32, dtype=float), (32, 1))
    current = Scan(100e-12 + 1e-12 * tilt, unit="A", channel="Current")
    height = Scan(1e-10 * tilt)
    assert previews.display_values(current).min() == pytest.approx(100e-12, rel=1e-5)
    assert np.abs(previews.display_values(height)).max() < 1e-15


def test_a_micrometre_scale_bar_is_drawn_with_a_real_mu():
    # Pillow's built-in font draws µ as an empty box; the DejaVu font draws the letter.
    font = previews.font(20)
    assert font.getmask("µ").getbbox() != font.getmask("\uffff").getbbox()


# --- power spectra --------------------------------------------------------------------------


def test_power_spectrum_is_centred_with_the_lattice_peak_at_one_over_its_period():
    # 8 px over 12 nm / 96 px: a period of 1 nm, so peaks at kx = +-1 nm^-1.
    spectrum = plots.power_spectrum(lattice((64, 96)), (12e-9, 8e-9))
    assert spectrum.log_power.shape == (64, 96)
    assert spectrum.kx_per_nm.shape == (96,) and spectrum.ky_per_nm.shape == (64,)
    assert spectrum.kx_per_nm[48] == 0 and spectrum.ky_per_nm[32] == 0
    assert spectrum.kx_per_nm[-1] < -spectrum.kx_per_nm[0]  # even count: -Nyquist included
    row, col = np.unravel_index(np.argmax(spectrum.log_power), spectrum.log_power.shape)
    assert row == 32 and abs(spectrum.kx_per_nm[col]) == pytest.approx(1.0)


def test_render_spectra_draws_one_or_two_panels():
    scan = Scan(lattice(), scan_size_m=(12e-9, 8e-9))
    one = plots.render_spectra(scan)
    two = plots.render_spectra(scan, scan.replace(data=np.repeat(scan.data, 2, axis=0)), "grey")
    assert one.dtype == two.dtype == np.uint8 and one.shape[2] == two.shape[2] == 3
    assert one.shape[0] == two.shape[0] and two.shape[1] > one.shape[1]


# --- line profiles --------------------------------------------------------------------------


def test_profile_values_are_the_data_row_in_physical_units():
    rng = np.random.default_rng(0)
    current = Scan(rng.uniform(50e-12, 150e-12, (20, 40)), unit="A", scan_size_m=(8e-9, 4e-9))
    row = plots.line_profile(current, "row", 7)
    np.testing.assert_allclose(row.values, current.data[7])
    assert row.unit == "A" and not row.levelled
    # Pixel centres along the row: 8 nm / 40 px = 0.2 nm pitch.
    np.testing.assert_allclose(row.position_nm, 0.1 + 0.2 * np.arange(40))
    column = plots.line_profile(current, "column", 39)
    np.testing.assert_allclose(column.values, current.data[:, 39])
    np.testing.assert_allclose(column.position_nm, 0.1 + 0.2 * np.arange(20))


def test_height_profiles_are_levelled_like_the_previews():
    scan = Scan(lattice() + 2e-9, scan_size_m=(12e-9, 8e-9))  # an offset the plane removes
    profile = plots.line_profile(scan, "row", 5)
    assert profile.levelled and profile.unit == "m"
    np.testing.assert_allclose(profile.values, previews.remove_plane(scan.data)[5])
    assert abs(profile.values.mean()) < 10e-12  # the 2 nm offset is gone


def test_profile_lines_outside_the_image_are_refused():
    scan = Scan(lattice())
    with pytest.raises(StmZooError, match="between 0 and 63"):
        plots.line_profile(scan, "row", 64)
    with pytest.raises(StmZooError, match="row or a column"):
        plots.line_count(scan, "diagonal")


@pytest.mark.parametrize(("index", "expected"), [(0, 0), (1, 0), (2, 1), (127, 63)])
def test_an_sr_input_line_matches_the_result_line_at_the_same_place(index: int, expected: int):
    assert plots.matching_line(index, 128, 64) == expected


def test_render_profile_draws_input_and_result():
    scan = Scan(lattice(), scan_size_m=(12e-9, 8e-9))
    result = scan.replace(data=np.repeat(scan.data, 2, axis=0))
    rgb = plots.render_profile(scan, result, "row", 127)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[1] >= 900
    assert plots.render_profile(scan, None, "column", 10).shape == rgb.shape

"""Figures for the web app beside the previews: power spectra and line profiles, for display only.

Both compare an input with its result in physical units. Spectra are 2-D power spectral
densities (plane removed, Hann window, centred, log scale) over spatial frequencies 1/λ in nm⁻¹,
drawn in the image's orientation with k_y pointing up, on one colour scale for both. Profiles are
one row or column of each image, levelled as the previews are (`webapp.previews.display_values`),
against the distance along the line in nm. Figures are drawn with matplotlib's Agg canvas (no
pyplot state, so safe in gradio's worker threads) and returned as uint8 RGB arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.io.scan import Scan
from webapp.previews import (
    LEVELLED_UNITS,
    colour_table,
    display_unit,
    display_values,
    remove_plane,
    robust_range,
)

PROFILE_AXES = ("row", "column")
INPUT_COLOUR, RESULT_COLOUR, MARKER_COLOUR = "#4a4a4a", "#d9480f", "#00d5ff"
# The page shows figures about 3/4 of their size: 130 dpi keeps the text readable there.
_DPI = 130
_BADGE_PX = 44  # rows left blank above a figure, under the gr.Image label badge


@dataclass
class Spectrum:
    """A centred power spectrum: zero frequency at [H // 2, W // 2].

    Attributes:
        log_power: (H, W) log10 of the power spectral density (arbitrary but common units: the
            same surface sampled at different pixel sizes gives the same values).
        kx_per_nm: (W,) spatial frequencies 1/λ along a row, in nm⁻¹, increasing.
        ky_per_nm: (H,) spatial frequencies down a column (row 0 to the last), in nm⁻¹.
    """

    log_power: np.ndarray
    kx_per_nm: np.ndarray
    ky_per_nm: np.ndarray


def power_spectrum(data: np.ndarray, scan_size_m: tuple[float, float]) -> Spectrum:
    """The 2-D power spectrum of `data` (H, W) over a frame `scan_size_m` (width, height).

    The plane is removed and a Hann window applied (so that the frame's edges add no streaks);
    NaN pixels count as the mean.
    """
    h, w = data.shape
    dx_nm, dy_nm = scan_size_m[0] * 1e9 / w, scan_size_m[1] * 1e9 / h
    values = remove_plane(data)
    values = np.nan_to_num(values - np.nanmean(values) if np.isfinite(values).any() else values)
    window = np.outer(np.hanning(h), np.hanning(w)) if min(h, w) > 2 else np.ones((h, w))
    spectrum = np.fft.fftshift(np.fft.fft2(values * window))
    psd = np.abs(spectrum) ** 2 * dx_nm * dy_nm / max(float(np.sum(window**2)), 1e-300)
    floor = max(float(psd.max()) * 1e-12, 1e-300)
    return Spectrum(
        log_power=np.log10(psd + floor),
        kx_per_nm=np.fft.fftshift(np.fft.fftfreq(w, d=dx_nm)),
        ky_per_nm=np.fft.fftshift(np.fft.fftfreq(h, d=dy_nm)),
    )


@dataclass
class Profile:
    """One row or column of an image in physical units.

    Attributes:
        position_nm: (N,) distance of each pixel centre from the line's start, in nm.
        values: (N,) in the scan's SI unit, levelled when the previews level it.
        unit: that unit ("m", "A", "" for plain numbers).
        levelled: whether the plane was removed.
    """

    position_nm: np.ndarray
    values: np.ndarray
    unit: str
    levelled: bool


def line_count(scan: Scan, axis: str) -> int:
    """How many rows ("row") or columns ("column") `scan` has."""
    if axis not in PROFILE_AXES:
        raise StmZooError(f"A profile runs along a row or a column, not {axis!r}.")
    return scan.shape[0] if axis == "row" else scan.shape[1]


def matching_line(index: int, lines_from: int, lines_to: int) -> int:
    """The line of an image with `lines_to` lines at the position of line `index` of one with
    `lines_from` lines over the same frame (an SR input has fewer lines than its result)."""
    return min(lines_to - 1, int((index + 0.5) * lines_to / lines_from))


def line_profile(scan: Scan, axis: str, index: int) -> Profile:
    """Row or column `index` (0 = top row / left column) of `scan` as the previews show it.

    Raises:
        StmZooError: when `index` is outside the image.
    """
    lines = line_count(scan, axis)
    if not 0 <= index < lines:
        raise StmZooError(f"Choose a {axis} between 0 and {lines - 1}, not {index}.")
    values = display_values(scan)
    line = values[index] if axis == "row" else values[:, index]
    pitch_m = scan.pixel_size_m[0] if axis == "row" else scan.pixel_size_m[1]
    position_nm = (np.arange(line.size) + 0.5) * pitch_m * 1e9
    return Profile(position_nm, line, scan.unit, scan.unit in LEVELLED_UNITS)


def _figure(width_px: int, height_px: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size_in = (width_px / _DPI, height_px / _DPI)
    figure = Figure(figsize=size_in, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _pixels(figure: Any) -> np.ndarray:
    """The drawn figure as uint8 RGB, below a blank band where the page's label badge sits."""
    figure.canvas.draw()
    rgb = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    band = np.full((_BADGE_PX, rgb.shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([band, rgb])


def _colour_map(name: str) -> Any:
    from matplotlib.colors import ListedColormap

    return ListedColormap(colour_table(name) / 255.0, name=name)


def render_spectra(scan: Scan, result: Scan | None = None, colour_map: str = "gold") -> np.ndarray:
    """Power spectra of the input and (when given) the result side by side, one colour scale.

    Returns:
        (H, W, 3) uint8 RGB, 1020 x 494 px for two panels.
    """
    panels = [("Input", scan)] + ([] if result is None else [("Result", result)])
    spectra = [power_spectrum(s.data, s.scan_size_m) for _, s in panels]
    pooled = np.concatenate([s.log_power.ravel() for s in spectra])
    # The lowest percentiles are the window's near-zeros: start the scale at the median.
    vmin, vmax = np.percentile(pooled, [50, 99.95])
    figure = _figure(460 * len(panels) + 100, 450)
    axes = figure.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    for ax, (title, _), spectrum in zip(axes, panels, spectra, strict=True):
        kx, ky = spectrum.kx_per_nm, spectrum.ky_per_nm
        dkx = kx[1] - kx[0] if kx.size > 1 else 1.0
        dky = ky[1] - ky[0] if ky.size > 1 else 1.0
        # Row 0 at the top, as in the image; k_y counted upwards, so the top row is -ky[0].
        extent = (kx[0] - dkx / 2, kx[-1] + dkx / 2, -ky[-1] - dky / 2, -ky[0] + dky / 2)
        image = ax.imshow(
            spectrum.log_power,
            extent=extent,
            cmap=_colour_map(colour_map),
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
        )
        ax.set_title(title)
        ax.set_xlabel(r"$k_x$ = 1/λ (nm$^{-1}$)")
    axes[0].set_ylabel(r"$k_y$ = 1/λ (nm$^{-1}$)")
    figure.colorbar(
        image, ax=list(axes), label=r"log$_{10}$ power spectral density (arb. units)", shrink=0.9
    )
    return _pixels(figure)


def _axis_label(scan: Scan, unit_label: str, levelled: bool) -> str:
    name = "height" if scan.unit == "m" else (scan.channel or "value")
    text = f"{name} ({unit_label})" if unit_label else f"{name} (no unit)"
    return f"{text}, plane removed" if levelled else text


def render_profile(
    scan: Scan, result: Scan | None, axis: str, index: int, colour_map: str = "gold"
) -> np.ndarray:
    """Line profiles of the input and the result along one row or column, with a map of where.

    Args:
        scan: the input; result: the restored scan or None (input only).
        axis: "row" or "column"; index: the line in the shown image (the result when given,
            else the input); the input's line at the same place is taken when it has fewer.

    Returns:
        (H, W, 3) uint8 RGB, 1000 x 384 px.
    """
    shown = result if result is not None else scan
    profiles = [("Input", INPUT_COLOUR, scan)] + (
        [] if result is None else [("Result", RESULT_COLOUR, result)]
    )
    lines = line_count(shown, axis)
    drawn = [
        (
            label,
            colour,
            line_profile(source, axis, matching_line(index, lines, line_count(source, axis))),
        )
        for label, colour, source in profiles
    ]
    pooled = np.concatenate([p.values for *_, p in drawn])
    finite = pooled[np.isfinite(pooled)]
    span = float(np.ptp(finite)) if finite.size else 0.0
    factor, unit_label = display_unit(span, shown.unit)

    figure = _figure(1000, 340)
    plot, where = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3.2, 1]})
    for label, colour, profile in drawn:
        width = 1.2 if label == "Input" else 1.6
        plot.plot(profile.position_nm, profile.values / factor, color=colour, lw=width, label=label)
    plot.set_xlabel(f"distance along the {axis} (nm)")
    plot.set_ylabel(_axis_label(shown, unit_label, drawn[-1][2].levelled))
    plot.grid(alpha=0.3)
    plot.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=2, frameon=False)
    plot.margins(x=0)

    width_nm, height_nm = (s * 1e9 for s in shown.scan_size_m)
    pitch_nm = (height_nm if axis == "row" else width_nm) / lines
    place_nm = (index + 0.5) * pitch_nm
    side = "top" if axis == "row" else "left"
    plot.set_title(
        f"{axis.capitalize()} {index} of {lines} ({place_nm:.3g} nm from the {side})",
        fontsize="medium",
        loc="left",
    )
    lo, hi = robust_range(display_values(shown))
    where.imshow(
        display_values(shown),
        extent=(0, width_nm, height_nm, 0),
        cmap=_colour_map(colour_map),
        vmin=lo,
        vmax=hi,
        interpolation="nearest",
    )
    marker = where.axhline if axis == "row" else where.axvline
    marker(place_nm, color=MARKER_COLOUR, lw=1.5)
    where.set_xlabel("x (nm)")
    where.set_ylabel("y (nm)")
    where.set_title(f"{'Result' if result is not None else 'Input'}: the line", fontsize="medium")
    return _pixels(figure)

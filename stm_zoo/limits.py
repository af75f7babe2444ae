"""What the restore path refuses, repairs and warns about: one set of limits for every interface.

`stm_zoo.pipeline.restore` applies these for the Python API, `python -m stm_zoo restore` and
the web app (which may pass tighter caps of its own), before anything large is allocated:

- input size (`MAX_INPUT_PIXELS`) and the size of the grid the model runs on, after resampling
  to the model's pixel size and the k-fold line up-sampling of SR (`MAX_GRID_PIXELS`);
- the resampling factor: more than `MAX_DOWNSAMPLING` x down or `MAX_UPSAMPLING` x up means the
  model would see features at a scale it never saw in training;
- the smallest frame: fewer than `MIN_FRAME_PX` pixels a side on the model grid;
- bad input pixels: scattered NaN / inf and glitches (`stm_zoo.bad_pixels.glitch_mask`) are
  inpainted and counted; lines that are mostly unusable (an unfinished scan) are cut off;
- flat channels (a constant-height scan's Z): refused, naming the file's channels with signal;
- model outputs that are not finite (broken weights).

What is repaired or unusual goes into warnings that `restore` returns with its `RestoreResult`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.io.scan import KEPT_ROWS, Scan, longest_run

MAX_INPUT_PIXELS = 4096 * 4096
MAX_GRID_PIXELS = 4096 * 4096
MAX_DOWNSAMPLING = 4.0
MAX_UPSAMPLING = 8.0
NOTE_RESAMPLING = 1.05
"""Resampling by more than this (either way) is reported in the warnings."""
MIN_FRAME_PX = 32
BAD_LINE_FRACTION = 0.5
"""A line with more than this fraction of unusable pixels is incomplete: cut, not inpainted."""
FLAT_RELATIVE = 1e-6
FLAT_HEIGHT_M = 1e-12
SCALE_HINT = (
    "crop a smaller area, process the file's own pixels (--no-resample; in the app \"Use the "
    "file's own pixels\"; no_resample=True in Python), or use a model trained at that pixel size"
)


def check_pixels(
    name: str,
    shape: tuple[int, int],
    max_pixels: int = MAX_INPUT_PIXELS,
    what: str = "is",
    remedy: str = "crop or bin it first (e.g. in Gwyddion)",
) -> None:
    """Refuse an image of `shape` (H, W) above `max_pixels` with a one-sentence message."""
    h, w = shape
    if h * w > max_pixels:
        side = math.isqrt(max_pixels)
        raise StmZooError(
            f"{name} {what} {h:,} x {w:,} px ({h * w:,} px), more than the {max_pixels:,} px "
            f"(about {side} x {side}) that can be processed: {remedy}."
        )


def model_grid(scan: Scan, model_pixel_nm: float, factor: int) -> tuple[int, int]:
    """(lines, pixels) of the input resampled to the model's pixel size (lines at k x spacing).

    Only arithmetic on the header: nothing is allocated, so it is safe on any claimed size.
    """
    px_x_nm, px_y_nm = (p * 1e9 for p in scan.pixel_size_m)
    h, w = scan.shape
    width = max(1, int(round(w * px_x_nm / model_pixel_nm)))
    lines = max(1, int(round(h * px_y_nm / (model_pixel_nm * factor))))
    return lines, width


@dataclass(frozen=True)
class GridPlan:
    """Where the model runs: the checked grid and how it relates to the scan's pixels.

    Attributes:
        shape: (lines, pixels) the scan is resampled to, before the k-fold line up-sampling of SR.
        scale: (x, y) model-grid pixels per scan pixel (> 1: enlarged, < 1: shrunk).
        warnings: what the user should know about the scale (resampling factor, own pixels).
    """

    shape: tuple[int, int]
    scale: tuple[float, float]
    warnings: tuple[str, ...] = ()


def plan_grid(
    scan: Scan,
    model_pixel_nm: float,
    factor: int = 1,
    *,
    no_resample: bool = False,
    max_grid_pixels: int = MAX_GRID_PIXELS,
) -> GridPlan:
    """Check the grid a model will run on before any of it is allocated.

    Args:
        scan: the input (only its shape and physical size are used).
        model_pixel_nm: the pixel size the model was trained at.
        factor: lines added per input line (1 restore, 2 / 4 super-resolution).
        no_resample: run at the scan's own pixels (the scale limits do not apply; a warning
            says how far they are from the model's).
        max_grid_pixels: most pixels of the model grid, lines x k x pixels.

    Raises:
        StmZooError: a grid too large, a resampling factor beyond the limits, a frame too small
            for the model, or a physical size that is not a positive number.
    """
    name = scan.describe()
    h, w = scan.shape
    px_x_nm, px_y_nm = (p * 1e9 for p in scan.pixel_size_m)
    sized = all(math.isfinite(p) and p > 0 for p in (px_x_nm, px_y_nm))
    warnings: list[str] = []
    if no_resample:
        shape = (h, w)
        if sized:
            ratios = (px_x_nm / model_pixel_nm, px_y_nm / (model_pixel_nm * factor))
            ratio = max(ratios, key=lambda r: max(r, 1 / r))
            if max(ratio, 1 / ratio) > NOTE_RESAMPLING:
                warnings.append(
                    f"processed at the file's own {px_x_nm:.4g} x {px_y_nm:.4g} nm/px, "
                    f"{ratio if ratio > 1 else 1 / ratio:.3g}x "
                    f"{'coarser' if ratio > 1 else 'finer'} than the {model_pixel_nm:.4g} nm/px "
                    "the model was trained at: features appear at a scale it never saw"
                )
    else:
        if not sized:
            raise StmZooError(
                f"{name} has no usable physical size ({px_x_nm:.4g} x {px_y_nm:.4g} nm/px): give "
                'the scan width (--scan-size-nm; in the app "Scan width in nm") or process its '
                'own pixels (--no-resample; in the app "Use the file\'s own pixels").'
            )
        shape = model_grid(scan, model_pixel_nm, factor)
    lines, width = shape
    grid = lines * factor * width
    where = "at its own pixels" if no_resample else f"at the model's {model_pixel_nm:.4g} nm/px"
    if grid > max_grid_pixels:
        raise StmZooError(
            f"{name} becomes {lines * factor:,} x {width:,} px ({grid:,} px) {where}, more than "
            f"the {max_grid_pixels:,} px a model runs on here: {SCALE_HINT}."
        )
    scale = (width / w, lines * factor / (h * factor))
    if not no_resample:
        for axis, s in zip("xy", scale, strict=True):
            if s < 1 / MAX_DOWNSAMPLING or s > MAX_UPSAMPLING:
                size = scan.scan_size_m[0 if axis == "x" else 1] * 1e9
                pitch = (px_x_nm, px_y_nm)[0 if axis == "x" else 1]
                change = f"{1 / s:.1f}x down" if s < 1 else f"{s:.1f}x up"
                raise StmZooError(
                    f"{name} ({size:.4g} nm over {w if axis == 'x' else h} px, {pitch:.4g} nm/px "
                    f"along {axis}) would be resampled {change} to the model's "
                    f"{model_pixel_nm:.4g} nm/px, beyond the {MAX_DOWNSAMPLING:g}x down / "
                    f"{MAX_UPSAMPLING:g}x up a result can mean anything at: {SCALE_HINT}."
                )
        worst = min(scale, key=lambda s: min(s, 1 / s))
        if max(worst, 1 / worst) > NOTE_RESAMPLING:
            change = f"{1 / worst:.3g}x down" if worst < 1 else f"{worst:.3g}x up"
            warnings.append(
                f"resampled {change} ({px_x_nm:.4g} x {px_y_nm:.4g} nm/px to the model's "
                f"{model_pixel_nm:.4g} nm/px) and back"
            )
    if min(lines * factor, width) < MIN_FRAME_PX:
        raise StmZooError(
            f"{name} is only {lines * factor} x {width} px {where}, fewer than the "
            f"{MIN_FRAME_PX} px a side a model needs to see any structure: restore a larger "
            "frame" + ("" if no_resample else " or process its own pixels (--no-resample)") + "."
        )
    return GridPlan(shape, scale, tuple(warnings))


@dataclass
class RepairedInput:
    """A scan with its unusable pixels dealt with, and what was done.

    Attributes:
        scan: complete lines only (an unfinished scan's lines are cut off, as `Scan.crop_valid`
            does), non-finite and glitch pixels inpainted; the same object as the input when
            nothing needed repair.
        warnings: one sentence per repair (lines cut, pixels inpainted, glitches masked).
    """

    scan: Scan
    warnings: list[str] = field(default_factory=list)


def repair_input(scan: Scan) -> RepairedInput:
    """Cut incomplete lines and inpaint scattered NaN / inf pixels and glitches.

    Lines with more than `BAD_LINE_FRACTION` unusable pixels are incomplete (an aborted scan):
    the longest run of the other lines is kept, as before. What remains unusable inside it
    (scattered NaN, inf, absurd or isolated huge values; see `stm_zoo.bad_pixels.glitch_mask`)
    is filled from its neighbours (`stm_zoo.bad_pixels.inpaint`) and reported.

    Raises:
        StmZooError: when no line is usable.
    """
    from stm_zoo.bad_pixels import glitch_mask, inpaint

    data = scan.data
    bad = glitch_mask(data)
    if not bad.any():
        return RepairedInput(scan)
    h, w = data.shape
    good_lines = bad.mean(axis=1) <= BAD_LINE_FRACTION
    if not good_lines.any():
        raise StmZooError(
            f"{scan.describe()} holds no usable scan line (all NaN, inf or glitches): check the "
            "file in its instrument software, or pick another channel (--channel, or the app's "
            "Channel picker)."
        )
    start, stop = longest_run(good_lines)
    warnings = []
    if (start, stop) != (0, h):
        warnings.append(
            f"kept lines {start}..{stop - 1} of {h}: the others are incomplete (an unfinished or "
            "interrupted scan)"
        )
        scan = scan.replace(
            data=data[start:stop],
            scan_size_m=(scan.scan_size_m[0], scan.scan_size_m[1] * (stop - start) / h),
        )
        scan.history.append(f"crop_valid: kept rows {start}..{stop - 1}")
        scan.metadata[KEPT_ROWS] = (start, stop, h)
        bad = bad[start:stop]
    if bad.any():
        values = data[start:stop][bad].astype(np.float64)
        nonfinite = int((~np.isfinite(values)).sum())
        glitches = values[np.isfinite(values)]
        repaired = scan.replace(data=inpaint(scan.data, bad).astype(np.float32))
        share = 100.0 * bad.sum() / bad.size
        parts = []
        if nonfinite:
            parts.append(f"{nonfinite} NaN/inf pixels")
        if glitches.size:
            from stm_zoo.io.cli_info import format_si

            extreme = glitches[np.argmax(np.abs(glitches))]
            parts.append(
                f"{glitches.size} glitch values (up to {format_si(float(extreme), scan.unit)}, "
                "far outside the frame's spread)"
            )
        done = f"inpainted {' and '.join(parts)} ({share:.2g} % of the frame) from their neighbours"
        warnings.append(done)
        repaired.history.append(f"stm-zoo repair: {done}")
        scan = repaired
    return RepairedInput(scan, warnings)


def is_flat(data: np.ndarray, unit: str) -> bool:
    """True for a constant or near-constant channel (e.g. Z of a constant-height scan).

    Near-constant: 99 % of the finite values lie within a span of `FLAT_RELATIVE` times their
    magnitude (a few float32 steps), or, for heights in metres, within `FLAT_HEIGHT_M` (no
    topography is 1 pm tall).
    """
    finite = np.asarray(data, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return True
    low, high = np.percentile(finite, [0.5, 99.5])
    span = high - low
    return bool(
        span <= FLAT_RELATIVE * max(abs(low), abs(high)) or (unit == "m" and span < FLAT_HEIGHT_M)
    )


def signal_channels(scan: Scan) -> list[str]:
    """The names of the other channels of the scan's file that are not flat (best effort)."""
    if scan.source is None:
        return []
    from stm_zoo.io import list_channels, load_scans

    try:
        channels = [c for c in list_channels(scan.source) if c.name != scan.channel]
        selection = [
            (c.name, scan.direction if scan.direction in c.directions else c.directions[0])
            for c in channels
        ]
        others = load_scans(scan.source, selection)
    except StmZooError:
        return []
    return [c.name for c, s in zip(channels, others, strict=True) if not is_flat(s.data, s.unit)]


def check_signal(scan: Scan) -> None:
    """Refuse a flat channel, naming the channels of the same file that carry signal."""
    if not is_flat(scan.data, scan.unit):
        return
    finite = scan.data[np.isfinite(scan.data)]
    from stm_zoo.io.cli_info import format_si

    span = format_si(float(np.ptp(finite)) if finite.size else 0.0, scan.unit)
    others = signal_channels(scan)
    hint = (
        f"restore one that carries signal: {', '.join(others)} (--channel {others[0]}, or the "
        "app's Channel picker)"
        if others
        else "restore a channel that carries signal (--channel, or the app's Channel picker)"
    )
    mode = " (a constant-height scan?)" if scan.unit == "m" else ""
    raise StmZooError(
        f"{scan.describe()} is flat, spanning only {span}{mode}, so there is nothing to "
        f"restore: {hint}."
    )


def check_finite_output(output: np.ndarray, model: str, name: str) -> None:
    """Refuse a model output holding NaN or inf (e.g. broken or mis-converted weights).

    Args:
        output: any array the model produced; model: its label; name: the scan's label.
    """
    if not np.isfinite(output).all():
        raise StmZooError(
            f"The model {model} produced non-finite values on {name}, so its weights are "
            "probably broken: re-download or retrain it, or choose another model."
        )

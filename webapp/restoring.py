"""Restoring an upload: read it, run the chosen model, write the downloads, describe both.

Downloads are the result in the input's format plus .gwy, 16-bit .png and float32 .npy; the
previews (`webapp.previews`) are for display only. User-fixable problems raise `StmZooError`
(`webapp.tabs.common.user_errors` shows them with `gr.Error`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo import limits as engine_limits
from stm_zoo.errors import StmZooError
from stm_zoo.io import FORMAT_NAMES, detect_format, load_scan, result_label, save_result
from stm_zoo.io.cli_info import format_si
from stm_zoo.io.scan import Scan, sr_input_frame
from stm_zoo.pipeline import Progress, RestoreOptions, RestoreResult, restore
from stm_zoo.registry import SR_FACTOR, is_learned
from webapp.limits import AppLimits, check_announced, check_pixels
from webapp.models import ModelCache
from webapp.previews import remove_plane, robust_range
from webapp.uploads import new_work_dir, resolve_upload

log = logging.getLogger(__name__)

NATIVE_SUFFIX = {"sxm": ".sxm", "gwy": ".gwy", "png": ".png", "tiff": ".tif", "npy": ".npy"}
"""Download format that matches each input format; MATRIX has no writer, so it becomes .gwy."""
EXTRA_SUFFIXES = (".gwy", ".png", ".npy")


@dataclass(frozen=True)
class RestoreRequest:
    """One Restore request: what to run on which image of the upload.

    Attributes:
        options: the pipeline's options (task, model, steps, samples, seed, device, ...), already
            checked when they were made.
        channel, direction: what to read from the file.
        scan_size_nm: frame width in nm for files without a physical size (png/tif/npy).
    """

    options: RestoreOptions = field(default_factory=RestoreOptions)
    channel: str = "Z"
    direction: str = "forward"
    scan_size_nm: float | None = None

    def check(self, limits: AppLimits) -> None:
        """Refuse what this app's limits do not allow, with a one-sentence message."""
        if self.options.steps > limits.max_steps:
            raise StmZooError(
                f"Steps must be between 1 and {limits.max_steps}, not {self.options.steps}."
            )
        if self.options.samples > limits.max_samples:
            raise StmZooError(
                f"Samples must be between 1 and {limits.max_samples}, not {self.options.samples}."
            )
        if self.scan_size_nm is not None and not (
            math.isfinite(self.scan_size_nm) and 0 < self.scan_size_nm <= 1e6
        ):
            raise StmZooError(
                f"The scan width must be a positive number of nm, not {self.scan_size_nm}."
            )


@dataclass
class RestoreOutcome:
    """What one Restore request produced.

    Attributes:
        source: the file that was opened (for MATRIX, the copied data file).
        source_format: `detect_format` of it.
        scan: the input the model restored (complete lines only, bad pixels inpainted).
        result: the engine's result (restored scan, std, timing, model label, warnings).
        files: downloads, the input's own format first.
        total_seconds: wall time of the whole request (reading, model loading, writing).
    """

    source: Path
    source_format: str
    scan: Scan
    result: RestoreResult
    files: list[Path]
    total_seconds: float


def read_scan(
    path: Path,
    limits: AppLimits,
    channel: str = "Z",
    direction: str = "forward",
    scan_size_nm: float | None = None,
    task: str = "restore",
    repair: bool = True,
) -> Scan:
    """Size-check and read one channel of a resolved upload.

    A file without a physical size gets square pixels `scan_size_nm` / W wide (or the default
    sampling); for a super-resolution task its lines are taken to be k times further apart than
    its pixels (a k times faster scan of a square-pixel frame), so the frame is k times taller.
    With `repair` (the default) incomplete lines are cut and bad pixels inpainted as `restore`
    does (`stm_zoo.limits.repair_input`); without it the scan comes as read, for `restore`.
    """
    check_announced(path, limits)
    scan = load_scan(path, channel or "Z", direction or "forward", scan_size_nm)
    check_pixels(path.name, scan.shape, limits)
    scan = sr_input_frame(scan, SR_FACTOR.get(task, 1))  # as `restore` reads it (idempotent)
    return engine_limits.repair_input(scan).scan if repair else scan


@dataclass
class Inspection:
    """What an uploaded file holds, for the channel and direction pickers.

    Attributes:
        path: the opened file; scan: the default channel and direction (valid lines only);
        channels: channel names; directions: the directions of the shown channel.
    """

    path: Path
    scan: Scan
    channels: list[str]
    directions: list[str]


def inspect_upload(
    files: Any, limits: AppLimits, scan_size_nm: float | None = None, task: str = "restore"
) -> Inspection:
    """Read an upload's channel list and its topography (else first) channel, forward first."""
    from stm_zoo.io import list_channels
    from stm_zoo.io._common import match_channel

    path = resolve_upload(files, new_work_dir())
    check_announced(path, limits)
    channels = list_channels(path)
    names = [c.name for c in channels]
    name = match_channel("Z", names) or names[0]
    directions = list(next(c for c in channels if c.name == name).directions)
    scan = read_scan(path, limits, name, directions[0], scan_size_nm, task)
    return Inspection(path, scan, names, directions)


def restore_upload(
    files: Any,
    request: RestoreRequest,
    models: ModelCache,
    limits: AppLimits,
    progress: Progress | None = None,
) -> RestoreOutcome:
    """Read an upload, run the chosen model on it and write the downloads.

    Raises:
        StmZooError: any user-fixable problem (file, limits, options, missing model).
    """
    started = time.perf_counter()
    notify = progress or (lambda fraction, message: None)
    request.check(limits)
    options = replace(
        request.options,
        max_grid_pixels=min(request.options.max_grid_pixels, limits.max_model_pixels),
    )
    work_dir = new_work_dir()
    notify(0.0, "reading the scan")
    path = resolve_upload(files, work_dir)
    raw = read_scan(
        path,
        limits,
        request.channel,
        request.direction,
        request.scan_size_nm,
        options.task,
        repair=False,
    )
    notify(0.0, "loading the model")
    model = models.get(options.task, options.family, options.size, options.device, options.dtype)
    result = restore(raw, options, model=model, progress=notify)
    scan = result.input if result.input is not None else raw
    notify(1.0, "writing the downloads")
    fmt = detect_format(path)
    ran = result.options
    tag = f"{ran.task}-{ran.family}" + (f"-{ran.size}" if is_learned(ran.family) else "")
    files_out = write_downloads(
        result,
        fmt,
        f"{safe_stem(path)}_{tag}",
        work_dir / "out",
        source=path,
        label=result_label(ran.task, ran.family, ran.size),
        scan_size_nm=request.scan_size_nm,
    )
    total = time.perf_counter() - started
    log.info(
        "%s %s: %s, model %.2f s, request %.2f s",
        path.name,
        scan.shape,
        result.model,
        result.seconds,
        total,
    )
    return RestoreOutcome(path, fmt, scan, result, files_out, total)


def safe_stem(path: Path) -> str:
    """The file's stem with anything but letters, digits, '-', '_' and '.' replaced by '_'."""
    stem = path.name
    for suffix in (".Z_mtrx", ".I_mtrx"):
        stem = stem.removesuffix(suffix)
    stem = Path(stem).stem if "." in stem else stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80] or "scan"


def write_downloads(
    result: RestoreResult,
    source_format: str,
    stem: str,
    folder: Path,
    *,
    source: Path | None = None,
    label: str = "restored",
    scan_size_nm: float | None = None,
) -> list[Path]:
    """Write the restored scan in the input's format, plus .gwy, 16-bit .png and float32 .npy.

    The .sxm and .gwy files carry every channel of `source` unchanged, with the result added as
    the channel `<channel>_<label>` (see `stm_zoo.io.results`). With several samples, the
    per-pixel standard deviation is written too (`<stem>_std.npy`, in the scan's unit, and a
    channel of the .sxm/.gwy). MATRIX input has no writer and comes back as .gwy.

    Returns:
        The written files, the input's own format first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = [NATIVE_SUFFIX.get(source_format, ".gwy"), *EXTRA_SUFFIXES]
    written = [
        save_result(
            result.scan,
            folder / f"{stem}{suffix}",
            label=label,
            source=source,
            std=result.std if suffix in (".sxm", ".gwy") else None,
            scan_size_nm=scan_size_nm,
        )[0]
        for suffix in dict.fromkeys(suffixes)
    ]
    if result.std is not None:
        std_path = folder / f"{stem}_std.npy"
        np.save(std_path, result.std.astype(np.float32))
        written.append(std_path)
    return written


def describe_scan(path: Path, scan: Scan) -> str:
    """A markdown summary of a scan for the page: format, size, pixel size, bias, setpoint."""
    fmt = FORMAT_NAMES[detect_format(path)]
    h, w = scan.shape
    sx, sy = (s * 1e9 for s in scan.scan_size_m)
    px, py = (p * 1e9 for p in scan.pixel_size_m)
    assumed = " (assumed: the file has none; set the scan width)" if scan.pixel_size_assumed else ""
    lines = [
        f"**{path.name}** · {fmt} · {scan.channel} {scan.direction}",
        f"{h} lines × {w} px · {sx:.4g} × {sy:.4g} nm{assumed} · {px:.4g} × {py:.4g} nm/px",
        f"bias {format_si(scan.bias_v, 'V')} · setpoint {format_si(scan.setpoint_a, 'A')}",
    ]
    return "  \n".join(lines)


def describe_result(outcome: RestoreOutcome) -> str:
    """A markdown summary of a run: model, timing, shapes, height range, uncertainty, warnings."""
    result = outcome.result
    h, w = outcome.scan.shape
    rh, rw = result.scan.shape
    lo, hi = robust_range(remove_plane(result.scan.data))
    lines = [
        f"**{result.model}** · model {result.seconds:.2f} s · "
        f"request {outcome.total_seconds:.2f} s",
        f"{h} × {w} px → {rh} × {rw} px · height range (levelled, 0.5-99.5 %) "
        f"{format_si(hi - lo, result.scan.unit)}",
    ]
    if result.std is not None:
        unit = result.scan.unit
        lines.append(
            f"uncertainty: median std {format_si(float(np.median(result.std)), unit)}, "
            f"99th percentile {format_si(float(np.percentile(result.std, 99)), unit)}"
        )
    lines += [f"⚠️ {warning}" for warning in result.warnings]
    return "  \n".join(lines)

"""Omicron MATRIX: a data file per channel plus the session's parameter file, via access2theMatrix.

A data file is named `<prefix>--<run>_<cycle>.<channel>_mtrx` (e.g. `20201111--4_1.Z_mtrx`); the
sizes and the raw-to-SI transfer function live in the parameter file `<prefix>_0001.mtrx`, which
must sit in the same folder under its original name. access2theMatrix does not raise when it is
missing (it returns `({}, 'Error in opening ...')`), so every result is checked here.

Orientation: access2theMatrix mirrors retrace images and aligns "down" traces with "up" ones, with
row 0 the first line of the up trace, i.e. the bottom of the frame (Gwyddion's MATRIX module puts
that line at the bottom). We flip vertically so row 0 is the top, as for every other format.
A partial (aborted) scan comes back with NaN for the lines never scanned, at full frame size.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stm_zoo.errors import STMFileError
from stm_zoo.io._common import (
    ChannelInfo,
    check_image_size,
    check_not_empty,
    file_error,
    finite_or_none,
    jsonable,
    match_channel,
    parse_direction,
    reading,
)
from stm_zoo.io.scan import Scan

log = logging.getLogger(__name__)

_MAGIC = b"ONTMATRX0101"
_DATA_NAME = re.compile(r"^(?P<prefix>.+)--(?P<run>\d+)_(?P<cycle>\d+)\.(?P<channel>[^.]+)_mtrx$")
_TRACES = ("forward/up", "backward/up", "forward/down", "backward/down")


def is_data_file(path: str | Path) -> bool:
    """True for names ending in `_mtrx` (a MATRIX data file, whatever its channel)."""
    return Path(path).name.lower().endswith("_mtrx")


def is_parameter_file(path: str | Path) -> bool:
    """True for names ending in `.mtrx` (a MATRIX parameter file)."""
    return Path(path).name.lower().endswith(".mtrx")


def parameter_file(path: Path) -> Path:
    """The parameter file `<prefix>_0001.mtrx` that the data file `path` needs beside it."""
    match = _DATA_NAME.match(path.name)
    if match is None:
        raise file_error(
            path,
            "does not follow MATRIX naming '<prefix>--<run>_<cycle>.<channel>_mtrx', so its "
            "parameter file cannot be found; keep the original file names",
        )
    return path.with_name(f"{match['prefix']}_0001.mtrx")


def list_channels(path: Path) -> list[ChannelInfo]:
    """The image channel of `path` plus those of sibling data files of the same scan.

    Each MATRIX data file holds one channel; `load_scan(path, channel="I")` opens the sibling
    `<same name>.I_mtrx` when it exists.
    """
    mtrx = _open(path)
    channels = [_channel_info(mtrx)]
    for sibling in _siblings(path):
        try:
            channels.append(_channel_info(_open(sibling)))
        except STMFileError as error:
            log.debug("skipping sibling %s: %s", sibling.name, error)
    return channels


def read(path: Path, channel: str = "Z", direction: str = "forward") -> Scan:
    """One trace of a MATRIX data file as a `Scan` in SI units.

    Args:
        path: the data file (`*.Z_mtrx`, `*.I_mtrx`, ...).
        channel: channel name or alias; another channel is read from its sibling data file.
        direction: forward or backward (the up trace when the file has both), or one of
            forward/up, backward/up, forward/down, backward/down.

    Raises:
        STMFileError: missing parameter file, unreadable or non-image data, unknown channel or
            trace.
    """
    check_not_empty(path)
    match = _DATA_NAME.match(path.name)
    if match is not None and match_channel(channel, [match["channel"]]) is None:
        sibling = next(
            (s for s in _siblings(path) if match_channel(channel, [_file_channel(s)])), None
        )
        if sibling is None:
            found = ", ".join([match["channel"], *(_file_channel(s) for s in _siblings(path))])
            raise file_error(
                path,
                f"holds channel {match['channel']} and no data file for {channel!r} lies "
                f"beside it (found {found})",
            )
        return read(sibling, channel, direction)
    mtrx = _open(path)
    fast, slow = parse_direction(direction)
    traces = [str(t) for t in mtrx.traces]
    wanted = [f"{fast}/{slow}"] if slow else [f"{fast}/up", f"{fast}/down"]
    trace = next((t for t in wanted if t in traces), None)
    if trace is None:
        raise file_error(path, f"has no {direction} trace; it holds {', '.join(traces)}")
    image, message = mtrx.select_image(trace)
    if not str(message).startswith("Trace"):
        raise file_error(path, f"access2theMatrix could not select trace {trace} ({message})")
    width, height = _frame_pixels(path, mtrx)
    rows = np.asarray(image.data, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != width or rows.shape[0] > height:
        raise file_error(path, f"trace {trace} has shape {rows.shape}, not {height} x {width}")
    # Lines never scanned (an aborted scan) become NaN; see the module docstring for which end.
    missing = np.full((height - rows.shape[0], width), np.nan)
    full = np.vstack([rows, missing] if trace.endswith("/up") else [missing, rows])
    x_m = _parameter(mtrx, "EEPA::XYScanner.Width")
    y_m = _parameter(mtrx, "EEPA::XYScanner.Height")
    if x_m is None or y_m is None or x_m <= 0 or y_m <= 0:
        raise file_error(path, "the parameter file gives no positive XYScanner Width/Height")
    name, unit = (str(v) for v in mtrx.channel_name_and_unit[:2])
    setpoint = mtrx.param.get("EEPA::Regulator.Setpoint_1", [None, ""])
    return Scan(
        data=full[::-1].astype(np.float32),
        unit=unit,
        channel=name,
        direction=fast,
        scan_size_m=(x_m, y_m),
        bias_v=_parameter(mtrx, "EEPA::GapVoltageControl.Voltage"),
        setpoint_a=finite_or_none(setpoint[0]) if setpoint[1:2] == ["Ampere"] else None,
        source=path,
        metadata={
            "format": "matrix",
            "parameter_file": parameter_file(path).name,
            "trace": trace,
            "header": jsonable(mtrx.param),
        },
        scan_dir=trace.rsplit("/", 1)[1],
    )


def open_matrix_upload(paths: Sequence[str | Path], dest_dir: str | Path | None = None) -> Path:
    """Copy an uploaded MATRIX data file and its parameter file into one folder.

    A browser upload puts every file in its own temporary folder, but access2theMatrix needs the
    parameter file beside the data file under its original name.

    Args:
        paths: the uploaded files: one or more data files (`*_mtrx`) and the parameter file(s)
            (`*_0001.mtrx`, plus `_0002.mtrx`... when the session has several).
        dest_dir: where to copy them (default: a new temporary folder, left for the caller to
            delete).

    Returns:
        The path of the copied data file to open: the Z (topography) file when there are several.

    Raises:
        STMFileError: no data file, the parameter file it needs is missing, a file that belongs to
            neither kind, or two different uploads with the same name.
    """
    files = [Path(p) for p in paths]
    data = [p for p in files if is_data_file(p)]
    params = [p for p in files if is_parameter_file(p)]
    others = [p.name for p in files if p not in data and p not in params]
    if others:
        raise STMFileError(
            f"{others[0]}: not part of an Omicron MATRIX scan; upload the data file "
            "(*.Z_mtrx) together with its parameter file (*_0001.mtrx)."
        )
    if not data:
        raise STMFileError(
            "No MATRIX data file among the uploads "
            f"({', '.join(p.name for p in files) or 'none'}); add the *.Z_mtrx file."
        )
    chosen = next((p for p in data if match_channel("Z", [_file_channel(p)])), data[0])
    needed = parameter_file(chosen).name
    if needed not in {p.name for p in params}:
        raise file_error(
            chosen, f"its parameter file {needed} was not uploaded; upload both files together"
        )
    folder = Path(dest_dir) if dest_dir else Path(tempfile.mkdtemp(prefix="stm_zoo_matrix_"))
    folder.mkdir(parents=True, exist_ok=True)
    copied: dict[str, Path] = {}
    for source in data + params:
        check_not_empty(source)
        if source.name in copied and source.read_bytes() != copied[source.name].read_bytes():
            raise file_error(source, "was uploaded twice with different contents")
        target = folder / source.name
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        copied[source.name] = source
    return folder / chosen.name


def _file_channel(path: Path) -> str:
    match = _DATA_NAME.match(path.name)
    return match["channel"] if match else ""


def _siblings(path: Path) -> list[Path]:
    """Other image data files of the same scan (same name, other channel)."""
    stem = path.name[: path.name.rfind(".") + 1]
    return sorted(
        p
        for p in path.parent.glob("*_mtrx")
        if p.name.startswith(stem) and p != path and "(" not in _file_channel(p)
    )


def _has_magic(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_MAGIC)) == _MAGIC


def _open(path: Path):
    """An access2theMatrix `MtrxData` with the image of `path` loaded and checked."""
    check_not_empty(path)
    if is_parameter_file(path) and not is_data_file(path):
        raise file_error(
            path,
            "is a MATRIX parameter file; open the image data file beside it (e.g. *.Z_mtrx)",
        )
    param = parameter_file(path)
    if "(" in _file_channel(path):
        raise file_error(path, "holds a spectroscopy curve, not an image")
    if not _has_magic(path):
        raise file_error(path, "is not an Omicron MATRIX data file (no ONTMATRX0101 signature)")
    if not param.is_file():
        raise file_error(
            path,
            f"its parameter file {param.name} is missing from {param.parent}; MATRIX needs both "
            "files side by side with their original names",
        )
    if not _has_magic(param):
        raise file_error(
            path, f"its parameter file {param.name} is not an Omicron MATRIX file (no signature)"
        )
    with reading(path, "Omicron MATRIX"):
        import access2thematrix

        mtrx = access2thematrix.MtrxData()
        _, message = mtrx.open(str(path))
    if not str(message).startswith("Successfully"):
        raise file_error(path, f"access2theMatrix cannot read it ({str(message).rstrip('.')})")
    if mtrx.object_type != "image" or not mtrx.axis or not mtrx.traces:
        raise file_error(path, "holds no image (a spectroscopy curve or CITS volume?)")
    _frame_pixels(path, mtrx)
    return mtrx


def _frame_pixels(path: Path, mtrx) -> tuple[int, int]:
    points = mtrx.param.get("EEPA::XYScanner.Points", [None])[0]
    lines = mtrx.param.get("EEPA::XYScanner.Lines", [None])[0]
    if not isinstance(points, int | np.integer) or not isinstance(lines, int | np.integer):
        raise file_error(path, "the parameter file gives no XYScanner Points/Lines")
    check_image_size(path, int(points), int(lines), where="parameter file")
    return int(points), int(lines)


def _parameter(mtrx, key: str) -> float | None:
    value = mtrx.param.get(key)
    return finite_or_none(value[0]) if isinstance(value, list) and value else None


def _channel_info(mtrx) -> ChannelInfo:
    traces = [str(t) for t in mtrx.traces if str(t) in _TRACES]
    if all(t.endswith("/up") for t in traces):
        directions = tuple(t.split("/")[0] for t in traces)
    else:
        directions = tuple(traces)
    name, unit = (str(v) for v in mtrx.channel_name_and_unit[:2])
    return ChannelInfo(name, unit, directions)

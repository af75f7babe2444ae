"""Format-independent entry points: `load_scan(s)`, `save_scan`, `list_channels`, `scan_info`.

The format is chosen from the file name, case-insensitively; the readers check each file's
signature before trusting it. Whatever goes wrong with a file comes out as one `STMFileError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stm_zoo.errors import StmZooError
from stm_zoo.io import gwy, image, matrix, sxm
from stm_zoo.io._common import ChannelInfo, file_error, match_channel, parse_direction, reading
from stm_zoo.io.scan import Scan

log = logging.getLogger(__name__)

SUPPORTED_READ: tuple[str, ...] = (
    ".sxm",
    ".Z_mtrx",
    ".I_mtrx",
    ".mtrx",
    ".gwy",
    ".png",
    ".tif",
    ".tiff",
    ".npy",
)
"""Readable file endings (any `<channel>_mtrx` MATRIX data file reads; `.mtrx` is its parameter
file, which must accompany it)."""

SUPPORTED_WRITE: tuple[str, ...] = (".sxm", ".gwy", ".png", ".tif", ".tiff", ".npy")
"""Writable file endings; `save_scan` picks the format from them."""

FORMAT_NAMES = {
    "sxm": "Nanonis .sxm",
    "matrix": "Omicron MATRIX",
    "gwy": "Gwyddion .gwy",
    "png": "PNG image",
    "tiff": "TIFF image",
    "npy": "NumPy .npy",
}
_SUFFIXES = {
    ".sxm": "sxm",
    ".gwy": "gwy",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".npy": "npy",
}
_MULTI_IMAGE = ("sxm", "gwy")
_READ_LIST = (
    ".sxm, .gwy, .png, .tif, .tiff, .npy and Omicron MATRIX *.Z_mtrx (with its *_0001.mtrx)"
)


def detect_format(path: str | Path) -> str:
    """The format id ("sxm", "matrix", "gwy", "png", "tiff" or "npy") from the file name.

    Raises:
        STMFileError: for any other ending (the message lists the supported ones).
    """
    path = Path(path)
    name = path.name.lower()
    if matrix.is_data_file(name) or matrix.is_parameter_file(name):
        return "matrix"
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        kind = f"file type '{path.suffix}'" if path.suffix else "file without an extension"
        raise file_error(path, f"unsupported {kind}; stm-zoo reads {_READ_LIST}")
    return fmt


def load_scan(
    path: str | Path,
    channel: str = "Z",
    direction: str = "forward",
    scan_size_nm: float | Sequence[float] | None = None,
) -> Scan:
    """Read one channel and direction of a scan file as a `Scan` in SI units.

    Args:
        path: a .sxm, MATRIX data (*.Z_mtrx, parameter file beside it), .gwy, .png, .tif/.tiff or
            .npy file.
        channel: channel name, case-insensitive, with aliases ("Topography" finds "Z", "Current"
            finds MATRIX's "I"). Files holding a single image return it whatever the name.
        direction: "forward" or "backward" (backward is mirrored to align with forward); MATRIX
            files also take "forward/down" etc.
        scan_size_nm: physical width in nm (square pixels) or (width, height), used only when the
            file carries no physical size (png/tiff/npy and unitless .gwy); default 100 nm per
            512 px, flagged by `Scan.pixel_size_assumed` and a note in `metadata["notes"]`.

    Returns:
        data (H, W) float32 in SI units, oriented as described in `stm_zoo.io.scan`; aborted scans
        keep NaN rows (see `Scan.valid_rows`, `Scan.crop_valid`).

    Raises:
        STMFileError: unsupported, missing, empty, corrupt or truncated file, unknown channel or
            direction; the message is one sentence naming the file.
    """
    return load_scans(path, [(channel, direction)], scan_size_nm)[0]


def load_scans(
    path: str | Path,
    selection: Sequence[tuple[str, str]],
    scan_size_nm: float | Sequence[float] | None = None,
) -> list[Scan]:
    """Several (channel, direction) images of one file, which is opened and parsed once.

    Arguments and results as for `load_scan`, one `Scan` per entry of `selection`, in order; the
    time taken grows linearly with the number of channels (reading a file of thousands of
    channels with one `load_scan` call each would parse it thousands of times).

    Raises:
        STMFileError: as `load_scan`, for the first entry that cannot be read.
    """
    path = Path(path)
    fmt = detect_format(path)
    for _, direction in selection:
        parse_direction(direction)
    with reading(path, FORMAT_NAMES[fmt]):
        if fmt == "sxm":
            scans = sxm.read_many(path, selection)
        elif fmt == "matrix":
            scans = [matrix.read(path, c, d) for c, d in selection]
        elif fmt == "gwy":
            scans = gwy.read_many(path, selection, scan_size_nm)
        else:
            scans = [image.read(path, scan_size_nm) for _ in selection]
    if scan_size_nm is not None and scans and not scans[0].pixel_size_assumed:
        log.warning(
            "%s carries its own scan size; scan_size_nm=%s ignored", path.name, scan_size_nm
        )
    return scans


def load_all_scans(
    path: str | Path, scan_size_nm: float | Sequence[float] | None = None
) -> list[Scan]:
    """Every channel and direction of a scan file, in file order (see `load_scan`).

    A .gwy file gives every data field (`metadata["field"]` is its channel number), a MATRIX data
    file also the channels of its sibling data files, an image its one image.

    Raises:
        STMFileError: as `load_scan`.
    """
    path = Path(path)
    if detect_format(path) == "gwy":
        with reading(path, FORMAT_NAMES["gwy"]):
            return gwy.read_all(path, scan_size_nm)
    selection = [(c.name, d) for c in list_channels(path) for d in c.directions]
    return load_scans(path, selection, scan_size_nm)


def save_scan(
    scan: Scan | Sequence[Scan], path: str | Path, *, bit_depth: int | None = None
) -> Path:
    """Write a scan (or, for .sxm and .gwy, several channels/directions of one frame) to `path`.

    The format follows the extension: .sxm (big-endian float32, instrument orientation restored,
    forward and backward per channel), .gwy (float64 fields with size and units), .png (16-bit, or
    8 with `bit_depth=8`), .tif/.tiff (float32, or 16-bit with `bit_depth=16`), .npy (float32,
    data only). PNG and TIFF carry the physical fields as JSON so stm-zoo reads them back; see
    `stm_zoo.io.image`. The file is written to a temporary name first, then moved into place.

    Returns:
        `path`.

    Raises:
        STMFileError: unsupported extension, missing folder, several images for a single-image
            format, or a bad `bit_depth`.
    """
    path = Path(path)
    scans = [scan] if isinstance(scan, Scan) else list(scan)
    if not scans or not all(isinstance(s, Scan) for s in scans):
        raise StmZooError("save_scan needs a Scan or a non-empty sequence of Scans.")
    name = path.name.lower()
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None or matrix.is_data_file(name):
        raise file_error(
            path, f"cannot write this file type; stm-zoo writes {', '.join(SUPPORTED_WRITE)}"
        )
    if any(s.data.size == 0 for s in scans):
        raise file_error(path, "cannot write an empty image")
    if fmt not in _MULTI_IMAGE and len(scans) > 1:
        raise file_error(path, f"a {FORMAT_NAMES[fmt]} holds one image; write .sxm or .gwy")
    if fmt in _MULTI_IMAGE and bit_depth not in (None, 32):
        raise file_error(path, f"{FORMAT_NAMES[fmt]} files take no bit depth option")
    with reading(path, FORMAT_NAMES[fmt]):
        if fmt == "sxm":
            sxm.write(scans, path)
        elif fmt == "gwy":
            gwy.write(scans, path)
        else:
            image.write(scans[0], path, bit_depth)
    return path


def list_channels(path: str | Path) -> list[ChannelInfo]:
    """The image channels of a file, each with its unit and the directions `load_scan` accepts.

    Returns:
        `ChannelInfo(name, unit, directions)` records; a MATRIX file also lists the channels of
        its sibling data files (same scan, other channel).
    """
    path = Path(path)
    fmt = detect_format(path)
    with reading(path, FORMAT_NAMES[fmt]):
        if fmt == "sxm":
            return sxm.list_channels(path)
        if fmt == "matrix":
            return matrix.list_channels(path)
        if fmt == "gwy":
            return gwy.list_channels(path)
        return image.list_channels(path)


def scan_info(
    path: str | Path, scan_size_nm: float | Sequence[float] | None = None
) -> dict[str, Any]:
    """A JSON-friendly summary of a scan file (used by `python -m stm_zoo info` and the app).

    The shape, sizes and valid line count are those of the Z channel (else the first one).

    Returns:
        {"file", "format", "format_name", "channels": [{"name", "unit", "directions"}],
        "directions", "shape": [H, W], "scan_size_nm": [x, y], "pixel_size_nm": [x, y],
        "pixel_size_assumed", "bias_v", "setpoint_a", "scan_dir", "valid_lines", "channel"}.
    """
    path = Path(path)
    fmt = detect_format(path)
    channels = list_channels(path)
    name = match_channel("Z", [c.name for c in channels]) or channels[0].name
    shown = next(c for c in channels if c.name == name)
    scan = load_scan(path, channel=name, direction=shown.directions[0], scan_size_nm=scan_size_nm)
    directions = list(dict.fromkeys(d for c in channels for d in c.directions))
    return {
        "file": path.name,
        "format": fmt,
        "format_name": FORMAT_NAMES[fmt],
        "channels": [{**asdict(c), "directions": list(c.directions)} for c in channels],
        "directions": directions,
        "channel": scan.channel,
        "shape": list(scan.shape),
        "scan_size_nm": [_nm(v) for v in scan.scan_size_m],
        "pixel_size_nm": [_nm(v) for v in scan.pixel_size_m],
        "pixel_size_assumed": scan.pixel_size_assumed,
        "bias_v": scan.bias_v,
        "setpoint_a": scan.setpoint_a,
        "scan_dir": scan.scan_dir,
        "valid_lines": int(scan.valid_rows().sum()),
    }


def _nm(metres: float) -> float:
    return float(f"{metres * 1e9:.12g}")  # 2e-7 m -> 200.0, not 200.00000000000003

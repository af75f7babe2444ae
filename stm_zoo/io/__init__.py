"""Readers and writers for STM scan files; everything comes out as a `Scan` in SI units.

Formats: Nanonis .sxm (read/write), Omicron MATRIX `*.Z_mtrx` + `*_0001.mtrx` (read), Gwyddion
.gwy (read/write), PNG and TIFF (read 8/16/32-bit, write 16-bit PNG and float32 or 16-bit TIFF),
NumPy .npy (read/write). `Scan.metadata` is {"format": ..., "header": <the file's raw header as a
JSON-friendly dict>, ...}; orientation and units are described in `stm_zoo.io.scan`.
"""

from __future__ import annotations

from stm_zoo.errors import STMFileError
from stm_zoo.io._common import DEFAULT_PIXEL_SIZE_NM, ChannelInfo, match_channel, parse_direction
from stm_zoo.io.api import (
    FORMAT_NAMES,
    SUPPORTED_READ,
    SUPPORTED_WRITE,
    detect_format,
    list_channels,
    load_all_scans,
    load_scan,
    load_scans,
    save_scan,
    scan_info,
)
from stm_zoo.io.matrix import open_matrix_upload
from stm_zoo.io.results import result_channel, result_label, save_result
from stm_zoo.io.scan import Scan

__all__ = [
    "DEFAULT_PIXEL_SIZE_NM",
    "FORMAT_NAMES",
    "SUPPORTED_READ",
    "SUPPORTED_WRITE",
    "ChannelInfo",
    "STMFileError",
    "Scan",
    "detect_format",
    "list_channels",
    "load_all_scans",
    "load_scan",
    "load_scans",
    "match_channel",
    "open_matrix_upload",
    "parse_direction",
    "result_channel",
    "result_label",
    "save_result",
    "save_scan",
    "scan_info",
]

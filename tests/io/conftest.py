"""Fixtures for the stm_zoo.io tests: the real instrument files, a comparison helper, and
independent .sxm and 16-bit PNG builders (written from the format descriptions, not from our
writers)."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import nanonispy2
import numpy as np
import pytest

from stm_zoo.io import Scan


@pytest.fixture(scope="session")
def nanonis_files(fixtures_dir: Path) -> list[Path]:
    files = sorted((fixtures_dir / "nanonis").glob("*.sxm"))
    assert len(files) == 4, files
    return files


@pytest.fixture(scope="session")
def matrix_file(fixtures_dir: Path) -> Path:
    return fixtures_dir / "matrix" / "20201111--4_1.Z_mtrx"


@pytest.fixture(scope="session")
def gwy_file(fixtures_dir: Path) -> Path:
    return fixtures_dir / "gwyddion" / "test.gwy"


def assert_same_scan(a: Scan, b: Scan, *, atol: float = 0.0, size: bool = True) -> None:
    """Data equal within `atol` (NaN where NaN) and the same physical fields."""
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a.data), np.isnan(b.data))
    finite = np.isfinite(a.data)
    if atol == 0.0:
        assert np.array_equal(a.data[finite], b.data[finite])
    else:
        assert np.max(np.abs(a.data[finite] - b.data[finite]), initial=0.0) <= atol
    assert (a.unit, a.channel, a.direction) == (b.unit, b.channel, b.direction)
    assert (a.bias_v, a.setpoint_a, a.scan_dir) == (b.bias_v, b.setpoint_a, b.scan_dir)
    if size:
        assert a.scan_size_m == b.scan_size_m
        assert a.pixel_size_assumed == b.pixel_size_assumed


@pytest.fixture
def same_scan() -> Callable[..., None]:
    return assert_same_scan


def build_sxm(
    path: Path,
    planes: Sequence[np.ndarray],
    *,
    channels: Sequence[tuple[str, str, str]] = (("Z", "m", "both"),),
    scan_range: str = "4.000000E-8           2.000000E-8",
    scan_dir: str = "down",
    bias: str = "-1.500E+0",
    setpoint: str = "2.000E-11 A",
    pixels: tuple[int, int] | None = None,
) -> Path:
    """A minimal Nanonis-style .sxm, planes given in file order (as the instrument stores them)."""
    ny, nx = planes[0].shape
    nx, ny = pixels or (nx, ny)
    rows = "".join(
        f"\t{i}\t{name}\t{unit}\t{d}\t1.000E+0\t0.000E+0\n"
        for i, (name, unit, d) in enumerate(channels)
    )
    header = (
        ":NANONIS_VERSION:\n2\n:SCANIT_TYPE:\n              FLOAT            MSBFIRST\n"
        ":REC_DATE:\n 01.02.2023\n:REC_TIME:\n10:11:12\n:ACQ_TIME:\n       12.5\n"
        f":SCAN_PIXELS:\n{nx:>10d}{ny:>10d}\n:SCAN_FILE:\nC:\\data\\test.sxm\n"
        ":SCAN_TIME:\n             1.000E-1             1.000E-1\n"
        f":SCAN_RANGE:\n           {scan_range}\n"
        ":SCAN_OFFSET:\n             0.000000E+0         0.000000E+0\n"
        f":SCAN_ANGLE:\n            0.000E+0\n:SCAN_DIR:\n{scan_dir}\n:BIAS:\n            {bias}\n"
        ":Z-CONTROLLER:\n\tName\ton\tSetpoint\tP-gain\tI-gain\tT-const\n"
        f"\tlog Current\t1\t{setpoint}\t1.000E-12 m\t1.000E-8 m/s\t1.000E-4 s\n"
        ":COMMENT:\nbuilt by the tests\n"
        ":DATA_INFO:\n\tChannel\tName\tUnit\tDirection\tCalibration\tOffset\n"
        f"{rows}\n:SCANIT_END:\n\n\n"
    )
    body = b"".join(np.ascontiguousarray(p, dtype=">f4").tobytes() for p in planes)
    path.write_bytes(header.encode("latin-1") + b"\x1a\x04" + body)
    return path


@pytest.fixture
def raw_sxm() -> Callable[..., Path]:
    return build_sxm


class DirectionAwareSxm(nanonispy2.read.Scan):
    """nanonispy2's header parser and data offset, with the planes split by each channel's
    Direction column (the library itself assumes "both" everywhere)."""

    def _load_data(self) -> dict[str, dict[str, np.ndarray]]:
        info = self.header["data_info"]
        nx, ny = self.header["scan_pixels"]
        with open(self.fname, "rb") as f:
            f.seek(self.byte_offset)
            planes = iter(np.fromfile(f, dtype=self.data_format).reshape(-1, ny, nx))
        signals = {}
        for name, direction in zip(info["Name"], info["Direction"], strict=True):
            directions = ("forward", "backward") if direction == "both" else (direction,)
            signals[name] = {d: next(planes) for d in directions}
        assert next(planes, None) is None
        return signals


@pytest.fixture
def sxm_reference() -> Callable[[Path], DirectionAwareSxm]:
    """nanonispy2's reading of an .sxm file, channels recorded one way included."""
    return lambda path: DirectionAwareSxm(str(path))


# (x0, y0, dx, dy) of the seven Adam7 passes
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def build_png16(
    path: Path, pixels: np.ndarray, colour_type: int, *, interlaced: bool = False
) -> Path:
    """A 16-bit PNG of `pixels` (H, W, C) uint16, every row with a random one of the five filters
    (so a decoder must undo them all), the IDAT stream split over two chunks."""
    rng = np.random.default_rng(0)
    height, width, _ = pixels.shape
    bpp = 2 * pixels.shape[2]
    passes = []
    for x0, y0, dx, dy in _ADAM7 if interlaced else ((0, 0, 1, 1),):
        sub = pixels[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        raw = sub.astype(">u2").view(np.uint8).reshape(sub.shape[0], -1).astype(np.int32)
        up = np.vstack([np.zeros_like(raw[:1]), raw[:-1]])
        left = np.hstack([np.zeros_like(raw[:, :bpp]), raw[:, :-bpp]])
        up_left = np.hstack([np.zeros_like(up[:, :bpp]), up[:, :-bpp]])
        p = left + up - up_left
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        kinds = rng.integers(0, 5, raw.shape[0])
        predicted = np.stack([np.zeros_like(raw), left, up, (left + up) // 2, paeth])
        filtered = (raw - predicted[kinds, np.arange(raw.shape[0])]) & 0xFF
        passes.append(np.hstack([kinds[:, None], filtered]).astype(np.uint8).tobytes())
    stream = zlib.compress(b"".join(passes))
    half = len(stream) // 2
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlaced))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", stream[:half])
        + png_chunk(b"IDAT", stream[half:])
        + png_chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def png16() -> Callable[..., Path]:
    return build_png16


def row_mean_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation after removing each line's mean (line offsets would dominate)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    value = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    return value if math.isfinite(value) else 0.0


@pytest.fixture
def corr() -> Callable[[np.ndarray, np.ndarray], float]:
    return row_mean_corr

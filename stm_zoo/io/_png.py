"""What Pillow does not give us about PNG: the IHDR facts before decoding, 16-bit colour pixels.

Pillow decodes 16-bit RGB, RGBA and grey+alpha PNGs to 8 bits per channel, silently dropping the
low byte. `read_16bit_colour` decodes them here instead (zlib + numpy, PNG specification sections
9-10): the IDAT stream is inflated chunk by chunk with its size bounded by the header, then
unfiltered along anti-diagonals, since a pixel depends only on its left, upper and upper-left
neighbours, all on earlier diagonals. Adam7-interlaced files are supported.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stm_zoo.io._common import file_error

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type: grey, RGB, palette, grey+A, RGBA
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


@dataclass(frozen=True)
class PngHeader:
    """The IHDR chunk: what the file announces before any pixel is decoded."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlace: int  # 0 none, 1 Adam7; anything else is a corrupt header

    @property
    def interlaced(self) -> bool:
        return self.interlace == 1

    @property
    def channels(self) -> int:
        return _CHANNELS.get(self.colour_type, 1)

    @property
    def has_alpha(self) -> bool:
        return self.colour_type in (4, 6)

    @property
    def is_colour(self) -> bool:
        return self.colour_type in (2, 3, 6)

    def passes(self) -> list[tuple[int, int, int, int, int, int]]:
        """(x0, y0, dx, dy, width, height) of each non-empty pass (one when not interlaced)."""
        grid = _ADAM7 if self.interlaced else ((0, 0, 1, 1),)
        out = []
        for x0, y0, dx, dy in grid:
            w = (self.width - x0 + dx - 1) // dx
            h = (self.height - y0 + dy - 1) // dy
            if w > 0 and h > 0:
                out.append((x0, y0, dx, dy, w, h))
        return out

    def filtered_bytes(self) -> int:
        """Size of the inflated image data: each row of each pass is a filter byte + pixels."""
        bits = self.bit_depth * self.channels
        return sum(h * (1 + (w * bits + 7) // 8) for *_, w, h in self.passes())


def read_header(head: bytes) -> PngHeader | None:
    """The IHDR of a PNG from its first 33 bytes; None when they are not a PNG header."""
    if len(head) < 33 or not head.startswith(_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return PngHeader(width, height, depth, colour, interlace)


def read_16bit_colour(path: Path, header: PngHeader) -> np.ndarray:
    """The channels of a 16-bit colour or grey+alpha PNG as (H, W, C) uint16.

    Raises:
        STMFileError: truncated or corrupt image data.
    """
    assert header.bit_depth == 16 and header.colour_type in (2, 4, 6)
    if header.interlace not in (0, 1):
        raise file_error(
            path, f"announces PNG interlace method {header.interlace}, so it is corrupt"
        )
    stream = _inflate(path, header.filtered_bytes())
    pixel_bytes = 2 * header.channels
    image = np.empty((header.height, header.width, header.channels), dtype=np.uint16)
    pos = 0
    for x0, y0, dx, dy, w, h in header.passes():
        size = h * (1 + w * pixel_bytes)
        rows = np.frombuffer(stream, np.uint8, size, pos).reshape(h, 1 + w * pixel_bytes)
        pos += size
        if rows[:, 0].max() > 4:
            raise file_error(path, "has an unknown PNG row filter, so its image data is corrupt")
        raw = _unfilter(rows[:, 0], rows[:, 1:].reshape(h, w, pixel_bytes))
        image[y0::dy, x0::dx] = np.ascontiguousarray(raw).view(">u2")
    return image


def _inflate(path: Path, expected: int) -> bytearray:
    """The concatenated IDAT chunks, inflated to exactly `expected` bytes (never more)."""
    inflater = zlib.decompressobj()
    out = bytearray()
    with open(path, "rb") as f:
        f.seek(len(_SIGNATURE))
        while len(out) < expected:
            head = f.read(8)
            if len(head) < 8:
                raise file_error(path, "the PNG image data is truncated; re-export the image")
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                raise file_error(path, "the PNG image data ends early, so the file is corrupt")
            if kind != b"IDAT":
                f.seek(length + 4, 1)  # other chunks (text, palette...) carry no pixels
                continue
            data = f.read(length)
            crc = f.read(4)
            if len(data) < length or len(crc) < 4:
                raise file_error(path, "the PNG image data is truncated; re-export the image")
            if zlib.crc32(kind + data) != int.from_bytes(crc, "big"):
                raise file_error(path, "a PNG IDAT chunk fails its CRC check, so it is corrupt")
            try:
                out += inflater.decompress(data, expected - len(out))
            except zlib.error as error:
                raise file_error(path, f"the PNG image data is corrupt ({error})") from None
    return out


def _unfilter(filters: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Undo the PNG row filters of one pass: `data` (h, w, bpp) bytes -> raw bytes.

    The padded result has a zero row above and a zero column left of the image, which is what
    the filters assume outside it.
    """
    h, w, bpp = data.shape
    raw = np.zeros((h + 1, w + 1, bpp), dtype=np.uint8)
    for diagonal in range(h + w - 1):
        r = np.arange(max(0, diagonal - w + 1), min(h - 1, diagonal) + 1)
        x = diagonal - r
        a = raw[r + 1, x].astype(np.int16)  # left
        b = raw[r, x + 1].astype(np.int16)  # up
        c = raw[r, x].astype(np.int16)  # upper left
        kind = filters[r][:, None]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        predictor = np.select(
            [kind == 1, kind == 2, kind == 3, kind == 4], [a, b, (a + b) >> 1, paeth], 0
        )
        raw[r + 1, x + 1] = (data[r, x] + predictor) & 0xFF
    return raw[1:, 1:]

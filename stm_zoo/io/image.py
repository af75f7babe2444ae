"""PNG and TIFF (via Pillow) and NumPy .npy: plain images, with physical size when they carry it.

Reading: 8- and 16-bit greyscale, 32-bit integer and float TIFF, and 2-D numeric .npy arrays.
Colour is converted to luminance (0.299 R + 0.587 G + 0.114 B) and alpha is ignored, each said in
`metadata["notes"]`; 16-bit colour and grey+alpha PNGs keep all 16 bits (Pillow would cut them to
8, so `stm_zoo.io._png` decodes them). The physical size, in order of preference: the caller's
`scan_size_nm`; the metadata stm-zoo embeds when it writes PNG/TIFF; the "Gwy::" text chunks of a
PNG exported by Gwyddion (Gwy::XReal/YReal in Gwy::XYUnit; on a greyscale image Gwy::ZMin and
Gwy::ZMax, in Gwy::ZUnit, are the values of code 0 and of the largest code, so heights come back in
SI units; Gwy::Title names the channel); else the paper's 100 nm per 512 px (flagged in
`Scan.pixel_size_assumed` and `metadata["notes"]`). Other values are image codes (unit "").

Headers are checked before any pixel is decoded: dimensions against the shared limits, and a
decompression-bomb guard that refuses more than 16 Mpx announced at over 64 px per byte of file
(a tiny file that would expand to gigabytes; noisy scan data compresses to about 1 byte per px).

Writing:
- PNG: 16-bit greyscale (or 8-bit with `bit_depth=8`); heights are mapped linearly onto the
  codes, and an iTXt chunk "stm_zoo" (JSON) stores the mapping and the physical fields, so our
  reader recovers metres to within half a code step. Code 0 means NaN when the scan has any. The
  same size, units and mapping go into Gwyddion's "Gwy::" text chunks, so Gwyddion (and other
  tools that read them) open the file at its physical size and heights.
- TIFF: float32 by default (exact values, NaN kept), or 16-bit like PNG with `bit_depth=16`; the
  same JSON goes into the ImageDescription tag.
- .npy: the float32 array only (no metadata).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo.io import _png
from stm_zoo.io._common import (
    MAX_PIXELS,
    ChannelInfo,
    assumed_size_note,
    check_image_size,
    check_not_empty,
    default_scan_size_m,
    file_error,
    finite_or_none,
    jsonable,
    reading,
    split_si_unit,
    split_title,
    write_atomically,
)
from stm_zoo.io.scan import Scan

_TEXT_KEY = "stm_zoo"
_TIFF_DESCRIPTION = 270
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"
# Decompression-bomb guard: above this many pixels, a file must hold at least a byte per
# _MAX_PX_PER_BYTE pixels. Noisy scan data compresses to about a byte per pixel; an 8 kB PNG
# announcing 8192 x 8192 px (1-bit, 8000 px per byte) would take gigabytes to convert.
_BOMB_MIN_PIXELS = 2**24
_MAX_PX_PER_BYTE = 64
_BLOCK = 2**20  # values per chunk of the float64 arithmetic, to keep no full float64 copy
_COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_GREY_MAX_CODE = {"1": 255, "L": 255, "LA": 255, "La": 255}  # after conversion to "L"
_GREY_MAX_CODE |= {"I;16": 65535, "I;16B": 65535, "I;16L": 65535}
# ITU-R 601-2 luma, what Pillow's convert("L") uses
_LUMA_TEXT = "(0.299 R + 0.587 G + 0.114 B)"
_GWY = "Gwy::"


def list_channels(path: Path) -> list[ChannelInfo]:
    """The single image of a PNG/TIFF/.npy file (its channel name is stored by stm-zoo, else Z)."""
    scan = read(path)
    return [ChannelInfo(scan.channel, scan.unit, (scan.direction,))]


def read(path: Path, scan_size_nm: float | Sequence[float] | None = None) -> Scan:
    """The image in `path` as a `Scan` (see the module docstring for units and size).

    Raises:
        STMFileError: empty, unrecognised, truncated or oversized file, or not a 2-D image.
    """
    size = check_not_empty(path)
    with open(path, "rb") as f:
        magic = f.read(8)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if not magic.startswith(_NPY_MAGIC):
            raise file_error(path, "is not a NumPy .npy file (no \\x93NUMPY signature)")
        values, info = _read_npy(path, size), {}
        fmt = "npy"
    else:
        if suffix == ".png" and not magic.startswith(_PNG_MAGIC):
            raise file_error(path, "is not a PNG image (no PNG signature)")
        if suffix in (".tif", ".tiff") and not magic.startswith(_TIFF_MAGICS):
            raise file_error(path, "is not a TIFF image (no TIFF signature)")
        values, info = _read_pillow(path, size)
        fmt = "png" if suffix == ".png" else "tiff"
    return _to_scan(path, fmt, values, info, scan_size_nm)


def write(scan: Scan, path: Path, bit_depth: int | None = None) -> None:
    """Write `scan` as PNG (16 or 8 bit), TIFF (float32 or 16 bit) or .npy (float32).

    Raises:
        STMFileError: an unsupported `bit_depth` for the format.
    """
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if bit_depth not in (None, 32):
            raise file_error(path, f".npy is written as float32, not {bit_depth}-bit")
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(scan.data, dtype=np.float32), allow_pickle=False)
        write_atomically(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
        return
    from PIL import Image, PngImagePlugin

    if suffix == ".png":
        bits = bit_depth or 16
        if bits not in (8, 16):
            raise file_error(path, f"PNG is written with 8 or 16 bits, not {bit_depth}")
        codes, encoding = _quantise(scan.data, bits)
        image = Image.fromarray(codes)
        info = PngImagePlugin.PngInfo()
        info.add_itxt(_TEXT_KEY, _description(scan, encoding))
        for key, value in _gwyddion_chunks(scan, encoding, 2**bits - 1).items():
            info.add_text(key, value)
        write_atomically(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
        return
    bits = bit_depth or 32
    if bits == 32:
        image = Image.fromarray(np.ascontiguousarray(scan.data, dtype=np.float32))
        encoding: dict[str, Any] = {"kind": "float"}
    elif bits == 16:
        codes, encoding = _quantise(scan.data, 16)
        image = Image.fromarray(codes)
    else:
        raise file_error(path, f"TIFF is written as float32 (32) or 16-bit, not {bit_depth}")
    description = _description(scan, encoding)
    write_atomically(
        path,
        lambda tmp: image.save(tmp, format="TIFF", tiffinfo={_TIFF_DESCRIPTION: description}),
    )


def _read_npy(path: Path, size: int) -> np.ndarray:
    # The header is parsed first, so shape, dtype and length are checked before any allocation.
    with reading(path, "NumPy .npy"), open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise file_error(path, f"uses .npy format version {version}, not 1.0 or 2.0")
        offset = f.tell()
    if dtype.kind not in "biuf":
        raise file_error(path, f"holds {dtype} values, not numbers")
    image_shape = tuple(d for d in shape if d != 1) if len(shape) > 2 else tuple(shape)
    if len(image_shape) != 2:
        raise file_error(path, f"holds an array of shape {tuple(shape)}, not a 2-D image")
    check_image_size(path, image_shape[1], image_shape[0], where="array header")
    needed = int(np.prod(shape)) * dtype.itemsize
    if size - offset < needed:
        raise file_error(
            path,
            f"is truncated: the header announces {needed} bytes of data, {size - offset} follow",
        )
    with reading(path, "NumPy .npy"):
        array = np.load(path, allow_pickle=False)
    # Values beyond float32's range become +-inf on purpose: restore repairs them as glitches.
    with np.errstate(over="ignore"):
        return np.asarray(array, dtype=np.float32).reshape(image_shape)


def _read_pillow(path: Path, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Pixels (H, W) and a dict of the file's text entries plus "mode", "notes", "max_code"."""
    from PIL import Image, UnidentifiedImageError

    kind = "PNG" if path.suffix.lower() == ".png" else "TIFF"
    png = None
    if kind == "PNG":
        with open(path, "rb") as f:
            png = _png.read_header(f.read(33))
        if png is not None:  # before Pillow allocates anything
            check_image_size(path, png.width, png.height, where="image header")
            _check_not_a_bomb(path, png.width, png.height, size)

    # Image.open parses the header only; the size is checked before decoding the pixels. Pillow's
    # warnings about odd tags are dropped: the file either decodes or raises.
    with reading(path, kind), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            opened = Image.open(path)
        except UnidentifiedImageError:
            raise file_error(path, f"is not a {kind} image Pillow can decode (corrupt?)") from None
        except Image.DecompressionBombError:
            raise file_error(
                path,
                f"the image header announces more than {Image.MAX_IMAGE_PIXELS} px, far beyond "
                f"the {MAX_PIXELS} px this reader accepts, so the file is corrupt",
            ) from None
        with opened as image:
            check_image_size(path, image.width, image.height, where="image header")
            _check_not_a_bomb(path, image.width, image.height, size)
            frames = getattr(image, "n_frames", 1)
            mode = image.mode
            notes: list[str] = []
            if png is not None and png.bit_depth == 16 and png.colour_type in (2, 4, 6):
                mode = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[png.colour_type]
                values = _png_16bit_colour(path, png, notes)
                alpha = png.has_alpha
                max_code = None if png.is_colour else 65535
                texts = image.info  # text before the pixels; Pillow reads the rest on decoding
            else:
                if mode in _COLOUR_MODES:
                    notes.append(f"the {mode} colour image was converted to luminance {_LUMA_TEXT}")
                    if _tiff_bits(image) > 8:
                        notes.append(
                            "its channels were read at 8 bits, all that Pillow decodes of a colour "
                            "TIFF; save it as a greyscale TIFF to keep every bit"
                        )
                if mode in _COLOUR_MODES or mode in ("1", "LA", "La"):
                    values = np.asarray(image.convert("L"))
                else:
                    values = np.asarray(image)
                alpha = mode in _ALPHA_MODES
                max_code = _GREY_MAX_CODE.get(mode)
                texts = {**image.info, **getattr(image, "text", {})}
            if alpha or "transparency" in image.info:
                notes.append("the alpha (transparency) channel was ignored")
            info = {str(k): v for k, v in texts.items() if isinstance(v, str | int | float)}
            tags = getattr(image, "tag_v2", None)
            if tags is not None and isinstance(tags.get(_TIFF_DESCRIPTION), str):
                info[_TEXT_KEY] = tags.get(_TIFF_DESCRIPTION)
    if values.ndim != 2:
        raise file_error(
            path, f"decodes to an array of shape {values.shape}, not a greyscale image"
        )
    info["mode"] = mode
    info["notes"] = notes
    info["max_code"] = max_code
    if frames > 1:
        info["frames"] = frames
    return values, info


def _check_not_a_bomb(path: Path, width: int, height: int, size: int) -> None:
    pixels = width * height
    if pixels > _BOMB_MIN_PIXELS and pixels > _MAX_PX_PER_BYTE * size:
        raise file_error(
            path,
            f"the image header announces {width} x {height} px in a file of only {size} bytes "
            f"(over {_MAX_PX_PER_BYTE} px per byte), the mark of a decompression bomb or a "
            "corrupt file; if the image is genuine, save it as an uncompressed TIFF or as .npy",
        )


def _tiff_bits(image: Any) -> int:
    tags = getattr(image, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None  # BitsPerSample
    if isinstance(bits, tuple):
        bits = max((b for b in bits if isinstance(b, int)), default=0)
    return bits if isinstance(bits, int) else 0


def _png_16bit_colour(path: Path, png: _png.PngHeader, notes: list[str]) -> np.ndarray:
    """Luminance of a 16-bit RGB(A) PNG, or the grey of a 16-bit grey+alpha one, as float32."""
    channels = _png.read_16bit_colour(path, png)
    if not png.is_colour:
        return channels[..., 0]
    notes.append(f"the 16-bit RGB image was converted to luminance {_LUMA_TEXT}")
    # (299 R + 587 G + 114 B) / 1000 in float64 is exact for grey pixels (R = G = B)
    luma = np.empty(channels.shape[:2], dtype=np.float32)
    rows = max(1, _BLOCK // max(1, png.width))
    for start in range(0, png.height, rows):
        block = channels[start : start + rows].astype(np.float64)
        luma[start : start + rows] = (
            299 * block[..., 0] + 587 * block[..., 1] + 114 * block[..., 2]
        ) / 1000
    return luma


def _to_scan(
    path: Path,
    fmt: str,
    values: np.ndarray,
    info: dict[str, Any],
    scan_size_nm: float | Sequence[float] | None,
) -> Scan:
    notes: list[str] = list(info.pop("notes", []))
    max_code = info.pop("max_code", None)
    stored = _parse_description(info.get(_TEXT_KEY))
    gwyddion = {} if stored else _gwyddion_fields(values, info, max_code, notes)
    source = stored or gwyddion
    data = gwyddion.pop("data", None)
    if data is None:
        data = _decode(values, stored.get("encoding"))
    if info.get("frames"):
        notes.append(f"the file holds {info['frames']} images; the first was read")
    stored_size = source.get("scan_size_m")
    if scan_size_nm is None and _is_size(stored_size):
        scan_size_m = (float(stored_size[0]), float(stored_size[1]))
        assumed = bool(stored.get("pixel_size_assumed", False))
    else:
        scan_size_m = default_scan_size_m(data.shape, scan_size_nm)
        assumed = True
        notes.append(assumed_size_note(scan_size_nm))
    if not stored and "unit" not in gwyddion and fmt != "npy":
        notes.append(f"values are {info.get('mode', '')} image codes in arbitrary units")
    direction = source.get("direction")
    scan_dir = stored.get("scan_dir")
    history = stored.get("history")
    metadata: dict[str, Any] = {"format": fmt, "header": jsonable(stored or info)}
    if notes:
        metadata["notes"] = notes
    return Scan(
        data=data,
        unit=str(source.get("unit", "")),
        channel=str(source.get("channel", "Z")),
        direction=direction if direction in ("forward", "backward") else "forward",
        scan_size_m=scan_size_m,
        bias_v=finite_or_none(stored.get("bias_v")),
        setpoint_a=finite_or_none(stored.get("setpoint_a")),
        source=path,
        metadata=metadata,
        history=[str(s) for s in history] if isinstance(history, list) else [],
        pixel_size_assumed=assumed,
        scan_dir=scan_dir if scan_dir in ("up", "down") else None,
    )


def _gwyddion_fields(
    values: np.ndarray, info: dict[str, Any], max_code: int | None, notes: list[str]
) -> dict[str, Any]:
    """What the "Gwy::" text chunks of a Gwyddion export say, in `Scan` terms.

    Keys (each only when the chunks give it): "channel", "direction", "scan_size_m" [x, y],
    "unit" and "data" (float32 heights from Gwy::ZMin/ZMax, for greyscale images).
    """
    keys = {k[len(_GWY) :]: v for k, v in info.items() if k.startswith(_GWY) and isinstance(v, str)}
    fields: dict[str, Any] = {}
    title = keys.get("Title", "").strip()
    if title:
        fields["channel"], direction = split_title(title)
        if direction:
            fields["direction"] = direction
    xy_factor, xy_unit = split_si_unit(keys.get("XYUnit", ""))
    xreal, yreal = finite_or_none(keys.get("XReal")), finite_or_none(keys.get("YReal"))
    if xy_unit == "m" and xreal and yreal and xreal > 0 and yreal > 0:
        fields["scan_size_m"] = [xreal * xy_factor, yreal * xy_factor]
    elif xreal is not None or yreal is not None:
        notes.append(
            f"Gwy::XReal and Gwy::YReal are not a positive length in metres (Gwy::XYUnit "
            f"{keys.get('XYUnit', '')!r}), so they were not used as the scan size"
        )
    zmin, zmax = finite_or_none(keys.get("ZMin")), finite_or_none(keys.get("ZMax"))
    if zmin is not None and zmax is not None:
        if max_code is None:
            notes.append("Gwy::ZMin and Gwy::ZMax were ignored: they scale greyscale images only")
        else:
            z_factor, z_unit = split_si_unit(keys.get("ZUnit", ""))
            scale = (zmax - zmin) * z_factor / max_code
            fields["data"] = _affine(values, zmin * z_factor, scale)
            fields["unit"] = z_unit
    return fields


def _affine(codes: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """float32 offset + codes * scale, computed in float64 a block of rows at a time."""
    out = np.empty(codes.shape, dtype=np.float32)
    rows = max(1, _BLOCK // max(1, codes.shape[1]))
    for start in range(0, codes.shape[0], rows):
        out[start : start + rows] = offset + codes[start : start + rows].astype(np.float64) * scale
    return out


def _is_size(value: Any) -> bool:
    if not isinstance(value, list) or len(value) != 2:
        return False
    numbers = [finite_or_none(v) for v in value]
    return all(v is not None and v > 0 for v in numbers)


def _parse_description(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        stored = json.loads(text)
    except ValueError:
        return {}
    return stored if isinstance(stored, dict) and stored.get(_TEXT_KEY) == 1 else {}


def _description(scan: Scan, encoding: dict[str, Any]) -> str:
    # ASCII JSON: TIFF's ImageDescription is an ASCII tag.
    return json.dumps(
        jsonable(
            {
                _TEXT_KEY: 1,
                "channel": scan.channel,
                "direction": scan.direction,
                "unit": scan.unit,
                "scan_size_m": list(scan.scan_size_m),
                "pixel_size_assumed": scan.pixel_size_assumed,
                "bias_v": scan.bias_v,
                "setpoint_a": scan.setpoint_a,
                "scan_dir": scan.scan_dir,
                "history": scan.history,
                "encoding": encoding,
                "source_metadata": scan.metadata,
            }
        ),
        separators=(",", ":"),
    )


def _quantise(data: np.ndarray, bits: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Integer codes and the mapping value = offset + code * scale (code `nan_code` is NaN).

    Works a block of rows at a time: a full-size float64 copy of a large scan would take eight
    bytes per pixel on top of the scan itself.
    """
    top = 2**bits - 1
    finite = np.isfinite(data)
    first = 1 if not finite.all() else 0  # code 0 is reserved for NaN when there is any
    has_values = bool(finite.any())
    lo = float(np.min(data, where=finite, initial=np.inf)) if has_values else 0.0
    hi = float(np.max(data, where=finite, initial=-np.inf)) if has_values else 0.0
    scale = (hi - lo) / (top - first) if hi > lo else 1.0
    offset = lo - first * scale
    codes = np.zeros(data.shape, dtype=np.uint16 if bits == 16 else np.uint8)
    rows = max(1, _BLOCK // max(1, data.shape[1]))
    for start in range(0, data.shape[0], rows):
        block = slice(start, start + rows)
        with np.errstate(invalid="ignore"):
            values = np.rint((data[block].astype(np.float64) - offset) / scale)
        values[~finite[block]] = 0
        codes[block] = np.clip(values, 0, top)
    encoding = {
        "kind": "linear",
        "offset": offset,
        "scale": scale,
        "nan_code": 0 if first else None,
    }
    return codes, encoding


def _decode(values: np.ndarray, encoding: Any) -> np.ndarray:
    if not isinstance(encoding, dict) or encoding.get("kind") != "linear":
        return values.astype(np.float32)
    offset = finite_or_none(encoding.get("offset"))
    scale = finite_or_none(encoding.get("scale"))
    if offset is None or scale is None:
        return values.astype(np.float32)
    data = _affine(values, offset, scale)
    if encoding.get("nan_code") == 0:
        data[values == 0] = np.nan
    return data


def _gwyddion_chunks(scan: Scan, encoding: dict[str, Any], top: int) -> dict[str, str]:
    """The "Gwy::" text chunks Gwyddion writes with a 16-bit PNG export, for our codes."""
    zmin = encoding["offset"]
    return {
        _GWY + "XReal": repr(scan.scan_size_m[0]),
        _GWY + "YReal": repr(scan.scan_size_m[1]),
        _GWY + "XOffset": "0",
        _GWY + "YOffset": "0",
        _GWY + "ZMin": repr(zmin),
        _GWY + "ZMax": repr(zmin + top * encoding["scale"]),
        _GWY + "XYUnit": "m",
        _GWY + "ZUnit": scan.unit,
        _GWY + "Title": f"{scan.channel} ({scan.direction.title()})",
    }

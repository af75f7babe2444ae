"""PNG and TIFF (via Pillow) and NumPy .npy: plain images with no physical size of their own.

Reading: 8- and 16-bit greyscale (colour is converted to luminance), 32-bit integer and float TIFF,
and 2-D numeric .npy arrays. The scan size comes from the caller's `scan_size_nm`, else from the
metadata stm-zoo embeds when it writes PNG/TIFF, else the paper's 100 nm per 512 px (flagged in
`Scan.pixel_size_assumed` and `metadata["notes"]`). Values of foreign images are taken as they
are, in arbitrary units (unit "").

Writing:
- PNG: 16-bit greyscale (or 8-bit with `bit_depth=8`); heights are mapped linearly onto the
  codes, and an iTXt chunk "stm_zoo" (JSON) stores the mapping and the physical fields, so our
  reader recovers metres to within half a code step. Code 0 means NaN when the scan has any.
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
    write_atomically,
)
from stm_zoo.io.scan import Scan

_TEXT_KEY = "stm_zoo"
_TIFF_DESCRIPTION = 270
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"


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
        values, info = _read_pillow(path)
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
    return np.asarray(array, dtype=np.float32).reshape(image_shape)


def _read_pillow(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image, UnidentifiedImageError

    kind = "PNG" if path.suffix.lower() == ".png" else "TIFF"

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
            frames = getattr(image, "n_frames", 1)
            info = {str(k): v for k, v in image.info.items() if isinstance(v, str | int | float)}
            tags = getattr(image, "tag_v2", None)
            if tags is not None and isinstance(tags.get(_TIFF_DESCRIPTION), str):
                info[_TEXT_KEY] = tags.get(_TIFF_DESCRIPTION)
            mode = image.mode
            if mode in ("1", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "PA", "La"):
                image = image.convert("L")  # colour previews: luminance
            values = np.asarray(image)
    if values.ndim != 2:
        raise file_error(
            path, f"decodes to an array of shape {values.shape}, not a greyscale image"
        )
    info["mode"] = mode
    if frames > 1:
        info["frames"] = frames
    return values, info


def _to_scan(
    path: Path,
    fmt: str,
    values: np.ndarray,
    info: dict[str, Any],
    scan_size_nm: float | Sequence[float] | None,
) -> Scan:
    stored = _parse_description(info.get(_TEXT_KEY))
    data = _decode(values, stored.get("encoding"))
    notes: list[str] = []
    if info.get("frames"):
        notes.append(f"the file holds {info['frames']} images; the first was read")
    stored_size = stored.get("scan_size_m")
    if scan_size_nm is None and _is_size(stored_size):
        scan_size_m = (float(stored_size[0]), float(stored_size[1]))
        assumed = bool(stored.get("pixel_size_assumed", False))
    else:
        scan_size_m = default_scan_size_m(data.shape, scan_size_nm)
        assumed = True
        notes.append(assumed_size_note(scan_size_nm))
    if not stored and fmt != "npy":
        notes.append(f"values are {info.get('mode', '')} image codes in arbitrary units")
    direction = stored.get("direction")
    scan_dir = stored.get("scan_dir")
    history = stored.get("history")
    metadata: dict[str, Any] = {"format": fmt, "header": jsonable(stored or info)}
    if notes:
        metadata["notes"] = notes
    return Scan(
        data=data,
        unit=str(stored.get("unit", "")),
        channel=str(stored.get("channel", "Z")),
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
    """Integer codes and the mapping value = offset + code * scale (code `nan_code` is NaN)."""
    top = 2**bits - 1
    finite = np.isfinite(data)
    first = 1 if not finite.all() else 0  # code 0 is reserved for NaN when there is any
    values = data[finite].astype(np.float64)
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 0.0
    scale = (hi - lo) / (top - first) if hi > lo else 1.0
    offset = lo - first * scale
    codes = np.zeros(data.shape, dtype=np.float64)
    codes[finite] = np.rint((values - offset) / scale)
    dtype = np.uint16 if bits == 16 else np.uint8
    encoding = {
        "kind": "linear",
        "offset": offset,
        "scale": scale,
        "nan_code": 0 if first else None,
    }
    return np.clip(codes, 0, top).astype(dtype), encoding


def _decode(values: np.ndarray, encoding: Any) -> np.ndarray:
    if not isinstance(encoding, dict) or encoding.get("kind") != "linear":
        return values.astype(np.float32)
    offset = finite_or_none(encoding.get("offset"))
    scale = finite_or_none(encoding.get("scale"))
    if offset is None or scale is None:
        return values.astype(np.float32)
    data = (offset + values.astype(np.float64) * scale).astype(np.float32)
    if encoding.get("nan_code") == 0:
        data[values == 0] = np.nan
    return data

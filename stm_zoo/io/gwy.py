"""Gwyddion .gwy: read and write data fields with their physical size and units.

A .gwy file is a serialised `GwyContainer`; channel n is the `GwyDataField` at "/n/data" (xres,
yres, xreal, yreal in base SI units of `si_unit_xy`, values in `si_unit_z`), titled by
"/n/data/title", with string metadata in the container "/n/meta". Gwyddion shows row 0 at the
top, like `Scan`, so no flips are needed.

What we write per channel: the field (float64, as Gwyddion stores it), the title "Z (Forward)",
and "/n/meta" holding bias, setpoint, direction, slow-scan direction and history under
"stm_zoo.*" keys plus the source file's header as strings (Gwyddion's metadata browser shows
them). Gwyddion has no NaN: missing pixels (an aborted scan) are written as the mean of the valid
ones and marked in "/n/mask", with "stm_zoo.mask_is_missing_data" so that we read them back as NaN.
Channels that share one source header (every channel of an .sxm file) carry it once: the first
in full, the others "stm_zoo.header_in" naming that channel, so a file with thousands of channels
stays linear in size; the reader merges it back into each channel's header.

Reading maps the file read-only and parses it here (gwyfile's parser copies the rest of an object
after every component, and the whole file twice): data arrays are views of the mapping, so only
the selected field's values are ever read and copied, once, into the float32 `Scan`. (As with
any memory-mapped reader, another process truncating the file during the read is not survivable.)
The objects are gwyfile's classes, and gwyfile serialises what we write.

One file for the format: reading and writing share the container layout and the "stm_zoo.*"
metadata keys, and the bounded parser of the serialised objects serves only this reader.
"""

from __future__ import annotations

import json
import mmap
import re
import struct
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo.io._common import (
    ChannelInfo,
    assumed_size_note,
    channel_lookup,
    check_image_size,
    check_not_empty,
    default_scan_size_m,
    dumps,
    file_error,
    finite_or_none,
    parse_direction,
    reading,
    split_si_unit,
    split_title,
    write_atomically,
)
from stm_zoo.io.scan import Scan

_MAGIC = b"GWYP"
_FIELD_KEY = re.compile(r"^/(\d+)/data$")
_META = "stm_zoo."


def list_channels(path: Path) -> list[ChannelInfo]:
    """Every data field of the file, grouped by channel name (directions from the titles)."""
    channels: dict[str, tuple[str, list[str]]] = {}
    for field in _fields(path, _load(path)):
        unit, directions = channels.setdefault(field["channel"], (field["unit"], []))
        directions.append(field["direction"])
    return [ChannelInfo(name, unit, tuple(dirs)) for name, (unit, dirs) in channels.items()]


def read(
    path: Path,
    channel: str = "Z",
    direction: str = "forward",
    scan_size_nm: float | Sequence[float] | None = None,
) -> Scan:
    """One data field as a `Scan`.

    A file with a single field returns it whatever `channel` and `direction` say; otherwise the
    field whose title matches both is chosen. Fields without a lateral size in metres (e.g.
    synthetic data in pixels) get `scan_size_nm` or the default sampling, flagged as assumed.

    Raises:
        STMFileError: not a .gwy file, corrupt, or no field matching channel and direction.
    """
    return read_many(path, [(channel, direction)], scan_size_nm)[0]


def read_many(
    path: Path,
    selection: Sequence[tuple[str, str]],
    scan_size_nm: float | Sequence[float] | None = None,
) -> list[Scan]:
    """The (channel, direction) fields of `selection`, parsing the file once (see `read`)."""
    container = _load(path)
    fields = _fields(path, container)
    find = channel_lookup(f["channel"] for f in fields)
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for f in fields:
        by_channel.setdefault(f["channel"], []).append(f)
    by_number = {f["n"]: f for f in fields}
    scans = []
    for channel, direction in selection:
        fast, slow = parse_direction(direction)
        if len(fields) == 1:
            field = fields[0]
        else:
            field = next(
                (
                    f
                    for f in by_channel.get(find(channel) or "", [])
                    if f["direction"] == fast and slow in (None, f["meta"].get(_META + "scan_dir"))
                ),
                None,
            )
        if field is None:
            held = ", ".join(f"{f['channel']} ({f['direction']})" for f in fields)
            raise file_error(path, f"has no {channel} {fast} field; it holds {held}")
        scans.append(_to_scan(path, container, field, _header(field, by_number), scan_size_nm))
    return scans


def read_all(path: Path, scan_size_nm: float | Sequence[float] | None = None) -> list[Scan]:
    """Every data field of the file as a `Scan`, in channel-number order (see `read`);
    `metadata["field"]` holds each one's channel number."""
    container = _load(path)
    fields = _fields(path, container)
    by_number = {f["n"]: f for f in fields}
    return [_to_scan(path, container, f, _header(f, by_number), scan_size_nm) for f in fields]


def write(scans: Sequence[Scan], path: Path, shown: int = 0) -> None:
    """Write the scans as channels 0, 1, ... of one .gwy file; Gwyddion opens channel `shown`."""
    from gwyfile.objects import GwyContainer

    container = GwyContainer()
    _put_fields(container, list(enumerate(scans)), shown)
    write_atomically(path, lambda tmp: container.tofile(str(tmp)))


def write_into(
    source: Path, path: Path, added: Sequence[Scan], replaced: dict[int, Scan] | None = None
) -> None:
    """Copy the .gwy file `source` to `path` with every object in it unchanged (fields, masks,
    graphs, logs, ...), except that channel n holds `replaced[n]` and `added` become new channels
    after the last one; Gwyddion opens the first added (else the first replaced) channel.

    Raises:
        STMFileError: `source` is not a readable .gwy file or has no channel n of `replaced`.
    """
    container = _load(source)
    numbers = [f["n"] for f in _fields(source, container)]
    replaced = replaced or {}
    for n in replaced:
        if n not in numbers:
            raise file_error(source, f"has no channel {n} to replace")
    first_new = max(numbers) + 1
    placed = [*replaced.items(), *enumerate(added, start=first_new)]
    shown = first_new if added else next(iter(replaced), numbers[0])
    for n in numbers:
        container[f"/{n}/data/visible"] = False
    _put_fields(container, placed, shown)
    write_atomically(path, lambda tmp: container.tofile(str(tmp)))


def _put_fields(container: Any, placed: Sequence[tuple[int, Scan]], shown: int) -> None:
    """Store each (channel number, scan) as "/n/data" with its title, meta and missing-data mask.

    Channels sharing one source header carry it once (see the module docstring).
    """
    from gwyfile.objects import GwyDataField, GwySIUnit

    shared: tuple[dict[str, str], int] | None = None  # the last header written in full, where
    for i, scan in placed:
        data = scan.data.astype(np.float64)
        missing = ~np.isfinite(data)
        if missing.any():
            data[missing] = float(data[~missing].mean()) if (~missing).any() else 0.0
        field = GwyDataField(
            data,
            xreal=scan.scan_size_m[0],
            yreal=scan.scan_size_m[1],
            si_unit_xy=GwySIUnit(unitstr="m"),
            si_unit_z=GwySIUnit(unitstr=scan.unit),
        )
        container[f"/{i}/data"] = field
        _set_string(container, f"/{i}/data/title", f"{scan.channel} ({scan.direction.title()})")
        container[f"/{i}/data/visible"] = i == shown
        if missing.any():
            container[f"/{i}/mask"] = GwyDataField(
                missing.astype(np.float64),
                xreal=scan.scan_size_m[0],
                yreal=scan.scan_size_m[1],
                si_unit_xy=GwySIUnit(unitstr="m"),
                si_unit_z=GwySIUnit(unitstr=""),
            )
        elif f"/{i}/mask" in container:  # a replaced channel's mask no longer applies
            del container[f"/{i}/mask"]
        header = _source_header(scan)
        if shared is not None and header and header == shared[0]:
            container[f"/{i}/meta"] = _meta(scan, bool(missing.any()), {}, shared_in=shared[1])
        else:
            container[f"/{i}/meta"] = _meta(scan, bool(missing.any()), header)
            shared = (header, i)


def _set_string(container: Any, key: str, value: str) -> None:
    # gwyfile would store a one-character string ("Z") as a char, which Gwyddion rejects.
    container[key] = value
    container.typecodes[key] = "s"


def _source_header(scan: Scan) -> dict[str, str]:
    """The source file's header as the string entries "/n/meta" shows in Gwyddion."""
    source_format = str(scan.metadata.get("format", "source"))
    header = scan.metadata.get("header")
    if not isinstance(header, dict):
        return {}
    if source_format != "gwy":
        return {
            f"{source_format}:{key}": value if isinstance(value, str) else dumps(value)
            for key, value in header.items()
        }
    # a .gwy read back: keep its foreign metadata as it was
    return {str(k): str(v) for k, v in header.items() if not str(k).startswith(_META)}


def _meta(
    scan: Scan, mask_is_missing: bool, header: dict[str, str], shared_in: int | None = None
) -> Any:
    from gwyfile.objects import GwyContainer

    meta = GwyContainer()
    values = {
        "channel": scan.channel,
        "direction": scan.direction,
        "unit": scan.unit,
        "bias_v": "" if scan.bias_v is None else repr(scan.bias_v),
        "setpoint_a": "" if scan.setpoint_a is None else repr(scan.setpoint_a),
        "scan_dir": scan.scan_dir or "",
        "pixel_size_assumed": "true" if scan.pixel_size_assumed else "false",
        "mask_is_missing_data": "true" if mask_is_missing else "false",
        "history": json.dumps(scan.history),
    }
    if shared_in is not None:
        values["header_in"] = str(shared_in)
    for key, value in values.items():
        _set_string(meta, _META + key, value)
    for key, value in header.items():
        _set_string(meta, key, value)
    return meta


def _load(path: Path) -> Any:
    size = check_not_empty(path)
    with reading(path, "Gwyddion .gwy"), open(path, "rb") as f:
        magic = f.read(4)
        if magic != _MAGIC:
            hint = (
                " (an old Gwyddion 1.x file; re-save it in Gwyddion 2)" if magic == b"GWYO" else ""
            )
            raise file_error(path, f"is not a Gwyddion .gwy file{hint}")
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    budget = [max(_MIN_COMPONENTS, size // _BYTES_PER_COMPONENT)]
    try:
        container, _ = _parse_object(buffer, len(_MAGIC), len(buffer), 0, budget)
    except ValueError as error:
        raise file_error(path, f"is a corrupt .gwy file ({error})") from None
    if getattr(container, "name", None) != "GwyContainer":
        raise file_error(path, "does not hold a GwyContainer at its top level")
    return container


# The grammar of the serialised objects, parsed with bounds on every read: an object is a
# NUL-terminated type name, a 32-bit size and its components; a component is a NUL-terminated
# name, a type code and a value. Arrays become numpy views of the mapped file (no copy). A file
# announcing absurd numbers of components (each becomes a Python object) is refused.
_FIXED = {"b": "<?", "c": "<B", "i": "<i", "q": "<q", "d": "<d"}
_ARRAYS = {
    "C": np.dtype(np.uint8),
    "I": np.dtype("<i4"),
    "Q": np.dtype("<i8"),
    "D": np.dtype("<f8"),
}
_MAX_DEPTH = 32
_MIN_COMPONENTS = 100_000
_BYTES_PER_COMPONENT = 16


def _name_end(buffer: Any, start: int, end: int) -> int:
    nul = buffer.find(b"\0", start, end)
    if nul < 0:
        raise ValueError(f"unterminated name at byte {start}")
    return nul


def _text(buffer: Any, start: int, end: int) -> str:
    return buffer[start:end].decode("utf-8", errors="replace")


def _count(buffer: Any, pos: int, end: int) -> int:
    if pos + 4 > end:
        raise ValueError(f"a length runs past the end of the data at byte {pos}")
    return int.from_bytes(buffer[pos : pos + 4], "little")


def _parse_object(
    buffer: Any, start: int, end: int, depth: int, budget: list[int]
) -> tuple[Any, int]:
    """The object serialised at `start` (within `end`) and the byte after it."""
    from gwyfile.objects import GwyContainer, GwyDataField, GwyObject, GwySIUnit

    if depth > _MAX_DEPTH:
        raise ValueError("objects nested too deeply")
    name_end = _name_end(buffer, start, end)
    name = _text(buffer, start, name_end)
    pos = name_end + 1
    stop = pos + 4 + _count(buffer, pos, end)
    if stop > end:
        raise ValueError(f"an object at byte {start} runs past the end of the data (truncated)")
    pos += 4
    data: OrderedDict[str, Any] = OrderedDict()
    typecodes: dict[str, str] = {}
    while pos < stop:
        key, code, value, pos = _parse_component(buffer, pos, stop, depth, budget)
        data[key], typecodes[key] = value, code
    kind = {"GwyContainer": GwyContainer, "GwyDataField": GwyDataField, "GwySIUnit": GwySIUnit}
    if name in kind:
        return kind[name](data=data, typecodes=typecodes), stop
    return GwyObject(name, data, typecodes=typecodes), stop


def _parse_component(
    buffer: Any, start: int, end: int, depth: int, budget: list[int]
) -> tuple[str, str, Any, int]:
    """(name, type code, value, byte after it) of the component at `start`."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("far more components than its size allows")
    name_end = _name_end(buffer, start, end)
    key = _text(buffer, start, name_end)
    pos = name_end + 2
    if pos > end:
        raise ValueError(f"a component at byte {start} has no type")
    code = chr(buffer[pos - 1])
    if code in _FIXED:
        size = struct.calcsize(_FIXED[code])
        if pos + size > end:
            raise ValueError(f"a component at byte {start} runs past the end of its object")
        return key, code, struct.unpack(_FIXED[code], buffer[pos : pos + size])[0], pos + size
    if code == "s":
        text_end = _name_end(buffer, pos, end)
        return key, code, _text(buffer, pos, text_end), text_end + 1
    if code == "o":
        value, pos = _parse_object(buffer, pos, end, depth + 1, budget)
        return key, code, value, pos
    if code in _ARRAYS:
        dtype = _ARRAYS[code]
        count = _count(buffer, pos, end)
        pos += 4
        if pos + count * dtype.itemsize > end:
            raise ValueError(f"an array at byte {start} runs past the end of its object")
        array = np.frombuffer(buffer, dtype, count, pos) if count else np.empty(0, dtype)
        return key, code, array, pos + count * dtype.itemsize
    if code in ("S", "O"):
        count = _count(buffer, pos, end)
        pos += 4
        items: list[Any] = []
        for _ in range(count):  # each item takes at least one byte, so this loop is bounded
            budget[0] -= 1
            if budget[0] < 0:
                raise ValueError("far more components than its size allows")
            if code == "S":
                text_end = _name_end(buffer, pos, end)
                items.append(_text(buffer, pos, text_end))
                pos = text_end + 1
            else:
                item, pos = _parse_object(buffer, pos, end, depth + 1, budget)
                items.append(item)
        return key, code, items, pos
    raise ValueError(f"unknown component type {code!r} at byte {start}")


def _fields(path: Path, container: Any) -> list[dict[str, Any]]:
    """Checked descriptions of every "/n/data" field, in channel-number order."""
    fields = []
    for key in container:
        match = _FIELD_KEY.match(str(key))
        value = container[key]
        if match is None or getattr(value, "name", None) != "GwyDataField":
            continue
        n = int(match[1])
        meta = _meta_strings(container.get(f"/{n}/meta"))
        title = container.get(f"/{n}/data/title")
        title = title if isinstance(title, str) and title.strip() else f"Channel {n}"
        name, titled_direction = split_title(title)
        channel = meta.get(_META + "channel") or name
        direction = meta.get(_META + "direction") or titled_direction or "forward"
        if direction not in ("forward", "backward"):
            direction = "forward"
        unit_z = _unit(value.get("si_unit_z"))
        fields.append(
            {
                "n": n,
                "key": str(key),
                "channel": channel,
                "direction": direction,
                "unit": meta.get(_META + "unit", split_si_unit(unit_z)[1]),
                "meta": meta,
                "title": title,
            }
        )
    if not fields:
        raise file_error(path, "holds no image data field (/0/data)")
    return sorted(fields, key=lambda f: f["n"])


def _unit(si_unit: Any) -> str:
    unitstr = si_unit.get("unitstr", "") if getattr(si_unit, "name", None) == "GwySIUnit" else ""
    return unitstr if isinstance(unitstr, str) else ""


def _meta_strings(meta: Any) -> dict[str, str]:
    if getattr(meta, "name", None) != "GwyContainer":
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in meta.items()}


def _header(field: dict[str, Any], by_number: dict[int, dict[str, Any]]) -> dict[str, str]:
    """The field's "/n/meta" strings plus the source header it shares with another channel."""
    meta = field["meta"]
    number = meta.get(_META + "header_in", "")
    source = by_number.get(int(number)) if number.isascii() and number.isdigit() else None
    if source is None or source is field:
        return dict(meta)
    shared = {k: v for k, v in source["meta"].items() if not k.startswith(_META)}
    return {**shared, **meta}


def _to_scan(
    path: Path,
    container: Any,
    field: dict[str, Any],
    header: dict[str, str],
    scan_size_nm: float | Sequence[float] | None,
) -> Scan:
    value = container[field["key"]]
    xres, yres = value.get("xres"), value.get("yres")
    if not isinstance(xres, int) or not isinstance(yres, int):
        raise file_error(path, f"data field {field['key']} has no integer xres/yres")
    check_image_size(path, xres, yres, where=f"data field {field['key']}")
    raw = value.get("data")
    if not isinstance(raw, np.ndarray) or raw.size != xres * yres:
        size = raw.size if isinstance(raw, np.ndarray) else 0
        raise file_error(
            path, f"data field {field['key']} holds {size} values, not {xres} x {yres} (truncated)"
        )
    factor, _ = split_si_unit(_unit(value.get("si_unit_z")))
    # One float32 copy of the (mapped) file values; the product is computed in float64 in
    # buffered chunks, never as a whole float64 temporary.
    data = np.empty((yres, xres), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 (corrupt): inf
        np.multiply(raw.reshape(yres, xres), factor, out=data, casting="unsafe")
    meta = field["meta"]
    mask = container.get(f"/{field['n']}/mask")
    if meta.get(_META + "mask_is_missing_data") == "true" and getattr(mask, "name", "") == (
        "GwyDataField"
    ):
        mask_data = mask.get("data")
        if isinstance(mask_data, np.ndarray) and mask_data.size == data.size:
            data[mask_data.reshape(data.shape) > 0.5] = np.nan

    xy_factor, xy_unit = split_si_unit(_unit(value.get("si_unit_xy")))
    xreal = finite_or_none(value.get("xreal", 1.0))
    yreal = finite_or_none(value.get("yreal", 1.0))
    metadata: dict[str, Any] = {
        "format": "gwy",
        "title": field["title"],
        "xreal": xreal,
        "yreal": yreal,
        "si_unit_xy": _unit(value.get("si_unit_xy")),
        "header": header,
        "field": field["n"],
    }
    if xy_unit == "m" and xreal and yreal and xreal > 0 and yreal > 0:
        scan_size_m = (xreal * xy_factor, yreal * xy_factor)
        assumed = meta.get(_META + "pixel_size_assumed") == "true"
    else:
        scan_size_m = default_scan_size_m((yres, xres), scan_size_nm)
        assumed = True
        metadata["notes"] = [assumed_size_note(scan_size_nm)]
    try:
        history = json.loads(meta.get(_META + "history", "[]"))
    except ValueError:
        history = []
    scan_dir = meta.get(_META + "scan_dir") or None
    return Scan(
        data=data,
        unit=field["unit"],
        channel=field["channel"],
        direction=field["direction"],
        scan_size_m=scan_size_m,
        bias_v=finite_or_none(meta.get(_META + "bias_v")),
        setpoint_a=finite_or_none(meta.get(_META + "setpoint_a")),
        source=path,
        metadata=metadata,
        history=[str(s) for s in history] if isinstance(history, list) else [],
        pixel_size_assumed=assumed,
        scan_dir=scan_dir if scan_dir in ("up", "down") else None,
    )

"""Gwyddion .gwy: read and write data fields with their physical size and units via gwyfile.

A .gwy file is a serialised `GwyContainer`; channel n is the `GwyDataField` at "/n/data" (xres,
yres, xreal, yreal in base SI units of `si_unit_xy`, values in `si_unit_z`), titled by
"/n/data/title", with string metadata in the container "/n/meta". Gwyddion shows row 0 at the
top, like `Scan`, so no flips are needed.

What we write per channel: the field (float64, as Gwyddion stores it), the title "Z (Forward)",
and "/n/meta" holding bias, setpoint, direction, slow-scan direction and history under
"stm_zoo.*" keys plus the source file's header as strings (Gwyddion's metadata browser shows
them). Gwyddion has no NaN: missing pixels (an aborted scan) are written as the mean of the valid
ones and marked in "/n/mask", with "stm_zoo.mask_is_missing_data" so that we read them back as NaN.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo.io._common import (
    ChannelInfo,
    assumed_size_note,
    check_image_size,
    check_not_empty,
    default_scan_size_m,
    dumps,
    file_error,
    finite_or_none,
    match_channel,
    parse_direction,
    reading,
    split_si_unit,
    write_atomically,
)
from stm_zoo.io.scan import Scan

_MAGIC = b"GWYP"
_FIELD_KEY = re.compile(r"^/(\d+)/data$")
_TITLE = re.compile(r"^(?P<name>.*?)\s*\((?P<direction>forward|backward)\)\s*$", re.IGNORECASE)
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
    container = _load(path)
    fields = _fields(path, container)
    fast, slow = parse_direction(direction)
    if len(fields) == 1:
        field = fields[0]
    else:
        name = match_channel(channel, [f["channel"] for f in fields])
        field = next(
            (
                f
                for f in fields
                if f["channel"] == name
                and f["direction"] == fast
                and slow in (None, f["meta"].get(_META + "scan_dir"))
            ),
            None,
        )
        if field is None:
            held = ", ".join(f"{f['channel']} ({f['direction']})" for f in fields)
            raise file_error(path, f"has no {channel} {fast} field; it holds {held}")
    return _to_scan(path, container, field, scan_size_nm)


def write(scans: Sequence[Scan], path: Path) -> None:
    """Write the scans as channels 0, 1, ... of one .gwy file (only the first is visible)."""
    from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

    container = GwyContainer()
    for i, scan in enumerate(scans):
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
        container[f"/{i}/data/visible"] = i == 0
        if missing.any():
            container[f"/{i}/mask"] = GwyDataField(
                missing.astype(np.float64),
                xreal=scan.scan_size_m[0],
                yreal=scan.scan_size_m[1],
                si_unit_xy=GwySIUnit(unitstr="m"),
                si_unit_z=GwySIUnit(unitstr=""),
            )
        container[f"/{i}/meta"] = _meta(scan, bool(missing.any()))
    write_atomically(path, lambda tmp: container.tofile(str(tmp)))


def _set_string(container: Any, key: str, value: str) -> None:
    # gwyfile would store a one-character string ("Z") as a char, which Gwyddion rejects.
    container[key] = value
    container.typecodes[key] = "s"


def _meta(scan: Scan, mask_is_missing: bool) -> Any:
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
    for key, value in values.items():
        _set_string(meta, _META + key, value)
    source_format = str(scan.metadata.get("format", "source"))
    header = scan.metadata.get("header")
    if isinstance(header, dict) and source_format != "gwy":
        for key, value in header.items():
            _set_string(
                meta, f"{source_format}:{key}", value if isinstance(value, str) else dumps(value)
            )
    elif isinstance(header, dict):  # a .gwy read back: keep its foreign metadata as it was
        for key, value in header.items():
            if not str(key).startswith(_META):
                _set_string(meta, str(key), str(value))
    return meta


def _load(path: Path) -> Any:
    check_not_empty(path)
    raw = path.read_bytes()
    if raw[:4] != _MAGIC:
        hint = " (an old Gwyddion 1.x file; re-save it in Gwyddion 2)" if raw[:4] == b"GWYO" else ""
        raise file_error(path, f"is not a Gwyddion .gwy file{hint}")
    try:
        _check_object(raw, 4, len(raw), depth=0, budget=[_copy_budget(len(raw))])
    except ValueError as error:
        raise file_error(path, f"is a corrupt .gwy file ({error})") from None
    with reading(path, "Gwyddion .gwy"):
        from gwyfile.objects import GwyObject

        container = GwyObject.frombuffer(raw[4:])
    if getattr(container, "name", None) != "GwyContainer":
        raise file_error(path, "does not hold a GwyContainer at its top level")
    return container


# gwyfile trusts the file: an unterminated string makes it loop forever, and it copies the rest of
# an object after every component. This walk checks the same grammar with bounds first (and that
# the copying stays within a budget), so gwyfile only ever sees well-formed input.
_FIXED_SIZES = {"b": 1, "c": 1, "i": 4, "q": 8, "d": 8}
_ARRAY_ITEM_SIZES = {"C": 1, "I": 4, "Q": 8, "D": 8}
_MAX_DEPTH = 32


def _copy_budget(size: int) -> int:
    return 64 * size + 100_000_000


def _name_end(raw: bytes, start: int, end: int) -> int:
    nul = raw.find(b"\0", start, end)
    if nul < 0:
        raise ValueError(f"unterminated name at byte {start}")
    return nul


def _count(raw: bytes, pos: int, end: int) -> int:
    if pos + 4 > end:
        raise ValueError(f"array length beyond the data at byte {pos}")
    return int.from_bytes(raw[pos : pos + 4], "little")


def _check_object(raw: bytes, start: int, end: int, depth: int, budget: list[int]) -> int:
    """Validate the serialised object at `start` (within `end`); return the byte after it."""
    if depth > _MAX_DEPTH:
        raise ValueError("objects nested too deeply")
    pos = _name_end(raw, start, end) + 1
    size = _count(raw, pos, end)
    pos += 4
    stop = pos + size
    if stop > end:
        raise ValueError(f"an object at byte {start} runs past the end of the data (truncated)")
    while pos < stop:
        budget[0] -= stop - pos  # gwyfile copies the rest of the object after each component
        if budget[0] < 0:
            raise ValueError("too many components to parse")
        pos = _check_component(raw, pos, stop, depth, budget)
    return stop


def _check_component(raw: bytes, start: int, end: int, depth: int, budget: list[int]) -> int:
    pos = _name_end(raw, start, end) + 1
    if pos >= end:
        raise ValueError(f"a component at byte {start} has no type")
    code = chr(raw[pos])
    pos += 1
    if code in _FIXED_SIZES:
        pos += _FIXED_SIZES[code]
    elif code == "s":
        pos = _name_end(raw, pos, end) + 1
    elif code == "o":
        pos = _check_object(raw, pos, end, depth + 1, budget)
    elif code in _ARRAY_ITEM_SIZES:
        pos += 4 + _count(raw, pos, end) * _ARRAY_ITEM_SIZES[code]
    elif code == "S":
        count, pos = _count(raw, pos, end), pos + 4
        for _ in range(count):
            pos = _name_end(raw, pos, end) + 1
    elif code == "O":
        count, pos = _count(raw, pos, end), pos + 4
        for _ in range(count):
            pos = _check_object(raw, pos, end, depth + 1, budget)
    else:
        raise ValueError(f"unknown component type {code!r} at byte {start}")
    if pos > end:
        raise ValueError(f"a component at byte {start} runs past the end of its object")
    return pos


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
        parsed = _TITLE.match(title)
        channel = meta.get(_META + "channel") or (parsed["name"] if parsed else title)
        direction = meta.get(_META + "direction") or (
            parsed["direction"].lower() if parsed else "forward"
        )
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


def _to_scan(
    path: Path,
    container: Any,
    field: dict[str, Any],
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
    data = (raw.astype(np.float64) * factor if factor != 1.0 else raw).reshape(yres, xres)
    with np.errstate(over="ignore"):  # values beyond float32 (a corrupt file) become inf
        data = data.astype(np.float32)
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
        "header": {k: v for k, v in meta.items()},
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

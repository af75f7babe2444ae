"""Nanonis .sxm: read any channel and direction, write files Nanonis-compatible readers open.

Layout: an ASCII header of `:TAG:` lines, each followed by its value line(s), closed by
`:SCANIT_END:`, the two bytes 0x1A 0x04, then the data: for every channel of DATA_INFO in order,
its forward and/or backward image (as the Direction column says), each SCAN_PIXELS = (nx, ny)
float32 values (SCANIT_TYPE: FLOAT MSBFIRST = big-endian) stored line by line in acquisition order.

Orientation (as Gwyddion's nanonis module does): backward images are mirrored left-right, and the
whole image is flipped vertically when SCAN_DIR is up, so row 0 is the top of the frame.

The header is parsed here rather than by nanonispy2 (used by the tests as an independent reader of
our files): nanonispy2 assumes every channel holds both directions (files with forward-only
channels fail to reshape), reads the whole data block before any size check, accepts only a
lower-case `.sxm` name, and lower-cases and converts header values, so it cannot give back the raw
header a writer needs to keep the instrument's metadata.

One file for the format: the header parser, the reader and the writer share the header's tags
and data layout, and the writer rewrites the header a reader parsed, so they change together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from stm_zoo.io._common import (
    ChannelInfo,
    channel_lookup,
    check_image_size,
    check_not_empty,
    file_error,
    finite_or_none,
    parse_direction,
    write_atomically,
)
from stm_zoo.io.scan import Scan

log = logging.getLogger(__name__)

_MAGIC = b":NANONIS_VERSION:"
_END_TAG = b":SCANIT_END:"
_DATA_MARK = b"\x1a\x04"
_MAX_HEADER_BYTES = 4 * 1024 * 1024  # real headers are a few kB
_DTYPES = {("FLOAT", "MSBFIRST"): ">f4", ("FLOAT", "LSBFIRST"): "<f4"}
_DIRECTIONS = {"both": ("forward", "backward"), "forward": ("forward",), "backward": ("backward",)}
_DATA_INFO_COLUMNS = ["channel", "name", "unit", "direction", "calibration", "offset"]
_ARBITRARY_UNITS = {"", "a.u.", "au", "arb.u.", "arb. u."}
_NANONIS_CHANNEL_NUMBERS = {"Z": "14", "Current": "0", "Bias": "8"}
# Our own tags, in the "Group>Name" form Nanonis uses for free-form settings; one value line each,
# because Gwyddion's reader takes exactly one line after every ordinary tag.
_TAG_HISTORY = "stm_zoo>history"
_TAG_ASSUMED = "stm_zoo>pixel size assumed"


@dataclass(frozen=True)
class SxmChannel:
    """One DATA_INFO row."""

    name: str
    unit: str
    directions: tuple[str, ...]


@dataclass(frozen=True)
class SxmHeader:
    """What a reader needs from an .sxm header; `tags` keeps every raw value in file order."""

    tags: dict[str, str]
    data_offset: int
    width: int
    height: int
    dtype: str
    channels: tuple[SxmChannel, ...]
    scan_size_m: tuple[float, float]
    scan_dir: str | None
    bias_v: float | None
    setpoint_a: float | None

    @property
    def plane_bytes(self) -> int:
        return self.width * self.height * 4


def read_header(path: Path) -> SxmHeader:
    """Parse and check the header of `path` without reading the data block.

    Raises:
        STMFileError: not an .sxm file, missing or malformed required tags, absurd dimensions, or
            a data block shorter than the header announces.
    """
    size = check_not_empty(path)
    with open(path, "rb") as f:
        head = f.read(min(size, _MAX_HEADER_BYTES))
    if not head.startswith(_MAGIC):
        raise file_error(
            path, "is not a Nanonis .sxm file (it does not start with ':NANONIS_VERSION:')"
        )
    end = head.find(_END_TAG)
    if end < 0:
        if size > len(head):
            raise file_error(path, "has no ':SCANIT_END:' in its first 4 MiB, so it is corrupt")
        raise file_error(path, "the header is cut off before ':SCANIT_END:' (truncated file)")
    mark = head.find(_DATA_MARK, end, end + len(_END_TAG) + 16)
    if mark < 0:
        raise file_error(path, "the data start marker 0x1A 0x04 after ':SCANIT_END:' is missing")
    tags = _parse_tags(path, _decode(head[:end]))

    dtype = _data_type(path, tags)
    width, height = _two_numbers(path, tags, "SCAN_PIXELS", int)
    check_image_size(path, width, height)
    x_m, y_m = _two_numbers(path, tags, "SCAN_RANGE", float)
    if not (np.isfinite(x_m) and np.isfinite(y_m) and x_m > 0 and y_m > 0):
        raise file_error(path, f"SCAN_RANGE {x_m} x {y_m} m is not a positive size")
    channels = _parse_data_info(path, tags)
    header = SxmHeader(
        tags=tags,
        data_offset=mark + len(_DATA_MARK),
        width=width,
        height=height,
        dtype=dtype,
        channels=channels,
        scan_size_m=(x_m, y_m),
        scan_dir=tags.get("SCAN_DIR", "").strip().lower() or None,
        bias_v=finite_or_none(tags.get("BIAS")),
        setpoint_a=_setpoint_a(tags),
    )
    if header.scan_dir not in (None, "up", "down"):
        raise file_error(path, f"SCAN_DIR is {header.scan_dir!r}, expected up or down")
    planes = sum(len(c.directions) for c in channels)
    needed = planes * header.plane_bytes
    available = size - header.data_offset
    if available < needed:
        raise file_error(
            path,
            f"the data block is truncated: the header announces {planes} images of "
            f"{width} x {height} px ({needed} bytes) but only {available} bytes follow",
        )
    if available > needed:
        log.debug("%s: %d bytes after the last image ignored", path.name, available - needed)
    return header


def list_channels(path: Path) -> list[ChannelInfo]:
    """The channels of an .sxm file with their units and recorded directions."""
    return [ChannelInfo(c.name, c.unit, c.directions) for c in read_header(path).channels]


def read(path: Path, channel: str = "Z", direction: str = "forward") -> Scan:
    """One channel and direction of an .sxm file as a `Scan` (orientation as in the module doc).

    Raises:
        STMFileError: bad file, unknown channel or a direction the channel was not recorded in.
    """
    return read_many(path, [(channel, direction)])[0]


def read_many(path: Path, selection: Sequence[tuple[str, str]]) -> list[Scan]:
    """The (channel, direction) images of `selection`, parsing the header once.

    Raises:
        STMFileError: as `read`, for the first image that cannot be read.
    """
    header = read_header(path)
    find = channel_lookup(c.name for c in header.channels)
    first_plane: dict[str, tuple[int, SxmChannel]] = {}
    planes = 0
    for c in header.channels:
        first_plane.setdefault(c.name, (planes, c))
        planes += len(c.directions)
    histories = _histories(header.tags)
    assumed = header.tags.get(_TAG_ASSUMED, "").strip().upper() == "TRUE"
    scans = []
    with open(path, "rb") as f:
        for channel, direction in selection:
            fast, slow = parse_direction(direction)
            if slow is not None:
                raise file_error(
                    path, f"direction {direction!r} is for MATRIX files; use forward or backward"
                )
            name = find(channel)
            if name is None:
                names = ", ".join(c.name for c in header.channels)
                raise file_error(path, f"has no channel {channel!r}; it holds {names}")
            before, c = first_plane[name]
            if fast not in c.directions:
                raise file_error(path, f"channel {name} was recorded {c.directions[0]} only")
            f.seek(header.data_offset + (before + c.directions.index(fast)) * header.plane_bytes)
            raw = f.read(header.plane_bytes)
            if len(raw) != header.plane_bytes:  # only if the file shrank since it was checked
                raise file_error(path, "the data block ended early (file truncated while reading)")
            plane = np.frombuffer(raw, dtype=header.dtype).reshape(header.height, header.width)
            scans.append(
                Scan(
                    data=_orient(plane, fast, header.scan_dir).astype(np.float32),
                    unit=c.unit,
                    channel=name,
                    direction=fast,
                    scan_size_m=header.scan_size_m,
                    bias_v=header.bias_v,
                    setpoint_a=header.setpoint_a,
                    source=path,
                    metadata={"format": "sxm", "header": dict(header.tags)},
                    history=list(histories.get(f"{name} {fast}", histories.get("", []))),
                    pixel_size_assumed=assumed,
                    scan_dir=header.scan_dir,
                )
            )
    return scans


def write(scans: Sequence[Scan], path: Path) -> None:
    """Write one or more scans of the same frame as an .sxm file.

    Channels are written in order of first appearance, each with the directions it was given:
    "both" in DATA_INFO when forward and backward are given, else "forward" or "backward" alone
    (as Nanonis does for channels recorded one way; nanonispy2, which assumes "both" everywhere,
    cannot read such files, Gwyddion and stm-zoo can). The header is rebuilt from the scans'
    physical fields; when the first scan came from an .sxm file, its other header entries (dates,
    piezo calibration, controller settings, ...) are kept. Each image's processing history is
    stored in the "stm_zoo>history" tag and appended to COMMENT, one line per step.

    Raises:
        STMFileError: the scans differ in shape, size or slow-scan direction, or one channel and
            direction appears twice.
    """
    first = scans[0]
    groups: dict[str, dict[str, Scan]] = {}
    for scan in scans:
        if scan.shape != first.shape or scan.scan_size_m != first.scan_size_m:
            raise file_error(path, "cannot hold images of different shapes or scan sizes")
        if (scan.scan_dir or "down") != (first.scan_dir or "down"):
            raise file_error(path, "cannot hold images of different slow-scan directions")
        name = _sxm_name(scan.channel)
        if scan.direction in groups.setdefault(name, {}):
            raise file_error(path, f"was given two {scan.direction} images of channel {name}")
        groups[name][scan.direction] = scan
    text = _header_text(first, groups, path)
    try:
        header = text.encode("latin-1")
    except UnicodeEncodeError:
        header = text.encode("utf-8")
    parts = [header, _DATA_MARK]
    for by_direction in groups.values():
        for fast in ("forward", "backward"):
            scan = by_direction.get(fast)
            if scan is not None:
                plane = _orient(scan.data, fast, scan.scan_dir)
                parts.append(np.ascontiguousarray(plane, dtype=">f4").tobytes())
    write_atomically(path, lambda tmp: tmp.write_bytes(b"".join(parts)))


def _orient(plane: np.ndarray, fast: str, scan_dir: str | None) -> np.ndarray:
    """File order <-> Scan orientation (the same flips both ways)."""
    if fast == "backward":
        plane = plane[:, ::-1]
    if scan_dir == "up":
        plane = plane[::-1, :]
    return plane


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # Nanonis writes the Windows code page for units like degree
        return raw.decode("latin-1")


def _is_tag(line: str) -> bool:
    return len(line) >= 3 and line[0] == ":" and line[-1] == ":" and "\t" not in line


def _parse_tags(path: Path, text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if _is_tag(line.strip()):
            if current is not None:
                tags[current] = _join(lines)
            current, lines = line.strip()[1:-1], []
        elif current is not None:
            lines.append(line)
        elif line.strip():
            raise file_error(path, "the header does not start with a ':TAG:' line")
    if current is not None:
        tags[current] = _join(lines)
    return tags


def _join(lines: list[str]) -> str:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return "\n".join(lines)


def _data_type(path: Path, tags: dict[str, str]) -> str:
    words = tuple(tags.get("SCANIT_TYPE", "FLOAT MSBFIRST").upper().split())
    if words not in _DTYPES:
        raise file_error(path, f"data type SCANIT_TYPE {' '.join(words)!r} is not supported")
    return _DTYPES[words]


def _two_numbers(path: Path, tags: dict[str, str], tag: str, kind: type) -> tuple:
    if tag not in tags:
        raise file_error(path, f"the header has no {tag} entry")
    words = tags[tag].split()
    try:
        if len(words) != 2:
            raise ValueError(tag)
        return tuple(kind(word) for word in words)
    except ValueError:
        raise file_error(path, f"{tag} is {tags[tag].strip()!r}, expected two numbers") from None


def _split_row(line: str) -> list[str]:
    fields = [f.strip() for f in line.strip("\r\n").lstrip("\t").split("\t")]
    if len(fields) < 6:  # Gwyddion notes some writers use spaces instead of tabs
        fields = line.split()
    return fields


def _parse_data_info(path: Path, tags: dict[str, str]) -> tuple[SxmChannel, ...]:
    if "DATA_INFO" not in tags:
        raise file_error(path, "the header has no DATA_INFO table, so it lists no channel")
    lines = [line for line in tags["DATA_INFO"].split("\n") if line.strip()]
    if not lines or [f.lower() for f in _split_row(lines[0])[:6]] != _DATA_INFO_COLUMNS:
        raise file_error(
            path, "DATA_INFO lacks its 'Channel Name Unit Direction Calibration Offset' columns"
        )
    channels = []
    for number, line in enumerate(lines[1:], start=1):
        fields = _split_row(line)
        if len(fields) < 6 or not fields[1]:
            raise file_error(path, f"DATA_INFO row {number} has fewer than 6 columns")
        direction = fields[3].lower()
        if direction not in _DIRECTIONS:
            raise file_error(path, f"DATA_INFO row {number} has direction {fields[3]!r}")
        unit = "" if fields[2].lower() in _ARBITRARY_UNITS else fields[2]
        channels.append(SxmChannel(fields[1], unit, _DIRECTIONS[direction]))
    if not channels:
        raise file_error(path, "DATA_INFO lists no channel")
    return tuple(channels)


def _value_and_unit(text: str) -> tuple[float | None, str]:
    words = text.split()
    if not words:
        return None, ""
    return finite_or_none(words[0]), (words[1] if len(words) > 1 else "")


def _setpoint_a(tags: dict[str, str]) -> float | None:
    """The Z-controller setpoint when it is a current (STM), from either header style."""
    table = [line for line in tags.get("Z-CONTROLLER", "").split("\n") if line.strip()]
    if len(table) >= 2:
        names = table[0].split()  # names have no spaces; values ("log Current") need the tabs
        values = [v.strip() for v in table[1].lstrip("\t").split("\t")]
        if "Setpoint" in names and len(values) == len(names):
            value, unit = _value_and_unit(values[names.index("Setpoint")])
            if value is not None and unit == "A":
                return value
    value = finite_or_none(tags.get("Z-Controller>Setpoint"))
    if value is not None and tags.get("Z-Controller>Setpoint unit", "").strip() == "A":
        return value
    return None


def _histories(tags: dict[str, str]) -> dict[str, list[str]]:
    """Processing history per "<channel> <direction>" ("" for every image when one list is
    stored, as for a file whose images all share it)."""
    try:
        steps = json.loads(tags.get(_TAG_HISTORY, "[]"))
    except ValueError:
        return {}
    if isinstance(steps, list):
        return {"": [str(s) for s in steps]}
    if isinstance(steps, dict):
        return {str(k): [str(s) for s in v] for k, v in steps.items() if isinstance(v, list)}
    return {}


def _history_tag(groups: dict[str, dict[str, Scan]]) -> str:
    """One list when every image has the same history, else one list per image."""
    per_image = {
        f"{name} {fast}": [str(step) for step in scan.history]
        for name, by_direction in groups.items()
        for fast, scan in by_direction.items()
    }
    distinct = {json.dumps(steps) for steps in per_image.values()}
    if len(distinct) == 1:
        return distinct.pop()
    return json.dumps({key: steps for key, steps in per_image.items() if steps})


def _comment(raw_comment: str, groups: dict[str, dict[str, Scan]]) -> str:
    """The source's comment plus one line per processing step not already in it."""
    lines = raw_comment.split("\n") if raw_comment else []
    for name, by_direction in groups.items():
        for fast, scan in by_direction.items():
            for step in scan.history:
                line = f"stm-zoo {name} {fast}: {' '.join(str(step).split())}"
                if line not in lines:
                    lines.append(line)
    # A comment line starting with ':' would read as a tag; indent it by one space.
    return "\n".join(" " + c if c.startswith(":") else c for c in lines)


def _num(value: float) -> str:
    """Shortest text that parses back to exactly `value` ("2E-07", "-0.4")."""
    return repr(float(value)).upper()


def _sxm_name(channel: str) -> str:
    """DATA_INFO names hold no whitespace (Nanonis writes 'OC_D1_Phase')."""
    return "_".join(channel.split()) or "Channel"


def _header_text(first: Scan, groups: dict[str, dict[str, Scan]], path: Path) -> str:
    source = first.metadata.get("header") if first.metadata.get("format") == "sxm" else None
    raw = {
        k: v
        for k, v in (source or {}).items()
        if isinstance(k, str) and isinstance(v, str) and k.strip() and "\n" not in k
    }
    h, w = first.shape
    x_m, y_m = first.scan_size_m
    now = datetime.now()

    def numbers(tag: str, default: str) -> str:
        words = raw.get(tag, "").split()
        ok = len(words) == 2 and all(finite_or_none(v) is not None for v in words)
        return raw[tag] if ok else default

    def single(tag: str, default: str) -> str:
        value = raw.get(tag, "")
        return value if value.strip() and "\n" not in value else default

    tags: dict[str, str] = {
        "NANONIS_VERSION": "2",
        "SCANIT_TYPE": "              FLOAT            MSBFIRST",
        "REC_DATE": single("REC_DATE", now.strftime("%d.%m.%Y")),
        "REC_TIME": single("REC_TIME", now.strftime("%H:%M:%S")),
    }
    if "REC_TEMP" in raw:
        tags["REC_TEMP"] = single("REC_TEMP", "")
    acq = raw.get("ACQ_TIME", "")
    tags["ACQ_TIME"] = acq if finite_or_none(acq) is not None else "0.0"
    tags["SCAN_PIXELS"] = f"{w:>10d}{h:>10d}"
    tags["SCAN_FILE"] = str(path)
    tags["SCAN_TIME"] = numbers("SCAN_TIME", "0.000E+0 0.000E+0")
    tags["SCAN_RANGE"] = f"{_num(x_m)} {_num(y_m)}"
    tags["SCAN_OFFSET"] = numbers("SCAN_OFFSET", "0.000000E+0 0.000000E+0")
    angle = raw.get("SCAN_ANGLE", "")
    tags["SCAN_ANGLE"] = angle if finite_or_none(angle) is not None else "0.000E+0"
    if first.scan_dir is not None:
        tags["SCAN_DIR"] = first.scan_dir
    tags["BIAS"] = _num(first.bias_v) if first.bias_v is not None else "NaN"
    if first.setpoint_a is not None:
        tags["Z-CONTROLLER"] = _z_controller(raw.get("Z-CONTROLLER", ""), first.setpoint_a)
    tags["COMMENT"] = _comment(raw.get("COMMENT", ""), groups)
    reserved = {"DATA_INFO", "SCANIT_END", "Z-CONTROLLER", _TAG_HISTORY, _TAG_ASSUMED}
    for key, value in raw.items():
        if key not in tags and key not in reserved:
            tags[key] = _updated_setting(key, value, w, h, first.scan_size_m)
    tags[_TAG_HISTORY] = _history_tag(groups)
    tags[_TAG_ASSUMED] = "TRUE" if first.pixel_size_assumed else "FALSE"
    tags["DATA_INFO"] = _data_info(raw.get("DATA_INFO", ""), groups)

    lines: list[str] = []
    for key, value in tags.items():
        lines.append(f":{key}:")
        lines.extend(value.split("\n"))
    return "\n".join(lines) + "\n\n:SCANIT_END:\n\n\n"


def _updated_setting(key: str, value: str, w: int, h: int, size_m: tuple[float, float]) -> str:
    """Keep the newer-style "Scan>..." settings consistent with the written frame."""
    if key == "Scan>pixels/line":
        return str(w)
    if key == "Scan>lines":
        return str(h)
    if key == "Scan>Scanfield":
        parts = value.strip().split(";")
        if len(parts) == 5:
            parts[2], parts[3] = _num(size_m[0]), _num(size_m[1])
            return ";".join(parts)
    return "\n".join(" " + v if v.startswith(":") else v for v in value.split("\n"))


def _z_controller(raw_table: str, setpoint_a: float) -> str:
    """The Z-CONTROLLER table with our setpoint, keeping the source's other columns."""
    table = [line for line in raw_table.split("\n") if line.strip()]
    if len(table) >= 2:
        names = table[0].split()
        values = [v.strip() for v in table[1].lstrip("\t").split("\t")]
        if "Setpoint" in names and len(values) == len(names):
            values[names.index("Setpoint")] = f"{_num(setpoint_a)} A"
            return "\t" + "\t".join(names) + "\n\t" + "\t".join(values)
    return f"\tName\ton\tSetpoint\n\tlog Current\t1\t{_num(setpoint_a)} A"


def _data_info(raw_table: str, groups: dict[str, dict[str, Scan]]) -> str:
    """DATA_INFO rows for the written channels, keeping a source row's number and calibration."""
    known: dict[str, list[str]] = {}
    for line in raw_table.split("\n")[1:]:
        fields = _split_row(line) if line.strip() else []
        if len(fields) >= 6:
            known[fields[1]] = fields[:6]
    used = {known[name][0] for name in groups if name in known}
    free = 100  # numbers below it are taken; counting on from here keeps this linear
    rows = ["\tChannel\tName\tUnit\tDirection\tCalibration\tOffset"]
    for name, by_direction in groups.items():
        unit = "_".join(next(iter(by_direction.values())).unit.split()) or "a.u."
        row = known.get(name)
        if row:
            number, calibration, offset = row[0], row[4] or "1.000E+0", row[5] or "0.000E+0"
        else:
            number = _NANONIS_CHANNEL_NUMBERS.get(name, "")
            if not number or number in used:
                while str(free) in used:
                    free += 1
                number = str(free)
            calibration, offset = "1.000E+0", "0.000E+0"
        used.add(number)
        direction = "both" if len(by_direction) == 2 else next(iter(by_direction))
        rows.append(f"\t{number}\t{name}\t{unit}\t{direction}\t{calibration}\t{offset}")
    return "\n".join(rows)

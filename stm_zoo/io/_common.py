"""Shared pieces of the readers and writers: limits, error sentences, channel names, units.

Every reader checks sizes announced by a file against these limits *before* allocating, and every
problem with a file becomes an `STMFileError` whose message is one sentence naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo.errors import STMFileError, StmZooError
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM

# A 16384 px line or 2**26 px (8192 x 8192, 256 MiB as float32) is far beyond any STM scan; a
# header announcing more is corrupt or hostile, and refusing it avoids a huge allocation.
MAX_SIDE_PX = 16384
MAX_PIXELS = 2**26


_CHANNEL_ALIASES: tuple[frozenset[str], ...] = (
    frozenset({"z", "topography", "topo", "height", "heights", "z position"}),
    frozenset({"current", "i", "it", "tunnelling current", "tunneling current"}),
    frozenset({"bias", "v", "voltage", "sample bias"}),
)

_TITLE = re.compile(r"^(?P<name>.*?)\s*\((?P<direction>forward|backward)\)\s*$", re.IGNORECASE)

_DIRECTION_WORDS = {
    "forward": "forward",
    "fwd": "forward",
    "trace": "forward",
    "backward": "backward",
    "bwd": "backward",
    "back": "backward",
    "retrace": "backward",
}


@dataclass(frozen=True)
class ChannelInfo:
    """One image channel of a file.

    Attributes:
        name: the channel name as the file spells it ("Z", "Current", "I", ...).
        unit: SI unit of the values ("m", "A", "V", "" for arbitrary units).
        directions: the directions `load_scan` accepts for it, e.g. ("forward", "backward"); for
            MATRIX files with down traces also "forward/down", "backward/down".
    """

    name: str
    unit: str
    directions: tuple[str, ...]


def file_error(path: str | Path, problem: str) -> STMFileError:
    """An `STMFileError` reading "<file name>: <problem>." (one sentence)."""
    problem = problem.rstrip(".")
    return STMFileError(f"{Path(path).name}: {problem}.")


@contextmanager
def reading(path: str | Path, what: str):
    """Turn anything a third-party reader raises into an `STMFileError` naming `path`.

    The libraries we build on report corrupt input with whatever exception their code happens to
    hit (AssertionError, struct.error, IndexError, ...); users must see one sentence, never a
    traceback.
    """
    try:
        yield
    except STMFileError:
        raise
    except StmZooError as error:
        raise file_error(path, str(error)) from error
    except MemoryError as error:
        raise file_error(path, f"not enough memory to read this {what} file") from error
    except FileNotFoundError as error:
        raise file_error(path, "no such file; check the path") from error
    except IsADirectoryError as error:
        raise file_error(path, "is a folder, not a scan file") from error
    except PermissionError as error:
        raise file_error(path, "permission denied; check the file's access rights") from error
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise file_error(path, f"cannot be read as a {what} file ({reason})") from error
    except Exception as error:  # corrupt input surfaces as arbitrary library exceptions
        detail = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise file_error(
            path, f"is not a valid {what} file or is corrupt ({type(error).__name__}: {detail})"
        ) from error


def check_image_size(path: str | Path, width: int, height: int, where: str = "header") -> None:
    """Refuse non-positive or absurd image dimensions before anything is allocated."""
    if width < 1 or height < 1:
        raise file_error(path, f"the {where} announces an empty image ({width} x {height} px)")
    if width > MAX_SIDE_PX or height > MAX_SIDE_PX or width * height > MAX_PIXELS:
        raise file_error(
            path,
            f"the {where} announces {width} x {height} px, beyond the {MAX_SIDE_PX} px per side "
            f"and {MAX_PIXELS} px in total this reader accepts, so the file is corrupt",
        )


def check_not_empty(path: Path) -> int:
    """The size of `path` in bytes; raises when it is missing, a folder or empty."""
    if not path.exists():
        raise file_error(path, "no such file; check the path")
    if path.is_dir():
        raise file_error(path, "is a folder, not a scan file; give the file itself")
    size = path.stat().st_size
    if size == 0:
        raise file_error(path, "the file is empty (0 bytes); the transfer or export failed")
    return size


def _normalise_channel_name(name: str) -> str:
    name = re.sub(r"\s*\([^)]*\)\s*$", "", name.strip())  # "Z (m)" -> "Z"
    return re.sub(r"[\s_\-]+", " ", name).strip().lower()


def match_channel(requested: str, available: Iterable[str]) -> str | None:
    """The name in `available` meaning `requested`: case-insensitive, then by alias.

    "topography" finds "Z", "current" finds MATRIX's "I", "OC D1 Phase" finds "OC_D1_Phase".
    """
    return channel_lookup(available)(requested)


def channel_lookup(available: Iterable[str]) -> Callable[[str], str | None]:
    """`match_channel` over a fixed list of names, indexed once.

    Looking up every channel of a file with many channels stays linear in their number.
    """
    by_name: dict[str, str] = {}
    for name in available:
        by_name.setdefault(_normalise_channel_name(name), name)
    by_alias: dict[frozenset[str], str] = {}
    for normalised, name in by_name.items():
        group = next((g for g in _CHANNEL_ALIASES if normalised in g), None)
        if group is not None:
            by_alias.setdefault(group, name)

    def find(requested: str) -> str | None:
        wanted = _normalise_channel_name(requested)
        if wanted in by_name:
            return by_name[wanted]
        group = next((g for g in _CHANNEL_ALIASES if wanted in g), None)
        return by_alias.get(group) if group is not None else None

    return find


def split_title(title: str) -> tuple[str, str | None]:
    """("Z", "forward") from a channel title like "Z (Forward)"; (title, None) without one."""
    match = _TITLE.match(title)
    if match is None:
        return title, None
    return match["name"], match["direction"].lower()


def parse_direction(direction: str) -> tuple[str, str | None]:
    """("forward" | "backward", "up" | "down" | None) from "forward", "retrace", "backward/down"...

    Raises:
        StmZooError: for anything else.
    """
    text = str(direction).strip().lower().replace(" ", "/").replace("-", "/")
    head, _, slow = text.partition("/")
    fast = _DIRECTION_WORDS.get(head)
    if fast is None or slow not in ("", "up", "down"):
        raise StmZooError(
            f"Unknown scan direction {direction!r}: use forward or backward (MATRIX files also "
            "accept forward/up, backward/up, forward/down, backward/down)."
        )
    return fast, (slow or None)


def default_scan_size_m(
    shape: tuple[int, int], scan_size_nm: float | Sequence[float] | None
) -> tuple[float, float]:
    """Physical (x, y) size in metres for an image with no size of its own.

    Args:
        shape: (H, W) in pixels.
        scan_size_nm: the caller's width in nm (square pixels), or (width, height) in nm, or None
            for the paper's sampling of 100 nm per 512 px.
    """
    h, w = shape
    if scan_size_nm is None:
        return (w * DEFAULT_PIXEL_SIZE_NM * 1e-9, h * DEFAULT_PIXEL_SIZE_NM * 1e-9)
    if isinstance(scan_size_nm, int | float | np.floating | np.integer):
        x_nm = float(scan_size_nm)
        y_nm = x_nm * h / w
    else:
        values = [float(v) for v in scan_size_nm]
        if len(values) != 2:
            raise StmZooError(f"scan_size_nm must be one width or (width, height), got {values}.")
        x_nm, y_nm = values
    if not (math.isfinite(x_nm) and math.isfinite(y_nm) and x_nm > 0 and y_nm > 0):
        raise StmZooError(f"scan_size_nm must be positive, got {scan_size_nm!r}.")
    return (x_nm * 1e-9, y_nm * 1e-9)


def assumed_size_note(scan_size_nm: float | Sequence[float] | None) -> str:
    """The sentence stored in `metadata["notes"]` when the physical size is an assumption."""
    if scan_size_nm is None:
        return (
            f"the file has no physical size; assumed {DEFAULT_PIXEL_SIZE_NM} nm/px "
            "(100 nm per 512 px, the paper's sampling); pass scan_size_nm to set it"
        )
    return f"the file has no physical size; scan size {scan_size_nm} nm given by the caller"


_SI_PREFIXES = {
    "": 1.0,
    "k": 1e3,
    "c": 1e-2,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,
    "μ": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
}
_SI_BASES = ("m", "A", "V", "Hz", "s", "N", "deg")


def split_si_unit(unit: str) -> tuple[float, str]:
    """(factor, base unit) for unit strings like "nm", "pA", "mV"; angstrom counts as 1e-10 m.

    Unknown units come back unchanged with factor 1.
    """
    unit = unit.strip()
    if unit in ("\u00c5", "\u212b", "Angstrom", "angstrom"):  # Latin A-ring, Angstrom sign
        return 1e-10, "m"
    if unit in _SI_BASES:
        return 1.0, unit
    for base in _SI_BASES:
        if unit.endswith(base) and unit[: -len(base)] in _SI_PREFIXES:
            return _SI_PREFIXES[unit[: -len(base)]], base
    return 1.0, unit


def jsonable(value: Any) -> Any:
    """`value` with numpy scalars/arrays, paths and tuples turned into JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON of `value` after `jsonable` (never fails on numpy types)."""
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))


def finite_or_none(value: Any) -> float | None:
    """A float when `value` is a finite number (or a string holding one), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then move it into place.

    A failed write never leaves a half-written file under the target name.
    """
    folder = path.parent
    if not folder.is_dir():
        raise file_error(path, f"cannot write: the folder {folder} does not exist")
    # Not mkstemp: its 0600 mode would stay on the result; open(..., "x") honours the umask.
    # A short name of its own: the target's name may already be near the 255-byte limit.
    tmp = folder / f".stm-zoo-{secrets.token_hex(6)}.tmp"
    try:
        tmp.open("xb").close()
        write(tmp)
        os.replace(tmp, path)
    except STMFileError:
        raise
    except OSError as error:
        raise file_error(path, f"cannot write ({error.strerror or error})") from error
    finally:
        tmp.unlink(missing_ok=True)
    return path

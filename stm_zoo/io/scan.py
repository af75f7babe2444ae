"""The `Scan`: one channel of one scan direction, in SI units, oriented as seen from above.

Orientation convention (every reader normalises to it, every writer undoes it), the one Gwyddion
uses when it opens instrument files:
- row 0 is drawn at the top; columns run along the fast axis, left to right;
- a backward (retrace) image is mirrored left-right so that it aligns pixel for pixel with forward;
- the slow axis is normalised like Gwyddion's readers do (a Nanonis file with SCAN_DIR=up is
  flipped vertically, so is a MATRIX "up" trace), so that images look as they do in Gwyddion.
  For a scan recorded top-down (`scan_dir="down"`, or unknown) row 0 is the first scanned line;
  for a bottom-up scan (`scan_dir="up"`) the first scanned line is the last row.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo.errors import StmZooError

KEPT_ROWS = "stm_zoo.kept_rows"
"""Metadata key of a scan cut from a taller one: (start, stop, lines of the original)."""
SR_FRAME = "stm_zoo.sr_line_pitch_factor"
"""Metadata key of a size-less scan whose frame `sr_input_frame` stretched, and by how much."""


def longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start, stop) of the longest run of True in a 1-D bool array (the first one on ties)."""
    best, start = (0, 0), None
    for i, ok in enumerate([*flags, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def sr_input_frame(scan: Scan, factor: int) -> Scan:
    """The frame of a super-resolution input, as every entry point (API, CLI, app, evaluation,
    expert study, the result writer) reads it.

    A scan without a physical size (png, tiff, npy; `pixel_size_assumed`) has square pixels of
    the assumed width; as the input of an x`factor` super-resolution, its lines are taken to be
    `factor` times further apart than its pixels (a `factor` times faster scan of a square-pixel
    frame), so its frame is `factor` times taller. A scan with a physical size, a restore input
    (`factor` 1), or a scan whose frame was already read this way comes back unchanged.
    """
    if factor == 1 or not scan.pixel_size_assumed or SR_FRAME in scan.metadata:
        return scan
    width_m, height_m = scan.scan_size_m
    return scan.replace(
        scan_size_m=(width_m, height_m * factor), metadata={**scan.metadata, SR_FRAME: factor}
    )


@dataclass
class Scan:
    """A single image channel with its physical metadata.

    Attributes:
        data: (H, W) float32 in SI units (metres for Z, amperes for current). Aborted scans may
            hold NaN rows; use `valid_rows` / `crop_valid` before processing.
        unit: SI unit of `data` ("m", "A", "V", ...).
        channel: channel name as the instrument calls it ("Z", "Current", ...).
        direction: "forward" or "backward" (backward already mirrored to align with forward).
        scan_size_m: physical size (x, y) = (width, height) of the full frame in metres.
        bias_v: sample bias in volts, when known.
        setpoint_a: tunnelling current setpoint in amperes, when known.
        source: the file the scan came from, when it came from one.
        metadata: the raw header of the source file, as a JSON-friendly dict.
        history: processing steps applied since reading, oldest first.
        pixel_size_assumed: True when the file carried no physical size and `scan_size_m` is a
            caller's (or the default) assumption.
        scan_dir: slow-scan direction of the instrument, "down" (row 0 was scanned first) or "up"
            (the last row was scanned first); None when the file does not say.
    """

    data: np.ndarray
    unit: str = "m"
    channel: str = "Z"
    direction: str = "forward"
    scan_size_m: tuple[float, float] = (100e-9, 100e-9)
    bias_v: float | None = None
    setpoint_a: float | None = None
    source: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    pixel_size_assumed: bool = False
    scan_dir: str | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 2:
            raise StmZooError(f"A scan must be a 2-D image, got an array of shape {data.shape}.")
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.scan_size_m = (float(self.scan_size_m[0]), float(self.scan_size_m[1]))
        if self.direction not in ("forward", "backward"):
            raise StmZooError(
                f"Scan direction must be forward or backward, not {self.direction!r}."
            )
        if self.scan_dir not in (None, "up", "down"):
            raise StmZooError(
                f"Slow-scan direction must be up, down or None, not {self.scan_dir!r}."
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) = (lines, pixels per line)."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def pixel_size_m(self) -> tuple[float, float]:
        """Pixel pitch (x, y) in metres."""
        h, w = self.shape
        return (self.scan_size_m[0] / w, self.scan_size_m[1] / h)

    def valid_rows(self) -> np.ndarray:
        """Boolean mask (H,) of rows that hold no NaN or inf (an aborted scan leaves NaN lines)."""
        return np.isfinite(self.data).all(axis=1)

    def valid_block(self) -> tuple[int, int]:
        """(start, stop): the largest block of consecutive fully valid rows, `crop_valid`'s rows.

        Raises:
            StmZooError: when no row is valid.
        """
        valid = self.valid_rows()
        if not valid.any():
            raise StmZooError(
                f"{self.describe()} holds no complete scan line: every line has a NaN or inf "
                "pixel; check the file in its instrument software or pick another channel."
            )
        return longest_run(valid)

    def crop_valid(self) -> Scan:
        """The largest block of consecutive fully valid rows, with the physical height rescaled.

        Raises:
            StmZooError: when no row is valid.
        """
        best_start, stop = self.valid_block()
        best_len = stop - best_start
        h = self.shape[0]
        if best_len == h:
            return self
        cropped = self.replace(
            data=self.data[best_start : best_start + best_len],
            scan_size_m=(self.scan_size_m[0], self.scan_size_m[1] * best_len / h),
        )
        cropped.history.append(f"crop_valid: kept rows {best_start}..{best_start + best_len - 1}")
        cropped.metadata[KEPT_ROWS] = (best_start, best_start + best_len, h)
        return cropped

    def replace(self, **changes: Any) -> Scan:
        """A copy with some fields changed; metadata and history are deep-copied."""
        fields = {
            "data": self.data,
            "unit": self.unit,
            "channel": self.channel,
            "direction": self.direction,
            "scan_size_m": self.scan_size_m,
            "bias_v": self.bias_v,
            "setpoint_a": self.setpoint_a,
            "source": self.source,
            "metadata": copy.deepcopy(self.metadata),
            "history": list(self.history),
            "pixel_size_assumed": self.pixel_size_assumed,
            "scan_dir": self.scan_dir,
        }
        fields.update(changes)
        return Scan(**fields)

    def describe(self) -> str:
        """A short human label: source file name (or 'scan'), channel and direction."""
        name = self.source.name if self.source else "scan"
        return f"{name} [{self.channel}, {self.direction}]"

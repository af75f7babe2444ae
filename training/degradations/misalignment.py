"""Step 3 of the paper's pipeline: scan-line misalignment.

Each scan line (row; x is the fast axis) is shifted along x by its own amount drawn from
N(0, 0.8^2) pixels, as when piezo creep or feedback lag displaces successive lines. Shifts are
sub-pixel (linear interpolation within the row); rows never mix.

Choice where the paper is silent: which lines move. "Shifting individual scan lines" with a
0.8 px spread reads as line-to-line jitter, so by default every line gets its own shift
(`line_fraction=1.0`); a smaller fraction moves a random subset of lines and leaves the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.degradations import _filters


@dataclass(frozen=True)
class MisalignmentConfig:
    """Distribution of scan-line misalignment; defaults are the paper's numbers.

    Attributes:
        probability: chance that the artefact is applied (paper: 0.3).
        shift_sigma_px: standard deviation of a line's shift along x, pixels (paper: 0.8).
        line_fraction: chance that a given line is shifted (our choice: every line).
    """

    probability: float = 0.3
    shift_sigma_px: float = 0.8
    line_fraction: float = 1.0


@dataclass(frozen=True)
class MisalignmentParams:
    """One draw of misalignment.

    Attributes:
        shifts_px: one shift to the right per row, pixels (0.0 for lines left in place).
    """

    shifts_px: tuple[float, ...]


def sample_params(
    rng: np.random.Generator, cfg: MisalignmentConfig, n_lines: int
) -> MisalignmentParams:
    """Draw one shift per line for an image of `n_lines` rows."""
    shifts = rng.normal(0.0, cfg.shift_sigma_px, size=n_lines)
    if cfg.line_fraction < 1.0:
        shifts[rng.random(n_lines) >= cfg.line_fraction] = 0.0
    return MisalignmentParams(shifts_px=tuple(map(float, shifts)))


def apply(image: np.ndarray, params: MisalignmentParams) -> np.ndarray:
    """Shift every row of `image` (H, W) float64 along x by its `params.shifts_px` entry (H,).

    Returns:
        (H, W) float64; each row is its input row translated (ends clamp to the edge pixel).
    """
    if len(params.shifts_px) != image.shape[0]:
        raise ValueError(f"{len(params.shifts_px)} shifts for an image of {image.shape[0]} rows")
    return _filters.shift_rows(image, np.asarray(params.shifts_px))


def reach_px(params: MisalignmentParams) -> int:
    """Pixels along x that an output pixel reads on each side (for the windowed pipeline)."""
    return _filters.reach_of_shift_px(*params.shifts_px)

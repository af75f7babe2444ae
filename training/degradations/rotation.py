"""Step 1 of the paper's pipeline: random rotation by a multiple of 90 degrees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RotationConfig:
    """Distribution of the rotation (paper: 0, 90, 180 or 270 degrees with equal probability).

    Attributes:
        quarter_turns: the allowed numbers of counter-clockwise quarter turns, drawn uniformly.
    """

    quarter_turns: tuple[int, ...] = (0, 1, 2, 3)


@dataclass(frozen=True)
class RotationParams:
    """One draw of the rotation.

    Attributes:
        quarter_turns: counter-clockwise quarter turns applied (0..3).
    """

    quarter_turns: int


def sample_params(rng: np.random.Generator, cfg: RotationConfig) -> RotationParams:
    """Draw one rotation."""
    return RotationParams(quarter_turns=int(rng.choice(cfg.quarter_turns)))


def apply(image: np.ndarray, params: RotationParams) -> np.ndarray:
    """Rotate counter-clockwise by `params.quarter_turns` x 90 degrees.

    Args:
        image: (H, W) array.

    Returns:
        A view, (H, W) for even and (W, H) for odd quarter turns.
    """
    return np.rot90(image, params.quarter_turns % 4)


def rotated_shape(shape: tuple[int, int], params: RotationParams) -> tuple[int, int]:
    """(H, W) after the rotation."""
    h, w = shape
    return (w, h) if params.quarter_turns % 2 else (h, w)

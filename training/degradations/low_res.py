"""Step 7 of the paper's pipeline (super-resolution tasks only): slow-axis down- and up-sampling.

An STM acquires a frame line by line; scanning every k-th line makes it k times faster while
keeping the in-line (x) resolution. We keep rows 0, k, 2k, ... and repeat each k times
(nearest-neighbour) back to the full height, exactly what `stm_zoo` does with a real low-resolution
scan before the model sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LowResParams:
    """Slow-axis sub-sampling.

    Attributes:
        factor: keep every `factor`-th line (2 for the sr2 task, 4 for sr4).
    """

    factor: int


def apply(image: np.ndarray, params: LowResParams) -> np.ndarray:
    """Keep every `factor`-th row of `image` (H, W) and repeat it; returns (H, W)."""
    kept = image[:: params.factor]
    return np.repeat(kept, params.factor, axis=0)[: image.shape[0]]

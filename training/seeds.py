"""The independent random streams of a training run, all derived from its one seed."""

from __future__ import annotations

import numpy as np

# Each stream has one owner: the objective's t and noise, the global torch RNG (dropout), the
# DataLoader workers' seeds, the validation loss's draws and fixed noise.
STREAM_NOISE, STREAM_GLOBAL, STREAM_WORKERS, STREAM_VALIDATION = range(4)


def derived_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (e.g. seed, stream, rank), independent per key tuple."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)

"""Table I of the paper in one place: tasks, their slow-axis factors, families and their sizes,
and the pixel size the training data have.

Every other module takes these names from here (the library, training, evaluation, the app), so
that a new task or family is added once. Nothing here imports anything of the project.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = ("restore", "sr2", "sr4")
"""Restoration, and x2 / x4 super-resolution along the slow scan axis."""

SR_FACTOR: dict[str, int] = {"restore": 1, "sr2": 2, "sr4": 4}
"""Lines of the result per input line, by task."""

LEARNED_FAMILIES: tuple[str, ...] = ("fm", "ddim", "ddim-fft", "ae")
"""The families with a network, in the paper's order."""

SAMPLED_FAMILIES: tuple[str, ...] = ("fm", "ddim", "ddim-fft")
"""The families whose sampler starts from noise and takes a number of steps (the autoencoder and
the classical baseline restore in one deterministic pass)."""

CLASSICAL = "classical"
"""The non-learned baseline (row alignment + scar removal): a family without a network, weights
or size (`stm_zoo.methods.get_baseline`)."""

FAMILIES: tuple[str, ...] = (*LEARNED_FAMILIES, CLASSICAL)
"""Every family name, the non-learned `classical` baseline included."""

SIZES: tuple[str, ...] = ("small", "large")
"""Network sizes (Table I)."""

FAMILY_SIZES: dict[str, tuple[str, ...]] = {
    "fm": SIZES,
    "ddim": SIZES,
    "ddim-fft": ("large",),
    "ae": ("large",),
}
"""The sizes each learned family comes in (Table I: the FFT loss and the autoencoder are large
only)."""

DEFAULT_PIXEL_SIZE_NM = 100.0 / 512
"""The paper's sampling, 512 px over 100 nm: the training pixel size, and the one assumed for a
file without a physical size."""


def is_learned(family: str) -> bool:
    """Whether `family` has a network (and so zoo entries, sizes and weights to load)."""
    return family in LEARNED_FAMILIES


def takes_steps(family: str) -> bool:
    """Whether `family` samples from noise with a number of steps (`SAMPLED_FAMILIES`)."""
    return family in SAMPLED_FAMILIES

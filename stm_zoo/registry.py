"""Table I of the paper in one place: tasks, their slow-axis factors, families, their sizes and
what tells them apart (steps, the Fourier loss, network evaluations per step), the names the
paper's tables give them, and the pixel size the training data have.

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

FOURIER_LOSS_FAMILIES: tuple[str, ...] = ("ddim-fft",)
"""The families trained with the auxiliary Fourier loss (paper Eq. 4): DDIM's network and
sampler under another objective."""

EVALUATIONS_PER_STEP: dict[str, int] = {"fm": 2, "ddim": 1, "ddim-fft": 1, "ae": 1}
"""Network evaluations in one sampler step: two for flow matching's RK2 midpoint (Eq. 8), one for
DDIM; the autoencoder's single pass counts as its one step (Table VIII)."""

MODEL_LABELS: dict[str, str] = {
    "fm": "FM {size}",
    "ddim": "DDIM {size}",
    "ddim-fft": "DDIM {size} (FFT)",
    "ae": "Autoencoder",
    CLASSICAL: "Classical (row alignment + scars)",
}
"""The name a model's row has in the paper's tables, by family (`model_label` fills in the size:
"Small" / "Large"; the autoencoder comes in one size and its rows name none)."""

DEFAULT_PIXEL_SIZE_NM = 100.0 / 512
"""The paper's sampling, 512 px over 100 nm: the training pixel size, and the one assumed for a
file without a physical size."""


def is_learned(family: str) -> bool:
    """Whether `family` has a network (and so zoo entries, sizes and weights to load)."""
    return family in LEARNED_FAMILIES


def takes_steps(family: str) -> bool:
    """Whether `family` samples from noise with a number of steps (`SAMPLED_FAMILIES`)."""
    return family in SAMPLED_FAMILIES


def steps_label(family: str, steps: int) -> str:
    """The key suffix the cards and training logs give a family's result at `steps` sampler
    steps: "2steps", "10steps"..., or "direct" for a one-pass family (any `steps`)."""
    return f"{steps}steps" if takes_steps(family) else "direct"


def has_fourier_loss(family: str) -> bool:
    """Whether `family` is trained with the auxiliary Fourier loss (`FOURIER_LOSS_FAMILIES`)."""
    return family in FOURIER_LOSS_FAMILIES


def evaluations_per_step(family: str) -> int:
    """Network evaluations in one of `family`'s sampler steps (`EVALUATIONS_PER_STEP`)."""
    return EVALUATIONS_PER_STEP[family]


def model_label(family: str, size: str = "") -> str:
    """The paper's row name of a model: "FM Small", "DDIM Large (FFT)", "Autoencoder"."""
    return MODEL_LABELS[family].format(size=size.capitalize())

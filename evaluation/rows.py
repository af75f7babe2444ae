"""The rows of the paper's benchmark tables: what a row is, its scores, the paper's numbers for
it and the paper's order of rows.

A row (`RowSpec`) is the degraded input, the `classical` baseline, a zoo entry at one sampler step
count, or for the experimental tables the pristine lower bound. The paper's numbers for the same
rows (Tables II-VII, IX-XIII; `stm_zoo.paper`) fill the "paper" columns. Summary tables keep each
model's best step count (`best_rows`); the appendix tables list every step count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stm_zoo import paper
from stm_zoo.registry import (
    CLASSICAL,
    SIZES,
    TASKS,
    has_fourier_loss,
    is_learned,
    model_label,
    takes_steps,
)

# --------------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class RowSpec:
    """One row of a table: the degraded input, a bound, the classical baseline, or a model.

    Attributes:
        family: "input" (the degraded / low-res input), "pristine" (the lower bound of the
            experimental tables), or a family of `stm_zoo.registry.FAMILIES`.
        size: "small" / "large" for learned families, "" otherwise.
        steps: sampler steps (1 for the autoencoder, 0 where steps do not apply).
    """

    family: str
    size: str = ""
    steps: int = 0

    @property
    def learned(self) -> bool:
        return is_learned(self.family)

    @property
    def generative(self) -> bool:
        """Flow matching and the DDIM variants (the rows the paper averages in Tables II and V)."""
        return takes_steps(self.family)

    @property
    def model(self) -> str:
        """The row's model name without steps ("FM Small", "Autoencoder", ...)."""
        if self.family == "input":
            return "Degraded input"
        if self.family == "pristine":
            return "Pristine (lower bound)"
        return model_label(self.family, self.size)

    @property
    def steps_cell(self) -> str:
        return str(self.steps) if self.steps else ""

    @property
    def entry(self) -> str:
        """The zoo entry name ("fm-small"), or the family for rows without one."""
        return f"{self.family}-{self.size}" if self.learned else self.family

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "size": self.size, "steps": self.steps}


def input_label(task: str, experimental: bool = False) -> str:
    """The name of the input row: degraded images, or low-resolution ones for SR."""
    if task == "restore":
        return "Degraded input" + (" (upper bound)" if experimental else "")
    return "Low-resolution input" + (" (upper bound)" if experimental else "")


def bound_label(task: str) -> str:
    return "Pristine (lower bound)" if task == "restore" else "High-resolution (lower bound)"


def row_name(spec: RowSpec, task: str, experimental: bool = False) -> str:
    if spec.family == "input":
        return input_label(task, experimental)
    if spec.family == "pristine":
        return bound_label(task)
    return spec.model


# --------------------------------------------------------------------------------------------------
# The paper's numbers (for the "paper" columns), from `stm_zoo.paper`


def _paper_rows(table: str) -> dict[str, dict[RowSpec, dict[str, float]]]:
    return {
        task: {RowSpec(*key): values for key, values in paper.scores(table, task).items()}
        for task in TASKS
    }


PAPER_SYNTHETIC = _paper_rows("synthetic")
"""Tables III, IX (restore: psnr, ssim) and XI (sr2, sr4: ssim), per task and row."""
PAPER_EXPERIMENTAL = _paper_rows("experimental")
"""Tables X (restore), XII and XIII (sr2, sr4): kid and cmmd per task and row."""
PAPER_TARGETED = {task: paper.targeted(task) for task in TASKS}
"""Tables II (restore) and V (SR): per task and degradation set, the generative models' mean."""

TARGETED_NAMES = {
    "low_res": "Low resolution only",
    "blunt_tip": "Blunt tip",
    "scan_lines": "Scan lines",
    "tip_change": "Tip change",
    "misalignment": "Misalignment",
    "multi_tip": "Multi-tip",
}


def paper_value(
    table: dict[str, dict[RowSpec, dict[str, float]]], task: str, spec: RowSpec, metric: str
) -> float | None:
    """The paper's number for a row, or None when the paper has no such row."""
    return table.get(task, {}).get(spec, {}).get(metric)


# --------------------------------------------------------------------------------------------------
# Scored rows: the best step count, the paper's order


@dataclass
class ScoredRow:
    """Per-image scores of one row on one set.

    Attributes:
        spec: which row.
        psnr: (N,) dB, data_range 2.
        ssim: (N,).
        seconds_per_image: wall time of producing the outputs, per image (0 for the input row).
        apsnr: (N,) dB after the best affine map onto the clean tile (`affine_psnr_batch`).
        assim: (N,) SSIM after the same map (`affine_ssim_batch`).
    """

    spec: RowSpec
    psnr: np.ndarray
    ssim: np.ndarray
    seconds_per_image: float = 0.0
    apsnr: np.ndarray = field(default_factory=lambda: np.full(0, np.nan))
    assim: np.ndarray = field(default_factory=lambda: np.full(0, np.nan))

    def mean(self, metric: str) -> float:
        """Mean over the images, leaving out PSNR = inf (an input identical to its clean tile,
        when the pipeline drew no artefact); nan when nothing is left."""
        values = np.asarray(getattr(self, metric), dtype=np.float64)
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if finite.size else math.nan

    @property
    def identical(self) -> int:
        """Images whose output equals the clean tile exactly (PSNR = inf)."""
        return int(np.isinf(self.psnr).sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "model": self.spec.model,
            "psnr_mean": self.mean("psnr"),
            "ssim_mean": self.mean("ssim"),
            "apsnr_mean": self.mean("apsnr"),
            "assim_mean": self.mean("assim"),
            "seconds_per_image": self.seconds_per_image,
            "psnr": self.psnr.tolist(),
            "ssim": self.ssim.tolist(),
            "apsnr": self.apsnr.tolist(),
            "assim": self.assim.tolist(),
        }


def best_rows(rows: Sequence[ScoredRow], metric: str = "ssim") -> list[ScoredRow]:
    """Per model, the row (step count) with the highest mean `metric`; other rows kept once."""
    best: dict[tuple[str, str], ScoredRow] = {}
    for row in rows:
        key = (row.spec.family, row.spec.size)
        if key not in best or row.mean(metric) > best[key].mean(metric):
            best[key] = row
    return list(best.values())


FAMILY_RANK = {"input": 0, CLASSICAL: 1, "ae": 2, "ddim": 3, "ddim-fft": 3, "fm": 4, "pristine": 6}
"""Where the paper's tables put each family's rows (DDIM and DDIM + FFT share their places);
rows of an unknown family go just before the bounds."""


def paper_order_key(spec: RowSpec) -> tuple[int, int, int, bool]:
    """The paper's row order: input, classical, autoencoder, DDIM small, DDIM large (FFT after
    plain at each step count), FM small, FM large; bounds last; step counts ascending."""
    size = SIZES.index(spec.size) if spec.size in SIZES else 0
    return FAMILY_RANK.get(spec.family, 5), size, spec.steps, has_fourier_loss(spec.family)


def in_paper_order(rows: Sequence[Any]) -> list[Any]:
    """Rows (anything with a `.spec`) sorted by `paper_order_key`."""
    return sorted(rows, key=lambda r: paper_order_key(r.spec))

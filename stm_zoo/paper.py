"""The paper's reference numbers, read from `paper_tables.json` beside this module.

The JSON file is the one copy of the numbers that tables, cards and benchmarks print beside ours:
synthetic PSNR / SSIM (Tables II, III, V, VI, IX, XI), experimental KID / CMMD (Tables IV, VII,
X, XII, XIII) and inference times (Tables VIII, XIV, and the abstract's 512x512 time). A row of
a score table is keyed (family, size, steps) as in the zoo: ("fm", "small", 10), the autoencoder
at 1 step; ("input", "", 0) is the degraded or low-resolution input and ("pristine", "", 0) the
pristine images of the experimental tables.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAPER_TABLES = Path(__file__).with_name("paper_tables.json")
SCORE_TABLES = ("synthetic", "experimental")
ROW_FIELDS = ("family", "size", "steps")

INPUT_ROW = "input"
"""The `family` of the paper's rows that score the degraded (or low-resolution) input itself."""

RowKey = tuple[str, str, int]
"""(family, size, steps): ("fm", "small", 10), ("ae", "large", 1), ("input", "", 0)."""


@dataclass(frozen=True)
class StepSeconds:
    """One row of Table VIII: seconds per sampler step at 128x128, and the CPU / GPU ratio."""

    cpu: float
    gpu: float
    speedup: float


@functools.cache
def _tables() -> dict[str, Any]:
    return json.loads(PAPER_TABLES.read_text(encoding="utf-8"))


def scores(table: str, task: str) -> dict[RowKey, dict[str, float]]:
    """The paper's scores of every row of a task.

    Args:
        table: "synthetic" (psnr, ssim) or "experimental" (kid, cmmd).
        task: "restore", "sr2" or "sr4".

    Returns:
        {(family, size, steps): {metric: value}}, in the paper's row order (empty for a task the
        paper does not have).
    """
    if table not in SCORE_TABLES:
        raise ValueError(f"unknown paper table {table!r}: choose from {SCORE_TABLES}")
    rows = {}
    for row in _tables()[table].get(task, []):
        key = (row["family"], row.get("size", ""), row.get("steps", 0))
        rows[key] = {k: float(v) for k, v in row.items() if k not in ROW_FIELDS}
    return rows


def targeted(task: str) -> dict[str, dict[str, float]]:
    """Tables II / V: {degradation set ("multi_tip", ...): {metric: generative models' mean}}."""
    return {name: dict(values) for name, values in _tables()["targeted"].get(task, {}).items()}


def step_seconds() -> dict[tuple[str, str], StepSeconds]:
    """Table VIII: {(family, size): seconds per step on the paper's CPU and GPU}."""
    return {
        (r["family"], r["size"]): StepSeconds(r["cpu_s"], r["gpu_s"], r["speedup"])
        for r in _tables()["timing"]["per_step"]
    }


def image_seconds() -> dict[tuple[str, str, int], tuple[float, float]]:
    """Table XIV: {(family, size, steps): (CPU, GPU) seconds per 128x128 image}."""
    return {
        (r["family"], r["size"], r["steps"]): (r["cpu_s"], r["gpu_s"])
        for r in _tables()["timing"]["per_image"]
    }


def restore_512px_cpu_seconds() -> float:
    """The abstract: a 512x512 scan reconstructed in about this many seconds on a standard CPU."""
    return float(_tables()["timing"]["restore_512px_cpu_s"])

"""`python -m training gallery`: the paper's Fig. 1 for our data.

One row per degradation type (multi-tip, scan-line misalignment, tip change, blunt tip, scan-line
noise) and per super-resolution factor (x2, x4: the low-resolution input with no other artefact):
the pristine crop on the left, the same crop synthetically degraded on the right, each built with
`degrade(..., only=...)`, i.e. exactly as the paper's targeted test sets. The pristine scan is
simulated (`training.simulate.simulate_scan`) unless a file is given.

Many draws of an artefact are faint (a multi-tip ghost only shows where the sigmoid of Eq. 1 fires,
a blunt tip of sigma 0.3 px hardly blurs), so, like any figure of examples, the gallery picks: per
row it draws `candidates` samples and shows the most visibly degraded one (largest mean absolute
change not explained by a change of brightness and contrast, see `visible_change`);
`--candidates 1` shows plain first draws.
"""

from __future__ import annotations

import argparse
import logging
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.io.scan import Scan
from training.degradations import Sample, StepRecord, degrade

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GalleryRow:
    """One row of the gallery.

    Attributes:
        label: the row's title.
        task: the degradation task ("restore", "sr2", "sr4").
        only: the single artefact that fires (see `degrade`).
    """

    label: str
    task: str
    only: str


GALLERY_ROWS = (
    GalleryRow("multi-tip", "restore", "multi_tip"),
    GalleryRow("misalignment", "restore", "misalignment"),
    GalleryRow("tip change", "restore", "tip_change"),
    GalleryRow("blunt tip", "restore", "blunt_tip"),
    GalleryRow("scan-line noise", "restore", "scan_lines"),
    GalleryRow("SR x2 input", "sr2", "low_res"),
    GalleryRow("SR x4 input", "sr4", "low_res"),
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scan and the artefacts")
    parser.add_argument(
        "--candidates",
        type=int,
        default=8,
        help="draws per row; the most visibly degraded one is shown (default: 8)",
    )
    parser.add_argument(
        "--pristine",
        type=Path,
        help="a pristine scan (.npy of heights, or any file load_scan reads) instead of a "
        "simulated one",
    )


def run(args: argparse.Namespace) -> int:
    pristine = load_pristine(args.pristine) if args.pristine else simulated_pristine(args.seed)
    if args.candidates < 1:
        raise StmZooError(f"--candidates must be at least 1, not {args.candidates}.")
    samples = gallery_samples(pristine, args.seed, args.candidates)
    figure = draw_gallery(samples)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=150)
    print(f"wrote {args.out}")
    return 0


def load_pristine(path: Path) -> np.ndarray:
    """Heights (H, W) of a pristine scan file: a .npy array or anything `load_scan` reads.

    Rows holding NaN (an aborted scan) are cut away first.

    Raises:
        StmZooError: when the file is missing or holds no 2-D image.
    """
    if not path.is_file():
        raise StmZooError(f"Pristine scan {path} does not exist; pass an existing file.")
    if path.suffix.lower() == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise StmZooError(f"{path} is not a plain numpy array ({error}).") from error
        scan = Scan(np.asarray(data, dtype=np.float64), source=path)
    else:
        try:
            from stm_zoo.io import load_scan
        except ImportError as error:
            raise StmZooError(
                f"Reading {path.name} needs stm_zoo.io.load_scan, which this checkout lacks; "
                "pass a .npy array of heights instead."
            ) from error
        scan = load_scan(path)
    return scan.crop_valid().data


def simulated_pristine(seed: int) -> np.ndarray:
    """Heights (512, 512) in nm of a simulated pristine Si(001):H scan.

    Raises:
        StmZooError: when the simulator is not available.
    """
    try:
        from training.simulate import simulate_scan
    except ImportError as error:
        raise StmZooError(
            "The Si(001):H simulator (training.simulate) is not available in this checkout; "
            "pass --pristine FILE with a pristine scan."
        ) from error
    return simulate_scan(seed).heights_nm


def gallery_samples(
    pristine: np.ndarray, seed: int, candidates: int = 8
) -> list[tuple[GalleryRow, Sample]]:
    """One targeted sample per gallery row: of `candidates` draws, the most visibly degraded.

    Args:
        pristine: (H, W) heights, any unit, H and W >= 128.
        seed: draw j of row i uses the generator ``default_rng([seed, i, j])``.
        candidates: draws per row (>= 1).

    Returns:
        [(row, sample)] in `GALLERY_ROWS` order.
    """
    chosen = []
    for i, row in enumerate(GALLERY_ROWS):
        draws = [
            degrade(pristine, np.random.default_rng([seed, i, j]), row.task, only=row.only)
            for j in range(candidates)
        ]
        chosen.append((row, max(draws, key=visible_change)))
    return chosen


def visible_change(sample: Sample) -> float:
    """Mean |degraded - (a * clean + b)| for the least-squares a, b.

    A ghost on a terrace where the sigmoid of Eq. 1 saturates adds a near-constant, which step 9's
    normalisation hides; fitting out brightness and contrast scores only what a viewer can see.
    """
    clean = sample.clean.ravel().astype(np.float64)
    degraded = sample.degraded.ravel().astype(np.float64)
    design = np.stack([clean, np.ones_like(clean)], axis=1)
    coef, *_ = np.linalg.lstsq(design, degraded, rcond=None)
    return float(np.abs(degraded - design @ coef).mean())


def draw_gallery(samples: list[tuple[GalleryRow, Sample]]):
    """A matplotlib Figure: one row per sample, pristine | degraded, grey, labelled.

    Returns:
        matplotlib.figure.Figure (not shown; the caller saves it).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.8, 2.3 * len(samples)))
    axes = figure.subplots(len(samples), 2, squeeze=False)
    for (row, sample), (left, right) in zip(samples, axes, strict=True):
        left.imshow(sample.clean, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        right.imshow(sample.degraded, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
        left.set_ylabel(row.label, fontsize=11)
        right.set_xlabel(describe(sample.record, row.only), fontsize=7)
    axes[0, 0].set_title("pristine", fontsize=11)
    axes[0, 1].set_title("synthetically degraded", fontsize=11)
    figure.tight_layout()
    return figure


def describe(record: list[StepRecord], step: str) -> str:
    """A short caption of the parameters of `step` in `record` (empty if it did not fire)."""
    params = next((r.params for r in record if r.step == step), None)
    if params is None:
        return ""
    if step == "multi_tip":
        kernels = ", ".join(_kernel_label(g.kernel) for g in params.ghosts)
        return textwrap.fill(f"{len(params.ghosts)} extra tips: {kernels}", width=40)
    if step == "misalignment":
        return f"max |line shift| {max(abs(s) for s in params.shifts_px):.1f} px"
    if step == "tip_change":
        offset = f", offset {params.offset:+.2f}" if params.offset else ""
        return f"from line {params.line}: blur {params.blur_sigma_px:.1f} px{offset}"
    if step == "blunt_tip":
        return f"Gaussian blur {params.sigma_px:.2f} px"
    if step == "scan_lines":
        return f"{len(params.segments)} noisy lines"
    return f"1 line in {params.factor} kept, repeated"


def _kernel_label(kernel) -> str:
    if kernel.kind == "gaussian":
        return f"Gaussian {kernel.sigma_px:.1f}"
    return f"{kernel.kind} {kernel.size_px}"

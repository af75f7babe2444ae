"""Learning curves of the zoo: validation PSNR and SSIM against training time, one panel per task.

Every entry folder that holds a `training_log.csv` (written by `python -m training train`)
contributes one line per metric: the validation rows of its log, at the step count the card's
first validation step count names (2 for the samplers, `direct` for the autoencoder), against the
run's cumulative wall-clock time. The degraded input's score on the same validation images is the
dashed line each panel is judged against.

    python -m evaluation curves [--zoo zoo] [--out docs/img/zoo_learning_curves.png]
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

from stm_zoo.errors import StmZooError

LOG_NAME = "training_log.csv"
METRICS = ("psnr", "ssim")


@dataclass(frozen=True)
class Curve:
    """The validation rows of one entry's training log.

    Attributes:
        entry: "<task>/<family>-<size>".
        label: the step-count label of the values ("2steps", "direct").
        minutes: cumulative training wall-clock time of each validation row.
        psnr, ssim: the entry's validation scores at those times.
        input_psnr, input_ssim: the degraded input's scores on the same images.
    """

    entry: str
    label: str
    minutes: tuple[float, ...]
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]
    input_psnr: float
    input_ssim: float

    @property
    def task(self) -> str:
        return self.entry.split("/")[0]


def read_curve(log_path: Path, entry: str) -> Curve | None:
    """The validation rows of one training_log.csv (None when it has none)."""
    with open(log_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = rows[0].keys() if rows else []
    labels = [c.removeprefix("psnr_") for c in columns if c.startswith("psnr_")]
    if not labels or "input_psnr" not in columns:
        return None
    label = labels[0]
    scored = [r for r in rows if r.get(f"psnr_{label}") and r.get("input_psnr")]
    if not scored:
        return None
    return Curve(
        entry=entry,
        label=label,
        minutes=tuple(float(r["elapsed_s"]) / 60.0 for r in scored),
        psnr=tuple(float(r[f"psnr_{label}"]) for r in scored),
        ssim=tuple(float(r[f"ssim_{label}"]) for r in scored),
        input_psnr=float(scored[-1]["input_psnr"]),
        input_ssim=float(scored[-1]["input_ssim"]),
    )


def zoo_curves(zoo: Path | str | None = None) -> list[Curve]:
    """One curve per entry that has a training log with validation rows, from the zoo folders
    of `zoo` (one or several, as in STM_ZOO_DIR; default it); the first folder with an entry's
    log gives its curve."""
    from stm_zoo.zoo import zoo_dirs

    curves: dict[str, Curve] = {}
    for root in zoo_dirs(zoo):
        for log_path in sorted(root.glob(f"*/*/{LOG_NAME}")):
            entry = f"{log_path.parent.parent.name}/{log_path.parent.name}"
            curve = None if entry in curves else read_curve(log_path, entry)
            if curve is not None:
                curves[entry] = curve
    return list(curves.values())


def plot_curves(curves: list[Curve], path: Path) -> Path:
    """PSNR (top) and SSIM (bottom) against training minutes, one column per task."""
    from evaluation.plots import _pyplot

    if not curves:
        raise StmZooError("No training log with validation rows was found: nothing to plot.")
    plt = _pyplot()
    tasks = list(dict.fromkeys(c.task for c in curves))
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.6 * len(tasks), 7), squeeze=False)
    for column, task in enumerate(tasks):
        mine = [c for c in curves if c.task == task]
        for row, metric in enumerate(METRICS):
            ax = axes[row][column]
            for curve in mine:
                ax.plot(
                    curve.minutes,
                    getattr(curve, metric),
                    "o-",
                    ms=3,
                    label=f"{curve.entry.split('/')[1]} ({curve.label})",
                )
            ax.axhline(getattr(mine[0], f"input_{metric}"), color="grey", ls="--", lw=1)
            ax.set_title(f"{task}: validation {metric.upper()}" + (" (dB)" if row == 0 else ""))
            ax.set_xlabel("training wall-clock (min)")
            ax.set_xlim(left=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("Zoo learning curves (dashed: the degraded input on the same images)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from stm_zoo.zoo import add_zoo_argument

    add_zoo_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("docs/img/zoo_learning_curves.png"))


def run(args: argparse.Namespace) -> int:
    curves = zoo_curves(args.zoo)
    path = plot_curves(curves, args.out)
    for c in curves:
        print(
            f"{c.entry}: {len(c.minutes)} validations over {c.minutes[-1]:.0f} min, last "
            f"PSNR {c.psnr[-1]:.2f} dB / SSIM {c.ssim[-1]:.3f} ({c.label}; input "
            f"{c.input_psnr:.2f} / {c.input_ssim:.3f})"
        )
    print(f"wrote {path}")
    return 0

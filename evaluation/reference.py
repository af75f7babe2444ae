"""Do no harm: a model run on a real, near-pristine Si(001):H scan must give it back unchanged.

The reference scan (`../shared/data/si001h-reference`, 512x512 px over 100 nm, heights in nm) has
nothing to repair, so a restoration model should return it: we score the output against the
input after the best affine map (PSNR with the input's height range as data range; the inference
path maps every tile back to the input's units, so only structure can differ), and check that the
dimer-row peaks of the power spectrum keep their positions (within 5 %) and their power (at
least 80 %). The scan holds two terraces with rows at right angles and peaks of similar power, so
each input peak is followed into the output by its orientation, not by rank. These are the
numbers a user feels first, and every restore card reports them.

For super-resolution (`--task sr2` / `sr4`) the same real scan is the ground truth of a real
low-resolution measurement: only every k-th line is kept (the frame size unchanged, as a faster
scan would record it), the entry super-resolves it back to 512 lines, and the output is scored
against the full scan with the same affine PSNR and row-peak numbers. Nothing here is simulated,
so these are the SR cards' real-scan numbers; an SR entry passes when its row peaks keep position
and power (the PSNR threshold is the restore task's only: an SR output must invent lines).

    python -m evaluation reference [--task restore] [--family fm --size small --steps 2 5 10]
        [--path FILE]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from stm_zoo.lattice import MAX_PEAK_SHIFT, MIN_PEAK_POWER
from stm_zoo.registry import CLASSICAL, SR_FACTOR, TASKS, is_learned, takes_steps

REFERENCE_PATH = (
    Path(__file__).resolve().parent.parent.parent
    / "shared/data/si001h-reference/brockley_23_2_forward.npy"
)
"""Where the checkout's sibling `shared/` folder keeps the real reference scan."""
REFERENCE_SIZE_NM = 100.0
MIN_PSNR_DB = 33.0


@dataclass(frozen=True)
class ReferenceCheck:
    """One model's do-no-harm numbers on the reference scan.

    Attributes:
        entry, steps: which model and sampler step count.
        psnr_db: output vs input after the best affine map (data range: the input's range).
        peak_shift: the largest |k_out - k_in| / k_in over the input's dimer-row peaks (one per
            row orientation), each matched to the output peak of the nearest orientation.
        peak_power: the smallest output / input power over those peaks (5x5-bin patches).
        passed: peak_shift <= 0.05 and peak_power >= 0.8, and for restore psnr_db >= 33.
    """

    entry: str
    steps: int
    psnr_db: float
    peak_shift: float
    peak_power: float
    passed: bool


def load_reference(path: Path = REFERENCE_PATH):
    """The reference scan as a `Scan` (heights in metres, 100 nm frame)."""
    from stm_zoo.errors import StmZooError
    from stm_zoo.io.scan import Scan

    try:
        heights_nm = np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as error:
        raise StmZooError(
            f"{path} is not a readable .npy height map ({str(error).splitlines()[0]}): pass "
            "--path to the reference scan, heights in nm."
        ) from None
    if heights_nm.ndim != 2:
        raise StmZooError(
            f"{path} holds an array of shape {heights_nm.shape}, not a 2-D height map: pass "
            "--path to the reference scan, heights in nm."
        )
    size = REFERENCE_SIZE_NM * 1e-9
    return Scan(data=heights_nm * 1e-9, scan_size_m=(size, size), source=Path(path))


def affine_psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of `output` against `reference` after the least-squares affine map of output onto
    reference; the data range is the reference's max - min."""
    from stm_zoo.metrics import affine_psnr_batch

    data_range = float(np.ptp(reference.astype(np.float64)))
    return float(affine_psnr_batch(output[None], reference[None], data_range)[0])


def matched_peaks(
    before: np.ndarray, after: np.ndarray, pixel_size_nm: float
) -> list[tuple[float, float, float, float]]:
    """(k_in, power_in, k_out, power_out) for each dimer-row peak of `before` (one per row
    orientation), paired with the peak of `after` whose orientation is nearest."""
    from stm_zoo.lattice import matched_peaks as follow
    from stm_zoo.lattice import row_peaks

    found = row_peaks(after, pixel_size_nm, max_peaks=4, min_ratio=0.0)
    return [
        (peak.k_nm_inv, peak.power, float("nan"), 0.0)
        if match is None
        else (peak.k_nm_inv, peak.power, match.k_nm_inv, match.power)
        for peak, match in follow(row_peaks(before, pixel_size_nm, max_peaks=2), found)
    ]


def check_output(
    entry: str,
    steps: int,
    reference: np.ndarray,
    output: np.ndarray,
    pixel_size_nm: float,
    min_psnr_db: float = MIN_PSNR_DB,
) -> ReferenceCheck:
    """Score one restored image against the reference it came from (`min_psnr_db`: the pass
    threshold on the affine PSNR; 0 for super-resolution)."""
    psnr = affine_psnr(output, reference)
    # Powers are compared after the same affine map, so a global rescale is not a loss; in units
    # of the reference's standard deviation, so that metres and nanometres read alike.
    from evaluation.metrics import affine_fit_batch

    ref = reference.astype(np.float64)
    unit = max(float(ref.std()), 1e-300)
    mapped = affine_fit_batch(output[None], ref[None])[0]
    pairs = matched_peaks(ref / unit, mapped / unit, pixel_size_nm)
    shift = max((abs(k_out - k_in) / k_in for k_in, _, k_out, _ in pairs), default=float("nan"))
    power = min((p_out / p_in for _, p_in, _, p_out in pairs if p_in > 0), default=0.0)
    shift = float("inf") if np.isnan(shift) else shift
    passed = psnr >= min_psnr_db and shift <= MAX_PEAK_SHIFT and power >= MIN_PEAK_POWER
    return ReferenceCheck(entry, steps, round(psnr, 3), round(shift, 4), round(power, 4), passed)


def model_input(scan, task: str):
    """What the entry is given: the scan itself for restore, every k-th line of it (same frame)
    for super-resolution by k."""
    if task == "restore":
        return scan
    return replace(scan, data=np.ascontiguousarray(scan.data[:: SR_FACTOR[task]]))


def check_model(
    family: str,
    size: str,
    steps: int,
    path: Path = REFERENCE_PATH,
    model=None,
    seed: int = 0,
    figure: Path | None = None,
    task: str = "restore",
) -> ReferenceCheck:
    """Run one zoo entry (or the classical baseline) of `task` on the reference scan (for SR: on
    every k-th line of it) and score the output against the full scan; with `figure`, also draw
    input | output | difference there (PNG)."""
    from stm_zoo.pipeline import restore

    scan = load_reference(path)
    given = model_input(scan, task)
    result = restore(
        given,
        task=task,
        family=family,
        size=size,
        steps=steps,
        seed=seed,
        model=model,
    )
    entry = f"{task}/{family}-{size}" if is_learned(family) else f"{task}/{family}"
    pixel_nm = REFERENCE_SIZE_NM / scan.data.shape[1]
    min_psnr = MIN_PSNR_DB if task == "restore" else 0.0
    check = check_output(entry, steps, scan.data, result.scan.data, pixel_nm, min_psnr)
    if figure is not None:
        draw(figure, given.data, result.scan.data, check, truth=scan.data)
    return check


def draw(
    path: Path,
    before: np.ndarray,
    after: np.ndarray,
    check: ReferenceCheck,
    truth: np.ndarray | None = None,
) -> Path:
    """input | output | output - truth (same grey scale for the first two; heights in nm).

    `truth` is the full scan the output is scored against (default: the input itself, as for
    restore); a low-resolution input is drawn over the same frame, its lines stretched.
    """
    truth = before if truth is None else truth
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before_nm, after_nm, truth_nm = before * 1e9, after * 1e9, truth * 1e9
    low, high = np.percentile(truth_nm, [0.5, 99.5])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    extent = (0, REFERENCE_SIZE_NM, REFERENCE_SIZE_NM, 0)
    for ax, image, title in (
        (axes[0], before_nm, input_title(before.shape[0], truth.shape[0])),
        (axes[1], after_nm, f"{check.entry}, {check.steps} step{'s' if check.steps > 1 else ''}"),
    ):
        ax.imshow(image, cmap="afmhot", vmin=low, vmax=high, extent=extent, aspect="auto")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nm")
    diff = after_nm - truth_nm
    bound = float(np.percentile(np.abs(diff), 99.5)) or 1e-3
    shown = axes[2].imshow(diff, cmap="coolwarm", vmin=-bound, vmax=bound, extent=extent)
    axes[2].set_title(
        f"output - {'input' if truth is before else 'full scan'}: PSNR {check.psnr_db:.1f} dB, "
        f"\nrow peak {100 * check.peak_shift:+.1f} % / "
        f"{100 * check.peak_power:.0f} % power",
        fontsize=9,
    )
    fig.colorbar(shown, ax=axes[2], label="nm", shrink=0.8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def input_title(lines: int, full_lines: int) -> str:
    if lines == full_lines:
        return "real Si(001):H reference (input)"
    return f"input: every {ordinal(full_lines // lines)} line of the real reference"


def ordinal(k: int) -> str:
    """2 -> "2nd", 4 -> "4th"."""
    return f"{k}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(k, 'th') }"


def update_card(
    checks: list[ReferenceCheck],
    zoo: str | None,
    family: str,
    size: str,
    task: str = "restore",
    classical: ReferenceCheck | None = None,
) -> Path:
    """Store the checks as `metrics["reference"]` (per step count) in the entry's config.json and
    regenerate its card (keeping the card's extra sections). `zoo`: the zoo folders, separated
    by `os.pathsep` (default STM_ZOO_DIR); the first holding the entry's weights is written.
    `classical`: the classical baseline's check on the same input, stored beside them
    (`classical_psnr_db`, `classical_peak_power`) for `stm_zoo.zoo.real_scan_verdict`."""
    from evaluation.card_updates import store_metrics
    from stm_zoo.entry_format import EntryKey

    reference = {
        "data": "real near-pristine Si(001):H, 512x512, 100 nm (shared/data/si001h-reference)"
        + ("" if task == "restore" else f", every {ordinal(SR_FACTOR[task])} line in")
        + f"; `python -m evaluation reference --task {task}`",
        **{
            f"{name}_{c.steps}steps": getattr(c, name)
            for c in checks
            for name in ("psnr_db", "peak_shift", "peak_power")
        },
        "passed": all(c.passed for c in checks),
    }
    if classical is not None:
        reference["classical_psnr_db"] = classical.psnr_db
        reference["classical_peak_power"] = classical.peak_power
    return store_metrics(EntryKey(task, family, size), zoo, "reference", reference)


def write_real_set(folder: Path, task: str, path: Path = REFERENCE_PATH) -> tuple[Path, Path]:
    """Write the reference scan as a real experimental set for `python -m evaluation
    experimental`: `folder/full` (the full scan: the pristine / high-resolution side) and
    `folder/low` (what the entry is given: every k-th line for SR). Returns the two folders."""
    from stm_zoo.io.api import save_scan

    scan = load_reference(path)
    full, low = Path(folder) / "full", Path(folder) / "low"
    for sub, data in ((full, scan), (low, model_input(scan, task))):
        sub.mkdir(parents=True, exist_ok=True)
        save_scan(data, sub / f"{Path(path).stem}.gwy")
    return full, low


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from stm_zoo.zoo import add_zoo_argument

    parser.add_argument(
        "--task",
        choices=TASKS,
        default="restore",
        help="restore the scan, or super-resolve every k-th line of it (sr2, sr4)",
    )
    parser.add_argument("--family", default="fm")
    parser.add_argument("--size", default="small")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--path", type=Path, default=REFERENCE_PATH)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--update-card",
        action="store_true",
        help="write the numbers into the entry's config.json and card",
    )
    add_zoo_argument(parser)
    parser.add_argument(
        "--write-real-set",
        type=Path,
        default=None,
        metavar="DIR",
        help="only write DIR/full and DIR/low (the scan and what the entry is given, .gwy) "
        "for `python -m evaluation experimental`",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="draw input | output | difference (PNG) for the first step count",
    )


def run(args: argparse.Namespace) -> int:
    from stm_zoo.errors import StmZooError

    if not Path(args.path).is_file():
        raise StmZooError(
            f"{args.path} does not exist: the reference scan lives in shared/data beside the "
            "checkout; pass --path to another copy."
        )
    if args.write_real_set is not None:
        full, low = write_real_set(args.write_real_set, args.task, args.path)
        print(f"wrote {full} and {low}")
        return 0
    model = None
    if args.zoo is not None and is_learned(args.family):
        # The entry of --zoo is the one scored (and whose card --update-card writes), not the
        # one STM_ZOO_DIR or the Hub would serve.
        from stm_zoo.entry_format import EntryKey
        from stm_zoo.zoo import load_entry, locate

        key = EntryKey(args.task, args.family, args.size)
        model = load_entry(locate(key, allow_hub=False, search_path=args.zoo))
    checks = [
        check_model(
            args.family,
            args.size,
            s,
            args.path,
            model=model,
            figure=args.figure if i == 0 else None,
            task=args.task,
        )
        for i, s in enumerate(args.steps if takes_steps(args.family) else [1])
    ]
    if args.update_card and is_learned(args.family):
        classical = check_model(CLASSICAL, "small", 1, args.path, task=args.task)
        folder = update_card(checks, args.zoo, args.family, args.size, args.task, classical)
        print(f"updated {folder}")
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=1))
        return 0
    truth = "input" if args.task == "restore" else "full scan"
    print(f"| entry | steps | PSNR vs {truth} (affine) | row-peak shift | row-peak power | pass |")
    print("|---|---|---|---|---|---|")
    for c in checks:
        print(
            f"| {c.entry} | {c.steps} | {c.psnr_db:.2f} dB | {100 * c.peak_shift:.2f} % | "
            f"{100 * c.peak_power:.1f} % | {'yes' if c.passed else 'NO'} |"
        )
    return 0

"""Do no harm: a model run on a real, near-pristine Si(001):H scan must give it back unchanged.

The reference scan (`../shared/data/si001h-reference`, 512x512 px over 100 nm, heights in nm) has
nothing to repair, so a restoration model should return it: we score the output against the
input after the best affine map (PSNR with the input's height range as data range; the inference
path maps every tile back to the input's units, so only structure can differ), and check that the
dimer-row peaks of the power spectrum keep their positions (within 5 %) and their power (at
least 80 %). The scan holds two terraces with rows at right angles and peaks of similar power, so
each input peak is followed into the output by its orientation, not by rank. These are the
numbers a user feels first, and every restore card reports them.

    python -m evaluation reference [--family fm --size small --steps 2 5 10] [--path FILE]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from stm_zoo.lattice import MAX_PEAK_SHIFT, MIN_PEAK_POWER
from stm_zoo.registry import is_learned

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
        passed: psnr_db >= 33, peak_shift <= 0.05 and peak_power >= 0.8.
    """

    entry: str
    steps: int
    psnr_db: float
    peak_shift: float
    peak_power: float
    passed: bool


def load_reference(path: Path = REFERENCE_PATH):
    """The reference scan as a `Scan` (heights in metres, 100 nm frame)."""
    from stm_zoo.io.scan import Scan

    heights_nm = np.load(path).astype(np.float32)
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
    entry: str, steps: int, reference: np.ndarray, output: np.ndarray, pixel_size_nm: float
) -> ReferenceCheck:
    """Score one restored image against the reference it came from."""
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
    passed = psnr >= MIN_PSNR_DB and shift <= MAX_PEAK_SHIFT and power >= MIN_PEAK_POWER
    return ReferenceCheck(entry, steps, round(psnr, 3), round(shift, 4), round(power, 4), passed)


def check_model(
    family: str,
    size: str,
    steps: int,
    path: Path = REFERENCE_PATH,
    model=None,
    seed: int = 0,
    figure: Path | None = None,
) -> ReferenceCheck:
    """Restore the reference scan with one zoo entry (or the classical baseline) and score it;
    with `figure`, also draw input | output | difference there (PNG)."""
    from stm_zoo.pipeline import restore

    scan = load_reference(path)
    result = restore(
        scan, task="restore", family=family, size=size, steps=steps, seed=seed, model=model
    )
    entry = f"restore/{family}-{size}" if is_learned(family) else f"restore/{family}"
    pixel_nm = REFERENCE_SIZE_NM / scan.data.shape[1]
    check = check_output(entry, steps, scan.data, result.scan.data, pixel_nm)
    if figure is not None:
        draw(figure, scan.data, result.scan.data, check)
    return check


def draw(path: Path, before: np.ndarray, after: np.ndarray, check: ReferenceCheck) -> Path:
    """input | output | output - input (same grey scale for the first two; heights in nm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before_nm, after_nm = before * 1e9, after * 1e9
    low, high = np.percentile(before_nm, [0.5, 99.5])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    extent = (0, REFERENCE_SIZE_NM, REFERENCE_SIZE_NM, 0)
    for ax, image, title in (
        (axes[0], before_nm, "real Si(001):H reference (input)"),
        (axes[1], after_nm, f"{check.entry}, {check.steps} steps"),
    ):
        ax.imshow(image, cmap="afmhot", vmin=low, vmax=high, extent=extent)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nm")
    diff = after_nm - before_nm
    bound = float(np.percentile(np.abs(diff), 99.5)) or 1e-3
    shown = axes[2].imshow(diff, cmap="coolwarm", vmin=-bound, vmax=bound, extent=extent)
    axes[2].set_title(
        f"output - input: PSNR {check.psnr_db:.1f} dB, row peak {100 * check.peak_shift:+.1f} % / "
        f"{100 * check.peak_power:.0f} % power",
        fontsize=9,
    )
    fig.colorbar(shown, ax=axes[2], label="nm", shrink=0.8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def update_card(checks: list[ReferenceCheck], zoo: Path | None, family: str, size: str) -> Path:
    """Store the checks as `metrics["reference"]` (per step count) in the entry's config.json and
    regenerate its card (keeping the card's extra sections)."""
    from evaluation.cli_synthetic import _merge_card_sections
    from stm_zoo.cards import entry_card
    from stm_zoo.zoo import CARD_NAME, CONFIG_NAME, EntryConfig, EntryKey, zoo_dir

    folder = (zoo or zoo_dir()) / EntryKey("restore", family, size).subdir
    config = EntryConfig.from_file(folder / CONFIG_NAME)
    reference = {
        "data": "real near-pristine Si(001):H, 512x512, 100 nm (shared/data/si001h-reference); "
        "`python -m evaluation reference`",
        **{
            f"{name}_{c.steps}steps": getattr(c, name)
            for c in checks
            for name in ("psnr_db", "peak_shift", "peak_power")
        },
        "passed": all(c.passed for c in checks),
    }
    config = replace(config, metrics={**config.metrics, "reference": reference})
    (folder / CONFIG_NAME).write_text(config.to_json() + "\n", encoding="utf-8")
    card = folder / CARD_NAME
    old = card.read_text(encoding="utf-8") if card.is_file() else ""
    card.write_text(_merge_card_sections(entry_card(config), old), encoding="utf-8")
    return folder


def configure_parser(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--zoo", type=Path, default=None, help="zoo folder (default STM_ZOO_DIR)")
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
    checks = [
        check_model(args.family, args.size, s, args.path, figure=args.figure if i == 0 else None)
        for i, s in enumerate(args.steps)
    ]
    if args.update_card and is_learned(args.family):
        folder = update_card(checks, args.zoo, args.family, args.size)
        print(f"updated {folder}")
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=1))
        return 0
    print("| entry | steps | PSNR vs input (affine) | row-peak shift | row-peak power | pass |")
    print("|---|---|---|---|---|---|")
    for c in checks:
        print(
            f"| {c.entry} | {c.steps} | {c.psnr_db:.2f} dB | {100 * c.peak_shift:.2f} % | "
            f"{100 * c.peak_power:.1f} % | {'yes' if c.passed else 'NO'} |"
        )
    return 0

"""How harsh are our synthetic degradations? Issue 17's harshness report.

    python -m evaluation harshness --data ~/.cache/stm-zoo/data/restore [--limit 500]
        [--out docs/harshness]

For the full pipeline (the test split) and for each single-degradation (targeted) set, the
degraded input scored against its clean image: PSNR / SSIM as the paper computes them (each image
min/max-mapped onto [-1, 1] on its own) and after the best affine map of the input onto the clean
image (structure only, blind to intensity calibration), next to the paper's values where it gives
them. Then the parameter tails that do the most damage: for every degradation parameter recorded
with the samples (`<split>-records.jsonl`), the mean input PSNR of the samples in the parameter's
top decile against the rest.

Then what the paper's metric allows a near-perfect model: the clean image itself, blurred by a
Gaussian of sigma px (a model that gets every structure right up to that scale), scored in the
clean image's own units ("calibrated"), after mapping its own min/max onto [-1, 1] as every output
is before the paper's PSNR ("own min/max"), and after the best affine map ("affine").

Last, tile statistics that need no clean image, computed the same way on our clean and degraded
tiles and on the real scans in ../shared/data (the near-pristine Si(001):H reference; the
Omicron MATRIX scan with real scan-line noise; a Si(111)-7x7 scan taken with a degraded tip):
how much of a tile's min/max range its central 98 % of pixels fill (the paper's min/max
normalisation is set by the remaining few pixels), and the row-to-row jump of the line medians
relative to that central range (scan-line artefacts).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from evaluation.benchmarks import TileSet, load_split, targeted_sets
from evaluation.metrics import affine_psnr_batch, affine_ssim_batch, psnr_batch, ssim_batch
from evaluation.rows import PAPER_SYNTHETIC, PAPER_TARGETED, RowSpec

logger = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_SCANS = {
    "real Si(001):H reference (near-pristine)": "si001h-reference/brockley_23_2_forward.npy",
    "real MATRIX scan, scan-line noise": "spm-fixtures/matrix/20201111--4_1.Z_mtrx",
    "real Si(111)-7x7, degraded tip (noisy, blurred)": "spm-fixtures/nanonis/Si_7x7_028.sxm",
}
TILE = 128
PSNR_CAP_DB = 60.0


def input_scores(tiles: TileSet) -> dict[str, float]:
    """Mean input PSNR / SSIM, raw (the paper's) and affine-invariant, of a set of pairs."""
    psnr = np.minimum(psnr_batch(tiles.degraded, tiles.clean), PSNR_CAP_DB)
    return {
        "n": len(tiles),
        "psnr": float(psnr.mean()),
        "ssim": float(ssim_batch(tiles.degraded, tiles.clean).mean()),
        "affine_psnr": float(
            np.minimum(affine_psnr_batch(tiles.degraded, tiles.clean), PSNR_CAP_DB).mean()
        ),
        "affine_ssim": float(affine_ssim_batch(tiles.degraded, tiles.clean).mean()),
        "per_sample_psnr": psnr.tolist(),
    }


def sample_features(record: dict) -> dict[str, float]:
    """The scalar degradation parameters of one sample's record (absent steps are absent)."""
    out: dict[str, float] = {}
    for step in record["steps"]:
        kind = step["step"]
        if kind == "multi_tip":
            ghosts = step["ghosts"]
            out["multi_tip: ghost tips"] = len(ghosts)
            out["multi_tip: largest amplitude"] = max(g["amplitude"] for g in ghosts)
            out["multi_tip: largest offset (px)"] = max(
                float(np.hypot(g["offset_x_px"], g["offset_y_px"])) for g in ghosts
            )
            out["multi_tip: widest Gaussian kernel (px)"] = max(
                g["kernel"]["sigma_px"] for g in ghosts
            )
        elif kind == "tip_change":
            out["tip_change: |offset|"] = abs(step["offset"])
            out["tip_change: blur sigma (px)"] = step["blur_sigma_px"]
        elif kind == "scan_lines":
            segments = step["segments"]
            out["scan_lines: segments"] = segments["n"]
            for name, count in segments["kinds"].items():
                out[f"scan_lines: {name} segments"] = count
        elif kind == "misalignment":
            out["misalignment: rms shift (px)"] = step["shifts_px"]["rms"]
            out["misalignment: largest |shift| (px)"] = max(
                abs(step["shifts_px"]["max"]), abs(step["shifts_px"]["min"])
            )
        elif kind == "blunt_tip":
            out["blunt_tip: sigma (px)"] = step["sigma_px"]
        if kind in {"multi_tip", "tip_change", "scan_lines", "misalignment", "blunt_tip"}:
            out[f"{kind} fired"] = 1.0
    return out


def damaging_tails(records: list[dict], psnr: np.ndarray, top: int = 4) -> list[dict]:
    """The parameters whose top decile costs the input the most PSNR.

    For each parameter: the mean input PSNR of the samples whose value lies in its top 10 %
    (over all samples, a missing step counting as 0) against the mean of the others; for the
    "fired" flags, the samples with the step against those without.
    """
    features = [sample_features(r) for r in records]
    names = sorted({k for f in features for k in f})
    rows = []
    for name in names:
        values = np.array([f.get(name, 0.0) for f in features])
        if np.ptp(values) == 0:
            continue
        if name.endswith("fired"):
            high = values > 0
            label = "with the step"
        else:
            cut = np.quantile(values[values > 0], 0.9) if np.any(values > 0) else 0.0
            high = values >= cut
            label = f">= {cut:.3g}"
        if high.all() or not high.any():
            continue
        rows.append(
            {
                "parameter": name,
                "tail": label,
                "n_tail": int(high.sum()),
                "psnr_tail": float(psnr[high].mean()),
                "psnr_rest": float(psnr[~high].mean()),
                "damage_db": float(psnr[~high].mean() - psnr[high].mean()),
            }
        )
    rows.sort(key=lambda r: -r["damage_db"])
    return rows[:top]


ORACLE_SIGMAS_PX = (0.5, 1.0, 1.5, 2.0)


def oracle_ceiling(clean: np.ndarray) -> list[dict[str, float]]:
    """Mean PSNR of blurred clean tiles (N, H, W) in [-1, 1], three ways (module docstring)."""
    from scipy.ndimage import gaussian_filter

    from stm_zoo.preprocess import normalise_tiles

    rows = []
    for sigma in ORACLE_SIGMAS_PX:
        blurred = gaussian_filter(clean.astype(np.float64), (0, sigma, sigma), mode="reflect")
        rows.append(
            {
                "sigma_px": sigma,
                "calibrated": _capped_mean(psnr_batch(blurred, clean)),
                "own_minmax": _capped_mean(psnr_batch(normalise_tiles(blurred)[0], clean)),
                "affine": _capped_mean(affine_psnr_batch(blurred, clean)),
            }
        )
    return rows


def _capped_mean(psnr: np.ndarray) -> float:
    return float(np.minimum(psnr, PSNR_CAP_DB).mean())


def read_records(folder: Path, split: str, n: int) -> list[dict]:
    path = folder / f"{split}-records.jsonl"
    if not path.is_file():
        return []
    with path.open() as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


def tile_stats(tiles: np.ndarray) -> dict[str, float]:
    """Reference-free statistics of (N, H, W) tiles (see the module docstring), medians over N."""
    x = tiles.reshape(len(tiles), -1).astype(np.float64)
    low, high = np.percentile(x, [1, 99], axis=1)
    full = x.max(axis=1) - x.min(axis=1)
    central = high - low
    fill = np.where(full > 0, central / np.where(full > 0, full, 1), 1.0)
    rows = np.median(tiles.astype(np.float64), axis=2)
    jumps = np.sqrt(np.mean(np.diff(rows, axis=1) ** 2, axis=1))
    jump = np.where(central > 0, jumps / np.where(central > 0, central, 1), 0.0)
    return {
        "n": len(tiles),
        "central_fill": float(np.median(fill)),
        "line_jump": float(np.median(jump)),
    }


def real_tiles(path: Path) -> np.ndarray | None:
    """Non-overlapping 128x128 tiles of a real scan's topography (None when it is absent)."""
    if not path.is_file():
        return None
    if path.suffix == ".npy":
        image = np.load(path)
    else:
        from stm_zoo.io import load_scan

        image = load_scan(path).data
    image = image[np.isfinite(image).all(axis=1)]
    h, w = (s // TILE * TILE for s in image.shape)
    return (
        image[:h, :w]
        .reshape(h // TILE, TILE, w // TILE, TILE)
        .swapaxes(1, 2)
        .reshape(-1, TILE, TILE)
    )


def report(data_dir: Path, limit: int | None, shared: Path = SHARED_DATA) -> dict:
    """Every number of the report (see the module docstring)."""
    from training.shards import read_manifest

    manifest = read_manifest(data_dir)
    task = manifest["task"]
    sets = {"full pipeline": (load_split(data_dir, "test", limit), data_dir)}
    targeted = targeted_sets(data_dir, limit)
    for name, tiles in targeted.items():
        sets[name] = (tiles, data_dir / manifest["targeted"][name])
    rows, tails = [], {}
    for name, (tiles, folder) in sets.items():
        scores = input_scores(tiles)
        psnr = np.array(scores.pop("per_sample_psnr"))
        paper = (
            PAPER_SYNTHETIC.get(task, {}).get(RowSpec("input"), {})
            if name == "full pipeline"
            else PAPER_TARGETED.get(task, {}).get(name, {})
        )
        rows.append({"set": name, **scores, "paper": paper})
        records = read_records(folder, "test", len(tiles))
        if len(records) == len(tiles):
            tails[name] = damaging_tails(records, psnr)
    full = sets["full pipeline"][0]
    oracle = oracle_ceiling(full.clean)
    stats = {
        "our clean tiles": tile_stats(full.clean),
        "our degraded tiles": tile_stats(full.degraded),
    }
    for label, relative in REAL_SCANS.items():
        tiles = real_tiles(shared / relative)
        if tiles is not None:
            stats[label] = tile_stats(tiles)
    return {
        "task": task,
        "data": str(data_dir),
        "sets": rows,
        "tails": tails,
        "oracle": oracle,
        "tiles": stats,
    }


def markdown(result: dict) -> str:
    lines = [
        f"Task {result['task']}, data {result['data']}.",
        "",
        "| set | n | input PSNR | input SSIM | affine PSNR | affine SSIM | paper |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["sets"]:
        paper = r["paper"]
        if r["set"] == "full pipeline" and paper:
            ref = f"input {paper.get('psnr', float('nan')):.2f} dB / {paper['ssim']:.3f}"
        elif paper:
            psnr = f"{paper['psnr']:.2f} dB / " if "psnr" in paper else ""
            ref = f"models' mean output {psnr}{paper['ssim']:.3f}"
        else:
            ref = ""
        lines.append(
            f"| {r['set']} | {r['n']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
            f"{r['affine_psnr']:.2f} | {r['affine_ssim']:.3f} | {ref} |"
        )
    lines += ["", "| set | parameter | tail | n | input PSNR in tail | rest | cost (dB) |"]
    lines.append("|---|---|---|---:|---:|---:|---:|")
    for name, rows in result["tails"].items():
        for t in rows:
            lines.append(
                f"| {name} | {t['parameter']} | {t['tail']} | {t['n_tail']} | "
                f"{t['psnr_tail']:.2f} | {t['psnr_rest']:.2f} | {t['damage_db']:.2f} |"
            )
    lines += [
        "",
        "| clean image blurred by sigma (px) | calibrated | own min/max (paper) | affine |",
        "|---:|---:|---:|---:|",
    ]
    for o in result["oracle"]:
        lines.append(
            f"| {o['sigma_px']:g} | {o['calibrated']:.2f} | {o['own_minmax']:.2f} | "
            f"{o['affine']:.2f} |"
        )
    lines += ["", "| tiles (128x128) | n | central 98 % fills this much of min..max | line jump |"]
    lines.append("|---|---:|---:|---:|")
    for label, s in result["tiles"].items():
        lines.append(f"| {label} | {s['n']} | {s['central_fill']:.3f} | {s['line_jump']:.3f} |")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="a `python -m training data` folder"
    )
    parser.add_argument("--limit", type=int, default=500, help="samples per set (default 500)")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.md and <out>.json")


def run(args: argparse.Namespace) -> int:
    result = report(args.data, args.limit)
    text = markdown(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    return 0

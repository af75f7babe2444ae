"""`python -m training simulate`: write simulated pristine Si(001):H scans to a folder.

File i (sim_00000.npy, sim_00001.npy, ...) is simulated with seed S + i, so any single file can be
regenerated alone with `simulate_scan(S + i, size, pixel_size_nm)`. simulation.json lists every
file with its seed and drawn parameters, plus the distributions they were drawn from. With --sxm
the same scans also go to OUT/sxm/ as Nanonis files: a subfolder, so that `python -m training data
--pristine OUT` (which reads one folder, not recursively) does not see every scan twice.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stm_zoo.errors import StmZooError
from training.simulate.params import SimulationParams
from training.simulate.simulator import DEFAULT_PIXEL_SIZE_NM, simulate_scan

logger = logging.getLogger(__name__)

MANIFEST_NAME = "simulation.json"
SXM_FOLDER = "sxm"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m training simulate`."""
    parser.add_argument("--n", type=int, required=True, help="number of scans to simulate")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the first scan; scan i uses seed + i"
    )
    parser.add_argument("--size", type=int, default=512, help="side of each scan in pixels")
    parser.add_argument(
        "--pixel-size-nm",
        type=float,
        default=DEFAULT_PIXEL_SIZE_NM,
        help="pixel pitch in nm (default 100 nm / 512 px)",
    )
    parser.add_argument(
        "--sxm", action="store_true", help="also write each scan as a Nanonis .sxm file in OUT/sxm/"
    )


def _sxm_writer():
    """stm_zoo.io.save_scan, or a clear error when this installation has no .sxm writer."""
    try:
        from stm_zoo.io import save_scan
    except ImportError as error:
        raise StmZooError(
            "--sxm needs stm_zoo.io.save_scan, which this installation lacks; "
            "run without --sxm to write .npy files only."
        ) from error
    return save_scan


def run(args: argparse.Namespace) -> int:
    """Simulate `args.n` scans into `args.out`; returns the exit code."""
    if args.n < 1:
        raise StmZooError(f"--n must be at least 1, got {args.n}.")
    if args.size < 16:
        raise StmZooError(f"--size must be at least 16 pixels, got {args.size}.")
    if not args.pixel_size_nm > 0:
        raise StmZooError(f"--pixel-size-nm must be positive, got {args.pixel_size_nm}.")
    if args.seed < 0:
        raise StmZooError(f"--seed must be zero or positive, got {args.seed}.")
    save_scan = _sxm_writer() if args.sxm else None
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise StmZooError(f"--out {out} is a file; give a folder to write the scans into.")
    out.mkdir(parents=True, exist_ok=True)
    if save_scan is not None:
        (out / SXM_FOLDER).mkdir(exist_ok=True)

    width = max(5, len(str(args.n - 1)))
    files = []
    for i in tqdm(range(args.n), desc="simulate", unit="scan"):
        seed = args.seed + i
        scan = simulate_scan(seed, size_px=args.size, pixel_size_nm=args.pixel_size_nm)
        name = f"sim_{i:0{width}d}"
        np.save(out / f"{name}.npy", scan.heights_nm.astype(np.float32))
        entry = {"file": f"{name}.npy", "seed": seed, "params": scan.params.to_dict()}
        if save_scan is not None:
            save_scan(scan.to_scan(), out / SXM_FOLDER / f"{name}.sxm")
            entry["sxm"] = f"{SXM_FOLDER}/{name}.sxm"
        files.append(entry)

    manifest = {
        "generator": "training.simulate",
        "seed": args.seed,
        "n": args.n,
        "size_px": args.size,
        "pixel_size_nm": args.pixel_size_nm,
        "units": "heights in nm, float32, row 0 = first scan line, columns along the fast axis",
        "simulation_params": SimulationParams().to_dict(),
        "files": files,
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    print(f"wrote {args.n} simulated scans to {out} (seeds {args.seed}..{args.seed + args.n - 1})")
    return 0

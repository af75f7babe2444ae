"""Benchmark synthetic-dataset generation: simulation time and samples/s per task.

Usage (from the repository root):
    python scripts/bench_data.py [--n 2000] [--scans 36] [--size-px 512] [--workers W]

Simulates `--scans` pristine scans (timed separately), then builds a dataset of `--n` samples for
each task (split 10:1:1 into train/val/test like the paper's 20,000/2,000/2,000) into a temporary
folder, and prints a markdown table: wall time, samples/s, the projected time for the paper's 24,000
samples, and the worst PSNR of the float16 storage against regenerated float32 samples.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a plain script from a checkout: make the repository's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stm_zoo.metrics import DATA_RANGE, psnr  # noqa: E402
from stm_zoo.timing import load_average, markdown_table  # noqa: E402
from training.datasets import OnTheFlyDataset, ShardDataset  # noqa: E402
from training.degradations import TASKS  # noqa: E402
from training.shards import build_dataset  # noqa: E402
from training.sources import assign_splits, simulate_sources  # noqa: E402

PAPER_TOTAL = 24000


def float16_psnr_db(
    out_dir: Path, sources: list[np.ndarray], task: str, seed: int, n: int
) -> float:
    """Worst PSNR (data range 2) of stored float16 samples against regenerated float32 ones."""
    stored = ShardDataset(out_dir, "train")
    train = assign_splits(len(sources), seed)["train"]
    fresh = OnTheFlyDataset([sources[j] for j in train], task, len(stored), seed=seed)
    worst = np.inf
    for i in range(min(n, len(stored))):
        for a, b in zip(stored[i], fresh[i], strict=True):
            worst = min(worst, psnr(a[0].numpy(), b[0].numpy(), DATA_RANGE))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples per task")
    parser.add_argument("--scans", type=int, default=36, help="simulated pristine scans")
    parser.add_argument("--size-px", type=int, default=512, help="side of each simulated scan")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--psnr-samples", type=int, default=200, help="samples for the PSNR check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    workers = args.workers or os.cpu_count() or 1
    load_before = load_average()

    t0 = time.perf_counter()
    sources = simulate_sources(args.scans, args.seed, args.size_px, workers=workers)
    sim_seconds = time.perf_counter() - t0
    arrays = [s.heights_nm for s in sources]

    rows = []
    n_val = n_test = round(args.n / 12)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        for task in args.tasks:
            out = Path(tmp) / task
            t0 = time.perf_counter()
            result = build_dataset(
                sources,
                task,
                out,
                n_train=args.n - n_val - n_test,
                n_val=n_val,
                n_test=n_test,
                seed=args.seed,
                workers=workers,
            )
            wall = time.perf_counter() - t0
            rate = args.n / wall
            psnr = float16_psnr_db(out, arrays, task, args.seed, args.psnr_samples)
            rows.append((task, args.n, wall, rate, PAPER_TOTAL / rate / 60, psnr, result))

    print(
        f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{workers} workers, load average {load_before:.2f} at start "
        f"{load_average():.2f} at end (other processes share the CPU)."
    )
    print(
        f"Simulation: {args.scans} scans of {args.size_px}x{args.size_px} px "
        f"in {sim_seconds:.1f} s "
        f"({args.scans / sim_seconds:.2f} scans/s with {workers} workers).\n"
    )
    header = ["task", "samples", "wall time (s)", "samples/s"]
    header += ["projected 24,000 samples (min)", "worst float16 PSNR (dB)"]
    cells = [
        [task, n, f"{wall:.1f}", f"{rate:.1f}", f"{minutes:.1f}", f"{psnr:.1f}"]
        for task, n, wall, rate, minutes, psnr, _ in rows
    ]
    print(markdown_table(header, cells, right=range(1, 6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

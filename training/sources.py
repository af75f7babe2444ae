"""Pristine scans that samples are cropped from (a folder of scan files or the Si(001):H
simulator), their image-level train/val/test split, and the random draw of each sample.

Data flow: pristine scans -> image-level train/val/test split -> per sample: pick a source scan of
the split and run the paper's degradation pipeline (`training.degradations.degrade`) -> (clean,
degraded) 128x128 pairs in [-1, 1]. `training.shards` writes such pairs to disk and
`training.datasets` serves them to torch.

Reproducibility: sample `i` of a split draws everything (its source scan and every degradation) from
its own generator `np.random.default_rng([seed, stream, i])` (`stream` names the split or targeted
set, `sample_stream`), so a dataset is a pure function of the seed, whatever the number of workers
or chunking.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stm_zoo.errors import StmZooError
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM
from training.degradations import TARGETED, DegradationConfig, Sample, degrade

logger = logging.getLogger(__name__)

CROP_PX = 128
SPLITS = ("train", "val", "test")
# The paper's 36 / 12 / 6 pristine images.
SPLIT_FRACTIONS = {"train": 2 / 3, "val": 2 / 9, "test": 1 / 9}
# Generator streams: one per split and one per targeted set, so that no two sets share a sample.
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
_TARGETED_STREAM_BASE = 100
_ASSIGN_STREAM = 1000
_SIMULATE_STREAM = 2000


@dataclass
class PristineSource:
    """One pristine scan that samples are cropped from.

    Attributes:
        name: short label (file name, or `sim-<k>` for a simulated scan).
        heights_nm: (H, W) float32 heights in nm, all finite, H and W >= 128.
        pixel_size_nm: pixel pitch (x, y) in nm.
        origin: JSON-friendly description of where it came from (file path, or simulator seed and
            parameters).
    """

    name: str
    heights_nm: np.ndarray
    pixel_size_nm: tuple[float, float]
    origin: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for the manifest (no pixel data; a SHA-256 of it instead)."""
        return {
            "name": self.name,
            "shape": list(self.heights_nm.shape),
            "pixel_size_nm": [float(p) for p in self.pixel_size_nm],
            "sha256": hashlib.sha256(np.ascontiguousarray(self.heights_nm).tobytes()).hexdigest(),
            "origin": jsonable(self.origin),
        }


# --------------------------------------------------------------------------------------------
# Pristine sources
# --------------------------------------------------------------------------------------------


def load_pristine_folder(folder: str | Path) -> list[PristineSource]:
    """Every readable scan file in `folder` (not recursive), as pristine sources in nm.

    Unreadable files are skipped with one warning line each; NaN rows (an aborted scan) are cropped
    first with `Scan.crop_valid`.

    Args:
        folder: a folder of scan files in any format `stm_zoo.io.load_scan` reads (the forward
            Z channel is used).

    Returns:
        Sources sorted by file name.

    Raises:
        StmZooError: the folder does not exist, no file in it is usable, or a scan is smaller than
            the 128x128 crop.
    """
    from stm_zoo.io import load_scan
    from stm_zoo.io.matrix import is_parameter_file

    folder = Path(folder)
    if not folder.is_dir():
        raise StmZooError(f"Pristine folder {folder} does not exist; pass a folder of scan files.")
    sources: list[PristineSource] = []
    seen: dict[str, str] = {}  # SHA-256 of the heights -> file name
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if is_parameter_file(path):
            continue  # a MATRIX parameter file: read through its data file(s)
        try:
            scan = load_scan(path, channel="Z", direction="forward").crop_valid()
        except StmZooError as error:
            message = str(error) if path.name in str(error) else f"{path.name}: {error}"
            logger.warning("skipping unreadable file %s", message)
            continue
        heights = scan.data * 1e9 if scan.unit == "m" else scan.data
        h, w = heights.shape
        if h < CROP_PX or w < CROP_PX:
            raise StmZooError(
                f"Pristine scan {path} is {h}x{w} px (after cropping NaN rows), smaller than the "
                f"{CROP_PX}x{CROP_PX} training crop; remove it from {folder} or use a larger scan."
            )
        if not np.ptp(heights) > 0:
            logger.warning("skipping %s: the image is flat (all heights equal)", path.name)
            continue
        pixel_nm = (scan.pixel_size_m[0] * 1e9, scan.pixel_size_m[1] * 1e9)
        if not scan.pixel_size_assumed and abs(pixel_nm[0] / DEFAULT_PIXEL_SIZE_NM - 1) > 0.1:
            logger.warning(
                "%s has %.3f nm/px; the models are trained at %.3f nm/px (100 nm / 512 px)",
                path.name,
                pixel_nm[0],
                DEFAULT_PIXEL_SIZE_NM,
            )
        source = PristineSource(
            name=path.name,
            heights_nm=np.ascontiguousarray(heights, dtype=np.float32),
            pixel_size_nm=pixel_nm,
            origin={"file": str(path), "history": list(scan.history)},
        )
        digest = source.describe()["sha256"]
        if digest in seen:
            # The same image twice (e.g. two MATRIX channel files of one scan) could land in two
            # splits and leak test data into training.
            logger.warning("skipping %s: the same image as %s", path.name, seen[digest])
            continue
        seen[digest] = path.name
        sources.append(source)
    if not sources:
        raise StmZooError(
            f"No usable pristine scan in {folder}; put readable scan files (.sxm, MATRIX, .gwy, "
            "image or .npy) of at least 128x128 px there."
        )
    return sources


def simulation_seeds(n: int, seed: int) -> list[int]:
    """The simulator seeds of `n` simulated scans of a dataset with seed `seed`."""
    state = np.random.SeedSequence([seed, _SIMULATE_STREAM]).generate_state(n, dtype=np.uint32)
    return [int(s) for s in state]


def _simulate_one(job: tuple[int, int, int, float]) -> PristineSource:
    from training.simulate import simulate_scan

    index, sim_seed, size_px, pixel_size_nm = job
    sim = simulate_scan(sim_seed, size_px=size_px, pixel_size_nm=pixel_size_nm)
    params = sim.params.to_dict() if hasattr(sim.params, "to_dict") else sim.params
    return PristineSource(
        name=f"sim-{index:04d}",
        heights_nm=np.ascontiguousarray(sim.heights_nm, dtype=np.float32),
        pixel_size_nm=(pixel_size_nm, pixel_size_nm),
        origin={"simulator_seed": sim_seed, "params": params},
    )


def simulate_sources(
    n: int,
    seed: int = 0,
    size_px: int = 512,
    pixel_size_nm: float = DEFAULT_PIXEL_SIZE_NM,
    workers: int | None = None,
) -> list[PristineSource]:
    """`n` simulated pristine Si(001):H scans, seeded from the dataset seed.

    Args:
        n: number of scans (at least 3, one per split).
        seed: dataset seed (>= 0); scan k uses `simulation_seeds(n, seed)[k]`.
        size_px: side of each scan in pixels (>= 128).
        pixel_size_nm: pixel pitch in nm.
        workers: processes (default: all cores).

    Returns:
        Sources `sim-0000` ... in seed order, heights in nm.
    """
    if size_px < CROP_PX:
        raise StmZooError(f"Simulated scans must be at least {CROP_PX} px, not {size_px}.")
    jobs = [(k, s, size_px, pixel_size_nm) for k, s in enumerate(simulation_seeds(n, seed))]
    workers = worker_count(workers, n)
    bar = {"total": n, "desc": "simulate", "unit": "scan"}
    if workers == 1:
        return [_simulate_one(job) for job in tqdm(jobs, **bar)]
    with pool_context().Pool(workers) as pool:
        return list(tqdm(pool.imap(_simulate_one, jobs), **bar))


# --------------------------------------------------------------------------------------------
# Splits and per-sample draws
# --------------------------------------------------------------------------------------------


def split_counts(n_sources: int) -> dict[str, int]:
    """Scans per split in the paper's 36/12/6 proportions (2/3, 2/9, 1/9), each split >= 1 scan.

    Validation and test get `max(1, round(fraction * n))`, training the rest: 54 -> 36/12/6,
    36 -> 24/8/4, 3 -> 1/1/1.

    Raises:
        StmZooError: fewer than 3 scans.
    """
    if n_sources < 3:
        raise StmZooError(
            f"Need at least 3 pristine scans (one each for train, val and test), got {n_sources}; "
            "add scans to the folder or simulate more."
        )
    val = max(1, round(SPLIT_FRACTIONS["val"] * n_sources))
    test = max(1, round(SPLIT_FRACTIONS["test"] * n_sources))
    return {"train": n_sources - val - test, "val": val, "test": test}


def assign_splits(n_sources: int, seed: int) -> dict[str, list[int]]:
    """Image-level split: which source indices belong to each split (sorted, disjoint, complete).

    The assignment is a seeded random permutation, so crops of one scan never cross splits.
    """
    counts = split_counts(n_sources)
    order = np.random.default_rng([seed, _ASSIGN_STREAM]).permutation(n_sources)
    out, start = {}, 0
    for split in SPLITS:
        out[split] = sorted(int(k) for k in order[start : start + counts[split]])
        start += counts[split]
    return out


def sample_rng(seed: int, stream: int, index: int, epoch: int = 0) -> np.random.Generator:
    """The generator of one sample; epoch 0 is the written dataset, later epochs are fresh draws.

    SeedSequence ignores trailing zeros ([s, 1] seeds like [s, 1, 0]), hence the epoch is appended
    only from epoch 1 on and the non-sample streams (split assignment, simulator seeds) use stream
    numbers that no sample set uses.
    """
    key = [seed, stream, index] if epoch == 0 else [seed, stream, index, epoch]
    return np.random.default_rng(key)


def draw_sample(
    pristine: Sequence[np.ndarray],
    task: str,
    config: DegradationConfig,
    rng: np.random.Generator,
    only: str | None = None,
) -> tuple[int, Sample]:
    """Pick a pristine scan uniformly and degrade it, all from `rng`.

    Args:
        pristine: the split's scans, each (H, W) with H, W >= 128, any height unit.
        task: one of `TASKS`.
        config: degradation parameters.
        rng: the sample's own generator.
        only: a name from `TARGETED` to fire only that degradation.

    Returns:
        (position of the chosen scan in `pristine`, the `degrade` sample with `.clean`,
        `.degraded` (128, 128) float32 in [-1, 1] and `.record`).
    """
    k = int(rng.integers(len(pristine)))
    return k, degrade(pristine[k], rng, task=task, config=config, only=only)


def sample_stream(split: str, only: str | None = None) -> int:
    """The generator stream of a split's samples, or of the targeted set `only` (a test split of
    its own): distinct for every set, so that no two sets share a sample."""
    if only is None:
        return _SPLIT_STREAM[split]
    return _TARGETED_STREAM_BASE + TARGETED.index(only)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def worker_count(workers: int | None, jobs: int) -> int:
    return max(1, min(workers or os.cpu_count() or 1, jobs))


def pool_context() -> multiprocessing.context.BaseContext:
    # fork shares the pristine arrays copy-on-write instead of pickling them to every worker.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def jsonable(obj: Any) -> Any:
    """Plain JSON types from dataclasses, records with `to_dict`, numpy values, tuples and paths."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        obj = obj.to_dict()
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj

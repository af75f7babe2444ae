"""Synthetic (clean, degraded) datasets: pristine sources, image-level splits, shards, on-the-fly.

Data flow: pristine scans (a folder of scan files, or the Si(001):H simulator) -> image-level
train/val/test split -> per sample: pick a source scan of the split and run the paper's degradation
pipeline (`training.degradations.degrade`) -> (clean, degraded) 128x128 pairs in [-1, 1].

Reproducibility: sample `i` of a split draws everything (its source scan and every degradation) from
its own generator `np.random.default_rng([seed, stream, i])` (`stream` names the split or targeted
set), so a dataset is a pure function of the seed, whatever the number of workers or chunking.

On disk (`out_dir/`):
- `manifest.json`: format version, seed, task, degradation config, the sources with their split,
  per split the sample count, the shard files, the per-sample source index, the records file.
- `<split>-<k>.npy`: float16 shards of shape (n, 2, 128, 128), channel 0 clean, channel 1 degraded,
  memory-mappable with `np.load(..., mmap_mode="r")`. float16 halves the disk size against float32;
  its rounding error in [-1, 1] is at most 2^-12 ~ 2.4e-4 (measured: the worst sample's PSNR of
  float16 against float32 is 83 dB at data range 2, far above the ~30 dB that restoration reaches),
  and -1, 0 and 1 are exact.
- `<split>-records.jsonl`: one line per sample, `{"index", "source", "steps"}`: the degradation
  steps that fired with a compact summary of their parameters (numbers to 4 significant digits,
  long arrays such as per-line shifts as shape and range, long lists of noise segments as counts
  per kind; ~1 kB per sample instead of ~6 kB). The exact parameters of any sample are re-drawn,
  without any image work, by `replay_params`.
- `targeted/<name>/`: with `targeted=True`, the paper's single-degradation test sets, each a dataset
  of its own (test split only, drawn from the test scans) with the same layout.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stm_zoo.errors import StmZooError
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM
from training.degradations import (
    TARGET_SCALES,
    TARGETED,
    TASKS,
    DegradationConfig,
    PipelineParams,
    Sample,
    StepRecord,
    degrade,
    sample_pipeline,
)

logger = logging.getLogger(__name__)

FORMAT_NAME = "stm-zoo-synthetic-dataset"
FORMAT_VERSION = 1
CROP_PX = 128
SPLITS = ("train", "val", "test")
# The paper's 36 / 12 / 6 pristine images.
SPLIT_FRACTIONS = {"train": 2 / 3, "val": 2 / 9, "test": 1 / 9}
SHARD_DTYPE = np.float16
DEFAULT_SHARD_SIZE = 5000
# Generator streams: one per split and one per targeted set, so that no two sets share a sample.
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
_TARGETED_STREAM_BASE = 100
_ASSIGN_STREAM = 1000
_SIMULATE_STREAM = 2000
_CHUNK_SIZE = 32
# Records: longer lists of parameter records are summarised by count, longer numeric arrays by
# shape and range (the exact values can be replayed from the seed).
_RECORD_LIST_MAX = 8
_RECORD_ARRAY_MAX = 64


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
            "origin": _jsonable(self.origin),
        }


@dataclass
class BuildResult:
    """What `build_dataset` wrote.

    Attributes:
        out_dir: the dataset folder.
        manifest_path: `out_dir / "manifest.json"`.
        counts: samples written per split (and per targeted set as `targeted/<name>`).
        seconds: wall-clock time of sample generation and writing.
    """

    out_dir: Path
    manifest_path: Path
    counts: dict[str, int]
    seconds: float

    @property
    def samples_per_second(self) -> float:
        """Generation rate over every sample written."""
        return sum(self.counts.values()) / max(self.seconds, 1e-9)


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
    workers = _worker_count(workers, n)
    bar = {"total": n, "desc": "simulate", "unit": "scan"}
    if workers == 1:
        return [_simulate_one(job) for job in tqdm(jobs, **bar)]
    with _pool_context().Pool(workers) as pool:
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


def replay_params(
    dataset: str | Path, split: str, index: int, config: DegradationConfig | None = None
) -> PipelineParams:
    """The exact degradation parameters of one written sample, re-drawn from its seed.

    `degrade` draws all parameters (`sample_pipeline`) before touching the image, so this costs
    no image work; the records file holds only a compact summary of the same draw.

    Args:
        dataset: a dataset folder (or a targeted set's folder).
        split: "train", "val" or "test".
        index: sample index within the split.
        config: the degradation config the dataset was built with (default: the paper's).

    Returns:
        The parameters (`apply_pipeline(pristine_scan, params)` rebuilds the sample).

    Raises:
        StmZooError: unknown split or index, or a config other than the one the dataset recorded.
    """
    manifest = read_manifest(dataset)
    config = config or DegradationConfig()
    recorded = {"target_scale": "own", **manifest["degradation_config"]}  # older manifests
    if _jsonable(config) != recorded:
        raise StmZooError(
            f"Dataset {dataset} was built with another degradation config; pass that config."
        )
    if split not in manifest["splits"]:
        raise StmZooError(f"Dataset {dataset} has no {split!r} split.")
    entry = manifest["splits"][split]
    if not 0 <= index < entry["count"]:
        raise StmZooError(f"Sample {index} is out of range: {split} has {entry['count']} samples.")
    rng = sample_rng(manifest["seed"], entry["stream"], index)
    source = entry["sources"][int(rng.integers(len(entry["sources"])))]
    assert source == entry["sample_source"][index], "replay picked another source scan"
    shape = tuple(manifest["sources"][source]["shape"])
    return sample_pipeline(rng, shape, manifest["task"], config, manifest["only"])


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SampleSet:
    """One set of samples to write: a split, or a targeted set (a test split of its own)."""

    folder: str  # relative to out_dir: "" for the splits, "targeted/<name>" for a targeted set
    split: str
    count: int
    stream: int
    only: str | None
    pool: list[int]  # global source indices it draws from, ascending

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.split}" if self.folder else self.split

    def shards(self, shard_size: int) -> list[dict[str, Any]]:
        starts = range(0, self.count, shard_size)
        return [
            {"file": f"{self.split}-{k:05d}.npy", "count": min(shard_size, self.count - start)}
            for k, start in enumerate(starts)
        ]


@dataclass(frozen=True)
class _Chunk:
    key: str  # _SampleSet.key
    shard: int
    stream: int
    only: str | None
    start: int  # sample index within the set
    stop: int
    offset: int  # row of `start` within the shard


@dataclass
class _WorkerState:
    pristine: list[np.ndarray]
    pools: dict[str, list[int]]  # _SampleSet.key -> its source pool
    task: str
    config: DegradationConfig
    seed: int


_STATE: _WorkerState | None = None


def _init_worker(state: _WorkerState) -> None:
    global _STATE
    _STATE = state


def _run_chunk_in_worker(chunk: _Chunk) -> tuple[_Chunk, np.ndarray, list[int], list[str]]:
    assert _STATE is not None, "worker initialiser did not run"
    return _run_chunk(_STATE, chunk)


def _run_chunk(
    state: _WorkerState, chunk: _Chunk
) -> tuple[_Chunk, np.ndarray, list[int], list[str]]:
    pool = state.pools[chunk.key]
    arrays = [state.pristine[j] for j in pool]
    out = np.empty((chunk.stop - chunk.start, 2, CROP_PX, CROP_PX), dtype=SHARD_DTYPE)
    sources, lines = [], []
    for row, index in enumerate(range(chunk.start, chunk.stop)):
        rng = sample_rng(state.seed, chunk.stream, index)
        k, sample = draw_sample(arrays, state.task, state.config, rng, only=chunk.only)
        out[row, 0] = sample.clean
        out[row, 1] = sample.degraded
        sources.append(pool[k])
        steps = [_compact(step) for step in sample.record]
        lines.append(json.dumps({"index": index, "source": pool[k], "steps": steps}, **_COMPACT))
    return chunk, out, sources, lines


def _chunks(sample_set: _SampleSet, shard_size: int) -> list[_Chunk]:
    chunks = []
    for shard, shard_start in enumerate(range(0, sample_set.count, shard_size)):
        shard_stop = min(sample_set.count, shard_start + shard_size)
        for start in range(shard_start, shard_stop, _CHUNK_SIZE):
            stop = min(shard_stop, start + _CHUNK_SIZE)
            chunks.append(
                _Chunk(
                    sample_set.key,
                    shard,
                    sample_set.stream,
                    sample_set.only,
                    start,
                    stop,
                    start - shard_start,
                )
            )
    return chunks


def build_dataset(
    sources: Sequence[PristineSource],
    task: str,
    out_dir: str | Path,
    n_train: int = 20000,
    n_val: int = 2000,
    n_test: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    targeted: bool = False,
    n_targeted: int = 1000,
    shard_size: int = DEFAULT_SHARD_SIZE,
    config: DegradationConfig | None = None,
) -> BuildResult:
    """Generate and write a synthetic dataset (see the module docstring for the layout).

    Args:
        sources: pristine scans (>= 3; heights finite, >= 128x128 px), split image-wise by
            `assign_splits(len(sources), seed)`.
        task: "restore", "sr2" or "sr4".
        out_dir: an empty or new folder.
        n_train: training samples (>= 0).
        n_val: validation samples (>= 0).
        n_test: test samples (>= 0).
        seed: dataset seed (>= 0); the dataset is a pure function of it and the sources.
        workers: processes (default: all cores); does not change the result.
        targeted: also write the single-degradation test sets (from the test scans) under
            `out_dir/targeted/<name>/`: multi_tip, misalignment, tip_change, blunt_tip, scan_lines,
            and low_res for the SR tasks.
        n_targeted: samples per targeted set.
        shard_size: samples per shard file.
        config: degradation parameters (default: the paper's).

    Returns:
        What was written and how long it took.

    Raises:
        StmZooError: bad task, counts, seed or output folder, or too few / too small sources.
    """
    counts = {"train": n_train, "val": n_val, "test": n_test}
    out_dir = Path(out_dir)
    _check_request(task, [*counts.values(), n_targeted], seed, shard_size, out_dir)
    for source in sources:
        h, w = source.heights_nm.shape
        if h < CROP_PX or w < CROP_PX or not np.isfinite(source.heights_nm).all():
            raise StmZooError(
                f"Pristine scan {source.name} is {h}x{w} px or holds non-finite heights; every "
                f"source must be finite and at least {CROP_PX}x{CROP_PX} px."
            )
    config = config or DegradationConfig()
    assignment = assign_splits(len(sources), seed)

    sets = [
        _SampleSet("", split, counts[split], _SPLIT_STREAM[split], None, assignment[split])
        for split in SPLITS
    ]
    if targeted:
        names = [name for name in TARGETED if name != "low_res" or task != "restore"]
        sets += [
            _SampleSet(
                f"targeted/{name}",
                "test",
                n_targeted,
                _TARGETED_STREAM_BASE + TARGETED.index(name),
                name,
                assignment["test"],
            )
            for name in names
        ]
    memmaps = {}
    for sample_set in sets:
        (out_dir / sample_set.folder).mkdir(parents=True, exist_ok=True)
        for k, shard in enumerate(sample_set.shards(shard_size)):
            memmaps[sample_set.key, k] = np.lib.format.open_memmap(
                out_dir / sample_set.folder / shard["file"],
                mode="w+",
                dtype=SHARD_DTYPE,
                shape=(shard["count"], 2, CROP_PX, CROP_PX),
            )
    sample_source = {s.key: [-1] * s.count for s in sets}
    record_lines = {s.key: [""] * s.count for s in sets}
    state = _WorkerState(
        pristine=[s.heights_nm for s in sources],
        pools={s.key: s.pool for s in sets},
        task=task,
        config=config,
        seed=seed,
    )
    chunks = [chunk for s in sets for chunk in _chunks(s, shard_size)]
    total = sum(s.count for s in sets)
    t0 = time.perf_counter()
    with tqdm(total=total, desc=f"{task} dataset", unit="sample") as bar:
        for chunk, block, chunk_sources, lines in _map_chunks(state, chunks, workers):
            memmaps[chunk.key, chunk.shard][chunk.offset : chunk.offset + len(block)] = block
            sample_source[chunk.key][chunk.start : chunk.stop] = chunk_sources
            record_lines[chunk.key][chunk.start : chunk.stop] = lines
            bar.update(len(block))
    for array in memmaps.values():
        array.flush()
    del memmaps
    seconds = time.perf_counter() - t0

    split_of = {j: split for split, pool in assignment.items() for j in pool}
    described = [
        {"index": j, "split": split_of[j], **source.describe()} for j, source in enumerate(sources)
    ]
    entries = {}
    for s in sets:
        records_file = f"{s.split}-records.jsonl"
        with open(out_dir / s.folder / records_file, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in record_lines[s.key])
        entries[s.key] = {
            "count": s.count,
            "stream": s.stream,
            "sources": s.pool,
            "shards": s.shards(shard_size),
            "records": records_file,
            "sample_source": sample_source[s.key],
        }
        if s.only is not None:
            sub = _manifest(task, seed, config, described, {"test": entries[s.key]}, only=s.only)
            _write_manifest(out_dir / s.folder, sub)
    targeted_dirs = {s.only: s.folder for s in sets if s.only is not None}
    manifest = _manifest(
        task, seed, config, described, {s: entries[s] for s in SPLITS}, targeted=targeted_dirs
    )
    manifest_path = _write_manifest(out_dir, manifest)
    written = {s.folder or s.split: s.count for s in sets}
    logger.info("wrote %d samples to %s in %.1f s", total, out_dir, seconds)
    return BuildResult(out_dir, manifest_path, written, seconds)


def _check_request(task: str, counts: list[int], seed: int, shard_size: int, out_dir: Path) -> None:
    if task not in TASKS:
        raise StmZooError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if min(*counts, seed) < 0 or shard_size < 1:
        raise StmZooError("Sample counts and the seed must be >= 0 and the shard size >= 1.")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise StmZooError(f"Output folder {out_dir} is not empty; choose a new folder or empty it.")


def _map_chunks(
    state: _WorkerState, chunks: list[_Chunk], workers: int | None
) -> Iterator[tuple[_Chunk, np.ndarray, list[int], list[str]]]:
    workers = _worker_count(workers, len(chunks))
    if workers == 1:
        for chunk in chunks:
            yield _run_chunk(state, chunk)
        return
    # Workers receive the pristine arrays once (shared copy-on-write under fork); results come back
    # in any order and are written at their own positions, so the output does not depend on it.
    with _pool_context().Pool(workers, initializer=_init_worker, initargs=(state,)) as pool:
        yield from pool.imap_unordered(_run_chunk_in_worker, chunks)


def _manifest(
    task: str,
    seed: int,
    config: DegradationConfig,
    sources: list[dict[str, Any]],
    splits: dict[str, dict[str, Any]],
    only: str | None = None,
    targeted: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "task": task,
        "seed": seed,
        "only": only,
        "dtype": np.dtype(SHARD_DTYPE).name,
        "sample_shape": [2, CROP_PX, CROP_PX],
        "channels": ["clean", "degraded"],
        "value_range": [-1.0, 1.0],
        "split_fractions": SPLIT_FRACTIONS,
        "degradation_config": _jsonable(config),
        "sources": sources,
        "splits": splits,
        "targeted": targeted or {},
    }


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / "manifest.json"
    text = json.dumps(_jsonable(manifest), indent=1)
    # Lists of plain numbers (shapes, per-sample source indices) on one line each, not one per item.
    text = re.sub(r"\[([^\[\]{}\"]*)\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a dataset folder (or of the manifest file itself).

    Raises:
        StmZooError: no manifest, or one of another format or version.
    """
    path = Path(path)
    file = path / "manifest.json" if path.is_dir() else path
    if not file.is_file():
        raise StmZooError(
            f"{path} holds no dataset manifest.json; build one with `python -m training data`."
        )
    manifest = json.loads(file.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT_NAME or manifest.get("format_version") != FORMAT_VERSION:
        raise StmZooError(
            f"{file} is not a version-{FORMAT_VERSION} stm-zoo dataset manifest; rebuild the "
            "dataset with this version of `python -m training data`."
        )
    return manifest


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class ShardDataset(torch.utils.data.Dataset):
    """The samples of one split of a written dataset, read from memory-mapped shards.

    Item i is `(clean, degraded)`, each a (1, 128, 128) float32 tensor in [-1, 1]. Shards are opened
    lazily in each process (the dataset pickles without them, so DataLoader workers map their own).

    Args:
        path: a dataset folder (with manifest.json), e.g. `out_dir` or
            `out_dir/targeted/multi_tip`.
        split: "train", "val" or "test".

    Raises:
        StmZooError: no manifest, no such split, or missing shard files.
    """

    def __init__(self, path: str | Path, split: str = "train") -> None:
        self.root = Path(path) if Path(path).is_dir() else Path(path).parent
        self.manifest = read_manifest(path)
        if split not in self.manifest["splits"]:
            available = ", ".join(self.manifest["splits"])
            raise StmZooError(f"Dataset {self.root} has no {split!r} split; choose {available}.")
        self.split = split
        entry = self.manifest["splits"][split]
        self.files = [self.root / shard["file"] for shard in entry["shards"]]
        self.ends = np.cumsum([shard["count"] for shard in entry["shards"]], dtype=np.int64)
        self.sample_source = entry["sample_source"]
        missing = [f.name for f in self.files if not f.is_file()]
        if missing:
            raise StmZooError(f"Dataset {self.root} lacks shard files {missing}; rebuild it.")
        self._arrays: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def _open(self) -> list[np.ndarray]:
        if self._arrays is None:
            self._arrays = [np.load(f, mmap_mode="r") for f in self.files]
        return self._arrays

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        shard = int(np.searchsorted(self.ends, index, side="right"))
        row = index - (int(self.ends[shard - 1]) if shard else 0)
        pair = torch.from_numpy(np.asarray(self._open()[shard][row], dtype=np.float32))
        return pair[0:1], pair[1:2]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state


class OnTheFlyDataset(torch.utils.data.Dataset):
    """The same distribution as a written split, generated at access time.

    Item i of epoch e is `(clean, degraded)`, each a (1, 128, 128) float32 tensor in [-1, 1], drawn
    from `sample_rng(seed, stream, i, e)`: deterministic per (index, epoch), fresh for each epoch
    (`set_epoch`), and at epoch 0 identical to sample i of a dataset that `build_dataset` writes
    with the same seed from the same split's scans (before float16 rounding).

    With DataLoader workers, call `set_epoch` before each epoch's iteration starts and do not use
    `persistent_workers` (persistent workers keep the copy of the dataset they started with).

    Args:
        pristine_arrays: the split's scans, each (H, W) finite with H, W >= 128, any height unit,
            in source-index order (as `assign_splits` lists them).
        task: "restore", "sr2" or "sr4".
        length: samples per epoch.
        seed: dataset seed (>= 0).
        config: degradation parameters (default: the paper's).
        split: which split's generator stream to use ("train", "val", "test").
        only: a name from `TARGETED` to fire only that degradation (the targeted-set streams).
    """

    def __init__(
        self,
        pristine_arrays: Sequence[np.ndarray],
        task: str,
        length: int,
        seed: int = 0,
        config: DegradationConfig | None = None,
        split: str = "train",
        only: str | None = None,
    ) -> None:
        if task not in TASKS:
            raise StmZooError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
        if not pristine_arrays:
            raise StmZooError("OnTheFlyDataset needs at least one pristine array.")
        for array in pristine_arrays:
            if array.ndim != 2 or min(array.shape) < CROP_PX:
                raise StmZooError(
                    f"Pristine arrays must be 2-D and at least {CROP_PX}x{CROP_PX}, "
                    f"got {array.shape}."
                )
        self.pristine = [np.ascontiguousarray(a, dtype=np.float32) for a in pristine_arrays]
        self.task = task
        self.length = length
        self.seed = seed
        self.config = config or DegradationConfig()
        if only is not None and (only not in TARGETED or (only == "low_res" and task == "restore")):
            raise StmZooError(f"No targeted set {only!r} for task {task}; choose from {TARGETED}.")
        self.only = only
        self.stream = (
            _SPLIT_STREAM[split] if only is None else _TARGETED_STREAM_BASE + TARGETED.index(only)
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch `epoch`'s samples from now on (call in each DataLoader epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = sample_rng(self.seed, self.stream, index, self.epoch)
        _, sample = draw_sample(self.pristine, self.task, self.config, rng, only=self.only)
        clean = torch.from_numpy(np.asarray(sample.clean, dtype=np.float32).copy())
        degraded = torch.from_numpy(np.asarray(sample.degraded, dtype=np.float32).copy())
        return clean[None], degraded[None]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _worker_count(workers: int | None, jobs: int) -> int:
    return max(1, min(workers or os.cpu_count() or 1, jobs))


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork shares the pristine arrays copy-on-write instead of pickling them to every worker.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _jsonable(obj: Any) -> Any:
    """Plain JSON types from dataclasses, records with `to_dict`, numpy values, tuples and paths."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        obj = obj.to_dict()
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


_COMPACT: dict[str, Any] = {"separators": (",", ":"), "sort_keys": True}


def _compact(obj: Any) -> Any:
    """A small JSON summary of a degradation record (see the module docstring)."""
    if isinstance(obj, StepRecord):
        return {"step": obj.step, **_compact(obj.params)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _compact(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _compact(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        array = _numeric_array(obj)
        if array is not None and array.size > _RECORD_ARRAY_MAX:
            return {
                "shape": list(array.shape),
                "min": _round(array.min()),
                "max": _round(array.max()),
                "rms": _round(np.sqrt(np.mean(array**2))),
            }
        if array is None and len(obj) > _RECORD_LIST_MAX:
            kinds = Counter(str(getattr(item, "kind", "")) for item in obj)
            kinds.pop("", None)
            return {"n": len(obj), **({"kinds": dict(sorted(kinds.items()))} if kinds else {})}
        return [_compact(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return _round(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _numeric_array(obj: Any) -> np.ndarray | None:
    if isinstance(obj, np.ndarray):
        return obj.astype(np.float64) if obj.dtype.kind in "biuf" else None
    first = obj[0] if len(obj) else None
    if isinstance(first, list | tuple) and first:
        first = first[0]
    if not isinstance(first, int | float | np.number) or isinstance(first, bool):
        return None
    try:
        return np.asarray(obj, dtype=np.float64)
    except ValueError:  # ragged
        return None


def _round(value: Any) -> float:
    """4 significant digits: enough to read a record, 3x shorter than a full float repr."""
    return float(f"{float(value):.4g}")


# --------------------------------------------------------------------------------------------
# CLI: python -m training data
# --------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m training data`."""
    parser.add_argument("--task", required=True, choices=TASKS, help="which dataset to build")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pristine", type=Path, metavar="DIR", help="folder of pristine scans")
    source.add_argument("--simulate", type=int, metavar="N", help="simulate N pristine scans")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="new output folder")
    parser.add_argument("--train", type=int, default=20000, metavar="N", help="training samples")
    parser.add_argument("--val", type=int, default=2000, metavar="N", help="validation samples")
    parser.add_argument("--test", type=int, default=2000, metavar="N", help="test samples")
    parser.add_argument(
        "--targeted", action="store_true", help="also write the single-degradation test sets"
    )
    parser.add_argument(
        "--n-targeted", type=int, default=1000, metavar="N", help="samples per targeted set"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (>= 0)")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="W", help="processes (default: all cores)"
    )
    parser.add_argument(
        "--size-px", type=int, default=512, metavar="PX", help="side of simulated scans"
    )
    parser.add_argument(
        "--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N", help="samples per shard"
    )
    parser.add_argument(
        "--target-scale",
        choices=TARGET_SCALES,
        default="own",
        help="step 9 for the clean image: its own [-1, 1] map (the paper) or the degraded "
        "image's map, shared by the pair",
    )


def run(args: argparse.Namespace) -> int:
    """Build the dataset and print where it went."""
    # Check the options before spending minutes on simulation.
    counts = [args.train, args.val, args.test, args.n_targeted]
    _check_request(args.task, counts, args.seed, args.shard_size, args.out)
    if args.simulate is not None:
        split_counts(args.simulate)  # fail before simulating when there are too few scans
        sources = simulate_sources(args.simulate, args.seed, args.size_px, workers=args.workers)
    else:
        sources = load_pristine_folder(args.pristine)
    result = build_dataset(
        sources,
        args.task,
        args.out,
        n_train=args.train,
        n_val=args.val,
        n_test=args.test,
        seed=args.seed,
        workers=args.workers,
        targeted=args.targeted,
        n_targeted=args.n_targeted,
        shard_size=args.shard_size,
        config=DegradationConfig(target_scale=args.target_scale),
    )
    splits = assign_splits(len(sources), args.seed)
    print(
        f"{args.task}: {len(sources)} pristine scans split "
        + "/".join(str(len(splits[s])) for s in SPLITS)
        + " (train/val/test)"
    )
    for name, count in result.counts.items():
        print(f"  {name}: {count} samples")
    print(
        f"wrote {result.manifest_path} ({result.samples_per_second:.0f} samples/s, "
        f"{result.seconds:.1f} s)"
    )
    return 0

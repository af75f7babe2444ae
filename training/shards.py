"""Writing a synthetic dataset to disk (float16 shards, per-sample records, manifest.json),
reading its manifest back, and replaying the exact degradation parameters of a written sample.

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

One file because writing, reading back and replaying share the on-disk format (manifest fields,
shard layout, the per-sample draws): a change to one is a change to all three.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stm_zoo.errors import StmZooError
from training.degradations import (
    TARGETED,
    TASKS,
    DegradationConfig,
    PipelineParams,
    StepRecord,
    sample_pipeline,
)
from training.sources import (
    CROP_PX,
    SPLIT_FRACTIONS,
    SPLITS,
    PristineSource,
    assign_splits,
    draw_sample,
    jsonable,
    pool_context,
    sample_rng,
    sample_stream,
    worker_count,
)

logger = logging.getLogger(__name__)

FORMAT_NAME = "stm-zoo-synthetic-dataset"
FORMAT_VERSION = 1
SHARD_DTYPE = np.float16
DEFAULT_SHARD_SIZE = 5000
_CHUNK_SIZE = 32
# Records: longer lists of parameter records are summarised by count, longer numeric arrays by
# shape and range (the exact values can be replayed from the seed).
_RECORD_LIST_MAX = 8
_RECORD_ARRAY_MAX = 64


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
    check_request(task, [*counts.values(), n_targeted], seed, shard_size, out_dir)
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
        _SampleSet("", split, counts[split], sample_stream(split), None, assignment[split])
        for split in SPLITS
    ]
    if targeted:
        names = [name for name in TARGETED if name != "low_res" or task != "restore"]
        sets += [
            _SampleSet(
                f"targeted/{name}",
                "test",
                n_targeted,
                sample_stream("test", name),
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


def check_request(task: str, counts: list[int], seed: int, shard_size: int, out_dir: Path) -> None:
    """Refuse a dataset request before any work: unknown task, negative counts or seed, a shard
    size below 1, or an output folder that is not new or empty (raises StmZooError)."""
    if task not in TASKS:
        raise StmZooError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if min(*counts, seed) < 0 or shard_size < 1:
        raise StmZooError("Sample counts and the seed must be >= 0 and the shard size >= 1.")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise StmZooError(f"Output folder {out_dir} is not empty; choose a new folder or empty it.")


def _map_chunks(
    state: _WorkerState, chunks: list[_Chunk], workers: int | None
) -> Iterator[tuple[_Chunk, np.ndarray, list[int], list[str]]]:
    workers = worker_count(workers, len(chunks))
    if workers == 1:
        for chunk in chunks:
            yield _run_chunk(state, chunk)
        return
    # Workers receive the pristine arrays once (shared copy-on-write under fork); results come back
    # in any order and are written at their own positions, so the output does not depend on it.
    with pool_context().Pool(workers, initializer=_init_worker, initargs=(state,)) as pool:
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
        "degradation_config": jsonable(config),
        "sources": sources,
        "splits": splits,
        "targeted": targeted or {},
    }


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / "manifest.json"
    text = json.dumps(jsonable(manifest), indent=1)
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
    if jsonable(config) != recorded:
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
# Records
# --------------------------------------------------------------------------------------------


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

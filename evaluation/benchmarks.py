"""Test sets and running the zoo over them: the shared machinery of the paper's benchmarks.

`python -m evaluation synthetic` (`evaluation.cli_synthetic`) and `... experimental`
(`evaluation.cli_experimental`) are built from these pieces and from the table rows of
`evaluation.rows`:

- Tiles: 128x128 model-space images in [-1, 1]. Every model runs directly on them, batched (no
  tiling). Image i starts from the noise `np.random.default_rng([seed, i])` whatever the batch or
  `--limit`, the same for every model and step count, so runs are reproducible and rows are
  compared on the same draws. Model outputs are clamped to [-1, 1] (as the training loop's
  validation does); the classical output is min/max-normalised to [-1, 1] like the clean targets
  (pipeline step 9), since row alignment shifts its values.
- Scores: PSNR and SSIM on [-1, 1] with data_range = 2 (`evaluation.metrics`).
- Tables: markdown (rounded like the paper) and CSV (full precision) from one `Table` record
  (`evaluation.tables`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import (
    DATA_RANGE,
    affine_psnr_batch,
    affine_ssim_batch,
    psnr_batch,
    ssim_batch,
)
from evaluation.rows import RowSpec, ScoredRow
from stm_zoo.entry_format import EntryKey, registry
from stm_zoo.errors import StmZooError
from stm_zoo.registry import CLASSICAL
from stm_zoo.zoo import LoadedModel, local_entry, locate

logger = logging.getLogger(__name__)

TILE_PX = 128

# --------------------------------------------------------------------------------------------------
# Zoo entries


def available_entries(
    task: str, zoo: str | Path, only: Iterable[str] | None = None
) -> list[EntryKey]:
    """The entries of `task` whose config.json and model.safetensors are in a zoo folder.

    Args:
        task: "restore", "sr2" or "sr4".
        zoo: the zoo folder, or several separated by `os.pathsep` (as in STM_ZOO_DIR).
        only: entry names ("fm-small", "ae-large") to keep; None keeps all.
    """
    wanted = set(only) if only else None
    keys = []
    for key in registry():
        if key.task != task or (wanted is not None and f"{key.family}-{key.size}" not in wanted):
            continue
        if local_entry(key, zoo) is not None:
            keys.append(key)
    if wanted is not None:
        unknown = wanted - {f"{k.family}-{k.size}" for k in keys}
        if unknown:
            raise StmZooError(
                f"--models {' '.join(sorted(unknown))}: no such entry for {task} in {zoo}; "
                "`python -m stm_zoo zoo list` shows what is available."
            )
    return keys


def load_entries(
    keys: Sequence[EntryKey], zoo: str | Path, device: str, dtype: str
) -> dict[EntryKey, LoadedModel]:
    """Load the entries, weights in channels_last on CPU (oneDNN convolutions run faster so)."""
    import torch

    from stm_zoo.zoo import load_entry

    models = {}
    for key in keys:
        folder = locate(key, allow_hub=False, search_path=zoo)
        model = load_entry(folder, device=device, dtype=dtype)
        if model.device == "cpu":
            model.network.to(memory_format=torch.channels_last)
        models[key] = model
    return models


def models_device(models: dict[EntryKey, LoadedModel], device: str) -> str:
    """The device the models run on (resolving "auto" when there is none)."""
    from stm_zoo.zoo import resolve_device

    return next(iter(models.values())).device if models else resolve_device(device)


def row_specs(key: EntryKey, steps: Sequence[int]) -> list[RowSpec]:
    """A model's rows: one per step count, a single 1-step row for the autoencoder."""
    from stm_zoo.methods import get_method

    if not get_method(key.family).uses_noise:
        return [RowSpec(key.family, key.size, 1)]
    return [RowSpec(key.family, key.size, s) for s in steps]


# --------------------------------------------------------------------------------------------------
# Test sets and running models


@dataclass
class TileSet:
    """Clean / degraded 128x128 tiles in [-1, 1].

    Attributes:
        name: "test" or a targeted set's name.
        clean: (N, H, W) float32 targets (None for experimental sets, which have none).
        degraded: (N, H, W) float32 model inputs.
        indices: (N,) sample indices in the split (the noise seeds).
    """

    name: str
    clean: np.ndarray | None
    degraded: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.degraded)


def load_split(
    path: Path, split: str = "test", limit: int | None = None, name: str = "test"
) -> TileSet:
    """The first `limit` samples (all when None) of a split of a written dataset.

    Args:
        path: a dataset folder (manifest.json) or a targeted set's folder.
        split: "train", "val" or "test".
        limit: at most this many samples.
        name: the set's name in tables.
    """
    from training.datasets import ShardDataset

    dataset = ShardDataset(path, split)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise StmZooError(f"The {split} split of {path} is empty; build it with --{split} N.")
    pairs = [dataset[i] for i in range(n)]
    clean = np.stack([p[0][0].numpy() for p in pairs]).astype(np.float32)
    degraded = np.stack([p[1][0].numpy() for p in pairs]).astype(np.float32)
    return TileSet(name, clean, degraded, np.arange(n))


def targeted_sets(data_dir: Path, limit: int | None = None) -> dict[str, TileSet]:
    """The targeted single-degradation test sets listed in the dataset's manifest (may be none)."""
    from training.shards import read_manifest

    manifest = read_manifest(data_dir)
    sets = {}
    for name, folder in manifest.get("targeted", {}).items():
        if (Path(data_dir) / folder / "manifest.json").is_file():
            sets[name] = load_split(Path(data_dir) / folder, "test", limit, name)
        else:
            logger.warning("targeted set %s listed in the manifest but missing; skipped", name)
    return sets


def sample_noise(indices: np.ndarray, shape: tuple[int, int], seed: int) -> np.ndarray:
    """(N, H, W) float32 standard normal noise, sample i from `default_rng([seed, indices[i]])`."""
    return np.stack(
        [
            np.random.default_rng([seed, int(i)]).standard_normal(shape).astype(np.float32)
            for i in indices
        ]
    )


def run_model(
    model: LoadedModel,
    degraded: np.ndarray,
    steps: int,
    noise: np.ndarray | None,
    batch: int = 16,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Sample a model on model-space tiles, batched.

    Args:
        model: a loaded zoo entry.
        degraded: (N, H, W) float32 inputs in [-1, 1], H and W multiples of 4.
        steps: sampler steps (ignored by the autoencoder).
        noise: (N, H, W) float32 starting noise (None for the autoencoder).
        batch: tiles per network call.
        progress: called with the number of tiles done after each batch.

    Returns:
        (N, H, W) float32 outputs clamped to [-1, 1].
    """
    import torch

    from stm_zoo.nn.precision import autocast

    method = model.config.method()
    out = np.empty_like(degraded, dtype=np.float32)
    for start in range(0, len(degraded), batch):
        part = slice(start, start + batch)
        cond = torch.from_numpy(np.ascontiguousarray(degraded[part][:, None])).to(model.device)
        x = None
        if noise is not None and method.uses_noise:
            x = torch.from_numpy(np.ascontiguousarray(noise[part][:, None])).to(model.device)
        with torch.inference_mode(), autocast(model.device, model.dtype):
            sample = method.sample(model.network, cond, steps, x)
        out[part] = sample[:, 0].float().clamp(-1.0, 1.0).cpu().numpy()
        if progress is not None:
            progress(min(start + batch, len(degraded)))
    return out


def run_classical(degraded: np.ndarray, task: str) -> np.ndarray:
    """The classical baseline per tile, min/max-normalised to [-1, 1] like the clean targets.

    Args:
        degraded: (N, H, W) inputs in [-1, 1] (SR: nearest-neighbour upsampled, row m*k measured).
        task: "restore", "sr2" or "sr4".

    Returns:
        (N, H, W) float32 in [-1, 1].
    """
    from stm_zoo.methods.classical import classical_restore
    from stm_zoo.preprocess import normalise_tiles

    restored = np.stack([classical_restore(tile, task) for tile in degraded])
    return normalise_tiles(restored.astype(np.float64, copy=False))[0].astype(np.float32)


def score(outputs: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image `psnr`, `ssim`, and both after the best affine map onto the clean tile
    (`apsnr`, `assim`), of (N, H, W) outputs against (N, H, W) clean tiles, data_range 2."""
    return {
        "psnr": psnr_batch(outputs, clean, DATA_RANGE),
        "ssim": ssim_batch(outputs, clean, DATA_RANGE),
        "apsnr": affine_psnr_batch(outputs, clean, DATA_RANGE),
        "assim": affine_ssim_batch(outputs, clean, DATA_RANGE),
    }


@dataclass
class Outputs:
    """Model outputs of one row on one set (kept for plots), with the time they took."""

    spec: RowSpec
    images: np.ndarray
    seconds: float


def produce_outputs(
    tiles: TileSet,
    task: str,
    models: dict[EntryKey, LoadedModel],
    specs: dict[EntryKey, list[RowSpec]],
    seed: int,
    batch: int,
    include_classical: bool = True,
    bar: Any = None,
) -> Iterator[Outputs]:
    """Run the classical baseline and every model row on a tile set, one row at a time (so a
    caller can score a row and drop its images before the next: 2000 tiles are 131 MB a row).

    Args:
        tiles: the inputs.
        task: the task (for the classical baseline).
        models: loaded entries.
        specs: per entry, the rows (step counts) to run.
        seed: noise seed (see the module docstring).
        batch: tiles per network call.
        include_classical: add the classical row first.
        bar: a tqdm bar advanced by one per image and row.

    Yields:
        One `Outputs` per row, the classical one first.
    """
    if include_classical:
        start = time.perf_counter()
        images = run_classical(tiles.degraded, task)
        if bar is not None:
            bar.update(len(tiles))
        yield Outputs(RowSpec(CLASSICAL), images, time.perf_counter() - start)
    noise = sample_noise(tiles.indices, tiles.degraded.shape[1:], seed)
    for key, model in models.items():
        for spec in specs[key]:
            if bar is not None:
                bar.set_postfix_str(f"{tiles.name}: {spec.model} {spec.steps_cell}")
            done = [0]

            def tick(n: int, done: list[int] = done) -> None:
                if bar is not None:
                    bar.update(n - done[0])
                done[0] = n

            start = time.perf_counter()
            images = run_model(model, tiles.degraded, spec.steps, noise, batch, tick)
            yield Outputs(spec, images, time.perf_counter() - start)


def score_set(
    tiles: TileSet, outputs: Iterable[Outputs], keep: int = 0
) -> tuple[list[ScoredRow], list[Outputs]]:
    """Score the input row and every output row of a synthetic set against its clean tiles.

    Args:
        tiles: the set (with clean targets).
        outputs: the rows' outputs, e.g. from `produce_outputs`.
        keep: how many images of each row's outputs to return (for example grids).

    Returns:
        (scored rows, the input row first; the outputs with their first `keep` images).
    """
    assert tiles.clean is not None, "synthetic sets carry clean targets"
    rows = [ScoredRow(RowSpec("input"), **score(tiles.degraded, tiles.clean))]
    kept = []
    for out in outputs:
        seconds = out.seconds / max(len(tiles), 1)
        rows.append(
            ScoredRow(out.spec, seconds_per_image=seconds, **score(out.images, tiles.clean))
        )
        kept.append(Outputs(out.spec, out.images[:keep].copy(), out.seconds))
    return rows, kept

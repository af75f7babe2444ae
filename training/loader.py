"""The training batches of a run: the train and val splits of a dataset folder, and per epoch a
seeded, per-rank DataLoader that can start in the middle of the epoch (exact resume).

The order is `DistributedSampler(seed=seed)` at epoch `step // steps_per_epoch`, skipped to the
step's position, so the data position is a function of the step alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from stm_zoo.errors import StmZooError
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM
from training.configs import TrainConfig
from training.datasets import ShardDataset
from training.distributed import Distributed
from training.seeds import STREAM_WORKERS, derived_seed
from training.shards import read_manifest


def open_datasets(data_dir: Path, config: TrainConfig) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """The train and val splits of a dataset folder, and a summary of its manifest.

    Raises:
        StmZooError: no dataset there, a dataset of another task, or too few samples.
    """
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    if manifest["task"] != config.task:
        raise StmZooError(
            f"Dataset {data_dir} was built for task {manifest['task']!r}, not {config.task!r}: "
            f"build one with `python -m training data --task {config.task}`."
        )
    train_set, val_set = ShardDataset(data_dir, "train"), ShardDataset(data_dir, "val")
    if len(train_set) < config.batch:
        raise StmZooError(
            f"Dataset {data_dir} has {len(train_set)} training samples, fewer than one batch of "
            f"{config.batch}: lower --batch or build a larger dataset."
        )
    if len(val_set) == 0:
        raise StmZooError(f"Dataset {data_dir} has no validation samples: rebuild it with --val N.")
    sources = manifest.get("sources", [])
    pixel = [s["pixel_size_nm"][0] for s in sources if "pixel_size_nm" in s]
    manifest_file = data_dir / "manifest.json"
    summary = {
        "path": str(data_dir.resolve()),
        "manifest_sha256": hashlib.sha256(manifest_file.read_bytes()).hexdigest(),
        "task": manifest["task"],
        "seed": manifest.get("seed"),
        "samples": {s: e["count"] for s, e in manifest["splits"].items()},
        "scans": {s: len(e.get("sources", [])) for s, e in manifest["splits"].items()},
        "pixel_size_nm": float(np.median(pixel)) if pixel else DEFAULT_PIXEL_SIZE_NM,
        "degradation_config": manifest.get("degradation_config"),
    }
    return train_set, val_set, summary


def epoch_loader(
    dataset: Dataset,
    epoch: int,
    start_batch: int,
    per_rank_batch: int,
    config: TrainConfig,
    ranks: Distributed,
    pin_memory: bool,
) -> DataLoader:
    """The training batches of one epoch for this rank, from batch `start_batch` on.

    The order is `DistributedSampler(shuffle, seed=config.seed)` at `epoch` (a seeded permutation
    split over the ranks), so the batch taken at any step is a function of the step alone.
    """
    sampler = DistributedSampler(
        dataset,
        num_replicas=ranks.world,
        rank=ranks.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)  # on-the-fly datasets draw fresh degradations per epoch
    # The loader draws its workers' base seed from this generator instead of the global RNG.
    seeds = torch.Generator()
    seeds.manual_seed(derived_seed(config.seed, STREAM_WORKERS, epoch, ranks.rank))
    return DataLoader(
        dataset,
        batch_size=per_rank_batch,
        sampler=_SkipSampler(sampler, start_batch * per_rank_batch),
        num_workers=loader_workers(config.num_workers),
        pin_memory=pin_memory,
        drop_last=True,
        generator=seeds,
        persistent_workers=False,
    )


def loader_workers(requested: int) -> int:
    """`requested` DataLoader workers, capped at the CPUs this process may use (more only
    compete with the training threads, and PyTorch warns about it at every epoch)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(requested, available or 1))


class _SkipSampler(Sampler[int]):
    """The indices of `sampler` from position `skip` on (resuming in the middle of an epoch)."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        for position, index in enumerate(self.sampler):
            if position >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)  # type: ignore[arg-type]

"""Torch datasets of (clean, degraded) pairs: a written split read from its memory-mapped shards
(`ShardDataset`), or the same distribution drawn at access time (`OnTheFlyDataset`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stm_zoo.errors import StmZooError
from training.degradations import TARGETED, TASKS, DegradationConfig
from training.shards import read_manifest
from training.sources import CROP_PX, draw_sample, sample_rng, sample_stream


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
        self.stream = sample_stream(split, only)
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

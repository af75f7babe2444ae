"""The training loop: one zoo entry from a synthetic dataset to a zoo-format folder.

`train(config, data_dir, out_zoo_dir)` reads the shards written by `python -m training data`,
optimises the family's objective (`stm_zoo.methods.get_method(family).loss`) with AdamW, a linear
warm-up and a cosine decay, gradient clipping and an EMA of the weights, validates the EMA network
every `val_every` steps, and writes the zoo entry `<out_zoo_dir>/<task>/<family>-<size>/`
(config.json, EMA model.safetensors, README.md card, training_log.csv).

Run folder (default `~/.cache/stm-zoo/runs/<task>/<family>-<size>/`, see `default_runs_dir`;
never published): `training_state.pt` (the resumable state), `training_log.csv` and
`grids/step_<N>.png` (labelled columns: input | samples at each step count | clean).

Determinism and exact resume: the run is a pure function of the config and the data. Every random
draw has an owner that the checkpoint saves: the weights' initialisation is seeded by `seed`; the
objective's t and noise come from one `torch.Generator` per process; the data order is
`DistributedSampler(seed=seed)` at epoch `step // steps_per_epoch`, skipped to the step's position,
so the data position is a function of the step alone; the global torch RNG (used only by dropout)
and the DataLoader worker seeds are seeded per process and epoch. Resuming from step k therefore
continues exactly where the interrupted run was (tested bit for bit on CPU).

Distributed: under `torchrun` (WORLD_SIZE > 1) the process group is initialised here (NCCL on
CUDA, gloo on CPU), `batch` is the global batch split over the processes, gradients are averaged by
DistributedDataParallel so all ranks hold identical weights, and only rank 0 validates, logs and
writes files. The run folder must be on a filesystem every node sees for resuming.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from evaluation.metrics import affine_psnr_batch, affine_ssim_batch, psnr_batch, ssim_batch
from stm_zoo.errors import StmZooError
from stm_zoo.methods import Method, get_method
from stm_zoo.methods import ddim as ddim_methods
from stm_zoo.methods import flow_matching as fm_methods
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.nn.precision import autocast
from stm_zoo.preprocess import normalise_tiles
from stm_zoo.zoo import (
    DEFAULT_PIXEL_SIZE_NM,
    PUBLISHED_MODE,
    SR_FACTOR,
    EntryConfig,
    EntryKey,
    resolve_device,
    write_entry,
)
from training.configs import (
    CPU_SUFFIX,
    RESUMABLE_CHANGES,
    ZOO_CONFIGS,
    TrainConfig,
    add_config_arguments,
    config_from_args,
    preset,
)
from training.datasets import CROP_PX, ShardDataset, read_manifest
from training.ema import EMA

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "training_state.pt"
CHECKPOINT_FORMAT = 1
LOG_NAME = "training_log.csv"
GRID_DIR = "grids"
GRID_HEADER_PX = 14
GRID_ROWS = 8
VAL_CHUNK = 32
PSNR_CAP_DB = 60.0


def default_runs_dir() -> Path:
    """Where run folders go unless `--run-dir` says otherwise: `STM_ZOO_RUNS`, else
    `$XDG_CACHE_HOME/stm-zoo/runs` (`~/.cache/stm-zoo/runs`): outside any checkout, so a
    60 MB training state never lands in the repository."""
    if os.environ.get("STM_ZOO_RUNS"):
        return Path(os.environ["STM_ZOO_RUNS"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "stm-zoo" / "runs"


TRAIN_COLUMNS = (
    "step",
    "epoch",
    "samples_seen",
    "loss",
    "lr",
    "grad_norm",
    "samples_per_s",
    "elapsed_s",
)
SAMPLER_TEXT = {
    "fm": "RK2 midpoint from noise (paper Eq. 8)",
    "ddim": "deterministic DDIM, cosine schedule T=1000 (paper Eq. 5)",
    "ddim-fft": "deterministic DDIM, cosine schedule T=1000 (paper Eq. 5)",
    "ae": "one forward pass",
}
LOSS_TEXT = {
    "fm": "flow matching, MSE on the velocity (paper Eq. 7)",
    "ddim": "eps-prediction MSE (paper Eq. 3)",
    "ddim-fft": "1/2 eps MSE + 1/4 Fourier amplitude + 1/4 Fourier phase (paper Eq. 4)",
    "ae": "L1 on the clean image (MAE)",
}


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        entry_dir: the zoo entry written (None on ranks other than 0).
        run_dir: the run folder (checkpoint, log, grids).
        step: optimiser steps done in total (across resumed sessions).
        samples_seen: step x global batch.
        wall_time_s: training wall time in seconds, summed over resumed sessions.
        completed: whether `config.steps` were reached or the time budget spent (False after
            `stop_at`).
        metrics: the last validation metrics (see `validate`), empty on ranks other than 0.
        network: the EMA network (eval mode, on the training device): what the entry holds.
    """

    entry_dir: Path | None
    run_dir: Path
    step: int
    samples_seen: int
    wall_time_s: float
    completed: bool
    metrics: dict[str, float]
    network: nn.Module = field(repr=False)


# ---------------------------------------------------------------------------------------------
# Building blocks

# Independent random streams derived from the one seed of a run.
STREAM_NOISE, STREAM_GLOBAL, STREAM_WORKERS, STREAM_VALIDATION = range(4)


def derived_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (e.g. seed, stream, rank), independent per key tuple."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    """Join the process group that `torchrun` describes in the environment (WORLD_SIZE > 1).

    Args:
        device: the requested device ("auto", "cpu", "cuda"): picks NCCL or gloo.

    Returns:
        The rank layout; `owns_group` says whether this call initialised the group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return Distributed()
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if resolve_device(device).startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        owns = True
    rank = dist.get_rank()
    local = int(os.environ.get("LOCAL_RANK", rank))
    return Distributed(rank, dist.get_world_size(), local, owns)


def training_device(requested: str, ranks: Distributed) -> torch.device:
    """The device of this process: under DDP on CUDA, GPU `LOCAL_RANK`; always with an index,
    which `torch.cuda.set_device` and DDP need."""
    name = resolve_device(requested)
    if name == "cuda":
        name = f"cuda:{ranks.local_rank if ranks.world > 1 else torch.cuda.current_device()}"
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), not by emulation."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: plain fp32).

    "auto" is bf16 where the hardware computes it natively: CUDA GPUs with bf16 support, and
    CPUs with AVX512-BF16 or AMX, where scripts/bench_train.py measured bf16 autocast at 1.8x the
    fp32 training throughput of the small network with the same learning curve; fp32 elsewhere
    (emulated bf16 is slower than fp32).
    """
    if precision == "fp32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if precision == "bf16":
        if device.type == "cuda" and not native:
            raise StmZooError("--precision bf16 needs a GPU with bf16 support: use fp32.")
        return torch.bfloat16
    return torch.bfloat16 if native else None


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning rate of optimiser step `step` (0-based), as a fraction of `config.lr`.

    Linear warm-up over `warmup_steps` to the peak, then a cosine from the peak down to
    `final_lr_ratio` at `steps`.
    """
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    final = config.final_lr_ratio
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def config_method(config: TrainConfig) -> Method:
    """The family with the run's output parametrisation and training-time distribution."""
    return get_method(config.family, config.prediction, config.time_sampling, config.output_range)


def time_lr_factor(elapsed_s: float, config: TrainConfig) -> float:
    """Learning rate at `elapsed_s` seconds of a run with a wall-clock budget, / `config.lr`.

    The warm-up (`warmup_steps`' share of `steps`) and the cosine to `final_lr_ratio` are laid
    over `time_budget_min` instead of over the steps: a schedule that ends when the time does.
    """
    budget = 60.0 * config.time_budget_min
    warmup = budget * config.warmup_steps / max(1, config.steps)
    if elapsed_s < warmup:
        return max(elapsed_s, 1e-3) / warmup
    progress = min(1.0, (elapsed_s - warmup) / max(budget - warmup, 1e-9))
    final = config.final_lr_ratio
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def network_config(config: TrainConfig) -> UNetConfig:
    """The U-Net of the entry: the family's preset for the size, with the config's overrides."""
    base = config_method(config).network_config(config.size)
    overrides: dict[str, Any] = {}
    if config.global_context:
        overrides["global_context"] = True
    if config.channels:
        overrides["channels"] = config.channels
    if config.blocks_per_level:
        overrides["blocks_per_level"] = config.blocks_per_level
    elif config.channels and len(config.channels) != len(base.blocks_per_level):
        raise StmZooError("--channels changes the number of levels: give --blocks-per-level too.")
    if config.norm_groups:
        overrides["norm_groups"] = config.norm_groups
    if config.patch_size:
        overrides["patch_size"] = config.patch_size
    try:
        return dataclasses.replace(base, **overrides)
    except ValueError as error:
        raise StmZooError(f"The network overrides give an invalid U-Net: {error}.") from None


def build_network(config: TrainConfig) -> UNet:
    """The freshly initialised network, seeded by `config.seed` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return UNet(network_config(config))


def warm_start(model: nn.Module, entry_dir: str | Path) -> int:
    """Load the weights of the zoo entry in `entry_dir` into `model` where names and shapes match.

    Returns:
        The number of tensors loaded (parameters the entry lacks keep their initialisation, e.g. a
        new global-context branch, whose zero-initialised output leaves the network unchanged).

    Raises:
        StmZooError: no readable weights there, or none that fit this network.
    """
    from safetensors.torch import load_file

    path = Path(entry_dir) / "model.safetensors"
    try:
        weights = load_file(str(path))
    except (OSError, ValueError, RuntimeError) as error:
        raise StmZooError(f"--init-from {entry_dir}: cannot read {path} ({error}).") from None
    own = model.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise StmZooError(
            f"--init-from {entry_dir}: none of its weights fit this network; warm-start from an "
            "entry of the same size."
        )
    own.update({k: v.to(own[k].dtype) for k, v in fitting.items()})
    model.load_state_dict(own)
    return len(fitting)


def random_crops(
    clean: torch.Tensor,
    degraded: torch.Tensor,
    size: int,
    generator: torch.Generator,
    renormalise: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random size x size window per pair (the same window in both images), each crop
    min/max-normalised to [-1, 1] again (as the data pipeline's last step does for whole images)
    when `renormalise`, else kept in the whole image's scale.

    Args:
        clean, degraded: (B, 1, H, W) pairs in [-1, 1].
        size: the crop side (<= H, W).
        generator: the source of the window positions (the run's objective generator).
    """
    b, _, h, w = clean.shape
    if size >= min(h, w):
        return clean, degraded
    draws = torch.rand((2, b), generator=generator, device=generator.device).cpu()
    tops = (draws[0] * (h - size + 1)).long().tolist()
    lefts = (draws[1] * (w - size + 1)).long().tolist()
    pair = torch.cat([clean, degraded], dim=1)
    crops = torch.stack(
        [
            pair[i, :, y : y + size, x : x + size]
            for i, (y, x) in enumerate(zip(tops, lefts, strict=True))
        ]
    )
    if not renormalise:
        return crops[:, :1], crops[:, 1:]
    return normalise_tiles(crops[:, :1])[0], normalise_tiles(crops[:, 1:])[0]


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on conv/linear weights only, never on biases or norm scales."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


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


# ---------------------------------------------------------------------------------------------
# Validation


@dataclass
class ValidationSet:
    """The fixed validation subset and the fixed noise it is sampled from.

    Attributes:
        clean, degraded: (N, 1, H, W) float32 in [-1, 1], evenly spaced over the val split.
        noise: (N, 1, H, W) standard normal, the same at every validation.
        input_psnr, input_ssim: the degraded input's mean PSNR / SSIM against the clean image.
    """

    clean: torch.Tensor
    degraded: torch.Tensor
    noise: torch.Tensor
    input_psnr: float
    input_ssim: float


def validation_set(dataset: Dataset, n: int, seed: int) -> ValidationSet:
    """Take `n` evenly spaced samples of the val split (all of it when smaller)."""
    count = len(dataset)  # type: ignore[arg-type]
    indices = np.unique(np.linspace(0, count - 1, min(n, count)).round().astype(int))
    pairs = [dataset[int(i)] for i in indices]
    clean = torch.stack([p[0] for p in pairs]).float()
    degraded = torch.stack([p[1] for p in pairs]).float()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=generator)
    c, d = clean[:, 0].numpy(), degraded[:, 0].numpy()
    return ValidationSet(clean, degraded, noise, mean_psnr(d, c), float(ssim_batch(d, c).mean()))


def mean_psnr(images: np.ndarray, clean: np.ndarray) -> float:
    """Mean per-image PSNR in dB (data_range 2), each image capped at `PSNR_CAP_DB`.

    The pipeline leaves a few samples untouched (no artefact fired): their input is identical to
    the target and its PSNR infinite, which would make every mean infinite.
    """
    return float(np.minimum(psnr_batch(images, clean), PSNR_CAP_DB).mean())


def sampler_settings(method: Method, val_steps: tuple[int, ...]) -> list[tuple[str, int]]:
    """(label, steps) pairs evaluated at validation: "2steps", "10steps"... or "direct" (ae)."""
    if not method.uses_noise:
        return [("direct", 1)]
    return [(f"{s}steps", s) for s in val_steps]


@torch.no_grad()
def validate(
    network: nn.Module,
    method: Method,
    data: ValidationSet,
    val_steps: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype | None,
    seed: int,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Sample the validation subset with `network` and score it.

    Args:
        network: the EMA network (eval mode).
        method: the family (its sampler and objective).
        data: the fixed subset.
        val_steps: sampler step counts to evaluate.
        device, dtype: where and in which autocast dtype to run.
        seed: seed of the validation loss's draws (fixed: the loss is comparable across steps).

    Returns:
        (metrics, outputs): metrics `loss`, `psnr_<label>`, `ssim_<label>` per sampler setting,
        `input_psnr`, `input_ssim` (PSNR in dB, data_range 2), and the same after the best affine
        map onto the clean image (`apsnr_<label>`, `assim_<label>`, `apsnr_input`,
        `assim_input`); outputs label -> (N, H, W) float32 samples clamped to [-1, 1].
    """
    clean_np = data.clean[:, 0].numpy()
    metrics: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    chunks = range(0, len(data.clean), VAL_CHUNK)
    generator = torch.Generator(device=device).manual_seed(seed)
    losses = []
    for i in chunks:
        part = slice(i, i + VAL_CHUNK)
        with autocast(device, dtype):
            loss = method.loss(
                network, data.clean[part].to(device), data.degraded[part].to(device), generator
            )
        losses.append(float(loss) * len(data.clean[part]))
    metrics["loss"] = sum(losses) / len(data.clean)
    for label, steps in sampler_settings(method, val_steps):
        parts = []
        for i in chunks:
            part = slice(i, i + VAL_CHUNK)
            with autocast(device, dtype):
                out = method.sample(
                    network, data.degraded[part].to(device), steps, data.noise[part].to(device)
                )
            parts.append(out.float().clamp(-1.0, 1.0).cpu())
        images = torch.cat(parts)[:, 0].numpy()
        outputs[label] = images
        metrics[f"psnr_{label}"] = mean_psnr(images, clean_np)
        metrics[f"ssim_{label}"] = float(ssim_batch(images, clean_np).mean())
        metrics.update(affine_metrics(images, clean_np, label))
    metrics["input_psnr"] = data.input_psnr
    metrics["input_ssim"] = data.input_ssim
    metrics.update(affine_metrics(data.degraded[:, 0].numpy(), clean_np, "input"))
    return metrics, outputs


def affine_metrics(images: np.ndarray, clean: np.ndarray, label: str) -> dict[str, float]:
    """`apsnr_<label>` / `assim_<label>`: mean PSNR / SSIM after the best affine map of each
    image onto its clean image (structure only, blind to the intensity calibration)."""
    psnr = np.minimum(affine_psnr_batch(images, clean), PSNR_CAP_DB)
    return {
        f"apsnr_{label}": float(psnr.mean()),
        f"assim_{label}": float(affine_ssim_batch(images, clean).mean()),
    }


def save_grid(path: Path, data: ValidationSet, outputs: dict[str, np.ndarray]) -> Path:
    """A PNG of the first validation samples, one per row, under a header row of column labels:
    input (degraded or low-resolution) | one column per output ("2 steps", ...) | clean.

    Args:
        path: the PNG to write (parents created).
        data: the validation subset.
        outputs: label -> (N, H, W) samples in [-1, 1], in column order.
    """
    from PIL import Image, ImageDraw

    rows = min(GRID_ROWS, len(data.clean))
    columns = [data.degraded[:rows, 0].numpy(), *(o[:rows] for o in outputs.values())]
    columns.append(data.clean[:rows, 0].numpy())
    labels = ["input", *(grid_label(k) for k in outputs), "clean"]
    h, w = columns[0].shape[1:]
    gap, header = 2, GRID_HEADER_PX
    canvas = np.full(
        (header + rows * h + (rows - 1) * gap, len(columns) * w + (len(columns) - 1) * gap),
        255,
        dtype=np.uint8,
    )
    for c, images in enumerate(columns):
        for r in range(rows):
            tile = np.clip((images[r] + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
            y, x = header + r * (h + gap), c * (w + gap)
            canvas[y : y + h, x : x + w] = tile
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for c, label in enumerate(labels):
        draw.text((c * (w + gap) + 3, 2), label, fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def grid_label(key: str) -> str:
    """A validation output's column label: "2steps" -> "2 steps"; other keys as they are."""
    return key.replace("steps", " steps") if key.removesuffix("steps").isdigit() else key


# ---------------------------------------------------------------------------------------------
# Log, checkpoint, zoo entry


class CsvLog:
    """training_log.csv: one row per `log_every` steps and per validation (rank 0 only)."""

    def __init__(self, path: Path, columns: list[str], keep_until: int | None) -> None:
        """Open the log; rows after step `keep_until` (an abandoned future) are dropped, and the
        whole file when `keep_until` is None (a fresh run)."""
        self.path = path
        self.columns = columns
        kept: list[dict[str, str]] = []
        if keep_until is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= keep_until]
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writerow({k: _format(v) for k, v in row.items()})


def _format(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _gather(obj: Any, ranks: Distributed) -> list[Any]:
    """`obj` of every rank, in rank order (a collective: every rank must call it)."""
    if ranks.world == 1:
        return [obj]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


@dataclass
class TrainState:
    """Everything a training run changes as it goes: exactly what a checkpoint saves.

    Attributes:
        model: the trained network (unwrapped).
        ema: its EMA copy (what the zoo publishes).
        optimizer, scheduler: AdamW and its warm-up + cosine LambdaLR.
        generator: this process's source of the objective's t and noise.
        step: optimiser steps done.
        wall_time_s: training wall time before this session.
        metrics: the last validation metrics, measured at `metrics_step` (-1: none yet).
    """

    model: UNet
    ema: EMA
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    step: int = 0
    wall_time_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_step: int = -1

    @classmethod
    def create(cls, config: TrainConfig, device: torch.device, ranks: Distributed) -> TrainState:
        """A fresh run: seeded weights, AdamW (decay on weights only), schedule, generator."""
        model = build_network(config).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(
            parameter_groups(model, config.weight_decay),
            lr=config.lr,
            betas=(config.betas[0], config.betas[1]),
            # One fused kernel for the whole update (CUDA, and CPU since torch 2.4).
            fused=True,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
        generator = torch.Generator(device=device)
        generator.manual_seed(derived_seed(config.seed, STREAM_NOISE, ranks.rank))
        if config.init_from:
            loaded = warm_start(model, config.init_from)
            log.info("warm start: %d tensors from %s", loaded, config.init_from)
        return cls(model, EMA(model, config.ema_decay), optimizer, scheduler, generator)

    def rng(self) -> dict[str, torch.Tensor]:
        """This process's random state: the objective's generator and the global torch RNG."""
        state = {"noise": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.generator.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.generator.device)
        return state

    def set_rng(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["noise"])
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.generator.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.generator.device)

    def save(self, path: Path, config: TrainConfig, wall_time_s: float, ranks: Distributed) -> None:
        """Write the checkpoint (rank 0; a collective under DDP, every rank must call it)."""
        rng = _gather(self.rng(), ranks)
        if not ranks.main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "wall_time_s": wall_time_s,
            "metrics": self.metrics,
            "metrics_step": self.metrics_step,
        }
        # Write then rename, so that a crash while saving never leaves a truncated checkpoint.
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load(self, path: Path, config: TrainConfig, ranks: Distributed) -> TrainConfig:
        """Continue from a checkpoint of the same run (see `check_resumable`); returns the config
        the checkpoint was saved with."""
        state = load_checkpoint(path)
        saved = TrainConfig.from_dict(state["config"])
        check_resumable(saved, config, path)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.wall_time_s = float(state["wall_time_s"])
        self.metrics = {k: float(v) for k, v in state["metrics"].items()}
        self.metrics_step = int(state["metrics_step"])
        if len(state["rng"]) == ranks.world:
            self.set_rng(state["rng"][ranks.rank])
        else:
            # Another process count: the data order is still exact, the noise draws cannot be.
            log.warning(
                "resuming on %d processes a run saved on %d: the noise draws are reseeded",
                ranks.world,
                len(state["rng"]),
            )
            self.generator.manual_seed(
                derived_seed(config.seed, STREAM_NOISE, self.step, ranks.rank)
            )
        return saved


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training state (tensors and plain containers only: `weights_only=True`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError) as error:
        raise StmZooError(
            f"{path} is not a readable training state ({str(error).splitlines()[0]}): delete it "
            "or pass --no-resume."
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise StmZooError(f"{path} is a training state of another version: pass --no-resume.")
    return state


def check_resumable(saved: TrainConfig, config: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint whose run differs in anything but bookkeeping options."""
    differ = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)
    ]
    if differ:
        raise StmZooError(
            f"{path} belongs to a run with other {', '.join(differ)}: use the same options, "
            "pass --no-resume to start over, or choose another --run-dir."
        )


def train_step(
    net: nn.Module,
    state: TrainState,
    method: Method,
    clean: torch.Tensor,
    degraded: torch.Tensor,
    config: TrainConfig,
    dtype: torch.dtype | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One optimiser step: loss, backward, clip, AdamW, schedule, EMA.

    Args:
        net: what computes the loss: `state.model`, or its DDP / compiled wrapper.
        state: the run's state (updated in place, `step` incremented).
        method: the family whose objective is optimised.
        clean, degraded: (B, 1, H, W) float32 in [-1, 1] on the training device.
        config: the run's settings used here: `grad_clip` (max gradient L2 norm, 0: none),
            `crop_px` (train on random crops of this side, 0: whole images) and
            `crop_renormalise` (map each crop onto [-1, 1] again, else keep the image's scale).
        dtype: autocast dtype (None: fp32).

    Returns:
        (loss, gradient norm before clipping or None), detached device scalars (no host sync).
    """
    if config.crop_px:
        clean, degraded = random_crops(
            clean, degraded, config.crop_px, state.generator, config.crop_renormalise
        )
    with autocast(clean.device, dtype):
        loss = method.loss(net, clean, degraded, state.generator)
    loss.backward()
    norm = None
    if config.grad_clip > 0:
        norm = nn.utils.clip_grad_norm_(state.model.parameters(), config.grad_clip, foreach=True)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    state.ema.update(state.model, state.step)
    state.step += 1
    return loss.detach(), None if norm is None else norm.detach()


class _GracefulStop:
    """Turn SIGINT / SIGTERM into a flag read between steps (single-process runs only).

    A signal in the middle of an optimiser step would leave weights, schedule and EMA out of step
    with each other; the loop instead finishes the step, saves the checkpoint and stops. Under DDP
    the ranks could see the signal at different steps, so the default handlers stay there and the
    periodic checkpoints are what a run resumes from.
    """

    def __init__(self, enabled: bool) -> None:
        import threading

        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _GracefulStop:
        import signal

        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _device_text(device: torch.device, ranks: Distributed) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda ({name}) x {ranks.world}"
    cpu = platform.processor() or platform.machine()
    return f"cpu ({cpu}, {torch.get_num_threads()} threads) x {ranks.world}"


X0_WEIGHT_TEXT = {
    "fm": f"Eq. 7's 1/(1-t)^2 weight capped at {fm_methods.X0_LOSS_WEIGHT_CAP:g}"
    + (" (plain clean-image MSE)" if fm_methods.X0_LOSS_WEIGHT_CAP == 1 else ""),
    "ddim": ddim_methods.x0_weight_text(),
    "ddim-fft": ddim_methods.x0_weight_text(),
}
"""How an x0 network's error is weighted over time, per family (the cards' wording)."""


def loss_text(config: TrainConfig) -> str:
    """The objective as the card states it, with the recipe's departures from the paper."""
    text = LOSS_TEXT[config.family]
    if config.prediction == "x0":
        text += "; network predicts the clean image as input + correction (identity start)"
        text += ", the velocity / noise derived from it; " + X0_WEIGHT_TEXT.get(config.family, "")
    if config.time_sampling != "uniform":
        text += f"; times drawn {config.time_sampling}" + (
            " (the 2/5/10-step samplers' evaluation points)"
            if config.time_sampling == "grid"
            else ""
        )
    if config.crop_px:
        text += f"; random {config.crop_px}x{config.crop_px} crops" + (
            ", renormalised" if config.crop_renormalise else " in the 128 px image's scale"
        )
    if config.global_context:
        text += "; U-Net global-context branch"
    if config.output_range == "minmax":
        text += "; samples mapped onto exactly [-1, 1] like the clean images"
    if config.init_from:
        text += f"; warm-started from {config.init_from}"
    return text


def entry_training_info(
    config: TrainConfig,
    step: int,
    wall_time_s: float,
    device_text: str,
    precision: str,
    data: dict[str, Any],
    steps_per_epoch: int,
) -> dict[str, Any]:
    """The `training` block of config.json: the real budget and the provenance of the entry."""
    return {
        "steps": step,
        "steps_planned": config.steps,
        "complete": step >= config.steps
        or bool(config.time_budget_min and wall_time_s >= 60.0 * config.time_budget_min),
        "time_budget_min": config.time_budget_min,
        "batch": config.batch,
        "samples_seen": step * config.batch,
        "epochs": round(step / steps_per_epoch, 3),
        "lr": config.lr,
        "device": device_text,
        "precision": precision,
        "wall_time_s": round(wall_time_s, 1),
        "wall_time_h": round(wall_time_s / 3600, 3),
        "seed": config.seed,
        "loss": loss_text(config),
        "sampler": SAMPLER_TEXT[config.family],
        "torch": torch.__version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "data": data,
    }


def model_card(entry: EntryConfig, config: TrainConfig, val_count: int) -> str:
    """The entry's README.md: the zoo's standard card plus how validation was done."""
    from stm_zoo.cards import entry_card

    steps = ", ".join(str(s) for s in config.val_steps)
    note = f"""
## Validation during training

Metrics above (`val/...`) are measured by the training loop on {val_count} fixed samples of the
synthetic validation split: the EMA weights sample each degraded input from the same fixed noise
with {steps} sampler steps (`psnr_<N>steps`, `ssim_<N>steps`; `direct` for the autoencoder), and
`input_psnr` / `input_ssim` score the degraded input itself; `apsnr_...` / `assim_...` are the
same after the best affine map of each image onto its clean image (structure only). PSNR is the
mean over images of the per-image PSNR (data_range 2), each capped at {PSNR_CAP_DB:.0f} dB because
a sample the pipeline left untouched equals its target. `training_log.csv` holds the loss,
learning rate, throughput and these metrics over the run (the learning curve).
"""
    return entry_card(entry).rstrip("\n") + "\n" + note


def write_zoo_entry(
    out_zoo_dir: Path,
    config: TrainConfig,
    network: nn.Module,
    training: dict[str, Any],
    metrics: dict[str, float],
    log_path: Path,
    val_count: int,
) -> Path:
    """Write `<out_zoo_dir>/<task>/<family>-<size>/` through `stm_zoo.zoo.write_entry`."""
    key = EntryKey(config.task, config.family, config.size)
    entry = EntryConfig(
        task=config.task,
        family=config.family,
        size=config.size,
        network=network.config.to_dict(),
        pixel_size_nm=training["data"]["pixel_size_nm"],
        tile_size=CROP_PX,
        sr_factor=SR_FACTOR[config.task],
        weights_dtype=config.weights_dtype,
        training=training,
        metrics={"val": metrics} if metrics else {},
        prediction=config.prediction,
        output_range=config.output_range,
    )
    directory = Path(out_zoo_dir) / key.subdir
    card = model_card(entry, config, val_count)
    write_entry(directory, entry, network.state_dict(), card, config.weights_dtype)
    shutil.copyfile(log_path, directory / LOG_NAME)
    (directory / LOG_NAME).chmod(PUBLISHED_MODE)  # published beside the weights
    return directory


# ---------------------------------------------------------------------------------------------
# The loop


def train(
    config: TrainConfig,
    data_dir: str | Path,
    out_zoo_dir: str | Path,
    run_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    device: str = "auto",
    stop_at: int | None = None,
) -> TrainResult:
    """Train one zoo entry and write it in zoo format.

    Args:
        config: the run (see `training.configs`).
        data_dir: a dataset folder written by `python -m training data` for `config.task`.
        out_zoo_dir: the zoo root; the entry goes to `<task>/<family>-<size>/` inside it.
        run_dir: checkpoint, log and grids (default `default_runs_dir()/<task>/<family>-<size>`).
        resume: continue from the run folder's checkpoint when there is one (else start over).
        progress: show a tqdm bar with ETA (rank 0).
        device: "auto", "cpu" or "cuda" (under torchrun: the local rank's GPU).
        stop_at: end this session after this many steps in total (checkpoint and entry written),
            e.g. to split a run over time-limited jobs; None runs to `config.steps`.

    Returns:
        The result (entry folder, steps, wall time, last validation metrics, EMA network).

    Raises:
        StmZooError: bad data folder or options, a checkpoint of another run, divergence.
        KeyboardInterrupt: after SIGINT / SIGTERM, once the state of the last step is saved.
    """
    ranks = init_distributed(device)
    try:
        torch_device = training_device(device, ranks)
        cuda = [torch_device] if torch_device.type == "cuda" else []
        # Seed the global RNG (dropout) for this run only: the caller's state is restored after.
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(derived_seed(config.seed, STREAM_GLOBAL, ranks.rank))
            run = Path(run_dir) if run_dir is not None else default_runs_dir() / config.key.subdir
            return _train(
                config,
                Path(data_dir),
                Path(out_zoo_dir),
                run,
                resume,
                progress,
                torch_device,
                ranks,
                stop_at,
            )
    finally:
        if ranks.owns_group:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    data_dir: Path,
    out_zoo_dir: Path,
    run_dir: Path,
    resume: bool,
    progress: bool,
    device: torch.device,
    ranks: Distributed,
    stop_at: int | None,
) -> TrainResult:
    if config.batch % ranks.world:
        raise StmZooError(
            f"--batch {config.batch} is the global batch and must divide evenly over "
            f"{ranks.world} processes."
        )
    method = config_method(config)
    dtype = autocast_dtype(config.precision, device)
    if device.type == "cuda":
        # TF32 matmuls for whatever autocast leaves in fp32; fixed shapes suit cuDNN autotuning.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    train_set, val_set, data_summary = open_datasets(data_dir, config)
    steps_per_epoch = len(train_set) // config.batch  # type: ignore[arg-type]

    state = TrainState.create(config, device, ranks)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if ranks.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume and checkpoint_path.is_file():
            checkpoint_path.unlink()
    if ranks.world > 1:
        dist.barrier()  # no rank looks for the checkpoint while rank 0 may still be removing it
    if resume and checkpoint_path.is_file():
        saved = state.load(checkpoint_path, config, ranks)
        if saved.init_from and not config.init_from:  # the weights still descend from it
            config = dataclasses.replace(config, init_from=saved.init_from)
        if ranks.main:
            log.info("resuming %s from step %d (%s)", config.key, state.step, checkpoint_path)

    net: nn.Module = state.model
    if ranks.world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(state.model, device_ids=device_ids)
    if config.compile:
        net = torch.compile(net)

    end = config.steps if stop_at is None else max(state.step, min(config.steps, stop_at))
    val_seed = derived_seed(config.seed, STREAM_VALIDATION, 0)
    val_data = validation_set(val_set, config.val_samples, val_seed) if ranks.main else None
    csv_log = None
    if ranks.main:
        labels = [label for label, _ in sampler_settings(method, config.val_steps)]
        kinds = ("psnr", "ssim", "apsnr", "assim")
        val_columns = ["val_loss", *(f"{m}_{lab}" for lab in labels for m in kinds)]
        csv_log = CsvLog(
            run_dir / LOG_NAME,
            [*TRAIN_COLUMNS, *val_columns, "input_psnr", "input_ssim"]
            + ["apsnr_input", "assim_input"],
            keep_until=state.step if state.step > 0 else None,
        )

    def run_validation() -> None:
        assert val_data is not None
        metrics, outputs = validate(
            state.ema.module,
            method,
            val_data,
            config.val_steps,
            device,
            dtype,
            derived_seed(config.seed, STREAM_VALIDATION, 1),
        )
        save_grid(run_dir / GRID_DIR / f"step_{state.step:07d}.png", val_data, outputs)
        log.info(
            "step %d validation: %s",
            state.step,
            ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
        )
        state.metrics, state.metrics_step = metrics, state.step

    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    per_rank_batch = config.batch // ranks.world
    bar = tqdm(
        total=config.steps,
        initial=state.step,
        unit="step",
        dynamic_ncols=True,
        disable=not (progress and ranks.main),
        desc=str(config.key),
    )
    sums = torch.zeros(2, device=device)  # loss, gradient norm since the last log row
    interval = (state.step, time.perf_counter())
    session_start = time.perf_counter()

    def wall() -> float:
        return state.wall_time_s + time.perf_counter() - session_start

    def apply_time_lr() -> None:
        """With a wall-clock budget, the learning rate follows the time, not the step count."""
        if config.time_budget_min:
            factor = time_lr_factor(wall(), config)
            for group in state.optimizer.param_groups:
                group["lr"] = config.lr * factor

    if config.time_budget_min and state.wall_time_s >= 60.0 * config.time_budget_min:
        end = state.step  # resumed with the budget spent: score and write the entry only
    state.model.train()
    with _GracefulStop(enabled=ranks.world == 1) as stop, bar:
        while state.step < end and stop.received is None:
            epoch, offset = divmod(state.step, steps_per_epoch)
            loader = epoch_loader(
                train_set,
                epoch,
                offset,
                per_rank_batch,
                config,
                ranks,
                pin_memory=device.type == "cuda",
            )
            for clean, degraded in loader:
                apply_time_lr()
                clean = clean.to(device, non_blocking=True, memory_format=memory_format)
                degraded = degraded.to(device, non_blocking=True, memory_format=memory_format)
                loss, norm = train_step(net, state, method, clean, degraded, config, dtype)
                apply_time_lr()  # so that the logged learning rate is the one the next step uses
                sums[0] += loss
                if norm is not None:
                    sums[1] += norm
                bar.update(1)
                step = state.step
                if config.time_budget_min and wall() >= 60.0 * config.time_budget_min:
                    end = step  # the wall-clock budget is spent: finish this run here
                validate_now = step == end or (config.val_every and step % config.val_every == 0)
                if step % config.log_every == 0 or validate_now:
                    row = _interval_row(sums, interval, epoch, config, state, ranks)
                    row["elapsed_s"] = wall()
                    bar.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{row['lr']:.2e}")
                    if not math.isfinite(row["loss"]):
                        raise StmZooError(
                            f"Training diverged at step {step} (loss {row['loss']}): lower --lr "
                            "or raise --warmup-steps, and start over with --no-resume."
                        )
                    if validate_now and ranks.main:
                        run_validation()
                        row.update(
                            {
                                ("val_" if k == "loss" else "") + k: v
                                for k, v in state.metrics.items()
                            }
                        )
                    if csv_log is not None:
                        csv_log.append(row)
                    sums.zero_()
                    interval = (step, time.perf_counter())
                if step % config.checkpoint_every == 0 or step == end or stop.received:
                    state.save(checkpoint_path, config, wall(), ranks)
                if step >= end or stop.received is not None:
                    break
    if stop.received is not None:
        log.warning(
            "stopped by signal %d: state of step %d saved to %s; run again to resume",
            stop.received,
            state.step,
            checkpoint_path,
        )
        raise KeyboardInterrupt
    if ranks.main and state.metrics_step != state.step:
        run_validation()  # resumed at the end with nothing left to train: score these weights
    entry_dir = None
    if ranks.main:
        assert val_data is not None
        training = entry_training_info(
            config,
            state.step,
            wall(),
            _device_text(device, ranks),
            "bf16" if dtype is torch.bfloat16 else "fp32",
            data_summary,
            steps_per_epoch,
        )
        entry_dir = write_zoo_entry(
            out_zoo_dir,
            config,
            state.ema.module,
            training,
            {**state.metrics, "step": state.metrics_step},
            run_dir / LOG_NAME,
            len(val_data.clean),
        )
        log.info(
            "wrote %s (%d steps, %.0f s in this session)",
            entry_dir,
            state.step,
            time.perf_counter() - session_start,
        )
    if ranks.world > 1:
        dist.barrier()
    return TrainResult(
        entry_dir=entry_dir,
        run_dir=run_dir,
        step=state.step,
        samples_seen=state.step * config.batch,
        wall_time_s=wall(),
        completed=state.step >= config.steps
        or bool(config.time_budget_min and wall() >= 60.0 * config.time_budget_min),
        metrics=state.metrics if ranks.main else {},
        network=state.ema.module,
    )


def _interval_row(
    sums: torch.Tensor,
    interval: tuple[int, float],
    epoch: int,
    config: TrainConfig,
    state: TrainState,
    ranks: Distributed,
) -> dict[str, Any]:
    """The training columns of a log row: means since the last row (`interval` = its step and
    time), averaged over the ranks (a collective under DDP)."""
    totals = sums.detach().clone().float()
    if ranks.world > 1:
        dist.all_reduce(totals)
        totals /= ranks.world
    steps = max(1, state.step - interval[0])
    loss, norm = (totals / steps).tolist()
    seconds = max(time.perf_counter() - interval[1], 1e-9)
    return {
        "step": state.step,
        "epoch": epoch,
        "samples_seen": state.step * config.batch,
        "loss": loss,
        # As used: with a time budget, the time schedule overrides the step scheduler.
        "lr": state.optimizer.param_groups[0]["lr"],
        "grad_norm": norm if config.grad_clip > 0 else "",
        "samples_per_s": steps * config.batch / seconds,
    }


# ---------------------------------------------------------------------------------------------
# CLI: python -m training train


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m training train`: the TrainConfig fields plus data and folders."""
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="DIR",
        help="dataset folder from `python -m training data`",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="ZOO_DIR",
        help="zoo root; the entry goes to <task>/<model>-<size>/",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="checkpoint, log and grids (default ~/.cache/stm-zoo/runs/<task>/<model>-<size>, or "
        "$STM_ZOO_RUNS/<task>/<model>-<size>)",
    )
    parser.add_argument(
        "--preset",
        default="full",
        metavar="NAME",
        help="budget: 'full' (GPU), 'cpu' (small models on a CPU), or a name of "
        f"training.configs.ZOO_CONFIGS such as {next(iter(ZOO_CONFIGS))}",
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the run folder's checkpoint (default: yes)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="training device (under torchrun: the local rank's GPU)",
    )
    parser.add_argument(
        "--stop-at",
        type=int,
        default=None,
        metavar="STEP",
        help="end this session at STEP (checkpoint and entry written)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: torch's choice)",
    )
    group = parser.add_argument_group("training options (default: the preset's)")
    add_config_arguments(group)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The preset the arguments name, refined by every option given."""
    name = args.preset
    if name in ("full", "cpu"):
        missing = [
            flag
            for flag, value in (
                ("--task", args.task),
                ("--model", args.family),
                ("--size", args.size),
            )
            if value is None
        ]
        if missing:
            raise StmZooError(f"Give {', '.join(missing)} (or a full --preset name).")
        key = EntryKey(args.task, args.family, args.size)
        name = key.subdir + (CPU_SUFFIX if args.preset == "cpu" else "")
        if name not in ZOO_CONFIGS:
            raise StmZooError(
                f"There is no {args.preset} preset for {key}: the cpu budget exists for small "
                "models only; use --preset full and set --steps/--batch yourself."
            )
    base = preset(name)
    for attr, flag in (("task", "--task"), ("family", "--model"), ("size", "--size")):
        given = getattr(args, attr)
        if given is not None and given != getattr(base, attr):
            raise StmZooError(f"{flag} {given} contradicts --preset {args.preset}.")
    return config_from_args(args, base)


def run(args: argparse.Namespace) -> int:
    """Train and print where the entry went and its last validation metrics."""
    config = resolve_config(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = train(
        config,
        args.data,
        args.out,
        run_dir=args.run_dir,
        resume=args.resume,
        progress=True,
        device=args.device,
        stop_at=args.stop_at,
    )
    if result.entry_dir is not None:
        state = "complete" if result.completed else f"stopped, {config.steps} planned"
        print(
            f"{config.key}: {result.step} steps ({state}), {result.samples_seen} samples, "
            f"{result.wall_time_s / 60:.1f} min -> {result.entry_dir}"
        )
        print(json.dumps(result.metrics, indent=1))
    return 0

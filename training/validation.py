"""Validation during training: the EMA network samples a fixed subset of the val split from fixed
noise, exactly as inference runs it (per-tile `normalise_tiles`, the one `autocast`); scores
(PSNR / SSIM, plain and after an affine fit) and the labelled grid PNG of its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from stm_zoo.methods import Method
from stm_zoo.metrics import affine_psnr_batch, affine_ssim_batch, psnr_batch, ssim_batch
from stm_zoo.nn.precision import autocast
from stm_zoo.preprocess import normalise_tiles

GRID_DIR = "grids"
GRID_HEADER_PX = 14
GRID_ROWS = 8
VAL_CHUNK = 32
PSNR_CAP_DB = 60.0


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
    """Take `n` evenly spaced samples of the val split (all of it when smaller), the degraded
    inputs normalised per tile as inference normalises them (`normalise_tiles`), and fix the noise
    they are sampled from."""
    count = len(dataset)  # type: ignore[arg-type]
    indices = np.unique(np.linspace(0, count - 1, min(n, count)).round().astype(int))
    pairs = [dataset[int(i)] for i in indices]
    clean = torch.stack([p[0] for p in pairs]).float()
    # The network sees its input through the normalisation that inference applies to every tile.
    degraded = normalise_tiles(torch.stack([p[1] for p in pairs]).float())[0]
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


def validation_columns(method: Method, val_steps: tuple[int, ...]) -> list[str]:
    """The columns that validation adds to training_log.csv, in order."""
    labels = [label for label, _ in sampler_settings(method, val_steps)]
    kinds = ("psnr", "ssim", "apsnr", "assim")
    metrics = [f"{kind}_{label}" for label in labels for kind in kinds]
    return ["val_loss", *metrics, "input_psnr", "input_ssim", "apsnr_input", "assim_input"]


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

"""The zoo entry a run writes: config.json with the real training budget and provenance, the
EMA weights, the model card (README.md) with the validation metrics, and the learning curve."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stm_zoo.entry_format import PUBLISHED_MODE, EntryConfig, EntryKey, write_entry
from stm_zoo.methods import ddim as ddim_methods
from stm_zoo.methods import flow_matching as fm_methods
from stm_zoo.registry import SR_FACTOR, takes_steps
from training.configs import TrainConfig
from training.optim import time_budget_spent
from training.run_log import LOG_NAME
from training.sources import CROP_PX
from training.validation import PSNR_CAP_DB

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
        if takes_steps(config.family):  # a sampled family: its native target follows
            text += ", the velocity / noise derived from it; " + X0_WEIGHT_TEXT[config.family]
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
        "complete": step >= config.steps or time_budget_spent(wall_time_s, config),
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
    """Write `<out_zoo_dir>/<task>/<family>-<size>/` through `stm_zoo.entry_format.write_entry`."""
    key = EntryKey(config.task, config.family, config.size)
    entry = EntryConfig(
        task=config.task,
        family=config.family,
        size=config.size,
        network=network.config,
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

"""AdamW with weight decay on weights only, and the learning-rate schedules: linear warm-up then
cosine decay, laid over the steps or over a wall-clock budget."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from training.configs import TrainConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on conv/linear weights only, never on biases or norm scales."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over `model` (decay on weights only) and its warm-up + cosine LambdaLR."""
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.betas[0], config.betas[1]),
        # One fused kernel for the whole update (CUDA, and CPU since torch 2.4).
        fused=True,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    return optimizer, scheduler


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


def time_budget_spent(wall_time_s: float, config: TrainConfig) -> bool:
    """Whether a run with a wall-clock budget (`time_budget_min`) has spent it after
    `wall_time_s` seconds of training (never, without a budget)."""
    return bool(config.time_budget_min) and wall_time_s >= 60.0 * config.time_budget_min

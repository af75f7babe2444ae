"""The run folder and the resumable training state in it (`training_state.pt`).

The state holds everything a run changes as it goes (weights, EMA, optimiser, schedule,
per-process RNG, step, wall time, last metrics), so that resuming from step k continues exactly
where the interrupted run was.

The run folder (default `~/.cache/stm-zoo/runs/<task>/<family>-<size>/`, see `default_runs_dir`)
is never published; under DDP it must be on a filesystem every node sees for resuming.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stm_zoo.errors import StmZooError
from stm_zoo.nn import UNet
from training.configs import RESUMABLE_CHANGES, TrainConfig
from training.distributed import Distributed, gather
from training.ema import EMA
from training.network import build_network, warm_start
from training.optim import make_optimizer
from training.seeds import STREAM_NOISE, derived_seed

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "training_state.pt"
CHECKPOINT_FORMAT = 1


def default_runs_dir() -> Path:
    """Where run folders go unless `--run-dir` says otherwise: `STM_ZOO_RUNS`, else
    `$XDG_CACHE_HOME/stm-zoo/runs` (`~/.cache/stm-zoo/runs`): outside any checkout, so a
    60 MB training state never lands in the repository."""
    if os.environ.get("STM_ZOO_RUNS"):
        return Path(os.environ["STM_ZOO_RUNS"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "stm-zoo" / "runs"


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
        optimizer, scheduler = make_optimizer(model, config)
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
        rng = gather(self.rng(), ranks)
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

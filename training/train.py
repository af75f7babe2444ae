"""The training loop: one zoo entry from a synthetic dataset to a zoo-format folder.

`train(config, data_dir, out_zoo_dir)` reads the shards written by `python -m training data`,
optimises the family's objective (`stm_zoo.methods.get_method(family).loss`) with AdamW, a linear
warm-up and a cosine decay, gradient clipping and an EMA of the weights, validates the EMA network
every `val_every` steps, and writes the zoo entry `<out_zoo_dir>/<task>/<family>-<size>/`
(config.json, EMA model.safetensors, README.md card, training_log.csv).

Run folder (`training.checkpoint.default_runs_dir`, never published): `training_state.pt` (the
resumable state), `training_log.csv` and `grids/step_<N>.png` (labelled columns: input | samples
at each step count | clean).

Determinism and exact resume: the run is a pure function of the config and the data. Every random
draw has an owner that the checkpoint saves (`training.seeds`): the weights' initialisation is
seeded by `seed`; the objective's t and noise come from one `torch.Generator` per process; the data
order is a function of the step alone (`training.loader`); the global torch RNG (used only by
dropout) and the DataLoader worker seeds are seeded per process and epoch. Resuming from step k
therefore continues exactly where the interrupted run was (tested bit for bit on CPU).

Distributed: under `torchrun` (WORLD_SIZE > 1) `batch` is the global batch split over the
processes, gradients are averaged by DistributedDataParallel so all ranks hold identical weights,
and only rank 0 validates, logs and writes files (`training.distributed`).

The pieces: `checkpoint` (run folder, training state), `loader` (batches), `network` and `optim`
(what is trained and how), `precision`, `validation`, `run_log`, `entry` (the zoo entry).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from stm_zoo.errors import StmZooError
from stm_zoo.methods import Method
from stm_zoo.nn.precision import autocast
from stm_zoo.preprocess import normalise_tiles
from training.checkpoint import CHECKPOINT_NAME, TrainState, default_runs_dir
from training.configs import TrainConfig
from training.distributed import Distributed, device_text, init_distributed, training_device
from training.entry import entry_training_info, write_zoo_entry
from training.loader import epoch_loader, open_datasets
from training.network import config_method
from training.optim import time_budget_spent, time_lr_factor
from training.precision import autocast_dtype
from training.run_log import LOG_NAME, TRAIN_COLUMNS, CsvLog, interval_row
from training.seeds import STREAM_GLOBAL, STREAM_VALIDATION, derived_seed
from training.validation import (
    GRID_DIR,
    save_grid,
    validate,
    validation_columns,
    validation_set,
)

log = logging.getLogger(__name__)


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
    """`train` on a resolved device and run folder, inside the run's own global RNG."""
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
        csv_log = CsvLog(
            run_dir / LOG_NAME,
            [*TRAIN_COLUMNS, *validation_columns(method, config.val_steps)],
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

    if time_budget_spent(state.wall_time_s, config):
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
                if time_budget_spent(wall(), config):
                    end = step  # the wall-clock budget is spent: finish this run here
                validate_now = step == end or (config.val_every and step % config.val_every == 0)
                if step % config.log_every == 0 or validate_now:
                    # As used: with a time budget, the time schedule overrides the step scheduler.
                    lr = state.optimizer.param_groups[0]["lr"]
                    row = interval_row(sums, interval, step, epoch, lr, config, ranks)
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
            device_text(device, ranks),
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
        completed=state.step >= config.steps or time_budget_spent(wall(), config),
        metrics=state.metrics if ranks.main else {},
        network=state.ema.module,
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

"""training_log.csv, the learning curve of a run: one row per `log_every` steps and per
validation, written by rank 0 and cut back to the resumed step when a run resumes."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import torch

from training.configs import TrainConfig
from training.distributed import Distributed, mean_over_ranks

LOG_NAME = "training_log.csv"
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


def interval_row(
    sums: torch.Tensor,
    since: tuple[int, float],
    step: int,
    epoch: int,
    lr: float,
    config: TrainConfig,
    ranks: Distributed,
) -> dict[str, Any]:
    """The training columns of a log row (all but `elapsed_s`).

    Args:
        sums: (2,) loss and gradient norm summed over the steps since the last row.
        since: the step and `time.perf_counter()` of the last row.
        step, epoch: where the run is now.
        lr: the learning rate as used (with a time budget the time schedule sets it).
        config: the run (`batch`, `grad_clip`).
        ranks: means are taken over the ranks (a collective under DDP).
    """
    steps = max(1, step - since[0])
    loss, norm = (mean_over_ranks(sums, ranks) / steps).tolist()
    seconds = max(time.perf_counter() - since[1], 1e-9)
    return {
        "step": step,
        "epoch": epoch,
        "samples_seen": step * config.batch,
        "loss": loss,
        "lr": lr,
        "grad_norm": norm if config.grad_clip > 0 else "",
        "samples_per_s": steps * config.batch / seconds,
    }

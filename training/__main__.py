"""`python -m training COMMAND ...`: synthetic data, datasets and model training."""

from __future__ import annotations

import os
import sys

# Idle OpenMP threads must sleep, not spin: on a small shared CPU spinning threads stall each other
# (measured 20x slower runs). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from stm_zoo.cli_common import dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("training.simulate.cli", "simulate pristine Si(001):H scans"),
    "gallery": ("training.gallery", "draw pristine | degraded examples of every degradation"),
    "data": ("training.cli_data", "build synthetic training/val/test datasets"),
    "train": ("training.cli_train", "train one zoo entry"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m training", "Synthetic data and training.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

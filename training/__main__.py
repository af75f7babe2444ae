"""`python -m training COMMAND ...`: synthetic data, datasets and model training."""

from __future__ import annotations

import sys

from stm_zoo.cli_common import dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("training.simulate.cli", "simulate pristine Si(001):H scans"),
    "gallery": ("training.gallery", "draw pristine | degraded examples of every degradation"),
    "data": ("training.datasets", "build synthetic training/val/test datasets"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m training", "Synthetic data and training.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

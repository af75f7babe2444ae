"""`python -m stm_zoo COMMAND ...`: the inference-side command line."""

from __future__ import annotations

import os
import sys

# Idle OpenMP threads must sleep, not spin: on a small shared CPU spinning threads stall each other
# (measured 20x slower runs). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from stm_zoo.cli_common import dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("stm_zoo.io.cli_info", "show format, channels, size and bias of a scan file"),
    "convert": ("stm_zoo.io.cli_convert", "convert a scan file to another format"),
    "restore": ("stm_zoo.restore_cli", "restore or super-resolve scan files and folders"),
    "zoo": ("stm_zoo.zoo_cli", "list the zoo entries and their scores; commit unbundled cards"),
    "publish": ("stm_zoo.publish", "upload the local zoo to a Hugging Face Hub model repo"),
    "bench": ("stm_zoo.bench.cli", "time every model per step (128x128) and a 512x512 restore"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m stm_zoo", "Restore and super-resolve STM scans.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

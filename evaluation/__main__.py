"""`python -m evaluation COMMAND ...`: the paper's tables from the zoo, data and real scans."""

from __future__ import annotations

import os
import sys

# Before torch loads OpenMP: threads that spin-wait between parallel regions (the default) run
# small networks many times slower when other processes share the cores (measured 20x on a 2-core
# machine under load, docs/benchmarks.md). An explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from stm_zoo.cli_common import dispatch  # noqa: E402

COMMANDS: dict[str, tuple[str, str]] = {
    "synthetic": (
        "evaluation.cli_synthetic",
        "PSNR / SSIM of every zoo entry on a synthetic test set (Tables II, III, V, VI, IX, XI)",
    ),
    "experimental": (
        "evaluation.cli_experimental",
        "KID / CMMD on real degraded vs pristine scans (Tables IV, VII, X, XII, XIII)",
    ),
    "timing": ("evaluation.cli_timing", "inference time per step at 128x128 (Tables VIII, XIV)"),
    "curves": (
        "evaluation.curves",
        "learning curves of the zoo: validation PSNR / SSIM against training time",
    ),
    "harshness": (
        "evaluation.harshness",
        "how harsh the synthetic degradations are: input scores, damaging parameters, real scans",
    ),
    "reference": (
        "evaluation.reference",
        "the real Si(001):H scan: do no harm (restore), every k-th line super-resolved (sr2, sr4)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(
        "python -m evaluation", "Evaluate stm-zoo models as the paper does.", COMMANDS, argv
    )


if __name__ == "__main__":
    sys.exit(main())

"""Timing primitives of every benchmark: warm-up then repeated wall-clock runs, configurations
timed round-robin, the machine's load, torch's thread count, and markdown tables of the results.

`python -m stm_zoo bench`, `python -m evaluation timing`, `python -m stm_zoo.nn.benchmark` and the
scripts/bench_*.py measure with these, so "min / median over repeats at load L" means the same
everywhere. Runs on a CUDA device are synchronised before and after, so a time covers the work and
not only its launch.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Timing",
    "interleaved",
    "load_average",
    "markdown_row",
    "markdown_table",
    "synchronizer",
    "time_runs",
    "torch_threads",
]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs.

    Attributes:
        seconds: every timed run, in order.
        load: the 1-minute load average when the runs ended (nan where the OS has none).
    """

    seconds: tuple[float, ...]
    load: float = math.nan

    @property
    def min(self) -> float:
        """The least disturbed run: the best estimate of the cost on a shared machine."""
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        """Every run, min, median and load, for a JSON file."""
        return {
            "seconds": list(self.seconds),
            "min": self.min,
            "median": self.median,
            "load": self.load,
        }


def load_average() -> float:
    """The 1-minute load average, or nan where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def synchronizer(device: Any) -> Callable[[], None]:
    """A function that waits for `device` ("cpu", "cuda", "cuda:1" or a torch.device) to finish
    its queued work: `torch.cuda.synchronize` on CUDA, nothing elsewhere."""
    if not str(device).startswith("cuda"):
        return lambda: None
    import torch

    return lambda: torch.cuda.synchronize(device)


def time_runs(
    run: Callable[[], object], repeats: int = 5, warmup: int = 1, device: Any = "cpu"
) -> Timing:
    """Call `run()` `warmup` times untimed (kernels get picked, caches filled), then time
    `repeats` calls, each on its own.

    Args:
        run: the work of one run.
        repeats: timed runs (at least 1); warmup: untimed runs first.
        device: where `run` computes (CUDA runs are synchronised around each call).
    """
    return interleaved({"run": run}, repeats, warmup, device)["run"]


def interleaved(
    runs: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1, device: Any = "cpu"
) -> dict[str, Timing]:
    """Time several configurations round-robin, one run of each per round, so that a change of the
    machine's load during the measurement hits them all alike (their ratios stay fair).

    Args:
        runs: name -> the work of one run of that configuration.
        repeats: timed rounds (at least 1); warmup: untimed rounds first.
        device: where the runs compute (CUDA runs are synchronised around each call).

    Returns:
        name -> its Timing, in the order of `runs`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    sync = synchronizer(device)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + repeats):
        for name, run in runs.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            if i >= warmup:
                seconds[name].append(time.perf_counter() - start)
    load = load_average()
    return {name: Timing(tuple(s), load) for name, s in seconds.items()}


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` torch CPU threads (None: leave torch's), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def markdown_row(cells: Sequence[object]) -> str:
    """One markdown table row of already formatted cells (str() of each)."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[object]] = (), right: Collection[int] = ()
) -> str:
    """A markdown table of already formatted cells; without rows, the header and rule lines that
    `markdown_row` lines can follow as they are measured.

    Args:
        header: column names.
        rows: one sequence of cells per row, as long as `header`.
        right: indices of the columns to right-align (numbers).
    """
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return "\n".join(markdown_row(line) for line in (header, rule, *rows))

"""The benchmark's configurations and `run_bench`, which times them and returns the rows.

Per-step rows: every (family, size) network in each compute mode (dtype x memory layout), the
modes of one network timed round-robin. End-to-end rows: a synthetic scan restored in each
`Variant`, all variants timed round-robin, each scored by the PSNR of its output against the first
(reference) variant's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from stm_zoo.bench import measure
from stm_zoo.bench.measure import (
    BENCH_MODELS,
    TILE_PX,
    keep_output,
    naive_fn,
    params_m,
    psnr_vs,
    restore_fn,
    step_fn,
    synthetic_scan,
)
from stm_zoo.registry import model_label
from stm_zoo.timing import Timing, interleaved, torch_threads
from stm_zoo.zoo import LoadedModel, resolve_device

OMP_ENV = "OMP_WAIT_POLICY"


@dataclass(frozen=True)
class Mode:
    """A compute configuration: dtype and memory layout."""

    name: str
    dtype: str
    channels_last: bool


MODES = (
    Mode("fp32", "float32", False),
    Mode("fp32 channels_last", "float32", True),
    Mode("bf16", "bfloat16", False),
    Mode("bf16 channels_last", "bfloat16", True),
)


@dataclass(frozen=True)
class Variant:
    """One end-to-end configuration for the 512x512 benchmark.

    Attributes:
        key: short name for `--variants`.
        name: what the table shows.
        mode: dtype and memory layout of the network's weights.
        naive: run `measure.naive_fn` (batch 1, no restore() checks) instead of `restore`.
        whole_image: one tile covering the whole scan instead of the model's 128 px tiles.
        overlap: tile overlap in pixels (restore's default: 32).
        batch_size: tiles per network call (restore's default: 8).
    """

    key: str
    name: str
    mode: Mode
    naive: bool = False
    whole_image: bool = False
    overlap: int = 32
    batch_size: int = 8


VARIANTS = (
    Variant("naive", "naive: fp32 NCHW, tile by tile (batch 1)", MODES[0], naive=True),
    Variant("batch1", "restore(), fp32, batch 1", MODES[1], batch_size=1),
    Variant("defaults", "restore() defaults: fp32, batch 8", MODES[1]),
    Variant("one-batch", "restore(), fp32, all tiles in one batch", MODES[1], batch_size=64),
    Variant("bf16", "restore(), bf16, batch 8", MODES[3]),
    Variant("overlap0", "restore(), fp32, overlap 0 (seams)", MODES[1], overlap=0),
    Variant("whole", "restore(), fp32, whole image", MODES[1], whole_image=True),
    Variant("bf16-whole", "restore(), bf16, whole image", MODES[3], whole_image=True),
)
"""The end-to-end configurations; the first one run is the reference of the others. restore()
feeds channels_last tiles; its models hold channels_last weights as `load_model` makes them."""


@dataclass
class StepRow:
    family: str
    size: str
    device: str
    params_m: float
    timings: dict[str, Timing] = field(default_factory=dict)


@dataclass
class EndToEndRow:
    variant: Variant
    device: str
    tiles: int
    timing: Timing
    psnr_vs_reference: float


@dataclass
class BenchReport:
    """Everything `run_bench` measured."""

    steps: list[StepRow]
    end_to_end: list[EndToEndRow]
    threads: int
    e2e_size: int
    e2e_steps: int
    e2e_model: tuple[str, str]
    omp_wait_policy: str = field(default_factory=lambda: os.environ.get(OMP_ENV, "unset"))


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every command that calls `run_bench`: devices, repeats and CPU threads."""
    parser.add_argument(
        "--device",
        nargs="+",
        default=[],
        choices=("auto", "cpu", "cuda"),
        help="devices to time (default: cpu, and cuda when available)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _devices(requested: list[str]) -> list[str]:
    import torch

    if not requested:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [resolve_device(d) for d in requested]


def _bf16_ok(device: str) -> bool:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return True


def run_bench(
    devices: list[str] | None = None,
    repeats: int = 5,
    models: tuple[tuple[str, str], ...] = BENCH_MODELS,
    modes: tuple[Mode, ...] = MODES,
    e2e_variants: tuple[Variant, ...] = VARIANTS,
    e2e_size: int = 512,
    e2e_steps: int = 2,
    e2e_model: tuple[str, str] = ("fm", "small"),
    step_size: int = TILE_PX,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    factory: Callable[..., LoadedModel] | None = None,
) -> BenchReport:
    """Measure per-step latency of `models` and end-to-end restore times of `e2e_model`.

    Args:
        devices: "cpu" and/or "cuda" (default: cpu, and cuda when available).
        repeats: timed runs per measurement (end to end: max(1, repeats // 2)).
        models: (family, size) pairs for the per-step table.
        modes: compute configurations for the per-step table (bf16 is skipped on CUDA devices
            without bf16 support).
        e2e_variants: configurations of the end-to-end run; the first is the reference that the
            others are compared with (time ratio and output PSNR).
        e2e_size: edge of the square test scan in pixels.
        e2e_steps: sampler steps of the end-to-end run.
        e2e_model: (family, size) of the end-to-end run.
        step_size: H = W of the per-step input.
        threads: torch CPU threads (default: torch's).
        progress: called with a line before each measurement.
        factory: builds the models, called like `measure.random_model` (the default).

    Returns:
        The measurements.
    """
    import torch

    from stm_zoo.tiling import count_tiles

    say = progress or (lambda line: None)
    build = factory or measure.random_model
    steps_rows: list[StepRow] = []
    e2e_rows: list[EndToEndRow] = []
    with torch_threads(threads):
        for device in _devices(devices or []):
            usable = [m for m in modes if m.dtype == "float32" or _bf16_ok(device)]
            for family, size in models:
                built = {
                    m.name: build("restore", family, size, device, m.dtype, m.channels_last)
                    for m in usable
                }
                say(f"{device} {model_label(family, size)}: one step, {len(built)} configurations")
                runs = {name: step_fn(model, 1, step_size, 1) for name, model in built.items()}
                timings = interleaved(runs, repeats, warmup=2, device=device)
                params = params_m(next(iter(built.values())))
                steps_rows.append(StepRow(family, size, device, params, timings))
            chosen = [v for v in e2e_variants if v.mode.dtype == "float32" or _bf16_ok(device)]
            if not chosen:
                continue
            image = synthetic_scan(e2e_size)
            runs, tiles, outputs = {}, {}, {}
            for variant in chosen:
                model = build(
                    "restore", *e2e_model, device, variant.mode.dtype, variant.mode.channels_last
                )
                tile = e2e_size if variant.whole_image else model.config.tile_size
                tiles[variant.key] = count_tiles(image.shape, tile, variant.overlap)
                if variant.naive:
                    run = naive_fn(model, image, e2e_steps, variant.overlap)
                else:
                    run = restore_fn(
                        model,
                        image,
                        e2e_steps,
                        tile=tile,
                        overlap=variant.overlap,
                        batch_size=variant.batch_size,
                    )
                runs[variant.key] = keep_output(run, outputs, variant.key)
            say(f"{device} {e2e_size}x{e2e_size} restore: {len(chosen)} configurations")
            timings = interleaved(runs, max(1, repeats // 2), warmup=1, device=device)
            reference = outputs[chosen[0].key]
            for variant in chosen:
                psnr = psnr_vs(outputs[variant.key], reference)
                e2e_rows.append(
                    EndToEndRow(variant, device, tiles[variant.key], timings[variant.key], psnr)
                )
        used_threads = torch.get_num_threads()
    return BenchReport(steps_rows, e2e_rows, used_threads, e2e_size, e2e_steps, e2e_model)

"""Inference benchmarks: per-step latency at 128x128 and end-to-end restore time of a 512x512 scan.

`python -m stm_zoo bench [--device cpu cuda] [--repeats N] [--out FILE.md]` prints markdown tables:

1. Per-step latency of every network at 128x128, batch 1, next to the paper's Tables VIII / XIV
   (AMD Ryzen 5 2600 CPU, RTX 3060 Ti GPU). A "step" is what the sampler repeats: two network
   evaluations for flow matching (RK2 midpoint), one for DDIM, one forward pass for the
   autoencoder. Timed under fp32, fp32 channels_last and bf16 channels_last.
2. End-to-end restore of a 512x512 scan through `stm_zoo.inference.restore` (tiling, per-tile
   normalisation, sampling, blending) with FM small at 2 steps, in several configurations, each as a
   ratio against a naive baseline measured in the same process (`naive_timing`: the same work one
   tile per network call, fp32, NCHW), and with the PSNR of its output against the baseline's (how
   much the speed-up changes the result). Configurations are timed round-robin, so a change of
   load during the run hits them all alike.

The networks are the random initialisation of each entry's architecture (the zoo's configs, no
files needed): latency depends on the shapes and the operations, not on the weights' values. The
zero-initialised output layer is re-drawn at random, so outputs (and the PSNR comparisons between
configurations) depend on every layer, as they do for trained weights.

The machine may be shared: each table states the 1-minute load average next to its numbers, times
are the minimum (least disturbed) and the median over repeats, and the speed-ups are ratios
measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM
from stm_zoo.zoo import EntryConfig, LoadedModel, resolve_device

log = logging.getLogger(__name__)

TILE_PX = 128
OMP_ENV = "OMP_WAIT_POLICY"
BENCH_MODELS: tuple[tuple[str, str], ...] = (
    ("ae", "large"),
    ("ddim", "small"),
    ("ddim", "large"),
    ("fm", "small"),
    ("fm", "large"),
)
"""The paper's Table VIII rows. ddim-fft large has the ddim large network (same time)."""

PAPER_STEP_SECONDS: dict[tuple[str, str], tuple[float, float]] = {
    ("ae", "large"): (1.08, 0.08),
    ("ddim", "small"): (0.10, 0.01),
    ("ddim", "large"): (1.13, 0.08),
    ("fm", "small"): (0.21, 0.02),
    ("fm", "large"): (2.27, 0.16),
}
"""Paper Table VIII: seconds per step at 128x128, (CPU Ryzen 5 2600, GPU RTX 3060 Ti)."""

PAPER_IMAGE_SECONDS: dict[tuple[str, str, int], tuple[float, float]] = {
    ("ae", "large", 1): (1.08, 0.08),
    ("ddim", "small", 5): (0.50, 0.05),
    ("ddim", "small", 10): (1.01, 0.10),
    ("ddim", "large", 5): (5.68, 0.41),
    ("ddim", "large", 10): (11.35, 0.82),
    ("fm", "small", 2): (0.41, 0.04),
    ("fm", "small", 5): (1.05, 0.10),
    ("fm", "small", 10): (2.05, 0.20),
    ("fm", "large", 2): (4.61, 0.32),
    ("fm", "large", 5): (11.10, 0.81),
    ("fm", "large", 10): (22.98, 1.61),
}
"""Paper Table XIV: seconds to restore one 128x128 image, (CPU, GPU), per model and steps."""

PAPER_512_CPU_SECONDS = 11.0
"""The paper's abstract: a 512x512 reconstruction in about 11 s on a standard (6-core) CPU."""

LABELS = {"fm": "FM", "ddim": "DDIM", "ddim-fft": "DDIM (FFT)", "ae": "Autoencoder"}


def model_label(family: str, size: str) -> str:
    """The paper's row name: "FM Small", "DDIM Large", "Autoencoder"."""
    if family == "ae":
        return LABELS["ae"]
    return f"{LABELS.get(family, family)} {size.capitalize()}"


# --------------------------------------------------------------------------------------------------
# Building blocks (also used by `python -m evaluation timing`)


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs.

    Attributes:
        seconds: every timed run, in order.
        load: the 1-minute load average when the runs ended (os.getloadavg; nan where unknown).
    """

    seconds: tuple[float, ...]
    load: float = math.nan

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def load_average() -> float:
    """The 1-minute load average, or nan where the OS has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return math.nan


def random_model(
    task: str,
    family: str,
    size: str,
    device: str = "cpu",
    dtype: str = "float32",
    channels_last: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """A zoo entry's network with random weights, wrapped like `stm_zoo.zoo.load_model` returns it.

    Args:
        task: "restore", "sr2" or "sr4".
        family, size: which entry ("fm", "ddim", "ddim-fft", "ae"; "small" / "large").
        device: "cpu", "cuda" or "auto".
        dtype: "float32", or "bfloat16" (weights cast to bf16 and sampling under bf16 autocast,
            as `load_model(..., dtype="bfloat16")` does).
        channels_last: store the weights in NHWC; convolutions then run in that layout.
        seed: seed of the weights (the default initialisation, drawn from an isolated RNG).

    Returns:
        A LoadedModel with `source="random-init"`.
    """
    import torch

    from stm_zoo.methods import get_method
    from stm_zoo.nn import UNet
    from stm_zoo.zoo import SR_FACTOR

    device = resolve_device(device)
    if dtype not in ("float32", "bfloat16"):
        raise StmZooError(f"Unknown compute dtype {dtype!r}: use float32 or bfloat16.")
    network_config = get_method(family).network_config(size)
    # PyTorch's default initialisers draw from the global RNG: fork it so the caller's is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = UNet(network_config)
        # The zero-initialised output layer would make every output identical (the network
        # predicts 0); a random one makes outputs depend on every layer, as trained ones do.
        network.out_conv.reset_parameters()
    network.eval().requires_grad_(False)
    network.to(device=device, dtype=getattr(torch, dtype))
    if channels_last:
        network.to(memory_format=torch.channels_last)
    config = EntryConfig(
        task=task,
        family=family,
        size=size,
        network=network_config.to_dict(),
        sr_factor=SR_FACTOR[task],
        training={"note": "random initialisation (benchmark only)"},
    )
    return LoadedModel(config, network, device, dtype, "random-init")


def _synchronize(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def step_timing(
    model: LoadedModel,
    steps: int = 1,
    size: int = TILE_PX,
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
) -> Timing:
    """Time the family's sampler on random (batch, 1, size, size) inputs.

    Runs `get_method(family).sample(net, cond, steps, noise)` under `torch.inference_mode` and,
    for a bfloat16 model, bf16 autocast, as `stm_zoo.inference.make_tile_fn` does; the inputs
    are in the memory layout of the network's weights.

    Args:
        model: from `random_model` or `load_model`.
        steps: sampler steps per run (1: the per-step cost).
        size: H = W in pixels.
        batch: images per run.
        repeats: timed runs; warmup: untimed runs first (oneDNN / cuDNN pick kernels then).

    Returns:
        The seconds of each timed run.
    """
    import torch

    if repeats < 1:
        raise StmZooError(f"repeats must be at least 1, got {repeats}.")
    method = model.config.method()
    generator = torch.Generator().manual_seed(0)
    layout = torch.channels_last if _channels_last(model) else torch.contiguous_format
    cond = torch.rand(batch, 1, size, size, generator=generator).mul(2).sub(1)
    noise = torch.randn(batch, 1, size, size, generator=generator)
    cond = cond.to(model.device, memory_format=layout)
    noise = noise.to(model.device, memory_format=layout)
    sync = _synchronize(model.device)
    autocast = torch.autocast(
        device_type=model.device.split(":")[0],
        dtype=torch.bfloat16,
        enabled=model.dtype == "bfloat16",
    )
    seconds = []
    with torch.inference_mode(), autocast:
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            method.sample(model.network, cond, steps, noise)
            sync()
            if i >= warmup:
                seconds.append(time.perf_counter() - start)
    return Timing(tuple(seconds), load_average())


def _channels_last(model: LoadedModel) -> bool:
    """Whether the network's convolution weights are stored channels_last."""
    import torch

    weight = next(p for p in model.network.parameters() if p.ndim == 4)
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def evaluations_per_step(family: str) -> int:
    """Network evaluations in one sampler step: 2 for flow matching's RK2 midpoint, else 1."""
    return 2 if family == "fm" else 1


def synthetic_scan(size: int = 512, seed: int = 0) -> np.ndarray:
    """A (size, size) float32 stand-in for a Si(001):H scan: dimer rows, defects, line noise.

    Only its shape and a realistic spread of values matter to a benchmark.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    period_px = 0.768 / DEFAULT_PIXEL_SIZE_NM  # dimer-row period 0.768 nm at the paper's pitch
    image = 0.5 * np.cos(2 * np.pi * x / period_px) ** 2
    image += 0.2 * np.cos(2 * np.pi * y / (period_px / 2))
    for cy, cx in rng.uniform(0, size, (size // 16, 2)):
        image -= 0.8 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 8.0)
    image += rng.normal(0, 0.05, (size, size)) + rng.normal(0, 0.1, (size, 1))
    return image.astype(np.float32)


def restore_timing(
    model: LoadedModel,
    image: np.ndarray,
    steps: int = 2,
    repeats: int = 3,
    warmup: int = 1,
    **restore_options: int,
) -> tuple[Timing, np.ndarray]:
    """Time `stm_zoo.inference.restore` end to end on one image.

    Args:
        model: the model to run (passed as `restore(..., model=model)`).
        image: (H, W) float32 scan, taken to be at the model's pixel size.
        steps: sampler steps.
        repeats: timed runs; warmup: untimed runs first.
        **restore_options: `tile`, `overlap`, `batch_size` for `restore`.

    Returns:
        (timing, the restored image of the last run (H, W) float32).
    """
    from stm_zoo.inference import restore
    from stm_zoo.io.scan import Scan

    # A Scan whose pixels are the model's, so restore() resamples nothing.
    h, w = image.shape
    pitch_m = model.config.pixel_size_nm * 1e-9
    scan = Scan(np.asarray(image, dtype=np.float32), scan_size_m=(w * pitch_m, h * pitch_m))
    seconds, result = [], None
    for i in range(warmup + repeats):
        sync = _synchronize(model.device)
        sync()
        start = time.perf_counter()
        result = restore(
            scan,
            task=model.config.task,
            family=model.config.family,
            size=model.config.size,
            steps=steps,
            seed=0,
            model=model,
            **restore_options,
        )
        sync()
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    assert result is not None
    return Timing(tuple(seconds), load_average()), result.scan.data


def naive_timing(
    model: LoadedModel,
    image: np.ndarray,
    steps: int = 2,
    repeats: int = 1,
    warmup: int = 0,
    overlap: int = 32,
) -> tuple[Timing, np.ndarray]:
    """The baseline every speed-up is measured against: the engine's work without its speed-ups.

    The same tiles, per-tile normalisation, shared noise field, sampler, map back to the input's
    units and blending as `stm_zoo.inference.restore`, but one tile per network call, in fp32
    with NCHW (contiguous) inputs, whatever `model` is.

    Returns:
        (timing, the restored image (H, W) float32).
    """
    import torch

    from stm_zoo.inference import fit_back
    from stm_zoo.tiling import tiled_map

    method = model.config.method()

    def one_tile(tiles: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        lo = tiles.min(axis=(1, 2), keepdims=True)
        span = np.maximum(tiles.max(axis=(1, 2), keepdims=True) - lo, np.finfo(np.float32).tiny)
        normed = ((tiles - lo) / span * 2.0 - 1.0).astype(np.float32)
        cond = torch.from_numpy(normed[:, None]).to(model.device)
        start = None if noise is None else torch.from_numpy(noise[:, None]).to(model.device)
        with torch.inference_mode():
            out = method.sample(model.network, cond, steps, start)
        return (fit_back(out[:, 0].float().cpu().numpy(), normed) + 1.0) / 2.0 * span + lo

    # restore()'s noise field for seed 0 (one sample), so outputs are comparable.
    field = np.random.default_rng([0, 0]).standard_normal(image.shape).astype(np.float32)
    seconds, out = [], image
    for i in range(warmup + repeats):
        sync = _synchronize(model.device)
        sync()
        begin = time.perf_counter()
        out = tiled_map(one_tile, image, model.config.tile_size, overlap, 1, field=field)
        sync()
        if i >= warmup:
            seconds.append(time.perf_counter() - begin)
    return Timing(tuple(seconds), load_average()), out


def psnr_db(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of `image` against `reference` over the reference's value range (dB; inf if equal)."""
    reference = reference.astype(np.float64)
    mse = float(np.mean((image.astype(np.float64) - reference) ** 2))
    span = float(np.ptp(reference))
    return math.inf if mse == 0 else 10 * math.log10(span**2 / mse)


# --------------------------------------------------------------------------------------------------
# The benchmark


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
        naive: run `naive_timing` (batch 1, fp32, NCHW inputs) instead of `restore`.
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


def _params_m(model: LoadedModel) -> float:
    return sum(p.numel() for p in model.network.parameters()) / 1e6


def _devices(requested: list[str]) -> list[str]:
    import torch

    if not requested:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [resolve_device(d) for d in requested]


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
        factory: builds the models, called like `random_model` (default: `random_model`).

    Returns:
        The measurements.
    """
    import torch

    from stm_zoo.tiling import count_tiles

    say = progress or (lambda line: None)
    build = factory or random_model
    steps_rows: list[StepRow] = []
    e2e_rows: list[EndToEndRow] = []
    with _threads(threads):
        for device in _devices(devices or []):
            usable = [m for m in modes if m.dtype == "float32" or _bf16_ok(device)]
            for family, size in models:
                built = {
                    m.name: build("restore", family, size, device, m.dtype, m.channels_last)
                    for m in usable
                }
                say(f"{device} {model_label(family, size)}: one step, {len(built)} configurations")
                timings = _interleaved(
                    {
                        name: partial(step_timing, model, 1, step_size, 1)
                        for name, model in built.items()
                    },
                    repeats,
                    warmup=2,
                )
                params = _params_m(next(iter(built.values())))
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
                options = {"overlap": variant.overlap}
                if not variant.naive:
                    options.update(tile=tile, batch_size=variant.batch_size)
                timer = naive_timing if variant.naive else restore_timing
                runs[variant.key] = partial(
                    _keep_output, timer, model, image, e2e_steps, outputs, variant.key, options
                )
            say(f"{device} {e2e_size}x{e2e_size} restore: {len(chosen)} configurations")
            timings = _interleaved(runs, max(1, repeats // 2), warmup=1)
            reference = outputs[chosen[0].key]
            for variant in chosen:
                e2e_rows.append(
                    EndToEndRow(
                        variant,
                        device,
                        tiles[variant.key],
                        timings[variant.key],
                        psnr_db(outputs[variant.key], reference),
                    )
                )
        used_threads = torch.get_num_threads()
    return BenchReport(steps_rows, e2e_rows, used_threads, e2e_size, e2e_steps, e2e_model)


def _interleaved(
    runs: dict[str, Callable[..., Timing]], repeats: int, warmup: int
) -> dict[str, Timing]:
    """Time several configurations round-robin, one run each per round, so that a change of the
    machine's load during the benchmark affects them all alike (their ratios stay fair).

    Args:
        runs: name -> a function called as f(repeats=1, warmup=0) returning a one-run Timing.
        repeats: timed rounds; warmup: untimed rounds first.
    """
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    loads: dict[str, float] = {}
    for i in range(warmup + repeats):
        for name, run_once in runs.items():
            timing = run_once(repeats=1, warmup=0)
            if i >= warmup:
                seconds[name].extend(timing.seconds)
                loads[name] = timing.load
    return {name: Timing(tuple(seconds[name]), loads[name]) for name in runs}


def _keep_output(
    timer: Callable[..., tuple[Timing, np.ndarray]],
    model: LoadedModel,
    image: np.ndarray,
    steps: int,
    outputs: dict[str, np.ndarray],
    key: str,
    options: dict[str, int],
    repeats: int = 1,
    warmup: int = 0,
) -> Timing:
    """Run `timer` (restore_timing or naive_timing) and keep its output under `outputs[key]`."""
    timing, outputs[key] = timer(model, image, steps, repeats, warmup, **options)
    return timing


def _bf16_ok(device: str) -> bool:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return True


# --------------------------------------------------------------------------------------------------
# Markdown


def _ms(t: Timing) -> str:
    return f"{t.min * 1e3:.0f} / {t.median * 1e3:.0f}"


def step_table(report: BenchReport) -> str:
    """Per-step latency (ms, min / median) per model, mode and device, beside the paper's."""
    modes = list(dict.fromkeys(m for row in report.steps for m in row.timings))
    head = (
        "| model | device | params (M) | evals/step | "
        + " | ".join(f"{m} (ms/step)" for m in modes)
        + " | best vs fp32 | paper CPU (ms/step) | paper GPU (ms/step) | load |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in report.steps:
        cells = [_ms(row.timings[m]) if m in row.timings else "-" for m in modes]
        base = row.timings.get(modes[0])
        best = min(t.min for t in row.timings.values())
        ratio = f"{base.min / best:.2f}x" if base else "-"
        paper = PAPER_STEP_SECONDS.get((row.family, row.size))
        paper_cpu = f"{paper[0] * 1e3:.0f}" if paper else "-"
        paper_gpu = f"{paper[1] * 1e3:.0f}" if paper else "-"
        load = max(t.load for t in row.timings.values())
        lines.append(
            f"| {model_label(row.family, row.size)} | {row.device} | {row.params_m:.2f} | "
            f"{evaluations_per_step(row.family)} | "
            + " | ".join(cells)
            + f" | {ratio} | {paper_cpu} | {paper_gpu} | {load:.1f} |"
        )
    return "\n".join(lines)


def image_table(report: BenchReport) -> str:
    """Paper Table XIV: seconds per 128x128 image = steps x the best measured per-step time."""
    lines = [
        "| model | steps | device | ours: steps x best per-step (s) | paper CPU (s) "
        "| paper GPU (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.steps:
        best = min(t.min for t in row.timings.values())
        for (family, size, steps), (cpu, gpu) in PAPER_IMAGE_SECONDS.items():
            if (family, size) == (row.family, row.size):
                lines.append(
                    f"| {model_label(family, size)} | {steps} | {row.device} | "
                    f"{steps * best:.3f} | {cpu:.2f} | {gpu:.2f} |"
                )
    return "\n".join(lines)


def end_to_end_table(report: BenchReport) -> str:
    """End-to-end restore times of each variant, as ratios against the first (naive) one."""
    family, size = report.e2e_model
    lines = [
        "| configuration | device | tiles | seconds (min / median) | speed-up vs naive | "
        "PSNR vs naive output (dB) | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.end_to_end:
        first = next(r for r in report.end_to_end if r.device == row.device)
        base = first.timing.min
        if row is first:
            psnr = "reference"
        elif math.isinf(row.psnr_vs_reference):
            psnr = "identical"
        else:
            psnr = f"{row.psnr_vs_reference:.1f}"
        lines.append(
            f"| {row.variant.name} | {row.device} | {row.tiles} | "
            f"{row.timing.min:.2f} / {row.timing.median:.2f} | {base / row.timing.min:.2f}x | "
            f"{psnr} | {row.timing.load:.1f} |"
        )
    title = (
        f"{report.e2e_size}x{report.e2e_size} scan, {model_label(family, size)}, "
        f"{report.e2e_steps} steps, through stm_zoo.inference.restore"
    )
    return f"{title}\n\n" + "\n".join(lines)


def markdown(report: BenchReport, command: str = "python -m stm_zoo bench") -> str:
    """The whole report as markdown, with how it was measured and how to re-run it."""
    text = f"""## Per-step latency at 128x128, batch 1

Random-initialised networks with the zoo's architectures (latency does not depend on the weights'
values). One step = {evaluations_per_step("fm")} network evaluations for FM (RK2 midpoint), 1 for
DDIM, 1 forward pass for the autoencoder. Milliseconds, min / median over the repeats (the
configurations of a model timed round-robin); torch threads: {report.threads},
{OMP_ENV}={report.omp_wait_policy}; load = 1-minute load average at the end of the measurement.
The paper's numbers (Table VIII) are for an AMD Ryzen 5 2600 (6 cores) and an RTX 3060 Ti.

{step_table(report)}

## Per 128x128 image (paper Table XIV)

{image_table(report)}
"""
    if report.end_to_end:
        text += f"""
## End-to-end restore

{end_to_end_table(report)}

Speed-ups are against the naive baseline measured in the same run, round-robin with the others:
the engine's work (same tiles, normalisation, noise, sampler, blending) one tile per network call
in fp32 with NCHW inputs. "PSNR vs naive output" measures how much a configuration changes the
result (over the output's range; > 60 dB: float rounding only).
"""
    return text + f"\nRe-run: `{command}`\n"


# --------------------------------------------------------------------------------------------------
# CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m stm_zoo bench`."""
    parser.add_argument(
        "--device",
        nargs="+",
        default=[],
        choices=("auto", "cpu", "cuda"),
        help="devices to time (default: cpu, and cuda when available)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--size", type=int, default=512, help="edge of the end-to-end test scan")
    parser.add_argument("--steps", type=int, default=2, help="sampler steps of the end-to-end run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="FAMILY-SIZE",
        help="per-step table rows, e.g. fm-small ddim-large (default: the paper's five)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        metavar="KEY",
        help="end-to-end configurations, the first being the reference: "
        + ", ".join(v.key for v in VARIANTS)
        + " (default: all)",
    )
    parser.add_argument(
        "--skip-e2e", action="store_true", help="only the per-step table, no end-to-end restore"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    parser.add_argument(
        "--omp-wait-policy",
        choices=("PASSIVE", "ACTIVE", "inherit"),
        default="PASSIVE",
        help="OpenMP threads sleep (PASSIVE, default) or spin (ACTIVE) between parallel regions; "
        "spinning threads slow everything down many times on a machine shared with other work",
    )


def _set_omp_wait_policy(policy: str) -> None:
    """Set OMP_WAIT_POLICY for this process, which works only before torch loads OpenMP."""
    import sys

    if policy == "inherit":
        return
    if "torch" in sys.modules:
        if os.environ.get(OMP_ENV) != policy:
            log.warning("torch is already imported: %s stays %s", OMP_ENV, os.environ.get(OMP_ENV))
        return
    os.environ[OMP_ENV] = policy


def _parse_variants(keys: list[str] | None) -> tuple[Variant, ...]:
    if not keys:
        return VARIANTS
    by_key = {v.key: v for v in VARIANTS}
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise StmZooError(
            f"Unknown --variants {' '.join(unknown)}: choose from {', '.join(by_key)}."
        )
    return tuple(by_key[k] for k in keys)


def _parse_models(names: list[str] | None) -> tuple[tuple[str, str], ...]:
    if not names:
        return BENCH_MODELS
    parsed = []
    for name in names:
        family, _, size = name.rpartition("-")
        if not family or size not in ("small", "large"):
            raise StmZooError(f"--models takes FAMILY-SIZE names such as fm-small, not {name!r}.")
        parsed.append((family, size))
    return tuple(parsed)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print (and optionally write) the markdown report."""
    from tqdm import tqdm

    if args.repeats < 1:
        raise StmZooError(f"--repeats must be at least 1, got {args.repeats}.")
    _set_omp_wait_policy(args.omp_wait_policy)
    if args.size < TILE_PX or args.size % 4:
        raise StmZooError(
            f"--size must be a multiple of 4 and at least {TILE_PX}, not {args.size}."
        )
    report = run_bench(
        devices=args.device,
        repeats=args.repeats,
        models=_parse_models(args.models),
        e2e_variants=() if args.skip_e2e else _parse_variants(args.variants),
        e2e_size=args.size,
        e2e_steps=args.steps,
        threads=args.threads,
        progress=lambda line: tqdm.write(line) if log.isEnabledFor(logging.INFO) else None,
    )
    text = markdown(report)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0

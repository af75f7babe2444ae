"""What the inference benchmark times: one sampler step of a network, `restore` end to end, and
the naive baseline; on networks with random weights and a synthetic scan.

Each measurement is built as a function doing one run (`step_fn`, `restore_fn`, `naive_fn`), so
that `stm_zoo.timing` can time one configuration (`step_timing`, ...) or several round-robin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stm_zoo import paper
from stm_zoo.entry_format import EntryConfig
from stm_zoo.errors import StmZooError
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM
from stm_zoo.timing import Timing, time_runs
from stm_zoo.zoo import LoadedModel, resolve_device

TILE_PX = 128
BENCH_MODELS: tuple[tuple[str, str], ...] = tuple(paper.step_seconds())
"""The (family, size) rows of the paper's Table VIII, in its order. ddim-fft large has the ddim
large network (same time)."""


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
    from stm_zoo.registry import SR_FACTOR

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
        network=network_config,
        sr_factor=SR_FACTOR[task],
        training={"note": "random initialisation (benchmark only)"},
    )
    return LoadedModel(config, network, device, dtype, "random-init")


def params_m(model: LoadedModel) -> float:
    """The network's parameters in millions."""
    return sum(p.numel() for p in model.network.parameters()) / 1e6


def _channels_last(model: LoadedModel) -> bool:
    """Whether the network's convolution weights are stored channels_last."""
    import torch

    weight = next(p for p in model.network.parameters() if p.ndim == 4)
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def step_fn(
    model: LoadedModel, steps: int = 1, size: int = TILE_PX, batch: int = 1
) -> Callable[[], None]:
    """One run of the family's sampler on fixed random (batch, 1, size, size) inputs.

    Runs `method.sample(net, cond, steps, noise)` under `torch.inference_mode` and the model's
    autocast (`stm_zoo.nn.precision.autocast`), as `stm_zoo.inference.make_tile_fn` does; the
    inputs are in the memory layout of the network's weights.

    Args:
        model: from `random_model` or `load_model`.
        steps: sampler steps per run (1: the per-step cost).
        size: H = W in pixels; batch: images per run.
    """
    import torch

    from stm_zoo.nn.precision import autocast

    method = model.config.method()
    generator = torch.Generator().manual_seed(0)
    layout = torch.channels_last if _channels_last(model) else torch.contiguous_format
    cond = torch.rand(batch, 1, size, size, generator=generator).mul(2).sub(1)
    noise = torch.randn(batch, 1, size, size, generator=generator)
    cond = cond.to(model.device, memory_format=layout)
    noise = noise.to(model.device, memory_format=layout)

    def run() -> None:
        with torch.inference_mode(), autocast(model.device, model.dtype):
            method.sample(model.network, cond, steps, noise)

    return run


def step_timing(
    model: LoadedModel,
    steps: int = 1,
    size: int = TILE_PX,
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
) -> Timing:
    """Time `step_fn(model, steps, size, batch)`: `repeats` runs after `warmup` untimed ones
    (oneDNN / cuDNN pick their kernels on the first)."""
    if repeats < 1:
        raise StmZooError(f"repeats must be at least 1, got {repeats}.")
    return time_runs(step_fn(model, steps, size, batch), repeats, warmup, model.device)


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


def restore_fn(
    model: LoadedModel, image: np.ndarray, steps: int = 2, **restore_options: int
) -> Callable[[], np.ndarray]:
    """One run of `stm_zoo.restore` on `image`, returning the restored (H, W) float32 image.

    Args:
        model: the model to run (passed as `restore(..., model=model)`).
        image: (H, W) float32 scan, taken to be at the model's pixel size (nothing resampled).
        steps: sampler steps (seed 0, one sample).
        **restore_options: `tile`, `overlap`, `batch_size` for `restore`.
    """
    from stm_zoo import restore
    from stm_zoo.io.scan import Scan

    h, w = image.shape
    pitch_m = model.config.pixel_size_nm * 1e-9
    scan = Scan(np.asarray(image, dtype=np.float32), scan_size_m=(w * pitch_m, h * pitch_m))
    entry = model.config

    def run() -> np.ndarray:
        result = restore(
            scan,
            task=entry.task,
            family=entry.family,
            size=entry.size,
            steps=steps,
            seed=0,
            model=model,
            **restore_options,
        )
        return result.scan.data

    return run


def naive_fn(
    model: LoadedModel, image: np.ndarray, steps: int = 2, overlap: int = 32
) -> Callable[[], np.ndarray]:
    """One run of the baseline every speed-up is measured against: the engine's tile function
    (`stm_zoo.inference.make_tile_fn`: per-tile normalisation, sampler, map back to the input's
    units) over the same tiles, shared noise field and blending (`stm_zoo.tiling.tiled_map`) as
    `restore`, one tile per network call, without restore()'s input checks and warnings. The
    benchmark builds it on fp32 weights in NCHW.

    Returns:
        A function returning the restored (H, W) float32 image.
    """
    from stm_zoo.inference import make_tile_fn
    from stm_zoo.tiling import tiled_map

    tile_fn = make_tile_fn(model, steps, "the benchmark scan")
    # restore()'s noise field for seed 0 (its first sample), so the outputs are comparable.
    field = np.random.default_rng([0, 0]).standard_normal(image.shape).astype(np.float32)

    def run() -> np.ndarray:
        return tiled_map(tile_fn, image, model.config.tile_size, overlap, 1, field=field)

    return run


def keep_output(
    run: Callable[[], np.ndarray], outputs: dict[str, np.ndarray], key: str
) -> Callable[[], None]:
    """`run`, keeping what its latest call returned as `outputs[key]`."""

    def kept() -> None:
        outputs[key] = run()

    return kept


def timed_output(
    run: Callable[[], np.ndarray], repeats: int = 1, warmup: int = 0, device: str = "cpu"
) -> tuple[Timing, np.ndarray]:
    """Time `run` (e.g. `restore_fn(...)` or `naive_fn(...)`) and keep what it returns.

    Returns:
        (timing, the output of the last run).
    """
    outputs: dict[str, np.ndarray] = {}
    timing = time_runs(keep_output(run, outputs, "out"), repeats, warmup, device)
    return timing, outputs["out"]


def psnr_vs(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of `image` against `reference` over the reference's value range (inf if equal):
    how much a configuration changes the result, in `stm_zoo.metrics`' definition."""
    from stm_zoo.metrics import psnr

    return psnr(image, reference, data_range=float(np.ptp(reference)))

"""Per-evaluation latency of a U-Net: the unit cost of every sampler step.

`python -m stm_zoo.nn.benchmark [--size 128] [--batch 1] [--repeats 20]` prints a markdown table of
the small, large and autoencoder presets in fp32, channels_last and bf16 autocast (timed with
`stm_zoo.timing`, precision from `stm_zoo.nn.precision`).
"""

from __future__ import annotations

import argparse

import torch

from stm_zoo.nn.precision import autocast
from stm_zoo.nn.unet import UNet, UNetConfig
from stm_zoo.timing import Timing, markdown_table, time_runs


def forward_latency(
    config: UNetConfig,
    size: int = 128,
    batch: int = 1,
    channels_last: bool = False,
    bf16: bool = False,
    repeats: int = 20,
    warmup: int = 3,
    device: str = "cpu",
) -> Timing:
    """Time `UNet(config)` on random (batch, 1, size, size) inputs under `torch.inference_mode`.

    Args:
        config: the network to build (weights are the random initialisation; timing does not
            depend on their values).
        size: H = W in pixels (a multiple of `config.size_multiple`).
        batch: images per forward pass.
        channels_last: NHWC memory layout for the weights and inputs.
        bf16: run under bf16 autocast (weights stay fp32).
        repeats: timed passes; warmup: untimed passes first (oneDNN picks kernels on the first).
        device: "cpu" or a CUDA device (synchronised around each pass).

    Returns:
        The seconds of each timed forward pass.
    """
    net = UNet(config).eval().to(device)
    x = torch.randn(batch, 1, size, size, device=device)
    cond = torch.randn(batch, 1, size, size, device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        cond = cond.contiguous(memory_format=torch.channels_last)
    inputs = (x, torch.full((batch,), 0.5, device=device), cond)
    if not config.time_conditioning:
        inputs = (None, None, cond)

    def forward() -> None:
        with torch.inference_mode(), autocast(device, "bfloat16" if bf16 else None):
            net(*inputs)

    return time_runs(forward, repeats, warmup, device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="H = W in pixels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    presets = {
        "small": UNetConfig.small(),
        "large": UNetConfig.large(),
        "autoencoder": UNetConfig.autoencoder(),
    }
    modes = {
        "fp32": (False, False),
        "fp32 channels_last": (True, False),
        "bf16 autocast": (False, True),
        "bf16 channels_last": (True, True),
    }
    print(f"threads: {torch.get_num_threads()}, input {args.batch}x1x{args.size}x{args.size}")
    rows = []
    for name, config in presets.items():
        params = sum(p.numel() for p in UNet(config).parameters()) / 1e6
        cells = []
        for channels_last, bf16 in modes.values():
            t = forward_latency(
                config, args.size, args.batch, channels_last, bf16, args.repeats, 3, args.device
            )
            cells.append(f"{t.min * 1e3:.1f} / {t.median * 1e3:.1f}")
        rows.append([name, f"{params:.2f}", *cells])
    header = ["network", "params (M)", *(f"{m} min / median (ms)" for m in modes)]
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

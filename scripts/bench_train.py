"""Training throughput of every zoo network, and our training step against a plain PyTorch loop.

    python scripts/bench_train.py [--batch 16] [--rounds 4] [--device cpu] [--threads N]
                                  [--models fm-small,ddim-small,...] [--no-variants] [--no-loop]

Prints markdown tables (samples/s = batch / median seconds per step, 128x128 tiles):
1. every network (fm / ddim small and large, ddim-fft large, ae large) with our `train_step`
   (fused AdamW, gradient clipping, warm-up/cosine schedule, EMA) against a plain loop on the
   same network and batch (the family's loss, backward, default AdamW, no EMA/clip/autocast);
2. for the small flow-matching network: bf16 autocast, channels_last, both, and torch.compile;
3. the whole `training.train.train` loop (shard reading, DataLoader, logging) on a small
   synthetic dataset, from its CSV log.
Variants of one table are timed in interleaved rounds and reported as medians, so that load from
other processes on a shared machine affects them alike.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stm_zoo.methods import get_method  # noqa: E402
from stm_zoo.timing import (  # noqa: E402
    interleaved,
    load_average,
    markdown_row,
    markdown_table,
)
from training.checkpoint import TrainState  # noqa: E402
from training.configs import TrainConfig  # noqa: E402
from training.distributed import Distributed  # noqa: E402
from training.network import build_network  # noqa: E402
from training.precision import autocast_dtype  # noqa: E402
from training.run_log import LOG_NAME  # noqa: E402
from training.train import train, train_step  # noqa: E402

ALL_MODELS = ("fm-small", "ddim-small", "fm-large", "ddim-large", "ddim-fft-large", "ae-large")


def _entry(name: str) -> tuple[str, str]:
    family, size = name.rsplit("-", 1)
    return family, size


def _inputs(batch: int, device: torch.device, channels_last: bool = False):
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(batch, 1, 128, 128, generator=generator) * 2 - 1
    degraded = (clean + 0.1 * torch.randn(clean.shape, generator=generator)).clamp(-1, 1)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    return (t.to(device).contiguous(memory_format=memory) for t in (clean, degraded))


def ours(
    name: str,
    batch: int,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
    compile_net: bool = False,
) -> Callable[[], None]:
    """Our training step (`training.train.train_step`) for one network."""
    family, size = _entry(name)
    config = TrainConfig(
        task="restore",
        family=family,
        size=size,
        batch=batch,
        precision=precision,
        channels_last=channels_last,
    )
    state = TrainState.create(config, device, Distributed())
    method = get_method(family)
    dtype = autocast_dtype(precision, device)
    net = torch.compile(state.model) if compile_net else state.model
    clean, degraded = _inputs(batch, device, channels_last)

    def step() -> None:
        train_step(net, state, method, clean, degraded, config, dtype)

    return step


def plain(name: str, batch: int, device: torch.device) -> Callable[[], None]:
    """The baseline: the same network and loss, backward, default AdamW, nothing else."""
    family, size = _entry(name)
    config = TrainConfig(task="restore", family=family, size=size, batch=batch)
    model = build_network(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    method = get_method(family)
    generator = torch.Generator(device=device).manual_seed(0)
    clean, degraded = _inputs(batch, device)

    def step() -> None:
        loss = method.loss(model, clean, degraded, generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def whole_loop(batch: int, device: str, steps: int, precision: str) -> float:
    """Median samples/s of `training.train.train` (fm-small) from its CSV, first row skipped."""
    from training.shards import build_dataset
    from training.sources import simulate_sources

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        sources = simulate_sources(3, seed=0, size_px=256, workers=1)
        build_dataset(
            sources, "restore", data, n_train=batch * 4, n_val=2, n_test=0, seed=0, workers=1
        )
        config = TrainConfig(
            task="restore",
            family="fm",
            size="small",
            steps=steps,
            batch=batch,
            val_every=0,
            val_samples=2,
            val_steps=(1,),
            log_every=1,
            checkpoint_every=10**6,
            num_workers=1,
            precision=precision,
        )
        result = train(
            config,
            data,
            Path(tmp) / "zoo",
            run_dir=Path(tmp) / "run",
            progress=False,
            device=device,
        )
        with open(result.run_dir / LOG_NAME, newline="") as f:
            rates = [float(row["samples_per_s"]) for row in csv.DictReader(f)][1:]
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per case")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", default=",".join(ALL_MODELS))
    parser.add_argument("--no-variants", action="store_true", help="skip bf16/channels_last/...")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile case")
    parser.add_argument("--no-loop", action="store_true", help="skip the whole-loop measurement")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch}, {args.rounds} timed rounds; load average at start "
        f"{load_average():.1f} on {os.cpu_count()} CPUs\n"
    )

    header = ["model", "params (M)", "ours (samples/s)", "plain fp32 loop (samples/s)"]
    print(markdown_table([*header, "ours / plain"]))
    for name in args.models.split(","):
        family, size = _entry(name)
        params = (
            sum(
                p.numel()
                for p in build_network(
                    TrainConfig(task="restore", family=family, size=size)
                ).parameters()
            )
            / 1e6
        )
        cases = {"ours": ours(name, args.batch, device), "plain": plain(name, args.batch, device)}
        timings = interleaved(cases, args.rounds, args.warmup, device)
        a, b = (args.batch / t.median for t in timings.values())
        cells = [name, f"{params:.2f}", f"{a:.2f}", f"{b:.2f}", f"{a / b:.0%}"]
        print(markdown_row(cells), flush=True)

    if not args.no_variants:
        name = "fm-small"
        precision_bf16 = "bf16"
        variants = {
            "plain fp32 loop": plain(name, args.batch, device),
            "ours fp32": ours(name, args.batch, device),
            "ours bf16 autocast": ours(name, args.batch, device, precision_bf16),
            "ours channels_last": ours(name, args.batch, device, channels_last=True),
            "ours bf16 + channels_last": ours(
                name, args.batch, device, precision_bf16, channels_last=True
            ),
        }
        if not args.no_compile:
            variants["ours torch.compile"] = ours(name, args.batch, device, compile_net=True)
        warmup = max(args.warmup, 2)
        try:
            timings = interleaved(variants, args.rounds, warmup, device)
        except Exception as error:  # noqa: BLE001 - report a failed compile, time the rest
            if args.no_compile:
                raise
            print(f"\n(torch.compile measurement failed: {type(error).__name__}: {error})")
            del variants["ours torch.compile"]
            timings = interleaved(variants, args.rounds, warmup, device)
        base = args.batch / timings["plain fp32 loop"].median
        print("\n" + markdown_table([f"{name} variant", "samples/s", "vs plain fp32 loop"]))
        for label, timing in timings.items():
            rate = args.batch / timing.median
            print(markdown_row([label, f"{rate:.2f}", f"{rate / base:.0%}"]), flush=True)

    if not args.no_loop:
        loop = "whole `train()` loop, fm-small (shards, DataLoader, EMA, logging)"
        print("\n" + markdown_table([loop, "samples/s"]))
        for precision in ("fp32", "auto"):
            rate = whole_loop(args.batch, args.device, args.rounds + 2, precision)
            chosen = autocast_dtype(precision, device)
            label = f"{precision} ({'bf16' if chosen is torch.bfloat16 else 'fp32'} here)"
            print(markdown_row([f"precision {label}", f"{rate:.2f}"]), flush=True)
    print(f"\nload average at end {load_average():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

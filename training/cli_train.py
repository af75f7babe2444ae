"""`python -m training train`: train one zoo entry from a preset refined by options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from stm_zoo.entry_format import EntryKey
from stm_zoo.errors import StmZooError
from training.configs import (
    CPU_SUFFIX,
    ZOO_CONFIGS,
    TrainConfig,
    add_config_arguments,
    config_from_args,
    preset,
)
from training.train import train


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m training train`: the TrainConfig fields plus data and folders."""
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="DIR",
        help="dataset folder from `python -m training data`",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="ZOO_DIR",
        help="zoo root; the entry goes to <task>/<model>-<size>/",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="checkpoint, log and grids (default ~/.cache/stm-zoo/runs/<task>/<model>-<size>, or "
        "$STM_ZOO_RUNS/<task>/<model>-<size>)",
    )
    parser.add_argument(
        "--preset",
        default="full",
        metavar="NAME",
        help="budget: 'full' (GPU), 'cpu' (small models on a CPU), or a name of "
        f"training.configs.ZOO_CONFIGS such as {next(iter(ZOO_CONFIGS))}",
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the run folder's checkpoint (default: yes)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="training device (under torchrun: the local rank's GPU)",
    )
    parser.add_argument(
        "--stop-at",
        type=int,
        default=None,
        metavar="STEP",
        help="end this session at STEP (checkpoint and entry written)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: torch's choice)",
    )
    group = parser.add_argument_group("training options (default: the preset's)")
    add_config_arguments(group)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The preset the arguments name, refined by every option given."""
    name = args.preset
    if name in ("full", "cpu"):
        missing = [
            flag
            for flag, value in (
                ("--task", args.task),
                ("--model", args.family),
                ("--size", args.size),
            )
            if value is None
        ]
        if missing:
            raise StmZooError(f"Give {', '.join(missing)} (or a full --preset name).")
        key = EntryKey(args.task, args.family, args.size)
        name = key.subdir + (CPU_SUFFIX if args.preset == "cpu" else "")
        if name not in ZOO_CONFIGS:
            raise StmZooError(
                f"There is no {args.preset} preset for {key}: the cpu budget exists for small "
                "models only; use --preset full and set --steps/--batch yourself."
            )
    base = preset(name)
    for attr, flag in (("task", "--task"), ("family", "--model"), ("size", "--size")):
        given = getattr(args, attr)
        if given is not None and given != getattr(base, attr):
            raise StmZooError(f"{flag} {given} contradicts --preset {args.preset}.")
    return config_from_args(args, base)


def run(args: argparse.Namespace) -> int:
    """Train and print where the entry went and its last validation metrics."""
    config = resolve_config(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = train(
        config,
        args.data,
        args.out,
        run_dir=args.run_dir,
        resume=args.resume,
        progress=True,
        device=args.device,
        stop_at=args.stop_at,
    )
    if result.entry_dir is not None:
        state = "complete" if result.completed else f"stopped, {config.steps} planned"
        print(
            f"{config.key}: {result.step} steps ({state}), {result.samples_seen} samples, "
            f"{result.wall_time_s / 60:.1f} min -> {result.entry_dir}"
        )
        print(json.dumps(result.metrics, indent=1))
    return 0

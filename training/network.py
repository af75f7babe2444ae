"""The family and the network of a run, built from its config: the family's U-Net preset with the
config's overrides, a seeded initialisation, and a warm start from a zoo entry."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stm_zoo.errors import StmZooError
from stm_zoo.methods import Method, get_method
from stm_zoo.nn import UNet, UNetConfig
from training.configs import TrainConfig


def config_method(config: TrainConfig) -> Method:
    """The family with the run's output parametrisation and training-time distribution."""
    return get_method(config.family, config.prediction, config.time_sampling, config.output_range)


def network_config(config: TrainConfig) -> UNetConfig:
    """The U-Net of the entry: the family's preset for the size, with the config's overrides."""
    base = config_method(config).network_config(config.size)
    overrides: dict[str, Any] = {}
    if config.global_context:
        overrides["global_context"] = True
    if config.channels:
        overrides["channels"] = config.channels
    if config.blocks_per_level:
        overrides["blocks_per_level"] = config.blocks_per_level
    elif config.channels and len(config.channels) != len(base.blocks_per_level):
        raise StmZooError("--channels changes the number of levels: give --blocks-per-level too.")
    if config.norm_groups:
        overrides["norm_groups"] = config.norm_groups
    if config.patch_size:
        overrides["patch_size"] = config.patch_size
    try:
        return dataclasses.replace(base, **overrides)
    except ValueError as error:
        raise StmZooError(f"The network overrides give an invalid U-Net: {error}.") from None


def build_network(config: TrainConfig) -> UNet:
    """The freshly initialised network, seeded by `config.seed` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return UNet(network_config(config))


def warm_start(model: nn.Module, entry_dir: str | Path) -> int:
    """Load the weights of the zoo entry in `entry_dir` into `model` where names and shapes match.

    Returns:
        The number of tensors loaded (parameters the entry lacks keep their initialisation, e.g. a
        new global-context branch, whose zero-initialised output leaves the network unchanged).

    Raises:
        StmZooError: no readable weights there, or none that fit this network.
    """
    from safetensors.torch import load_file

    path = Path(entry_dir) / "model.safetensors"
    try:
        weights = load_file(str(path))
    except (OSError, ValueError, RuntimeError) as error:
        raise StmZooError(f"--init-from {entry_dir}: cannot read {path} ({error}).") from None
    own = model.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise StmZooError(
            f"--init-from {entry_dir}: none of its weights fit this network; warm-start from an "
            "entry of the same size."
        )
    own.update({k: v.to(own[k].dtype) for k, v in fitting.items()})
    model.load_state_dict(own)
    return len(fitting)

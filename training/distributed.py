"""This process's place in a (possibly multi-process, `torchrun`) training run: its rank, its
device, and the collectives the loop needs.

Under `torchrun` (WORLD_SIZE > 1) the process group is initialised here (NCCL on CUDA, gloo on
CPU); a single process needs no group at all.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from stm_zoo.zoo import resolve_device


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    """Join the process group that `torchrun` describes in the environment (WORLD_SIZE > 1).

    Args:
        device: the requested device ("auto", "cpu", "cuda"): picks NCCL or gloo.

    Returns:
        The rank layout; `owns_group` says whether this call initialised the group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return Distributed()
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if resolve_device(device).startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        owns = True
    rank = dist.get_rank()
    local = int(os.environ.get("LOCAL_RANK", rank))
    return Distributed(rank, dist.get_world_size(), local, owns)


def training_device(requested: str, ranks: Distributed) -> torch.device:
    """The device of this process: under DDP on CUDA, GPU `LOCAL_RANK`; always with an index,
    which `torch.cuda.set_device` and DDP need."""
    name = resolve_device(requested)
    if name == "cuda":
        name = f"cuda:{ranks.local_rank if ranks.world > 1 else torch.cuda.current_device()}"
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def gather(obj: Any, ranks: Distributed) -> list[Any]:
    """`obj` of every rank, in rank order (a collective: every rank must call it)."""
    if ranks.world == 1:
        return [obj]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def device_text(device: torch.device, ranks: Distributed) -> str:
    """The hardware of the run as the entry's card states it, e.g. "cuda (NVIDIA H100) x 2"."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda ({name}) x {ranks.world}"
    cpu = platform.processor() or platform.machine()
    return f"cpu ({cpu}, {torch.get_num_threads()} threads) x {ranks.world}"


def mean_over_ranks(values: torch.Tensor, ranks: Distributed) -> torch.Tensor:
    """`values` averaged over the ranks (a collective under DDP: every rank must call it)."""
    values = values.detach().clone().float()
    if ranks.world > 1:
        dist.all_reduce(values)
        values /= ranks.world
    return values

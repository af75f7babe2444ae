"""The autocast dtype of a training run: bf16 where the hardware computes it natively, else fp32
(the autocast context itself is `stm_zoo.nn.precision.autocast`, shared with inference)."""

from __future__ import annotations

import torch

from stm_zoo.errors import StmZooError


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), not by emulation."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: plain fp32).

    "auto" is bf16 where the hardware computes it natively: CUDA GPUs with bf16 support, and
    CPUs with AVX512-BF16 or AMX, where scripts/bench_train.py measured bf16 autocast at 1.8x the
    fp32 training throughput of the small network with the same learning curve; fp32 elsewhere
    (emulated bf16 is slower than fp32).
    """
    if precision == "fp32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if precision == "bf16":
        if device.type == "cuda" and not native:
            raise StmZooError("--precision bf16 needs a GPU with bf16 support: use fp32.")
        return torch.bfloat16
    return torch.bfloat16 if native else None

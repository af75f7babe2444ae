"""The one autocast helper of the project: inference, benchmarks, training and validation enter
their mixed-precision context through `autocast`, so that "bf16" means the same everywhere."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast"]


def autocast(device: str | torch.device, dtype: str | torch.dtype | None):
    """The autocast context for computing on `device` in `dtype`; a no-op for fp32 or None.

    Args:
        device: "cpu", "cuda", "cuda:1" or a torch.device.
        dtype: None, "float32", "bfloat16", "float16" or the torch dtype.
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    device_type = device.type if isinstance(device, torch.device) else device.split(":")[0]
    return torch.autocast(device_type=device_type, dtype=dtype)

"""Neural networks: the conditional U-Net of the paper (small, large, autoencoder presets)."""

from __future__ import annotations

from stm_zoo.nn.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig"]

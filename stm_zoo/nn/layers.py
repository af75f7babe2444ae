"""Building blocks of the U-Net: time embedding, residual block, resampling, self-attention.

Every block takes and returns (B, C, H, W) feature maps; the residual block also takes the time
embedding (B, E) or None. None of them knows which generative objective trains the network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of a float time, as in the Transformer and improved-diffusion.

    Args:
        t: (B,) times; any float range, the frequencies resolve differences of ~1 up to
            `max_period`, so callers scale times to about [0, 1000] (see `UNetConfig.time_scale`).
        dim: embedding width (even).
        max_period: longest period of the sinusoids.

    Returns:
        (B, dim) float32: [cos(t w_0) .. cos(t w_{k-1}), sin(t w_0) .. sin(t w_{k-1})],
        w_i = max_period^(-i / k), k = dim / 2.
    """
    assert dim % 2 == 0, "the time embedding width must be even"
    half = dim // 2
    exponent = torch.arange(half, device=t.device, dtype=torch.float32) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def zero_(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters so that a residual branch starts as the identity."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv3x3 twice with a residual connection and an additive time bias.

    Args:
        in_channels, out_channels: feature widths; a 1x1 conv maps the skip when they differ.
        groups: GroupNorm groups (must divide both widths).
        embed_dim: width of the time embedding, or 0 for an unconditioned block.
        dropout: dropout probability before the second convolution.
    """

    def __init__(
        self, in_channels: int, out_channels: int, groups: int, embed_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(embed_dim, out_channels) if embed_dim else None
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        # The last conv starts at zero so every block is the identity at initialisation, which
        # keeps deep U-Nets trainable without warm-up tricks (improved-diffusion does the same).
        self.conv2 = zero_(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time is not None:
            assert emb is not None, "a time-conditioned block needs the time embedding"
            h = h + self.time(emb)[:, :, None, None].to(h.dtype)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve H and W with a strided 3x3 convolution (learned, unlike pooling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour then a 3x3 convolution (no checkerboard artefacts).

    The convolution also narrows the features to the finer level's width, which halves the cost of
    the convolutions that run at the finer resolution next.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class SelfAttention(nn.Module):
    """Multi-head self-attention over all H*W positions, residual, output projection zeroed.

    Args:
        channels: feature width C (divisible by `heads`).
        heads: number of attention heads.
        groups: GroupNorm groups.
    """

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        assert channels % heads == 0, "attention width must be divisible by the head count"
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        # (B, heads, HW, C/heads) for scaled_dot_product_attention, which picks a fused kernel.
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)

"""The conditional U-Net of the paper (Table I) and its configuration.

The network maps (noisy image, time, degraded image) to one image channel and knows nothing of
the objective that trains it: flow matching reads the output as a velocity, DDIM as the noise,
the autoencoder as the clean image (`stm_zoo.methods`).

Time rule (one for every family): the network embeds `t * config.time_scale` with sinusoids whose
frequencies resolve steps of ~1 up to periods of 10^4, so `time_scale` maps each family's own time
onto [0, 1000]: flow matching passes t in [0, 1] with `time_scale=1000`; DDIM passes the integer
step index in [0, 999] with `time_scale=1`. `stm_zoo.methods.get_method(...).network_config(size)`
sets it; the value is stored in config.json with the rest of the architecture.

Sizes: H and W must be multiples of `config.size_multiple` = patch_size * 2 ** (levels - 1): 8 for
the small preset (patch_size 2), 4 for the large and autoencoder presets; inference pads tiles to
that multiple.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from stm_zoo.nn.layers import Downsample, ResBlock, SelfAttention, Upsample, timestep_embedding

ADDED_FIELDS = ("residual", "global_context")
"""UNetConfig fields a config.json written before them may lack (their default is the old net)."""

_TYPE_WORDS = {
    "int": "an integer",
    "bool": "true or false",
    "float": "a number",
    "tuple[int, ...]": "a list of integers",
}


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of one U-Net; `to_dict()` is what config.json stores.

    Attributes:
        in_channels: channels stacked at the input: 1 (noisy image) + 1 (degraded image) for the
            generative families, 1 (degraded image only) for the autoencoder.
        out_channels: predicted channels (1: velocity, noise or clean image).
        channels: feature width per resolution level; level i runs at H / (patch_size * 2**i).
        blocks_per_level: residual blocks per level in the encoder (the decoder mirrors it).
            The presets put most blocks at the coarsest level, where a block costs a 16th of the
            compute it costs at full resolution for the same parameter count.
        middle_blocks: residual blocks in the middle (coarsest) stage.
        attention: a self-attention layer after the first middle block.
        attention_heads: heads of that layer.
        time_conditioning: embed a time input; False for the autoencoder (t must be None).
        time_scale: the network embeds `t * time_scale` (see the module docstring).
        norm_groups: GroupNorm groups; divides every width (concatenated skips included).
        dropout: dropout probability inside the residual blocks.
        patch_size: space-to-depth factor of the stem. 1 runs level 0 at full resolution (the
            paper); 2 folds each 2x2 pixel block into channels before the stem conv and unfolds
            the output with a pixel shuffle, so every level runs at half the resolution: the
            same parameters (+/- the stem and output convs) for a quarter of the compute, and
            lossless (no pixel is averaged away). The small preset uses 2 so that one network
            evaluation at 128x128 costs ~3 GFLOP instead of ~12 on a CPU.
        residual: add the conditioning image (the last input channel) to the output, so that the
            output is "the conditioning image plus a learnt correction". With the zero-initialised
            output conv the untrained network returns its conditioning image exactly: the identity
            start of the x0-parametrised families (`stm_zoo.methods`). Needs out_channels == 1.
        global_context: pool the coarsest features over the whole image (mean and max) and add
            them, through a zero-initialised linear map, to the embedding the decoder blocks
            receive. It lets every pixel see image-wide statistics (the [-1, 1] scaling of a
            tile, tip-change bands) that the convolutions' receptive field does not reach.
            Needs time conditioning (it rides on the time embedding).
    """

    in_channels: int = 2
    out_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_level: tuple[int, ...] = (1, 2, 4)
    middle_blocks: int = 2
    attention: bool = False
    attention_heads: int = 4
    time_conditioning: bool = True
    time_scale: float = 1.0
    norm_groups: int = 32
    dropout: float = 0.0
    patch_size: int = 1
    residual: bool = False
    global_context: bool = False

    def __post_init__(self) -> None:
        self._check_types()
        # Tuples even when built from JSON lists, so that configs stay hashable and comparable.
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "blocks_per_level", tuple(int(b) for b in self.blocks_per_level))
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError("in_channels and out_channels must be at least 1")
        if not self.channels or len(self.blocks_per_level) != len(self.channels):
            raise ValueError("channels and blocks_per_level need one entry per level")
        if min(self.channels) < 1:
            raise ValueError("every width in channels must be at least 1")
        if min(self.blocks_per_level) < 1 or self.middle_blocks < 1:
            raise ValueError("every level and the middle need at least one residual block")
        if self.norm_groups < 1 or any(c % self.norm_groups for c in self.channels):
            raise ValueError(f"norm_groups={self.norm_groups} must be >= 1 and divide every width")
        if self.attention_heads < 1 or (
            self.attention and self.channels[-1] % self.attention_heads
        ):
            raise ValueError(
                f"attention_heads={self.attention_heads} must be >= 1 and divide the attention "
                f"width {self.channels[-1]}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if not 0 < self.time_scale < math.inf:
            raise ValueError("time_scale must be positive and finite")
        if self.patch_size < 1:
            raise ValueError("patch_size must be at least 1")
        if self.residual and self.out_channels != 1:
            raise ValueError(
                "a residual network adds its conditioning image: out_channels must be 1"
            )
        if self.global_context and not self.time_conditioning:
            raise ValueError("global_context rides on the time embedding: needs time_conditioning")

    def _check_types(self) -> None:
        """Integers are integers, switches are booleans, rates are numbers (JSON gives any)."""

        def integer(value: Any) -> bool:
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)

        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                ok = integer(value)
            elif f.type == "bool":
                ok = isinstance(value, bool)
            elif f.type == "float":
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            else:  # tuple[int, ...]
                ok = isinstance(value, list | tuple) and all(integer(v) for v in value)
            if not ok:
                raise ValueError(
                    f"{f.name} must be {_TYPE_WORDS[f.type]}, not {type(value).__name__}"
                )

    def parameter_count(self) -> int:
        """Number of parameters `UNet(self)` will hold, computed without building it.

        It mirrors `UNet.__init__` layer by layer (tested against the built network), so that a
        config read from disk can be refused for its size before any memory is allocated.
        """
        c, emb, p2 = self.channels, self.embed_dim, self.patch_size**2

        def conv(cin: int, cout: int, k: int = 3) -> int:
            return cin * cout * k * k + cout

        def linear(cin: int, cout: int) -> int:
            return cin * cout + cout

        def res(cin: int, cout: int) -> int:
            skip = conv(cin, cout, 1) if cin != cout else 0
            time = linear(emb, cout) if emb else 0
            return 2 * cin + conv(cin, cout) + time + 2 * cout + conv(cout, cout) + skip

        def blocks(cin: int, cout: int, n: int) -> int:
            return res(cin, cout) + (n - 1) * res(cout, cout)

        total = conv(self.in_channels * p2, c[0])
        if self.time_conditioning:
            total += linear(c[0], emb) + linear(emb, emb)
        width = c[0]
        for level, (ch, n) in enumerate(zip(c, self.blocks_per_level, strict=True)):
            total += blocks(width, ch, n) + (conv(ch, ch) if level < self.levels - 1 else 0)
            width = ch
        total += self.middle_blocks * res(width, width)
        if self.attention:
            total += 2 * width + conv(width, 3 * width, 1) + conv(width, width, 1)
        if self.global_context:
            total += linear(2 * width, emb) + linear(emb, emb)
        for level in reversed(range(self.levels)):
            ch, n = c[level], self.blocks_per_level[level]
            if level < self.levels - 1:
                total += conv(width, ch)
                width = ch
            total += blocks(width + ch, ch, n)
            width = ch
        return total + 2 * width + conv(width, self.out_channels * p2)

    @property
    def levels(self) -> int:
        return len(self.channels)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (patch_size * 2 ** (levels - 1))."""
        return self.patch_size * 2 ** (self.levels - 1)

    @property
    def embed_dim(self) -> int:
        """Width of the time embedding MLP (0 without time conditioning)."""
        return 4 * self.channels[0] if self.time_conditioning else 0

    @classmethod
    def small(cls, **overrides: Any) -> UNetConfig:
        """Paper's small network: 3 levels [32, 64, 128], no attention, ~3.6 M parameters.

        Ours adds a 2x space-to-depth stem (`patch_size=2`) for CPU speed; see `patch_size`.
        """
        return replace(cls(patch_size=2), **overrides)

    @classmethod
    def large(cls, **overrides: Any) -> UNetConfig:
        """Paper's large network: [64, 128, 256] with central self-attention, ~14.7 M parameters."""
        return replace(cls(channels=(64, 128, 256), attention=True), **overrides)

    @classmethod
    def autoencoder(cls, **overrides: Any) -> UNetConfig:
        """The large network without the noise input or time conditioning (Table I's baseline)."""
        return cls.large(in_channels=1, time_conditioning=False, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of `to_dict`.

        Every field must be present, so that a stored config never silently picks up a default
        that may change between versions; the exceptions are the fields added later whose
        default reproduces the networks stored before them (`ADDED_FIELDS`).

        Raises:
            ValueError: missing, unknown or invalid fields.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data) - set(ADDED_FIELDS))
        if unknown or missing:
            raise ValueError(f"U-Net config fields unknown: {unknown}, missing: {missing}")
        return cls(**data)


class UNet(nn.Module):
    """Conditional U-Net: `forward(x, t, cond)` -> (B, out_channels, H, W).

    stem conv -> per level: residual blocks, then a strided-conv downsample -> middle: residual
    blocks with the optional self-attention after the first -> per level, coarsest first:
    upsample (nearest + conv to that level's width), concatenate the encoder's output of the same
    level, residual blocks -> GroupNorm, SiLU, output conv. Residual blocks are GroupNorm-SiLU-conv
    pairs with an additive time bias (`stm_zoo.nn.layers.ResBlock`).

    On CPU, convert the network and inputs to `torch.channels_last`: oneDNN's convolutions and
    GroupNorm run about twice as fast in that layout.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c, groups, emb, drop = config.channels, config.norm_groups, config.embed_dim, config.dropout
        if config.time_conditioning:
            self.time_mlp = nn.Sequential(nn.Linear(c[0], emb), nn.SiLU(), nn.Linear(emb, emb))
        p2 = config.patch_size**2
        self.stem = nn.Conv2d(config.in_channels * p2, c[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        width = c[0]
        for level, (ch, n) in enumerate(zip(c, config.blocks_per_level, strict=True)):
            blocks = []
            for _ in range(n):
                blocks.append(ResBlock(width, ch, groups, emb, drop))
                width = ch
            self.down.append(nn.ModuleList(blocks))
            if level < config.levels - 1:
                self.downsample.append(Downsample(ch))

        self.middle = nn.ModuleList(
            [ResBlock(width, width, groups, emb, drop) for _ in range(config.middle_blocks)]
        )
        self.attn = (
            SelfAttention(width, config.attention_heads, groups) if config.attention else None
        )

        self.global_mlp = None
        if config.global_context:
            # Mean and max of the coarsest features -> the decoder's embedding; zero-initialised
            # so that switching it on leaves an untrained (or warm-started) network unchanged.
            self.global_mlp = nn.Sequential(
                nn.Linear(2 * width, emb), nn.SiLU(), nn.Linear(emb, emb)
            )
            nn.init.zeros_(self.global_mlp[-1].weight)
            nn.init.zeros_(self.global_mlp[-1].bias)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(config.levels)):
            ch, n = c[level], config.blocks_per_level[level]
            if level < config.levels - 1:
                self.upsample.append(Upsample(width, ch))
                width = ch
            blocks = []
            width += ch  # the concatenated skip
            for _ in range(n):
                blocks.append(ResBlock(width, ch, groups, emb, drop))
                width = ch
            self.up.append(nn.ModuleList(blocks))

        self.out_norm = nn.GroupNorm(groups, width)
        self.out_conv = nn.Conv2d(width, config.out_channels * p2, 3, padding=1)
        # Zero output: the untrained network predicts 0 (the mean velocity / noise / image),
        # a neutral start for every objective.
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(
        self,
        x: torch.Tensor | None,
        t: torch.Tensor | float | None,
        cond: torch.Tensor | None,
    ) -> torch.Tensor:
        """Predict one channel from the noisy image, the time and the conditioning image.

        Args:
            x: (B, 1, H, W) noisy image, or None for the autoencoder.
            t: (B,) or scalar float time (see the module docstring for its scale), or None when
                the network has no time conditioning.
            cond: (B, 1, H, W) degraded (or slow-axis upsampled) image, stacked after `x` on the
                channel axis; H, W multiples of `config.size_multiple`.

        Returns:
            (B, out_channels, H, W) in the dtype of the computation (bf16 under autocast).

        Raises:
            ValueError: inputs that do not match the configuration.
        """
        inputs = [v for v in (x, cond) if v is not None]
        if not inputs:
            raise ValueError("the U-Net needs at least one of x and cond")
        h = torch.cat(inputs, dim=1) if len(inputs) > 1 else inputs[0]
        if h.ndim != 4 or h.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected {self.config.in_channels} input channels in (B, C, H, W), "
                f"got x and cond stacking to shape {tuple(h.shape)}"
            )
        m = self.config.size_multiple
        if h.shape[-2] % m or h.shape[-1] % m:
            raise ValueError(f"H and W must be multiples of {m}, got {tuple(h.shape[-2:])}")

        conditioning = h[:, -1:]
        # Follow the weights' dtype (a bf16 checkpoint gets bf16 inputs; autocast still applies).
        h = h.to(self.stem.weight.dtype)
        emb = self._embed_time(t, h)
        if self.config.patch_size > 1:
            h = nn.functional.pixel_unshuffle(h, self.config.patch_size)
        h = self.stem(h)
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < self.config.levels - 1:
                h = self.downsample[level](h)

        for i, block in enumerate(self.middle):
            h = block(h, emb)
            if i == 0 and self.attn is not None:
                h = self.attn(h)
        if self.global_mlp is not None:
            pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
            emb = emb + self.global_mlp(pooled).to(emb.dtype)

        for i, blocks in enumerate(self.up):
            if i > 0:
                h = self.upsample[i - 1](h)
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
        out = self.out_conv(nn.functional.silu(self.out_norm(h)))
        if self.config.patch_size > 1:
            out = nn.functional.pixel_shuffle(out, self.config.patch_size)
        if self.config.residual:
            out = out.float() + conditioning.float()
        return out

    def _embed_time(self, t: torch.Tensor | float | None, h: torch.Tensor) -> torch.Tensor | None:
        if not self.config.time_conditioning:
            if t is not None:
                raise ValueError("this network has no time conditioning: pass t=None")
            return None
        if t is None:
            raise ValueError("this network is time-conditioned: pass t")
        t = torch.as_tensor(t, dtype=torch.float32, device=h.device)
        t = t.expand(h.shape[0]) if t.ndim == 0 else t
        if t.shape != (h.shape[0],):
            raise ValueError(f"t must be a scalar or have shape ({h.shape[0]},), got {t.shape}")
        emb = timestep_embedding(t * self.config.time_scale, self.config.channels[0])
        return self.time_mlp(emb.to(h.dtype))

"""Issue 17, item 4: does the small U-Net see far enough to estimate image-wide quantities?

    python scripts/receptive_field.py [--entry zoo/restore/fm-small] [--data DIR]

Two numbers for a zoo entry's network:
  conv receptive field  the input pixels that can change the centre output pixel through the
                        convolutions alone (GroupNorm swapped for identity, so its image-wide
                        statistics do not count; random weights, so no path is zero by chance)
  sensitivity spread    for the trained network on real validation tiles (128x128, the inference
                        tile): the smallest centred squares holding 50 / 90 / 99 % of
                        |d output(centre) / d degraded input|, and the share from beyond 32 px
Prints a small table; the numbers are quoted in docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stm_zoo.nn import UNet  # noqa: E402
from stm_zoo.zoo import load_entry  # noqa: E402


def square_shares(grad: torch.Tensor, fractions=(0.5, 0.9, 0.99)) -> dict[float, int]:
    """Side of the smallest centred square holding each fraction of a (S, S) map's mass."""
    s = grad.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    radius = torch.maximum((yy - s // 2).abs(), (xx - s // 2).abs())
    total = grad.sum()
    out = {}
    for fraction in fractions:
        for r in range(s // 2 + 1):
            if grad[radius <= r].sum() >= fraction * total:
                out[fraction] = 2 * r + 1
                break
    return out


def conv_receptive_field(network: UNet, size: int = 768) -> int:
    """Width of the input region reaching the centre output pixel through convolutions only."""
    net = UNet(network.config).double()
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.GroupNorm):
                setattr(module, name, nn.Identity())
    if net.global_mlp is not None:
        net.global_mlp = None
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.05, generator=generator)
    cond = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    x = torch.zeros_like(cond)
    net(x, torch.full((1,), 0.5, dtype=torch.float64), cond)[0, 0, size // 2, size // 2].backward()
    reached = cond.grad[0, 0] != 0
    rows = torch.nonzero(reached.any(1)).flatten()
    return int(rows.max() - rows.min() + 1)


def trained_sensitivity(network: UNet, tiles: np.ndarray) -> tuple[dict[float, int], float]:
    """Gradient spread of the centre output pixel over (N, 128, 128) degraded tiles."""
    net = network.double().eval()
    s = tiles.shape[-1]
    total = torch.zeros(s, s, dtype=torch.float64)
    for tile in tiles:
        cond = torch.tensor(tile, dtype=torch.float64)[None, None].requires_grad_(True)
        x = torch.randn_like(cond)
        net(x, torch.zeros(1, dtype=torch.float64), cond)[0, 0, s // 2, s // 2].backward()
        total += cond.grad[0, 0].abs()
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    far = torch.maximum((yy - s // 2).abs(), (xx - s // 2).abs()) > 32
    return square_shares(total), float(total[far].sum() / total.sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", type=Path, default=Path("zoo/restore/fm-small"))
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache/stm-zoo/data/restore")
    parser.add_argument("--tiles", type=int, default=8)
    args = parser.parse_args()
    model = load_entry(args.entry)
    print(f"{args.entry}: conv receptive field {conv_receptive_field(model.network)} px")
    pairs = np.load(args.data / "val-00000.npy", mmap_mode="r")[: args.tiles]
    shares, far = trained_sensitivity(model.network, np.asarray(pairs[:, 1], dtype=np.float64))
    spread = ", ".join(f"{f:.0%} within {side} px" for f, side in shares.items())
    print(f"trained, {args.tiles} validation tiles: {spread}; {far:.0%} from beyond 32 px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

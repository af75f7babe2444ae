"""The tile runner of the restore pipeline (`stm_zoo.pipeline.restore`): a batch of tiles in the
scan's units -> per-tile normalisation to [-1, 1] (`stm_zoo.preprocess.normalise_tiles`) -> the
family's sampler under the one autocast (`stm_zoo.nn.precision.autocast`) -> back to the scan's
units. `stm_zoo.bench` times the same function.

Mapping a tile back to metres: the models are trained on pairs whose clean and degraded channels
are each normalised to [-1, 1] independently, so an output is "a clean image in its own [-1, 1]
range". We map it back with the affine map that best explains the normalised input tile from the
output (least squares with one round of outlier trimming, so that the removed artefacts do not
bias it), then undo the input tile's normalisation. For an identity model this is exact.
"""

from __future__ import annotations

import numpy as np

from stm_zoo.limits import check_finite_output
from stm_zoo.preprocess import normalise_tiles
from stm_zoo.tiling import TileFn
from stm_zoo.zoo import LoadedModel

__all__ = ["fit_back", "make_tile_fn"]


def fit_back(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Affine-map each output tile onto its (normalised) input tile.

    Args:
        output: (B, T, T) model outputs in [-1, 1].
        reference: (B, T, T) normalised inputs in [-1, 1].

    Returns:
        (B, T, T) a * output + b per tile, with (a, b) the trimmed least-squares fit.
    """
    mapped = np.empty_like(output)
    for i, (y, x) in enumerate(zip(output, reference, strict=True)):
        keep = np.ones(y.size, dtype=bool)
        yf, xf = y.ravel().astype(np.float64), x.ravel().astype(np.float64)
        for _ in range(2):
            var = yf[keep].var()
            if var < 1e-12:
                a, b = 0.0, float(xf[keep].mean())
                break
            a = float(np.mean((yf[keep] - yf[keep].mean()) * (xf[keep] - xf[keep].mean())) / var)
            b = float(xf[keep].mean() - a * yf[keep].mean())
            residual = np.abs(xf - (a * yf + b))
            mad = np.median(residual[keep])
            keep = residual <= max(3.0 * 1.4826 * mad, 1e-6)
        mapped[i] = (a * y + b).astype(output.dtype)
    return mapped


def make_tile_fn(model: LoadedModel, steps: int, name: str = "the scan") -> TileFn:
    """The function `tiled_map` calls: normalise tiles, sample, map back to input units.

    The returned function maps (B, T, T) tiles in the scan's units and the matching (B, T, T)
    noise (or None) to (B, T, T) restored tiles in the same units.

    Refuses (StmZooError) a batch of model outputs holding NaN or inf, naming `name`.
    """
    import torch

    from stm_zoo.nn.precision import autocast

    method = model.config.method()

    def run(tiles: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        normed, lo, span = normalise_tiles(tiles.astype(np.float32))
        layout = torch.channels_last
        cond = torch.from_numpy(normed[:, None]).to(model.device, memory_format=layout)
        noise_t = (
            None
            if noise is None
            else torch.from_numpy(noise[:, None]).to(model.device, memory_format=layout)
        )
        with torch.inference_mode(), autocast(model.device, model.dtype):
            out = method.sample(model.network, cond, steps, noise_t)
        out_np = out[:, 0].float().cpu().numpy()
        check_finite_output(out_np, model.key, name)
        return (fit_back(out_np, normed) + 1.0) / 2.0 * span + lo

    return run

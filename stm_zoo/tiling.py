"""Seamless tiling: run a tile-sized function over an image of any size and blend the results.

Tiles overlap; each tile's output is weighted by a squared-cosine (Hann) window and the weights
are divided out per pixel, so the blend weights at every pixel sum to exactly one: an identity
function reproduces the image to float precision, and neighbouring tiles fade into each other
without seams. Images smaller than a tile are reflect-padded. Extra per-pixel fields (the shared
noise field of a generative sampler) are cut into the same tiles, so overlapping tiles see the
same noise and agree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TileFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering [0, length) with at least `overlap` pixels shared.

    The last tile is aligned to the end, so every tile lies fully inside the (padded) image.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {tile}")
    count = int(np.ceil((length - tile) / stride)) + 1
    # spread the tiles evenly so the overlap is the same everywhere
    return [int(round(i * (length - tile) / (count - 1))) for i in range(count)]


def blend_window(tile: int) -> np.ndarray:
    """(tile, tile) float64 squared-cosine window, strictly positive so every pixel is covered."""
    ramp = np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2
    return np.outer(ramp, ramp)


def tiled_map(
    fn: TileFn,
    image: np.ndarray,
    tile: int = 128,
    overlap: int = 32,
    batch_size: int = 8,
    field: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Apply `fn` to overlapping tiles of `image` and blend the outputs.

    Args:
        fn: maps a batch of tiles (B, tile, tile) float32 (and the matching tiles of `field`, or
            None) to outputs of the same shape.
        image: (H, W) float array, any size.
        tile: tile edge in pixels.
        overlap: minimum overlap between neighbouring tiles in pixels.
        batch_size: tiles per call of `fn`.
        field: optional (H, W) array cut into the same tiles (e.g. a shared noise field).
        progress: called as progress(done_tiles, total_tiles) after each batch.

    Returns:
        (H, W) float32 blended output.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"tiled_map needs a 2-D image, got shape {image.shape}")
    h, w = image.shape
    pad_h, pad_w = max(0, tile - h), max(0, tile - w)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w)), mode="reflect" if min(h, w) > 1 else "edge")
        if field is not None:
            field = np.pad(field, ((0, pad_h), (0, pad_w)), mode="edge")
    ph, pw = image.shape
    corners = [
        (y, x) for y in tile_starts(ph, tile, overlap) for x in tile_starts(pw, tile, overlap)
    ]
    window = blend_window(tile)
    out = np.zeros((ph, pw), dtype=np.float64)
    weight = np.zeros((ph, pw), dtype=np.float64)
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        tiles = np.stack([image[y : y + tile, x : x + tile] for y, x in batch])
        field_tiles = (
            None
            if field is None
            else np.stack([field[y : y + tile, x : x + tile] for y, x in batch]).astype(np.float32)
        )
        result = np.asarray(fn(tiles, field_tiles), dtype=np.float64)
        if result.shape != tiles.shape:
            raise ValueError(f"tile function returned shape {result.shape}, expected {tiles.shape}")
        for (y, x), tile_out in zip(batch, result, strict=True):
            out[y : y + tile, x : x + tile] += tile_out * window
            weight[y : y + tile, x : x + tile] += window
        if progress is not None:
            progress(min(first + batch_size, len(corners)), len(corners))
    return (out / weight)[:h, :w].astype(np.float32)


def count_tiles(shape: tuple[int, int], tile: int = 128, overlap: int = 32) -> int:
    """How many tiles `tiled_map` uses for an image of this shape."""
    h, w = (max(s, tile) for s in shape)
    return len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))

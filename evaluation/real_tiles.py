"""Real scans as the 128x128 tiles the distribution metrics compare (`python -m evaluation
experimental`).

`scan_tiles` cuts one scan the way every set is cut, inputs, outputs and pristine scans alike:
plane-levelled, resampled to the models' pixel size (SR inputs: measured lines at k times the
model's line pitch, then repeated k times along the slow axis as in training step 7), cut into
non-overlapping tiles, each min/max-normalised to [-1, 1] (step 9). `cut_scans` does it for a set
and remembers each tile's scan, which `halves` uses to split the pristine set by scan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.benchmarks import TILE_PX
from stm_zoo.errors import StmZooError
from stm_zoo.preprocess import normalise_tiles

logger = logging.getLogger(__name__)


def scan_tiles(
    scan: Any, model_pixel_size_nm: float, factor: int = 1, tile: int = TILE_PX
) -> np.ndarray:
    """Cut a scan into the tiles the features are computed on (see the module docstring).

    Args:
        scan: a `stm_zoo.io.Scan`.
        model_pixel_size_nm: the models' pixel pitch.
        factor: 1 for a full-resolution scan; k for a low-resolution SR input whose lines are k
            model pixels apart (they are repeated k times, as in training). A file without a
            physical size (png, tiff, npy) has its lines k pixels apart, as `restore` reads it
            (`stm_zoo.io.scan.sr_input_frame`).
        tile: tile edge in model pixels.

    Returns:
        (n, tile, tile) float32 tiles in [-1, 1], row-major over the scan; (0, tile, tile) when the
        scan is smaller than one tile.
    """
    from stm_zoo.io.scan import sr_input_frame
    from stm_zoo.preprocess import prepare

    scan = sr_input_frame(scan, factor).crop_valid()
    px_x_nm, px_y_nm = (p * 1e9 for p in scan.pixel_size_m)
    image, _ = prepare(
        scan.data,
        (px_x_nm, px_y_nm),
        (model_pixel_size_nm, model_pixel_size_nm * factor),
        level_degree=1,
    )
    image = np.repeat(image, factor, axis=0)
    rows, cols = image.shape[0] // tile, image.shape[1] // tile
    tiles = [
        image[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
        for r in range(rows)
        for c in range(cols)
    ]
    if not tiles:
        return np.zeros((0, tile, tile), dtype=np.float32)
    return normalise_tiles(np.stack(tiles).astype(np.float64))[0].astype(np.float32)


def load_scan_folder(folder: Path) -> list[Any]:
    """Every readable scan in a folder (sorted; recursive), forward Z channel."""
    from stm_zoo.io import load_scan
    from stm_zoo.restore_cli import collect_inputs

    if not Path(folder).is_dir():
        raise StmZooError(f"{folder} is not a folder: pass a folder of scan files.")
    scans = []
    for path in collect_inputs([Path(folder)]):
        try:
            scans.append(load_scan(path, channel="Z", direction="forward"))
        except StmZooError as error:
            logger.warning("skipping %s: %s", path.name, error)
    if not scans:
        raise StmZooError(
            f"No readable scan in {folder}; put .sxm, MATRIX, .gwy, image or .npy files there."
        )
    return scans


def cut_scans(
    scans: Sequence[Any],
    model_pixel_size_nm: float,
    factor: int = 1,
    limit: int | None = None,
    where: str = "the scans",
) -> tuple[np.ndarray, np.ndarray]:
    """Tiles of every scan (`scan_tiles`) and, per tile, the index of its scan.

    Returns:
        ((n, 128, 128) float32 tiles in [-1, 1], (n,) int scan indices), the first `limit`.
    """
    tiles, owners = [], []
    for k, scan in enumerate(scans):
        cut = scan_tiles(scan, model_pixel_size_nm, factor)
        if len(cut) == 0:
            logger.warning("%s is smaller than one %d px tile; skipped", scan.describe(), TILE_PX)
        tiles.append(cut)
        owners.append(np.full(len(cut), k))
    all_tiles = np.concatenate(tiles)[:limit]
    all_owners = np.concatenate(owners)[:limit]
    if len(all_tiles) < 2:
        raise StmZooError(
            f"{where} yield {len(all_tiles)} tile(s) of {TILE_PX}x{TILE_PX} px; KID needs at "
            "least 2: add scans or larger scans."
        )
    return all_tiles, all_owners


def halves(owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split tile indices into two halves by scan (alternating scans) so that no scan is in both;
    by tile when there is a single scan."""
    scans = np.unique(owners)
    by_scan = len(scans) >= 2
    first = np.isin(owners, scans[::2]) if by_scan else np.arange(len(owners)) % 2 == 0
    return np.flatnonzero(first), np.flatnonzero(~first)

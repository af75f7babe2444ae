"""The app's limits on one request, and the checks that apply them before a pixel is read.

`AppLimits` caps what one request may ask (image size, model grid, upload size, steps, samples,
queue); STM_ZOO_APP_* environment variables override the defaults. The image size a file's
header announces is checked against the pixel limit before any pixel is read (`announced_shape`,
`check_announced`). These caps come on top of the engine's own limits (`stm_zoo.limits`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stm_zoo import limits as engine_limits
from stm_zoo.errors import StmZooError
from stm_zoo.io import detect_format


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StmZooError(f"{name}={raw!r} is not a whole number; unset it or fix it.") from None
    if value < 1:
        raise StmZooError(f"{name}={value} must be at least 1.")
    return value


@dataclass(frozen=True)
class AppLimits:
    """What one request may ask of the app; environment variables override the defaults.

    These caps come on top of the engine's own limits (`stm_zoo.limits`: resampling factor,
    smallest frame, flat channels), which the app applies through `restore` like every interface;
    its grid cap is passed to `restore` as `max_grid_pixels`.

    Attributes:
        max_pixels: largest input image, lines x pixels (STM_ZOO_APP_MAX_PIXELS, default
            2048 x 2048).
        max_model_pixels: largest image a model runs on, after resampling to the model's pixel
            size and the k-fold line up-sampling of SR (STM_ZOO_APP_MAX_MODEL_PIXELS, default
            `stm_zoo.limits.MAX_GRID_PIXELS`, the inference engine's own limit).
        max_file_mb: upload size limit in MB (STM_ZOO_APP_MAX_FILE_MB, default 100).
        max_steps: most sampler steps per request.
        max_samples: most independent samples per request.
        concurrency: model runs at the same time (STM_ZOO_APP_CONCURRENCY, default 1: one run
            uses every CPU core or the whole GPU, and a second one would only slow both down).
        queue_size: requests that may wait in the queue (STM_ZOO_APP_QUEUE, default 64).
    """

    max_pixels: int = 2048 * 2048
    max_model_pixels: int = engine_limits.MAX_GRID_PIXELS
    max_file_mb: int = 100
    max_steps: int = 50
    max_samples: int = 8
    concurrency: int = 1
    queue_size: int = 64

    @classmethod
    def from_env(cls) -> AppLimits:
        """The defaults with the STM_ZOO_APP_* environment variables applied."""
        base = cls()
        return cls(
            max_pixels=_env_int("STM_ZOO_APP_MAX_PIXELS", base.max_pixels),
            max_model_pixels=_env_int("STM_ZOO_APP_MAX_MODEL_PIXELS", base.max_model_pixels),
            max_file_mb=_env_int("STM_ZOO_APP_MAX_FILE_MB", base.max_file_mb),
            concurrency=_env_int("STM_ZOO_APP_CONCURRENCY", base.concurrency),
            queue_size=_env_int("STM_ZOO_APP_QUEUE", base.queue_size),
        )


def check_pixels(name: str, shape: tuple[int, int], limits: AppLimits, what: str = "is") -> None:
    """Refuse an image of `shape` (H, W) above `limits.max_pixels` with a one-sentence message."""
    engine_limits.check_pixels(
        name,
        shape,
        limits.max_pixels,
        what,
        "crop or bin it first (e.g. in Gwyddion), or run `python -m stm_zoo restore` on your own "
        "machine",
    )


def announced_shape(path: Path) -> tuple[int, int] | None:
    """(H, W) that a file's header announces, read without touching the pixel data.

    Returns None for formats without a cheap header (.gwy, MATRIX) and for headers that do not
    parse (the reader then reports what is wrong with the file).
    """
    fmt = detect_format(path)
    try:
        if fmt == "sxm":
            with open(path, "rb") as f:
                head = f.read(256 * 1024).decode("latin-1")
            match = re.search(r":SCAN_PIXELS:\s*\n\s*(\d+)\s+(\d+)", head)
            return (int(match[2]), int(match[1])) if match else None
        if fmt == "npy":
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }[version]
                shape = tuple(d for d in read(f)[0] if d != 1)
            return (int(shape[0]), int(shape[1])) if len(shape) == 2 else None
        if fmt in ("png", "tiff"):
            import warnings

            from PIL import Image

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with Image.open(path) as image:
                        return (image.height, image.width)
                except Image.DecompressionBombError as error:
                    found = re.findall(r"(\d+) pixels", str(error))
                    side = math.isqrt(int(found[0])) if found else 1 << 16
                    return (side, side)
    except (OSError, ValueError, KeyError, SyntaxError, IndexError):
        return None
    return None


def check_announced(path: Path, limits: AppLimits) -> None:
    """Refuse a file whose header announces more pixels than the app processes (no data read)."""
    claimed = announced_shape(path)
    if claimed is not None:
        check_pixels(path.name, claimed, limits, what="announces")

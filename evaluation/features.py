"""What the distribution metrics' feature extractors share: the offline rule and image input.

The extractors are `evaluation.inception` (KID: FID InceptionV3 pool features) and
`evaluation.clip` (CMMD: CLIP ViT-L/14-336 image embeddings), both loaded strictly offline.
Missing weights raise `WeightsUnavailable`, whose message is the table cell
"not computed (<which weights> unavailable: <how to provide them>)"; there is never a fallback to a
different model. Both take (N, H, W) grey images, float in [-1, 1] or uint8 (`as_grey_images`).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from tqdm import tqdm

from stm_zoo.errors import StmZooError


class WeightsUnavailable(StmZooError):
    """The weights a metric needs are not available offline; the message is the table cell.

    Attributes:
        which: the weights, e.g. "FID InceptionV3".
        how: what the user can do to provide them.
    """

    def __init__(self, which: str, how: str) -> None:
        self.which = which
        self.how = how
        super().__init__(f"not computed ({which} weights unavailable: {how})")


def as_grey_images(images: ArrayLike | torch.Tensor) -> np.ndarray:
    """(N, H, W) grey images as numpy, uint8 or finite float; refuses anything else."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"expected (N, H, W) grey images, got shape {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"expected uint8 or float images in [-1, 1], got dtype {images.dtype}")
    if images.dtype != np.uint8 and not np.isfinite(images).all():
        raise ValueError("images contain NaN or inf")
    return images


def to_uint8(images: ArrayLike | torch.Tensor) -> np.ndarray:
    """Quantise images to uint8 as FID pipelines do (they read 8-bit image files).

    Args:
        images: (N, H, W) float in [-1, 1] (values outside are clipped) or uint8 (returned as is).

    Returns:
        (N, H, W) uint8, -1 -> 0 and 1 -> 255, rounded to nearest.
    """
    images = as_grey_images(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint((images.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def progress_batches(n: int, batch_size: int, desc: str) -> tqdm:
    """Start indices of `batch_size` batches of `n` images, with a progress bar on a terminal."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # disable=None: a progress bar on a terminal, silent in logs and tests.
    return tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=None)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters."""
    return next(model.parameters()).device

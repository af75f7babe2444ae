"""CMMD's feature extractor: CLIP ViT-L/14 at 336 px image embeddings, loaded offline.

The vision tower with projection through `transformers`, from a local directory or the Hugging
Face cache only (`local_files_only=True`). Preprocessing by hand as metrics.md says:
[0, 1] grey -> 3 channels -> antialiased bicubic resize to the model's input size -> CLIP
mean/std.
(google-research/cmmd resizes with plain bicubic, antialias=False; metrics.md asks for the
antialiased, PIL-equivalent resize, which we follow.)
Missing weights raise `evaluation.features.WeightsUnavailable`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from evaluation.features import (
    WeightsUnavailable,
    as_grey_images,
    model_device,
    progress_batches,
)

logger = logging.getLogger(__name__)

CLIP_ENV = "STM_ZOO_CLIP"
CLIP_REPO = "openai/clip-vit-large-patch14-336"
CLIP_NAME = "CLIP ViT-L/14-336"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _clip_hint(source: str) -> str:
    return (
        f"{source}; run `hf download {CLIP_REPO}` on a machine with internet and copy its "
        f"Hugging Face cache here, or pass (or set {CLIP_ENV} to) a local directory holding that "
        "model's config.json and weights"
    )


def load_clip(
    path_or_repo: str | Path | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """Load a CLIP vision tower with projection (`transformers.CLIPVisionModelWithProjection`),
    never from the network.

    Order: `path_or_repo` -> $STM_ZOO_CLIP -> "openai/clip-vit-large-patch14-336". A `Path`, an
    existing directory or anything not shaped like "owner/name" is a local model directory; an
    "owner/name" string is a Hub repo id looked up in the Hugging Face cache only
    (`local_files_only=True`).

    Args:
        path_or_repo: local model directory or Hub repo id; None to use the environment or default.
        device: where to put the model.

    Returns:
        The model in eval mode; `model.config.image_size` is its input size (336 for ViT-L/14-336).

    Raises:
        WeightsUnavailable: the directory holds no model, or the repo is not in the HF cache.
    """
    # Imported here: transformers takes seconds to import and only CMMD needs it.
    from transformers import CLIPVisionModelWithProjection

    source = path_or_repo or os.environ.get(CLIP_ENV) or CLIP_REPO
    is_dir = (
        isinstance(source, Path)
        or Path(source).expanduser().is_dir()
        or not re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", source)
    )
    if is_dir:
        source = Path(source).expanduser()
        state = "holds no loadable CLIP vision model" if source.is_dir() else "does not exist"
        problem = f"{source} {state}"
    else:
        from huggingface_hub import constants

        problem = f"{source} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(str(source), local_files_only=True)
    except (OSError, ValueError) as err:
        raise WeightsUnavailable(CLIP_NAME, _clip_hint(problem)) from err
    logger.info("CLIP vision model from %s (image size %d)", source, model.config.image_size)
    return model.eval().to(device)


def clip_pixel_values(images: ArrayLike | torch.Tensor, image_size: int) -> torch.Tensor:
    """CLIP preprocessing of grey images, done by hand as metrics.md prescribes.

    [-1, 1] -> [0, 1] (uint8 / 255), grey -> 3 channels, bicubic resize to image_size x image_size
    with antialiasing (PIL's bicubic, a = -0.5; no centre crop, tiles are square), then CLIP's
    per-channel mean/std normalisation.

    Args:
        images: (N, H, W) float in [-1, 1] or uint8.
        image_size: the model's input size.

    Returns:
        (N, 3, image_size, image_size) float32 pixel values.
    """
    images = as_grey_images(images)
    if images.dtype == np.uint8:
        unit = torch.from_numpy(images.astype(np.float32) / 255.0)
    else:
        unit = torch.from_numpy((images.astype(np.float32) + 1.0) / 2.0)
    x = F.interpolate(
        unit[:, None],
        size=(image_size, image_size),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    ).expand(-1, 3, -1, -1)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def clip_embeddings(
    images: ArrayLike | torch.Tensor, model: nn.Module, batch_size: int = 16
) -> np.ndarray:
    """L2-normalised CLIP image embeddings (`image_embeds`) of grey images.

    Args:
        images: (N, H, W) float in [-1, 1] or uint8.
        model: from `load_clip`.
        batch_size: images per forward pass.

    Returns:
        (N, d) float64 unit vectors (d = 768 for ViT-L/14-336).
    """
    images = as_grey_images(images)
    device = model_device(model)
    size = int(model.config.image_size)
    emb = np.empty((len(images), int(model.config.projection_dim)), dtype=np.float64)
    with torch.inference_mode():
        for start in progress_batches(len(images), batch_size, "CLIP embeddings"):
            pixels = clip_pixel_values(images[start : start + batch_size], size)
            pixels = pixels.to(device=device, dtype=model.dtype)
            out = model(pixel_values=pixels).image_embeds
            emb[start : start + len(out)] = out.double().cpu().numpy()
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)

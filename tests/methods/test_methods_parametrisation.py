"""x0 output parametrisation (identity start) and the training-time distributions."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from stm_zoo.errors import StmZooError
from stm_zoo.methods import ddim, flow_matching, get_method
from stm_zoo.nn import UNet, UNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4)


def tiny_x0_net(family: str) -> UNet:
    scale = flow_matching.FM_TIME_SCALE if family == "fm" else 1.0
    return UNet(UNetConfig(time_scale=scale, residual=True, **TINY)).eval()


@pytest.mark.parametrize("family", ["fm", "ddim"])
@pytest.mark.parametrize("steps", [1, 2, 5, 10])
def test_untrained_x0_network_returns_its_input(family: str, steps: int) -> None:
    method = get_method(family, "x0")
    assert method.prediction == "x0"
    cond = torch.rand(2, 1, 16, 16) * 2 - 1
    out = method.sample(tiny_x0_net(family), cond, steps, torch.randn_like(cond))
    tolerance = 2e-3 if family == "ddim" and steps == 1 else 1e-4
    torch.testing.assert_close(out, cond, atol=tolerance, rtol=0)


def test_x0_presets_are_residual_and_native_presets_are_not() -> None:
    assert get_method("fm", "x0").network_config("small").residual
    assert not get_method("fm").network_config("small").residual
    assert get_method("ddim", "x0", "grid").network_config("large").residual


def test_x0_flow_matching_loss_is_the_capped_velocity_error() -> None:
    """With a perfect x0 prediction the loss is zero; with x0_hat = x0 + d it is the velocity
    error d / (1 - t) squared, with the weight 1 / (1 - t)^2 capped (here at 16)."""
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    perfect = lambda x, t, c: x0  # noqa: E731
    g = torch.Generator().manual_seed(0)
    assert flow_matching.loss(perfect, x0, x0, g, prediction="x0") == 0
    shifted = lambda x, t, c: x0 + 0.1  # noqa: E731
    g = torch.Generator().manual_seed(0)
    value = float(flow_matching.loss(shifted, x0, x0, g, prediction="x0", weight_cap=16.0))
    t = torch.rand(4, generator=torch.Generator().manual_seed(0))
    expected = float((0.01 / (1 - t).clamp_min(0.25) ** 2).mean())
    assert value == pytest.approx(expected, rel=1e-4)
    g = torch.Generator().manual_seed(0)  # the default cap of 1: the plain x0 error
    assert float(flow_matching.loss(shifted, x0, x0, g, prediction="x0")) == pytest.approx(0.01)


def test_ddim_x0_loss_weighs_every_time_alike() -> None:
    """The DDIM x0 loss is the plain clean-image error at every t, the first sampler step (t near
    T, where the SNR weight is ~1e-5) included."""
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    shifted = lambda x, t, c: x0 + 0.1  # noqa: E731
    for times in ("uniform", "grid"):
        g = torch.Generator().manual_seed(0)
        value = float(ddim.loss(shifted, x0, x0, g, prediction="x0", times=times))
        assert value == pytest.approx(0.01, rel=1e-4)
    assert "plain clean-image MSE" in ddim.x0_weight_text()


def test_velocity_from_x0_matches_the_straight_path() -> None:
    x0, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = torch.tensor([0.0, 0.3, 0.9])
    x_t = flow_matching.interpolate(x0, eps, t)
    v = flow_matching.velocity_from_x0(x0, x_t, t)
    torch.testing.assert_close(v, flow_matching.target_velocity(x0, eps), atol=1e-5, rtol=1e-5)


def test_eps_from_x0_inverts_the_forward_process() -> None:
    x0, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = torch.tensor([10, 500, 990])
    x_t = ddim.noised(x0, eps, t)
    torch.testing.assert_close(ddim.eps_from_x0(x0, x_t, t), eps, atol=1e-4, rtol=1e-4)


def test_grid_times_are_the_samplers_evaluation_points() -> None:
    grid = set(flow_matching.sampler_times().tolist())
    assert {0.0, 0.25, 0.5, 0.75} <= grid  # 2 RK2 steps
    assert {0.95, 0.9} <= {round(v, 6) for v in grid}  # 10 steps
    g = torch.Generator().manual_seed(0)
    drawn = flow_matching.draw_times(500, g, torch.device("cpu"), "grid")
    assert set(drawn.tolist()) <= grid and len(set(drawn.tolist())) > 10
    steps = ddim.draw_steps(
        500, torch.Generator().manual_seed(0), torch.device("cpu"), sampling="grid"
    )
    visited = {s for n in (2, 5, 10) for s in ddim.ddim_timesteps(1000, n)}
    assert set(steps.tolist()) == visited


def test_logit_normal_times_concentrate_in_the_middle() -> None:
    g = torch.Generator().manual_seed(0)
    t = flow_matching.draw_times(4000, g, torch.device("cpu"), "logit-normal")
    assert float(t.min()) > 0 and float(t.max()) < 1
    assert float(((t > 0.25) & (t < 0.75)).float().mean()) > 0.6


def test_bad_options_are_one_sentence_errors() -> None:
    with pytest.raises(StmZooError, match="prediction"):
        get_method("fm", "eps")
    with pytest.raises(StmZooError, match="time sampling"):
        get_method("fm", "x0", "cosine")
    with pytest.raises(StmZooError, match="one pass"):
        get_method("ae", "x0", "grid")


def test_autoencoder_with_x0_starts_as_the_identity() -> None:
    """prediction x0 gives the autoencoder a residual output: untrained, it copies its input."""
    from stm_zoo.nn import UNet

    method = get_method("ae", "x0")
    assert method.prediction == "x0" and method.network_config("large").residual
    assert not get_method("ae").network_config("large").residual
    config = replace(
        method.network_config("large"),
        channels=(8, 16),
        blocks_per_level=(1, 1),
        norm_groups=4,
        attention_heads=2,
    )
    cond = torch.rand(2, 1, 16, 16) * 2 - 1
    out = method.sample(UNet(config), cond, 1, torch.zeros_like(cond))
    torch.testing.assert_close(out, cond)  # the zero-initialised output layer adds nothing


def test_flow_from_the_degraded_image_starts_there() -> None:
    cond = torch.rand(2, 1, 8, 8)
    noise = torch.randn_like(cond)
    torch.testing.assert_close(flow_matching.start_state(cond, noise, 0.0), cond)
    out = flow_matching.sample(tiny_x0_net("fm"), cond, 2, noise, prediction="x0", source_sigma=0.3)
    torch.testing.assert_close(out, cond, atol=1e-4, rtol=0)


def test_minmax_output_range_maps_every_sample_onto_exactly_minus_one_to_one() -> None:
    method = get_method("fm", "x0", output_range="minmax")
    assert method.output_range == "minmax"
    cond = torch.rand(3, 1, 16, 16) * 0.5
    out = method.sample(tiny_x0_net("fm"), cond, 2, torch.randn_like(cond))
    assert torch.allclose(out.amin(dim=(-2, -1)), torch.tensor(-1.0))
    assert torch.allclose(out.amax(dim=(-2, -1)), torch.tensor(1.0))
    # An affine map of the free sample: the same image up to scale and offset.
    free = get_method("fm", "x0").sample(tiny_x0_net("fm"), cond, 2, torch.randn_like(cond))
    assert torch.corrcoef(torch.stack([out.flatten(), free.flatten()]))[0, 1] > 0.999
    with pytest.raises(StmZooError, match="output range"):
        get_method("fm", output_range="clip")

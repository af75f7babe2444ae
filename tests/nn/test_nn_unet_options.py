"""The U-Net's residual output and global-context branch."""

from __future__ import annotations

import pytest
import torch

from stm_zoo.nn import UNet, UNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4)


def test_residual_network_starts_as_the_identity_on_its_conditioning_image() -> None:
    net = UNet(UNetConfig(residual=True, **TINY))
    x, cond = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(net(x, torch.rand(2), cond), cond)


def test_global_context_branch_carries_image_wide_statistics() -> None:
    """The branch's output changes with a change far from any given pixel, and it trains."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(global_context=True, **TINY)).eval()
    for p in net.global_mlp.parameters():
        torch.nn.init.normal_(p, std=0.2)
    captured: list[torch.Tensor] = []
    net.global_mlp.register_forward_hook(lambda module, inputs, output: captured.append(output))
    x, cond = torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    far = cond.clone()
    far[..., 60:, 60:] = 5.0
    net(x, torch.zeros(1), cond)
    net(x, torch.zeros(1), far)
    assert not torch.allclose(captured[0], captured[1])
    out = net.train()(torch.randn(2, 1, 32, 32), torch.rand(2), torch.randn(2, 1, 32, 32))
    out.square().mean().backward()
    assert net.global_mlp[0].weight.grad is not None


def test_switching_global_context_on_leaves_an_untrained_branch_neutral() -> None:
    torch.manual_seed(0)
    plain = UNet(UNetConfig(**TINY))
    for p in plain.out_conv.parameters():
        torch.nn.init.normal_(p, std=0.1)
    wide = UNet(UNetConfig(global_context=True, **TINY))
    wide.load_state_dict(plain.state_dict(), strict=False)
    x, cond, t = torch.randn(1, 1, 16, 16), torch.randn(1, 1, 16, 16), torch.rand(1)
    torch.testing.assert_close(wide(x, t, cond), plain(x, t, cond))


def test_configs_stored_before_the_new_fields_still_load() -> None:
    old = UNetConfig.small().to_dict()
    del old["residual"], old["global_context"]
    config = UNetConfig.from_dict(old)
    assert not config.residual and not config.global_context


def test_invalid_option_combinations() -> None:
    with pytest.raises(ValueError, match="out_channels"):
        UNetConfig(residual=True, out_channels=2, **TINY)
    with pytest.raises(ValueError, match="time_conditioning"):
        UNetConfig(global_context=True, time_conditioning=False, **TINY)

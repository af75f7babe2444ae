"""The autoencoder baseline (Table I): direct prediction of the clean image, trained with L1.

The network is the large U-Net without the noise input and without time conditioning
(`UNetConfig.autoencoder()`), called as net(None, None, cond). There is no noise and no time, so
"sampling" is one forward pass: `steps` and `noise` are accepted for a uniform interface across
families and ignored.
"""

from __future__ import annotations

import torch

from stm_zoo.methods.common import NetworkFn, regression_loss


def loss(
    net: NetworkFn,
    x0: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean absolute error between net(None, None, cond) and x0 (the paper's L_MAE).

    Args:
        net: the autoencoder network.
        x0: (B, 1, H, W) clean images in [-1, 1].
        cond: (B, 1, H, W) degraded (or slow-axis upsampled) images in [-1, 1].
        generator: unused (the objective is deterministic); accepted so that every family's loss
            has the same signature.

    Returns:
        Scalar fp32 loss.
    """
    return regression_loss(net(None, None, cond), x0, "l1")


@torch.inference_mode()
def sample(
    net: NetworkFn,
    cond: torch.Tensor,
    steps: int | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Restore in one forward pass; `steps` and `noise` are ignored.

    Args:
        net: the autoencoder network.
        cond: (B, 1, H, W) degraded (or slow-axis upsampled) images in [-1, 1].

    Returns:
        (B, 1, H, W) float32 restored images.
    """
    return net(None, None, cond).float()

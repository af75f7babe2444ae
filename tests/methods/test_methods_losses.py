"""Training objectives: oracle minima, the L1/L2 rule, the Fourier terms, gradients, overfitting."""

from __future__ import annotations

import math

import pytest
import torch

from stm_zoo.methods import autoencoder, ddim, get_method
from stm_zoo.methods import flow_matching as fm
from stm_zoo.nn import UNet, UNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=8)


def tiny_net(family: str, seed: int = 0) -> UNet:
    method = get_method(family)
    config = UNetConfig(
        **{
            **TINY.to_dict(),
            "in_channels": 2 if method.uses_noise else 1,
            "time_conditioning": method.uses_noise,
            "time_scale": method.time_scale or 1.0,
        }
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return UNet(config)


def batch(seed: int = 0, shape=(4, 1, 16, 16)):
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=generator) * 1.8 - 0.9
    cond = (x0 + 0.3 * torch.randn(shape, generator=generator)).clamp(-1, 1)
    return x0, cond


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_fm_loss_is_zero_for_the_oracle_and_matches_eq7():
    x0, cond = batch()

    def oracle(x, t, c):
        return (x0 - x) / (1 - t.view(-1, 1, 1, 1))

    assert fm.loss(oracle, x0, cond, gen()) < 1e-6
    # A zero network pays E||x0 - eps||^2 with the same draws (t first, then eps).
    generator = gen()
    torch.rand(4, generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    zero = lambda x, t, c: torch.zeros_like(x)  # noqa: E731
    torch.testing.assert_close(fm.loss(zero, x0, cond, gen()), (x0 - eps).square().mean())
    torch.testing.assert_close(fm.loss(zero, x0, cond, gen(), norm="l1"), (x0 - eps).abs().mean())
    with pytest.raises(ValueError, match="norm"):
        fm.loss(zero, x0, cond, gen(), norm="l3")  # type: ignore[arg-type]


def test_fm_net_sees_the_interpolant():
    x0, cond = batch()
    seen = {}

    def spy(x, t, c):
        seen.update(x=x, t=t, c=c)
        return torch.zeros_like(x)

    fm.loss(spy, x0, cond, gen())
    generator = gen()
    t = torch.rand(4, generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(
        seen["x"], t.view(-1, 1, 1, 1) * x0 + (1 - t.view(-1, 1, 1, 1)) * eps
    )
    assert seen["c"] is cond


def ddim_oracle(x0: torch.Tensor):
    alphas = ddim.COSINE.alphas_cumprod.float()

    def net(x, t, c):
        alpha = alphas[t.long()].view(-1, 1, 1, 1)
        return (x - alpha.sqrt() * x0) / (1 - alpha).sqrt()

    return net


def test_ddim_losses_are_minimal_for_the_oracle():
    x0, cond = batch()
    assert ddim.loss(ddim_oracle(x0), x0, cond, gen()) < 1e-6
    assert ddim.loss_fft(ddim_oracle(x0), x0, cond, gen()) < 1e-5
    zero = lambda x, t, c: torch.zeros_like(x)  # noqa: E731
    assert ddim.loss(zero, x0, cond, gen()) > 0.5


def test_fft_loss_weights_follow_eq4():
    x0, cond = batch()
    offset = lambda x, t, c: torch.full_like(x, 0.05)  # noqa: E731
    generator = gen()
    t = torch.randint(1000, (4,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    x_t = ddim.noised(x0, eps, t)
    x0_hat = ddim.predict_x0(x_t, torch.full_like(x0, 0.05), t).clamp(-1, 1)
    amplitude, phase = ddim.fourier_terms(x0, x0_hat)
    l_dm = (0.05 - eps).square().mean()
    expected = 0.5 * l_dm + 0.25 * amplitude + 0.25 * phase
    torch.testing.assert_close(ddim.loss_fft(offset, x0, cond, gen()), expected)
    assert amplitude > 0 and phase > 0


def test_wrapped_phase_difference_crosses_pi():
    a = torch.polar(torch.tensor([1.0]), torch.tensor([3.1]))
    b = torch.polar(torch.tensor([2.0]), torch.tensor([-3.1]))
    # The naive difference is 6.2 rad; the wrapped one is 6.2 - 2 pi.
    assert ddim.wrapped_phase_difference(a, b).item() == pytest.approx(6.2 - 2 * math.pi, abs=1e-5)


def test_phase_term_is_invariant_to_2pi_wrap():
    generator = gen(5)
    mags = torch.rand(64, generator=generator) + 0.1
    phase_a = (torch.rand(64, generator=generator) * 2 - 1) * math.pi
    phase_b = (torch.rand(64, generator=generator) * 2 - 1) * math.pi
    a, b = torch.polar(mags, phase_a), torch.polar(mags, phase_b)
    reference = ddim.wrapped_phase_difference(a, b)
    manual = torch.remainder(phase_a - phase_b + math.pi, 2 * math.pi) - math.pi
    torch.testing.assert_close(reference, manual, rtol=0, atol=1e-5)
    # Rotating both, or one by whole turns, moves raw angles across +-pi but not the result.
    for shift_a, shift_b in ((2.0, 2.0), (2 * math.pi, 0.0), (1.0 + 4 * math.pi, 1.0)):
        rotated = ddim.wrapped_phase_difference(
            torch.polar(mags, phase_a + shift_a), torch.polar(mags, phase_b + shift_b)
        )
        torch.testing.assert_close(rotated, reference, rtol=0, atol=1e-4)
    assert reference.abs().max() <= math.pi


def test_fourier_terms_vanish_for_identical_images_and_survive_zero_coefficients():
    x0, _ = batch()
    amplitude, phase = ddim.fourier_terms(x0, x0.clone())
    assert amplitude < 1e-12 and phase < 1e-10
    # A constant image has all-zero non-DC coefficients: the phase is undefined there and the
    # loss and its gradient must stay finite.
    flat = torch.zeros(1, 1, 8, 8)
    estimate = torch.zeros(1, 1, 8, 8, requires_grad=True)
    amplitude, phase = ddim.fourier_terms(flat, estimate)
    (amplitude + phase).backward()
    assert torch.isfinite(amplitude) and torch.isfinite(phase)
    assert torch.isfinite(estimate.grad).all()


def test_autoencoder_loss_is_l1():
    x0, cond = batch()
    assert autoencoder.loss(lambda x, t, c: x0, x0, cond) == 0
    shifted = autoencoder.loss(lambda x, t, c: x0 + 0.5, x0, cond)
    assert shifted.item() == pytest.approx(0.5)
    out = autoencoder.sample(lambda x, t, c: c * 2, cond, steps=7, noise=torch.ones(1))
    torch.testing.assert_close(out, cond * 2)


@pytest.mark.parametrize("family", ["fm", "ddim", "ddim-fft", "ae"])
def test_losses_are_finite_and_gradients_flow(family):
    net = tiny_net(family)
    x0, cond = batch()
    loss = get_method(family).loss(net, x0, cond, gen())
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # The zero-initialised output layer passes gradient to itself first.
    assert net.out_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["fm", "ddim", "ddim-fft", "ae"])
def test_tiny_network_overfits_one_batch(family):
    method, net = get_method(family), tiny_net(family)
    x0, cond = batch()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        # The same t and eps every step: a fixed objective that training must drive down.
        loss = method.loss(net, x0, cond, gen(7))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses

"""Samplers against exactly solvable velocities / oracle noise, and the cosine schedule."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from stm_zoo.methods import ddim
from stm_zoo.methods import flow_matching as fm

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = [1, 2, 5, 10]


def known_pair(dtype: torch.dtype, seed: int = 0, shape=(2, 1, 8, 8)):
    """A clean x0 inside the data range [-1, 1] and a noise draw, generated in float64."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=generator, dtype=torch.float64) * 1.8 - 0.9
    eps = torch.randn(shape, generator=generator, dtype=torch.float64)
    return x0.to(dtype), eps.to(dtype)


# Flow matching ------------------------------------------------------------------------------------


def oracle_velocity(x0: torch.Tensor):
    """The exact velocity towards a single known x0 along straight paths: (x0 - x) / (1 - t).

    It is constant along each path (x0 - eps), so the midpoint rule follows the path exactly.
    """
    return lambda x, t: (x0 - x) / (1 - t)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_rk2_with_oracle_velocity_returns_x0(steps, dtype, tol):
    x0, eps = known_pair(dtype)
    out = fm.rk2_midpoint(oracle_velocity(x0), eps, steps)
    assert out.dtype == dtype
    torch.testing.assert_close(out, x0, rtol=0, atol=tol)


@pytest.mark.parametrize("steps", STEPS)
def test_rk2_states_stay_on_the_straight_path(steps):
    x0, eps = known_pair(torch.float64)
    velocity = oracle_velocity(x0)
    visited = []

    def recording(x, t):
        visited.append((x.clone(), t))
        return velocity(x, t)

    fm.rk2_midpoint(recording, eps, steps)
    dt = 1 / steps
    assert [t for _, t in visited] == pytest.approx(
        [v for i in range(steps) for v in (i * dt, (i + 0.5) * dt)]
    )
    for x, t in visited:
        expected = fm.interpolate(x0, eps, torch.full((2,), t, dtype=torch.float64))
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-12)


def test_rk2_is_the_second_order_midpoint_rule():
    # dx/dt = t: the midpoint rule is exact in one step (explicit Euler would give 0).
    one = torch.zeros(1)
    assert fm.rk2_midpoint(lambda x, t: torch.full_like(x, t), one, 1).item() == pytest.approx(0.5)
    # dx/dt = x: the global error falls as dt^2 (ratio 4 when halving dt; Euler gives 2).
    start = torch.ones(1, dtype=torch.float64)
    errors = [abs(fm.rk2_midpoint(lambda x, t: x, start, n).item() - math.e) for n in (10, 20)]
    assert 3.6 < errors[0] / errors[1] < 4.4


def test_rk2_rejects_zero_steps():
    with pytest.raises(ValueError, match="at least one step"):
        fm.rk2_midpoint(lambda x, t: x, torch.zeros(1), 0)


@pytest.mark.parametrize("steps", STEPS)
def test_fm_sample_with_oracle_network(steps):
    x0, eps = known_pair(torch.float32)
    cond = torch.zeros_like(x0)
    times = []

    def net(x, t, c):
        assert t.shape == (2,) and t.dtype == torch.float32 and c is cond
        times.append(t[0].item())
        return (x0 - x) / (1 - t.view(-1, 1, 1, 1))

    out = fm.sample(net, cond, steps, eps)
    assert len(times) == 2 * steps and all(0 <= t < 1 for t in times)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)


# DDIM ---------------------------------------------------------------------------------------------


def test_cosine_schedule_invariants():
    schedule = ddim.COSINE
    betas, alphas = schedule.betas, schedule.alphas_cumprod
    assert betas.dtype == alphas.dtype == torch.float64
    assert schedule.num_steps == 1000 and alphas.shape == (1000,)
    assert bool((alphas[1:] < alphas[:-1]).all())
    assert alphas[0] > 0.9999 and alphas[-1] < 1e-8
    assert bool((betas > 0).all()) and betas.max() == pytest.approx(0.999)

    def alpha_bar(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    # Before the clip bites, the cumulative product telescopes to the closed form.
    for t in (0, 1, 250, 500, 900, 998):
        assert alphas[t].item() == pytest.approx(alpha_bar((t + 1) / 1000) / alpha_bar(0), rel=1e-9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.offset = 0.0  # type: ignore[misc]


def test_schedule_is_cast_at_use():
    t = torch.tensor([0, 999])
    like = torch.zeros(2, 1, 4, 4)
    alpha = ddim.COSINE.alpha(t, like)
    assert alpha.dtype == torch.float32 and alpha.shape == (2, 1, 1, 1)
    assert ddim.COSINE.alpha(t, like.double()).dtype == torch.float64


def improved_diffusion_ddim_steps(num_steps: int, section: int) -> list[int]:
    """improved-diffusion's `space_timesteps(T, "ddimN")`: the first integer stride giving N."""
    for stride in range(1, num_steps):
        if len(range(0, num_steps, stride)) == section:
            return sorted(range(0, num_steps, stride), reverse=True)
    raise ValueError(section)


def test_ddim_trailing_timesteps_start_at_pure_noise():
    assert ddim.ddim_timesteps(1000, 2, "trailing") == [999, 499]
    assert ddim.ddim_timesteps(1000, 5, "trailing") == [999, 799, 599, 399, 199]
    assert ddim.ddim_timesteps(1000, 10, "trailing")[::9] == [999, 99]
    assert ddim.spacing_for("x0") == "trailing" and ddim.spacing_for("native") == "leading"


def test_a_clean_image_network_is_called_where_training_showed_it_pure_noise():
    """x0 networks sample on the trailing steps, and are trained on that grid."""
    seen: list[float] = []

    def net(x, t, cond):
        seen.append(float(t[0]))
        return cond

    cond = torch.zeros(1, 1, 8, 8)
    ddim.sample(net, cond, 2, torch.randn(1, 1, 8, 8), prediction="x0")
    assert seen == [999.0, 499.0]
    g = torch.Generator().manual_seed(0)
    drawn = ddim.draw_steps(4000, g, torch.device("cpu"), sampling="grid", spacing="trailing")
    assert set(drawn.tolist()) == {999, 899, 799, 699, 599, 499, 399, 299, 199, 99}


def test_ddim_timesteps_respacing():
    assert ddim.ddim_timesteps(1000, 1) == [0]
    assert ddim.ddim_timesteps(1000, 2) == [500, 0]
    assert ddim.ddim_timesteps(1000, 5) == [800, 600, 400, 200, 0]
    assert ddim.ddim_timesteps(1000, 1000) == list(range(999, -1, -1))
    for n in (2, 4, 5, 8, 10, 20, 25, 50, 100, 250):
        assert ddim.ddim_timesteps(1000, n) == improved_diffusion_ddim_steps(1000, n)
    for n in (3, 7, 10, 50, 600, 999):
        visited = ddim.ddim_timesteps(1000, n)
        assert len(set(visited)) == n and visited == sorted(visited, reverse=True)
        assert visited[-1] == 0 and visited[0] == round(1000 - 1000 / n)
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="DDIM steps"):
            ddim.ddim_timesteps(1000, bad)


def oracle_eps(x0: torch.Tensor, schedule: ddim.CosineSchedule = ddim.COSINE):
    """eps = (x_t - sqrt(alpha_t) x0) / sqrt(1 - alpha_t) for a known x0."""

    def eps_fn(x, t):
        alpha = schedule.alphas_cumprod[t].item()
        return (x - math.sqrt(alpha) * x0) / math.sqrt(1 - alpha)

    return eps_fn


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("clip_x0", [1.0, None])
def test_ddim_with_oracle_eps_returns_x0_float64(steps, clip_x0):
    x0, eps = known_pair(torch.float64)
    x_T = ddim.noised(x0, eps, torch.full((2,), 999))  # any start: the oracle always knows x0
    out = ddim.ddim_sample(oracle_eps(x0), ddim.COSINE, x_T, steps, clip_x0=clip_x0)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", STEPS)
def test_ddim_with_oracle_eps_returns_x0_float32(steps):
    x0, eps = known_pair(torch.float32)
    x_T = ddim.noised(x0, eps, torch.full((2,), ddim.ddim_timesteps(1000, steps)[0]))
    out = ddim.ddim_sample(oracle_eps(x0), ddim.COSINE, x_T, steps)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", STEPS)
def test_ddim_states_follow_the_forward_process(steps):
    # Deterministic DDIM (Eq. 5) keeps the oracle's trajectory on x_t = noised(x0, eps, t).
    x0, eps = known_pair(torch.float64)
    visited = []
    eps_fn = oracle_eps(x0)

    def recording(x, t):
        visited.append((x.clone(), t))
        return eps_fn(x, t)

    start = ddim.ddim_timesteps(1000, steps)[0]
    x_T = ddim.noised(x0, eps, torch.full((2,), start))
    ddim.ddim_sample(recording, ddim.COSINE, x_T, steps)
    assert [t for _, t in visited] == ddim.ddim_timesteps(1000, steps)
    for x, t in visited:
        expected = ddim.noised(x0, eps, torch.full((2,), t))
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-9)


def test_ddim_clip_bounds_the_prediction():
    noise = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    zero_eps = lambda x, t: torch.zeros_like(x)  # noqa: E731
    clipped = ddim.ddim_sample(zero_eps, ddim.COSINE, noise, 3)
    assert clipped.abs().max() <= 1.0
    # Zero eps reads x_t as clean signal: x0_hat = x_t / sqrt(alpha_667), about 2 x_t.
    unclipped = ddim.ddim_sample(zero_eps, ddim.COSINE, noise, 3, clip_x0=None)
    alpha = ddim.COSINE.alphas_cumprod[667].item()
    torch.testing.assert_close(unclipped, noise / math.sqrt(alpha))


def test_ddim_clipping_recomputes_eps_from_the_clipped_x0():
    # Two steps (t = 500, then 0) written out: Eq. 5 with improved-diffusion's clip_denoised.
    x = torch.linspace(-3, 3, 16, dtype=torch.float64).view(1, 1, 4, 4)
    c = 0.3
    a5, a0 = (ddim.COSINE.alphas_cumprod[t].item() for t in (500, 0))
    x0_hat = ((x - math.sqrt(1 - a5) * c) / math.sqrt(a5)).clamp(-1, 1)
    eps = (x - math.sqrt(a5) * x0_hat) / math.sqrt(1 - a5)
    x_0 = math.sqrt(a0) * x0_hat + math.sqrt(1 - a0) * eps
    expected = ((x_0 - math.sqrt(1 - a0) * c) / math.sqrt(a0)).clamp(-1, 1)
    states = []

    def constant_eps(state, t):
        states.append(state)
        return torch.full_like(state, c)

    out = ddim.ddim_sample(constant_eps, ddim.COSINE, x, 2)
    assert (x0_hat.abs() == 1).any() and not (expected.abs() == 1).all()
    torch.testing.assert_close(states[1], x_0, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", STEPS)
def test_ddim_sample_with_oracle_network(steps):
    x0, eps = known_pair(torch.float32)
    cond = torch.zeros_like(x0)
    times = []

    def net(x, t, c):
        assert t.shape == (2,) and t.dtype == torch.float32 and c is cond
        times.append(t[0].item())
        # float64 alphas like the sampler's: 1 - alpha_0 ~ 4e-5 has no digits to spare in fp32.
        alpha = ddim.COSINE.alphas_cumprod[t.long()].view(-1, 1, 1, 1)
        return ((x - alpha.sqrt() * x0) / (1 - alpha).sqrt()).float()

    start = ddim.ddim_timesteps(1000, steps)[0]
    out = ddim.sample(net, cond, steps, ddim.noised(x0, eps, torch.full((2,), start)))
    assert times == [float(t) for t in ddim.ddim_timesteps(1000, steps)]
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)

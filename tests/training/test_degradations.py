"""The paper's degradation pipeline: each step does what it says, the composition is reproducible,
windowed equals full-image, and the default probabilities are the paper's."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import ndimage

from stm_zoo.errors import StmZooError
from training.degradations import (
    TARGETED,
    TASKS,
    DegradationConfig,
    _filters,
    apply_pipeline,
    benchmark,
    blunt_tip,
    degrade,
    low_res,
    misalignment,
    multi_tip,
    sample_pipeline,
    scan_lines,
    tip_change,
)
from training.degradations.multi_tip import GhostTip, MultiTipConfig, MultiTipParams, TipKernel
from training.degradations.normalise import to_symmetric_range

ARTEFACTS = {"multi_tip", "misalignment", "blunt_tip", "tip_change", "low_res", "scan_lines"}


def surface(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A pristine-like height map in nm: diagonal rows, a step, bright blobs and pits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    heights = 0.03 * np.sin(2 * np.pi * (x + y) / (0.768 / 0.195 * math.sqrt(2)))
    heights += 0.135 * (x - 0.4 * y > shape[1] * 0.3)
    for _ in range(shape[0] * shape[1] // 1500):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        sign = rng.choice([1.0, -0.5])
        heights += sign * 0.25 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 1.8**2))
    return heights + 0.005 * rng.standard_normal(shape)


@pytest.fixture(scope="module")
def pristine() -> np.ndarray:
    return surface((200, 230))


def affine_residual(target: np.ndarray, source: np.ndarray) -> float:
    """Largest residual of the least-squares fit target ~ a * source + b."""
    design = np.stack([source.ravel(), np.ones(source.size)], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, target.ravel().astype(np.float64), rcond=None)
    return float(np.abs(design @ coef - target.ravel()).max())


def high_frequency_fraction(image: np.ndarray, cutoff: float = 0.25) -> float:
    """Share of the spectral power above `cutoff` cycles/px (mean removed)."""
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    return float(power[np.hypot(fy, fx) > cutoff].sum() / power.sum())


# --- the composition -------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_gives_identical_samples_and_records(pristine, task):
    a = degrade(pristine, np.random.default_rng(7), task)
    b = degrade(pristine, np.random.default_rng(7), task)
    c = degrade(pristine, np.random.default_rng(8), task)
    assert np.array_equal(a.clean, b.clean) and np.array_equal(a.degraded, b.degraded)
    assert [r.to_dict() for r in a.record] == [r.to_dict() for r in b.record]
    assert not np.array_equal(a.degraded, c.degraded)


@pytest.mark.parametrize("task", TASKS)
def test_outputs_are_float32_crops_spanning_exactly_minus_one_to_one(pristine, task):
    for seed in range(6):
        sample = degrade(pristine, np.random.default_rng(seed), task)
        for image in (sample.clean, sample.degraded):
            assert image.shape == (128, 128) and image.dtype == np.float32
            assert image.min() == -1.0 and image.max() == 1.0


def test_crop_size_comes_from_the_config(pristine):
    sample = degrade(pristine, np.random.default_rng(0), config=DegradationConfig(crop_size_px=64))
    assert sample.clean.shape == sample.degraded.shape == (64, 64)


@pytest.mark.parametrize("kernel_position", multi_tip.KERNEL_POSITIONS)
def test_windowed_pipeline_equals_full_image_pipeline(kernel_position):
    # A small pristine puts many crops against the border, where the window is clipped.
    image = surface((170, 190), seed=3)
    config = DegradationConfig(
        multi_tip=MultiTipConfig(probability=1.0, kernel_position=kernel_position),
        misalignment=misalignment.MisalignmentConfig(probability=1.0),
    )
    kinds = set()
    for seed in range(14):
        task = TASKS[seed % 3]
        sample = degrade(image, np.random.default_rng(seed), task, config)
        clean, degraded = apply_pipeline(image, sample.params, windowed=False)
        assert np.array_equal(clean, sample.clean)
        np.testing.assert_allclose(degraded, sample.degraded, rtol=0, atol=1e-6)
        kinds |= {g.kernel.kind for g in sample.params.multi_tip.ghosts}
    assert kinds == set(multi_tip.KERNEL_KINDS)


def test_params_reproduce_the_sample(pristine):
    sample = degrade(pristine, np.random.default_rng(11), "sr4")
    clean, degraded = apply_pipeline(pristine, sample.params)
    assert np.array_equal(clean, sample.clean) and np.array_equal(degraded, sample.degraded)


def test_records_list_the_steps_that_fired_in_order(pristine):
    order = ["rotation", "multi_tip", "misalignment", "crop", "blunt_tip", "tip_change"]
    order += ["low_res", "scan_lines"]
    seen = set()
    for seed in range(60):
        task = TASKS[seed % 3]
        params = sample_pipeline(np.random.default_rng(seed), pristine.shape, task)
        steps = [r.step for r in params.records()]
        assert steps == [s for s in order if getattr(params, s) is not None]
        assert steps[0] == "rotation" and "crop" in steps
        assert ("low_res" in steps) == (task != "restore")
        json.dumps([r.to_dict() for r in params.records()])
        seen |= set(steps)
    assert seen == set(order)


def test_a_sample_where_nothing_fired_is_the_clean_crop(pristine):
    seed = next(
        s
        for s in range(2000)
        if not ARTEFACTS
        & {r.step for r in sample_pipeline(np.random.default_rng(s), (200, 230)).records()}
    )
    sample = degrade(pristine, np.random.default_rng(seed))
    assert np.array_equal(sample.clean, sample.degraded)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("only", TARGETED)
def test_only_fires_exactly_the_requested_degradation(pristine, task, only):
    if only == "low_res" and task == "restore":
        with pytest.raises(StmZooError, match="super-resolution"):
            degrade(pristine, np.random.default_rng(0), task, only=only)
        return
    expected = {only} | ({"low_res"} if task != "restore" else set())
    for seed in range(4):
        sample = degrade(pristine, np.random.default_rng(seed), task, only=only)
        steps = [r.step for r in sample.record]
        assert set(steps) & ARTEFACTS == expected
        assert {"rotation", "crop"} <= set(steps)


# --- single steps ----------------------------------------------------------------------------


def test_misalignment_shifts_each_row_along_x_only():
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((40, 64)), 2)
    params = misalignment.sample_params(rng, misalignment.MisalignmentConfig(), 40)
    out = misalignment.apply(image, params)
    x = np.arange(64, dtype=np.float64)
    for row, shift in enumerate(params.shifts_px):
        np.testing.assert_allclose(out[row], np.interp(x - shift, x, image[row]), atol=1e-12)
    # Changing one input row changes that output row only: lines never mix.
    bumped = image.copy()
    bumped[17] += 1.0
    changed = np.abs(misalignment.apply(bumped, params) - out).max(axis=1) > 0
    assert changed.tolist() == [row == 17 for row in range(40)]
    # In aggregate the columns keep their profile (the shifts have zero mean).
    np.testing.assert_allclose(out[:, 8:-8].mean(0), image[:, 8:-8].mean(0), atol=0.02)
    assert np.std(params.shifts_px) == pytest.approx(0.8, rel=0.35)


def test_misalignment_in_the_pipeline_shifts_the_clean_rows(pristine):
    sample = degrade(pristine, np.random.default_rng(4), only="misalignment")
    shifts = sample.params.misalignment.shifts_px
    edge = _filters.reach_of_shift_px(*shifts)
    # Misalignment is affine-equivariant and step 9 affine-invariant: degrading the clean output
    # reproduces the degraded output away from the crop's left and right edges.
    expected = to_symmetric_range(
        misalignment.apply(sample.clean.astype(np.float64), sample.params.misalignment)
    )
    np.testing.assert_allclose(sample.degraded[:, edge:-edge], expected[:, edge:-edge], atol=1e-5)


@pytest.mark.parametrize("factor", [2, 4])
def test_low_res_keeps_every_kth_line_and_repeats_it(pristine, factor):
    image = np.arange(32 * 5, dtype=np.float64).reshape(32, 5)
    out = low_res.apply(image, low_res.LowResParams(factor))
    for row in range(32):
        assert np.array_equal(out[row], image[row - row % factor])
    sample = degrade(pristine, np.random.default_rng(1), f"sr{factor}", only="low_res")
    blocks = sample.degraded.reshape(128 // factor, factor, 128)
    assert np.array_equal(blocks, np.repeat(blocks[:, :1], factor, axis=1))
    assert affine_residual(sample.degraded[::factor], sample.clean[::factor]) < 1e-5


def test_blunt_tip_lowers_high_frequency_power(pristine):
    image = surface((128, 128), seed=5)
    # A pixel-sampled Gaussian of sigma 0.3 px gives its neighbours only 0.4 % weight.
    for sigma, most in ((0.3, 0.99), (0.45, 0.9), (0.6, 0.75)):
        blurred = blunt_tip.apply(image, blunt_tip.BluntTipParams(sigma))
        assert high_frequency_fraction(blurred) < most * high_frequency_fraction(image)
    sample = degrade(pristine, np.random.default_rng(2), only="blunt_tip")
    assert high_frequency_fraction(sample.degraded) < high_frequency_fraction(sample.clean)


def single_ghost(dy: float, dx: float, kernel: TipKernel) -> MultiTipParams:
    return MultiTipParams(
        ghosts=(
            GhostTip(
                dy, dx, amplitude=2.0, sigmoid_centre=5.0, sigmoid_steepness=10.0, kernel=kernel
            ),
        )
    )


@pytest.mark.parametrize(("dy", "dx"), [(5, -8), (-3, 10), (7, 2)])
def test_multi_tip_adds_a_displaced_copy(dy, dx):
    rng = np.random.default_rng(0)
    spots = np.zeros((128, 128))
    spots[rng.integers(15, 113, 12), rng.integers(15, 113, 12)] = 1.0
    heights = np.clip(ndimage.gaussian_filter(spots, 1.5) * 2 * np.pi * 1.5**2, 0, 1)
    added = (
        multi_tip.apply(heights, single_ghost(dy, dx, TipKernel("gaussian", sigma_px=1.0)))
        - heights
    )
    # The cross-correlation of what was added with the clean image peaks at the offset.
    xcorr = np.fft.ifft2(np.fft.fft2(added) * np.conj(np.fft.fft2(heights))).real
    peak = np.unravel_index(np.argmax(xcorr), xcorr.shape)
    assert peak == (dy % 128, dx % 128)


def test_multi_tip_follows_eq1_for_an_identity_kernel():
    image = surface((64, 64), seed=1)
    image = (image - image.min()) / np.ptp(image)
    out = multi_tip.apply(image, single_ghost(3, 4, TipKernel("median", size_px=1)))
    shifted = np.zeros_like(image)
    shifted[3:, 4:] = image[:-3, :-4]
    expected = image + 2.0 / (1.0 + np.exp(5.0 - 10.0 * shifted))
    np.testing.assert_allclose(out[3:, 4:], expected[3:, 4:], atol=1e-12)


def test_multi_tip_region_matches_the_whole_image():
    rng = np.random.default_rng(5)
    image = rng.random((90, 100))
    params = multi_tip.sample_params(rng, MultiTipConfig(tip_count_probabilities=(0, 0, 1)))
    region = (slice(20, 70), slice(15, 100))
    full = multi_tip.apply(image, params)
    part = multi_tip.apply(image, params, region)
    np.testing.assert_allclose(part[region], full[region], atol=1e-12)


def test_random_kernels_are_normalised_by_their_absolute_sum():
    rng = np.random.default_rng(0)
    config = MultiTipConfig(kernel_probabilities=(0.0, 0.0, 1.0))
    for _ in range(20):
        for ghost in multi_tip.sample_params(rng, config).ghosts:
            weights = np.asarray(ghost.kernel.weights)
            assert weights.shape in ((5, 5), (6, 6))
            assert np.abs(weights).sum() == pytest.approx(1.0)


def test_tip_change_leaves_rows_above_the_line_untouched(pristine):
    image = surface((128, 128), seed=2)
    params = tip_change.TipChangeParams(line=50, blur_sigma_px=1.5, offset=-0.2)
    out = tip_change.apply(image, params)
    assert np.array_equal(out[:50], image[:50])
    assert (np.abs(out[50:] - image[50:]).max(axis=1) > 0).all()
    assert (out[60:] - image[60:]).mean() == pytest.approx(-0.2, abs=0.01)
    sample = degrade(pristine, np.random.default_rng(3), only="tip_change")
    line = sample.params.tip_change.line
    if line > 1:
        assert affine_residual(sample.degraded[:line], sample.clean[:line]) < 1e-5
    assert affine_residual(sample.degraded[line:], sample.clean[line:]) > 1e-3


def test_scan_line_noise_changes_only_the_chosen_segments(pristine):
    rng = np.random.default_rng(9)
    image = rng.random((128, 128))
    params = scan_lines.sample_params(rng, scan_lines.ScanLineConfig(), (128, 128))
    assert 25 <= len(params.segments) <= 35
    assert len({s.row for s in params.segments}) == len(params.segments)
    expected = np.zeros((128, 128), dtype=bool)
    for s in params.segments:
        expected[s.row, s.start_px : s.start_px + s.length_px] = s.profile() != 0
    assert np.array_equal(scan_lines.apply(image, params) != image, expected)

    sample = degrade(pristine, np.random.default_rng(5), only="scan_lines")
    touched = np.zeros((128, 128), dtype=bool)
    for s in sample.params.scan_lines.segments:
        touched[s.row, s.start_px : s.start_px + s.length_px] = s.profile() != 0
    assert affine_residual(sample.degraded[~touched], sample.clean[~touched]) < 1e-5
    assert affine_residual(sample.degraded, sample.clean) > 1e-3


def test_lognormal_segment_jumps_then_recovers():
    segment = scan_lines.NoiseSegment(
        row=0, start_px=0, length_px=100, kind="lognormal", mu=1.5, sigma=0.7
    )
    profile = segment.profile()
    peak = int(np.argmax(profile))
    assert peak + 1 == pytest.approx(math.exp(1.5 - 0.7**2), abs=1)
    assert profile[peak] > 0.05 and profile[-1] < 0.1 * profile[peak]
    assert peak < 10  # sudden rise, long tail


# --- primitives ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 10))
def test_median_filter_matches_scipy(size):
    image = np.random.default_rng(size).random((23, 31))
    # Sizes > 1 work in float32 (see _filters.median_filter); size 1 is the exact identity.
    expected = ndimage.median_filter(image.astype(np.float32), size=size, mode="reflect")
    expected = image if size == 1 else expected
    np.testing.assert_array_equal(_filters.median_filter(image, size), expected)


@pytest.mark.parametrize(("dy", "dx"), [(3.0, -2.0), (1.25, 0.5), (-4.7, 6.1)])
def test_shift_bilinear_matches_scipy(dy, dx):
    image = np.random.default_rng(0).random((30, 40))
    expected = ndimage.shift(image, (dy, dx), order=1, mode="nearest")
    np.testing.assert_allclose(_filters.shift_bilinear(image, dy, dx), expected, atol=1e-12)


# --- defaults and errors ---------------------------------------------------------------------


def assert_frequency(count: int, n: int, p: float) -> None:
    """`count` successes in `n` trials is within 4.5 standard deviations of probability `p`."""
    assert abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + 1, (count, n, p)


def test_probability_defaults_match_the_paper():
    n = 3000
    rng = np.random.default_rng(123)
    draws = [sample_pipeline(rng, (256, 256)) for _ in range(n)]
    fired = {
        name: sum(getattr(d, name) is not None for d in draws)
        for name in ("multi_tip", "misalignment", "blunt_tip", "tip_change", "scan_lines")
    }
    for name, p in {
        "multi_tip": 0.5,
        "misalignment": 0.3,
        "blunt_tip": 0.6,
        "tip_change": 0.6,
        "scan_lines": 0.6,
    }.items():
        assert_frequency(fired[name], n, p)
    for turns in range(4):
        assert_frequency(sum(d.rotation.quarter_turns == turns for d in draws), n, 0.25)

    changes = [d.tip_change for d in draws if d.tip_change]
    assert_frequency(sum(c.offset != 0 for c in changes), len(changes), 0.5)
    offsets = [abs(c.offset) for c in changes if c.offset]
    assert min(offsets) >= 0.05 and max(offsets) <= 0.4
    assert_frequency(sum(c.offset > 0 for c in changes if c.offset), len(offsets), 0.5)

    tips = [d.multi_tip for d in draws if d.multi_tip]
    for count, p in zip((2, 3, 4), (0.5, 0.3, 0.2), strict=True):
        assert_frequency(sum(len(t.ghosts) == count for t in tips), len(tips), p)
    ghosts = [g for t in tips for g in t.ghosts]
    for kind, p in zip(multi_tip.KERNEL_KINDS, (0.3, 0.4, 0.3), strict=True):
        assert_frequency(sum(g.kernel.kind == kind for g in ghosts), len(ghosts), p)
    assert all(5 <= g.sigmoid_centre <= 9 and 7 <= g.sigmoid_steepness <= 10 for g in ghosts)
    assert all(1 <= g.amplitude <= 2.5 for g in ghosts)
    assert all(1 <= abs(g.offset_x_px) <= 11 and 1 <= abs(g.offset_y_px) <= 11 for g in ghosts)
    assert {g.kernel.size_px for g in ghosts if g.kernel.kind == "median"} == set(range(1, 10))
    assert all(1 <= g.kernel.sigma_px <= 3 for g in ghosts if g.kernel.kind == "gaussian")

    blurs = [d.blunt_tip.sigma_px for d in draws if d.blunt_tip]
    assert 0.3 <= min(blurs) < 0.32 and 0.58 < max(blurs) <= 0.6

    noise = [d.scan_lines for d in draws if d.scan_lines]
    assert {len(s.segments) for s in noise} == set(range(25, 36))
    segments = [seg for s in noise for seg in s.segments]
    assert (
        min(seg.length_px for seg in segments) == 0
        and max(seg.length_px for seg in segments) == 102
    )
    for kind, p in zip(scan_lines.SEGMENT_KINDS, (0.3, 0.45, 0.25), strict=True):
        assert_frequency(sum(seg.kind == kind for seg in segments), len(segments), p)
    constants = [seg.offset for seg in segments if seg.kind == "constant"]
    assert min(constants) >= 0 and max(constants) <= 0.4
    lognormals = [seg for seg in segments if seg.kind == "lognormal"]
    assert all(1 <= s.mu <= 2 and 0.5 <= s.sigma <= 1 for s in lognormals)


def test_config_only_forces_one_probability():
    config = DegradationConfig().only("blunt_tip")
    assert config.blunt_tip.probability == 1.0
    assert config.multi_tip.probability == config.scan_lines.probability == 0.0
    assert DegradationConfig().multi_tip.probability == 0.5  # the default is untouched
    with pytest.raises(StmZooError, match="probability"):
        DegradationConfig(
            blunt_tip=dataclasses.replace(blunt_tip.BluntTipConfig(), probability=1.5)
        )


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((100, 300)) + np.arange(300), "smaller than the 128x128 crop"),
        (np.zeros((3, 200, 200)), "2-D"),
        (np.where(np.eye(200) > 0, np.nan, 1.0), "NaN"),
        (np.ones((200, 200)), "flat"),
    ],
)
def test_unusable_pristine_scans_raise_clear_errors(image, message):
    with pytest.raises(StmZooError, match=message):
        degrade(image, np.random.default_rng(0))


def test_unknown_task_or_targeted_set_raise(pristine):
    with pytest.raises(StmZooError, match="Unknown task"):
        degrade(pristine, np.random.default_rng(0), "sr3")
    with pytest.raises(StmZooError, match="Unknown targeted"):
        degrade(pristine, np.random.default_rng(0), only="noise")


def test_benchmark_reports_a_rate_per_task():
    rates = benchmark(25, pristine_size=256)
    assert set(rates) == set(TASKS)
    # Measured ~250 samples/s per core; a loose floor that still catches an accidental
    # full-image median or a per-pixel Python loop on a busy shared machine.
    assert min(rates.values()) > 40


def test_a_shared_target_scale_maps_the_clean_image_by_the_degraded_one(pristine):
    """target_scale="degraded": the same pair, with the clean image in the degraded image's map
    (the only map inference can invert); with no artefact the two images are then identical."""
    own = degrade(pristine, np.random.default_rng(5), "restore")
    shared_config = DegradationConfig(target_scale="degraded")
    shared = degrade(pristine, np.random.default_rng(5), "restore", shared_config)
    assert np.array_equal(shared.degraded, own.degraded)
    assert affine_residual(shared.clean, own.clean) < 1e-5
    assert not np.allclose(shared.clean, own.clean)  # artefacts moved the degraded image's range
    untouched = degrade(
        pristine, np.random.default_rng(5), "restore", shared_config.only("low_res")
    )
    np.testing.assert_allclose(untouched.clean, untouched.degraded, atol=1e-6)
    with pytest.raises(StmZooError, match="Unknown target scale"):
        DegradationConfig(target_scale="clean")

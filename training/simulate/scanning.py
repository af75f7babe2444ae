"""The instrument: raster positions with drift and creep, the z feedback loop, noise, levelling.

These are the *normal* imperfections of a pristine scan; the training pipeline's degradations
(training/degradations.py) add the artefacts the models learn to remove.

Orientation follows `stm_zoo.io.Scan`: row 0 is the first scanned line, columns run along the fast
axis left to right. Output pixel (i, j) is visited at time t = i + j / W lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi
from scipy.signal import lfilter

from training.simulate.lattice import Grid
from training.simulate.params import SimulationParams

FEEDBACK_WARMUP_PX = 32  # the loop settles on a mirrored run-in before each line starts
LINE_OFFSET_CORRELATION = 0.97  # AR(1) per-line offsets: 1/f-like stripes, no unbounded walk
SPIKE_FRACTION = 0.3  # share of in-loop samples over unstable sites that carry a current spike
SPIKE_SCALE = 2.0  # spike size relative to the defect noise


@dataclass(frozen=True)
class Distortion:
    """Scan-frame distortions of one image (drawn once per image).

    Attributes:
        shear: x displacement per nm of slow-axis travel (thermal drift during the frame).
        scale_x, scale_y: piezo calibration factors (true nm per nominal nm).
        creep_x_nm, creep_y_nm: creep displacement at the first line, decaying logarithmically.
        creep_lines: time constant of the creep in lines.
    """

    shear: float
    scale_x: float
    scale_y: float
    creep_x_nm: float
    creep_y_nm: float
    creep_lines: float


def draw_distortion(rng: np.random.Generator, params: SimulationParams) -> Distortion:
    """Draw drift, calibration error and creep for one image."""
    return Distortion(
        shear=float(rng.normal(0.0, params.drift_shear)),
        scale_x=float(1.0 + rng.normal(0.0, params.scale_error)),
        scale_y=float(1.0 + rng.normal(0.0, params.scale_error)),
        creep_x_nm=float(rng.uniform(*params.creep_nm) * rng.choice([-1.0, 1.0])),
        creep_y_nm=float(rng.uniform(*params.creep_nm) * rng.choice([-1.0, 1.0])),
        creep_lines=float(rng.uniform(*params.creep_lines)),
    )


def raster_positions(
    distortion: Distortion, size_px: int, pixel_size_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where on the surface the tip is at each output pixel.

    The nominal frame is centred on (0, 0). Creep after the move to the frame start follows
    c(t) = c0 (1 - ln(1 + t / tau) / ln(1 + T / tau)): fast in the first lines, gone at the end.

    Returns:
        y_nm, x_nm: (size_px, size_px) float64 surface coordinates in nm.
    """
    idx = np.arange(size_px, dtype=np.float64) - 0.5 * (size_px - 1)
    yn = (idx * pixel_size_nm)[:, None]
    xn = (idx * pixel_size_nm)[None, :]
    t = np.arange(size_px)[:, None] + np.arange(size_px)[None, :] / size_px
    tau = distortion.creep_lines
    creep = 1.0 - np.log1p(t / tau) / math.log1p(size_px / tau)
    x = xn * distortion.scale_x + distortion.shear * yn + distortion.creep_x_nm * creep
    y = yn * distortion.scale_y + distortion.creep_y_nm * creep
    return y, x


def fine_grid(y_nm: np.ndarray, x_nm: np.ndarray, step_nm: float, pad_nm: float) -> Grid:
    """The smallest grid of pitch `step_nm` covering all sampled positions plus `pad_nm`."""
    y0 = float(y_nm.min()) - pad_nm
    x0 = float(x_nm.min()) - pad_nm
    rows = int(math.ceil((float(y_nm.max()) + pad_nm - y0) / step_nm)) + 1
    cols = int(math.ceil((float(x_nm.max()) + pad_nm - x0) / step_nm)) + 1
    return Grid(x0_nm=x0, y0_nm=y0, step_nm=step_nm, shape=(rows, cols))


def gaussian_blur(field: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur through the FFT (periodic; callers keep a margin of > 4 sigma around what
    they sample). Several times faster than a separable filter for the tip-sized kernels here.

    Args:
        field: (H, W) float32 image.
        sigma_px: standard deviation in pixels.

    Returns:
        (H, W) float32 blurred image.
    """
    h, w = field.shape
    # Zero-padding to FFT-friendly sizes only touches the margin the caller keeps anyway.
    shape = (sfft.next_fast_len(h, real=True), sfft.next_fast_len(w, real=True))
    spectrum = sfft.rfft2(field, s=shape)
    spectrum = ndi.fourier_gaussian(spectrum, sigma_px, n=shape[1])
    return sfft.irfft2(spectrum, s=shape)[:h, :w].astype(np.float32)


def sample(
    field: np.ndarray, grid: Grid, y_nm: np.ndarray, x_nm: np.ndarray, order: int = 1
) -> np.ndarray:
    """Values of a fine-grid field at surface positions (bilinear by default)."""
    coords = np.stack([(y_nm - grid.y0_nm) / grid.step_nm, (x_nm - grid.x0_nm) / grid.step_nm])
    return ndi.map_coordinates(field, coords, order=order, mode="nearest", prefilter=False)


def feedback(heights_nm: np.ndarray, resonance_cpp: float, pole_radius: float) -> np.ndarray:
    """The z feedback loop and current preamplifier along each line, as one causal filter.

    A second-order low-pass with poles at radius `pole_radius` and angle 2 pi `resonance_cpp`
    and a double zero at the Nyquist frequency, unit gain at DC. It lags, overshoots after edges
    (the bright pixels to the right of vacancies in real scans) and shapes the noise that enters
    the loop: flat, a resonance bump, then a steep fall towards the fast-axis Nyquist frequency,
    which is the spectrum measured on the reference scan (fit: radius 0.6, 0.23 cycles/px).

    Args:
        heights_nm: (H, W) what a perfect loop would record, lines along axis 1.
        resonance_cpp: resonance frequency in cycles per pixel (< 0.5).
        pole_radius: in (0, 1); larger rings longer.

    Returns:
        (H, W) recorded heights.
    """
    a = np.array(
        [1.0, -2.0 * pole_radius * math.cos(2.0 * math.pi * resonance_cpp), pole_radius**2]
    )
    b = np.array([1.0, 2.0, 1.0]) * a.sum() / 4.0
    warmup = heights_nm[:, FEEDBACK_WARMUP_PX:0:-1]
    padded = np.concatenate([warmup, heights_nm], axis=1)
    # Start the loop settled on the first warm-up value rather than climbing from zero.
    start = padded[:, :1]
    out = lfilter(b, a, padded - start, axis=1) + start
    return out[:, warmup.shape[1] :]


@dataclass(frozen=True)
class Recording:
    """What `record` drew for one image (all in nm except the loop's two numbers)."""

    mottling_nm: float
    feedback_resonance_cpp: float
    feedback_pole_radius: float
    line_noise_nm: float
    defect_noise_nm: float
    pixel_noise_nm: float
    line_offset_nm: float


def record(
    heights_nm: np.ndarray,
    unstable: np.ndarray,
    pixel_size_nm: float,
    rng: np.random.Generator,
    params: SimulationParams,
) -> tuple[np.ndarray, Recording]:
    """Turn the surface under the raster into recorded lines.

    In order: a faint mottling of the surface; noise entering the loop (white, larger and
    mostly upward over unstable sites, where the current spikes and the loop pulls the tip back);
    the feedback filter along each line; electronic white noise; AR(1) per-line offsets.

    Args:
        heights_nm: (H, W) surface heights at the raster positions.
        unstable: (H, W) in [0, 1], where the tunnelling junction is unstable.
        pixel_size_nm: pixel pitch (sets the mottling's correlation length in pixels).
        rng: the image's generator.
        params: noise and loop distributions.

    Returns:
        (H, W) recorded heights and the drawn values.
    """
    h, w = heights_nm.shape
    drawn = Recording(
        mottling_nm=float(rng.uniform(*params.mottling_nm)),
        feedback_resonance_cpp=float(rng.uniform(*params.feedback_resonance_cpp)),
        feedback_pole_radius=float(rng.uniform(*params.feedback_pole_radius)),
        line_noise_nm=float(rng.uniform(*params.line_noise_nm)),
        defect_noise_nm=float(rng.uniform(*params.defect_noise_nm)),
        pixel_noise_nm=float(rng.uniform(*params.pixel_noise_nm)),
        line_offset_nm=float(rng.uniform(*params.line_offset_nm)),
    )
    field = ndi.gaussian_filter(
        rng.standard_normal((h, w)), params.mottling_length_nm / pixel_size_nm
    )
    z = heights_nm + drawn.mottling_nm * field / max(float(field.std()), 1e-12)
    spikes = rng.exponential(1.0, (h, w)) * (rng.random((h, w)) < SPIKE_FRACTION)
    z += drawn.line_noise_nm * rng.standard_normal((h, w))
    z += drawn.defect_noise_nm * unstable * (rng.standard_normal((h, w)) + SPIKE_SCALE * spikes)
    z = feedback(z, drawn.feedback_resonance_cpp, drawn.feedback_pole_radius)
    z += drawn.pixel_noise_nm * rng.standard_normal((h, w))
    offsets = lfilter([1.0], [1.0, -LINE_OFFSET_CORRELATION], rng.standard_normal(h))
    z += (drawn.line_offset_nm * offsets)[:, None]
    return z, drawn


def level(heights_nm: np.ndarray, terrace_level: np.ndarray, by_lines: bool) -> np.ndarray:
    """Level as a user would: remove the plane fitted with one offset per terrace (so terraces
    end up flat and one step apart), then, when `by_lines`, each line's mean offset from those
    terraces (line levelling, as the reference scan was processed, done with the terraces
    masked as a careful user would). Outliers (contamination) are dropped from a second fit.

    Args:
        heights_nm: (H, W) heights.
        terrace_level: (H, W) int terrace index of each pixel.
        by_lines: also subtract each line's mean.

    Returns:
        (H, W) float64 levelled heights with zero mean.
    """
    h, w = heights_nm.shape
    sub = (slice(None, None, 4), slice(None, None, 4))
    yy, xx = np.mgrid[0:h, 0:w]
    ys, xs = yy[sub].ravel() / h, xx[sub].ravel() / w
    z = heights_nm[sub].ravel()
    levels = terrace_level[sub].ravel().astype(np.int64)
    present = np.unique(levels)
    columns = [xs, ys] + [(levels == lv).astype(np.float64) for lv in present]
    design = np.column_stack(columns)
    keep = np.ones(z.size, dtype=bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], z[keep], rcond=None)
        residual = z - design @ coef
        mad = np.median(np.abs(residual - np.median(residual))) + 1e-12
        keep = np.abs(residual) < 4.0 * 1.4826 * mad
    out = heights_nm - (coef[0] * xx / w + coef[1] * yy / h)
    if by_lines:
        # Line offsets are estimated with the terrace offsets taken out, so steps survive.
        terrace_offset = np.zeros(int(terrace_level.max()) + 1)
        terrace_offset[present] = coef[2:]
        out = out - (out - terrace_offset[terrace_level]).mean(axis=1, keepdims=True)
    return out - out.mean()

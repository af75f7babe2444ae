"""The crystal: terraces separated by monatomic SA/SB steps, and the dimer rows on each terrace.

Geometry lives in a lattice frame (u, v) rotated by the row angle theta from the scan frame (x along
the fast axis, y along the slow axis, both in nm): u = x cos(theta) + y sin(theta),
v = -x sin(theta) + y cos(theta). On terraces of even parity the dimer rows run along u (lines of
constant v); on odd ones along v, because the rows turn by 90 degrees at every monatomic step.

Step edges run on average along u (the miscut azimuth, plus a small angle that makes kinks), so an
edge is SA when the rows of its upper terrace run along u (parallel to the edge: straight, kinks of
a whole row) and SB when they run along v (rows end on the edge: rough, kinks in dimer units).
Level 0 is the top terrace; heights fall by one step height per level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import lfilter

from training.simulate.params import SimulationParams


@dataclass(frozen=True)
class Grid:
    """A regular grid of points in the scan frame: point (r, c) sits at (x0 + c step, y0 + r step).

    Attributes:
        x0_nm, y0_nm: position of point (0, 0) in nm.
        step_nm: grid pitch in nm.
        shape: (rows, cols).
    """

    x0_nm: float
    y0_nm: float
    step_nm: float
    shape: tuple[int, int]

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """(y (rows, 1), x (1, cols)) coordinates in nm, float64, ready to broadcast."""
        y = self.y0_nm + self.step_nm * np.arange(self.shape[0], dtype=np.float64)
        x = self.x0_nm + self.step_nm * np.arange(self.shape[1], dtype=np.float64)
        return y[:, None], x[None, :]


@dataclass
class Terraces:
    """Row orientation and step edges of one simulated surface.

    Attributes:
        theta_rad: angle of the u axis (rows of even-parity terraces) from the fast axis.
        parity0: parity of level 0; rows of level L run along u when (L + parity0) is even.
        down_sign: +1 when levels increase (the surface steps down) towards +v, else -1.
        u0_nm, du_nm: the u sampling of the edge tables.
        edges: (n_steps, n_u) v position of each edge as a function of u; edge k separates level
            k (upper) from level k + 1.
        edge_types: "SA" or "SB" per edge.
        row_phase_nm: (n_steps + 1,) offset of the row centres of each level (across the rows).
        dimer_phase_nm: (n_steps + 1,) offset of the dimer positions of each level (along rows).
    """

    theta_rad: float
    parity0: int
    down_sign: int
    u0_nm: float
    du_nm: float
    edges: np.ndarray
    edge_types: list[str]
    row_phase_nm: np.ndarray
    dimer_phase_nm: np.ndarray

    def to_lattice(self, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scan-frame (y, x) in nm (broadcastable arrays) to lattice-frame (u, v) in nm."""
        c, s = math.cos(self.theta_rad), math.sin(self.theta_rad)
        return x * c + y * s, y * c - x * s

    def level(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Terrace level (0 = top) at lattice-frame points; int8 array of the broadcast shape."""
        u, v = np.broadcast_arrays(u, v)
        level = np.zeros(u.shape, dtype=np.int8)
        if len(self.edges) == 0:
            return level
        iu = np.clip(((u - self.u0_nm) / self.du_nm).astype(np.int64), 0, self.edges.shape[1] - 1)
        for edge in self.edges:
            level += (self.down_sign * (v - edge[iu]) > 0).astype(np.int8)
        return level

    def rows_along_u(self, level: np.ndarray) -> np.ndarray:
        """Boolean array: True where the rows of that level run along u."""
        return (level.astype(np.int64) + self.parity0) % 2 == 0


def draw_row_angle(rng: np.random.Generator, params: SimulationParams) -> float:
    """Row angle in degrees in [0, 180): usually near 0/45/90/135 (aligned scan frames)."""
    if rng.random() < params.p_aligned_angle:
        base = 45.0 * rng.integers(0, 4)
        return float((base + rng.normal(0.0, params.aligned_angle_jitter_deg)) % 180.0)
    return float(rng.uniform(0.0, 180.0))


def _smooth_noise(rng: np.random.Generator, n: int, sigma_samples: float) -> np.ndarray:
    """(n,) Gaussian-filtered white noise with unit standard deviation."""
    noise = ndi.gaussian_filter1d(rng.standard_normal(n), sigma_samples, mode="wrap")
    return noise / max(float(noise.std()), 1e-12)


def _sa_edge(
    rng: np.random.Generator,
    u: np.ndarray,
    ideal: np.ndarray,
    row_phase: float,
    dimer_phase: float,
    params: SimulationParams,
) -> np.ndarray:
    """An SA edge: the upper terrace's rows run along the edge, so the edge lies in a trench
    (quantised to whole rows) and can only jump where a dimer ends (u quantised to 0.384 nm)."""
    a, s = params.dimer_spacing_nm, params.row_spacing_nm
    iq = np.floor((u - dimer_phase) / a).astype(np.int64)
    iq -= iq.min()
    # The ideal line evaluated at the start of each dimer cell: kinks only at dimer boundaries.
    cell_start = np.searchsorted(iq, np.arange(iq.max() + 1))
    quantised_ideal = ideal[cell_start][iq]
    n_rows = np.round((quantised_ideal - row_phase) / s - 0.5) + 0.5
    # Rare extra kinks: a segment of the edge advanced or retreated by one row.
    length = u[-1] - u[0]
    for _ in range(rng.poisson(params.sa_kink_rate_nm * length)):
        start = rng.uniform(u[0], u[-1])
        seg = (u >= start) & (u < start + a * rng.integers(2, 16))
        n_rows[seg] += rng.choice([-1.0, 1.0])
    return row_phase + n_rows * s


def _sb_edge(
    rng: np.random.Generator,
    u: np.ndarray,
    ideal: np.ndarray,
    row_phase: float,
    dimer_phase: float,
    params: SimulationParams,
) -> np.ndarray:
    """An SB edge: the upper terrace's rows end on the edge, each row at its own dimer count, so
    the edge is piecewise constant over one row width with positions quantised to 0.384 nm and a
    correlated row-to-row roughness."""
    a, s = params.dimer_spacing_nm, params.row_spacing_nm
    row_index = np.floor((u - row_phase) / s + 0.5).astype(np.int64)
    row_index -= row_index.min()
    n_rows = int(row_index.max()) + 1
    rho = params.sb_correlation
    shocks = rng.standard_normal(n_rows) * math.sqrt(1.0 - rho**2)
    roughness = lfilter([1.0], [1.0, -rho], shocks) * params.sb_roughness_dimers * a
    row_start = np.searchsorted(row_index, np.arange(n_rows))
    position = ideal[row_start] + roughness
    position = dimer_phase + np.round((position - dimer_phase) / a) * a
    return position[row_index]


def draw_terraces(
    rng: np.random.Generator,
    params: SimulationParams,
    row_angle_deg: float,
    grid: Grid,
    image_half_nm: float,
) -> Terraces:
    """Draw the step edges crossing the image and the row phases of each terrace.

    Args:
        rng: the image's generator.
        params: simulation parameters.
        row_angle_deg: angle of the u axis from the fast axis.
        grid: the fine grid the surface will be drawn on (the edge tables cover it).
        image_half_nm: half the side of the imaged square, centred on (0, 0).

    Returns:
        The terraces; `edges` is empty when no step was drawn.
    """
    theta = math.radians(row_angle_deg)
    probs = np.asarray(params.step_count_probs, dtype=float)
    n_steps = int(rng.choice(len(probs), p=probs / probs.sum()))
    parity0 = int(rng.integers(0, 2))
    down_sign = int(rng.choice([-1, 1]))
    a, s = params.dimer_spacing_nm, params.row_spacing_nm

    h, w = grid.shape
    x1, y1 = grid.x0_nm + w * grid.step_nm, grid.y0_nm + h * grid.step_nm
    corners_x = np.array([grid.x0_nm, x1, grid.x0_nm, x1])
    corners_y = np.array([grid.y0_nm, grid.y0_nm, y1, y1])
    corners_u = corners_x * math.cos(theta) + corners_y * math.sin(theta)
    du = grid.step_nm / 2.0
    u0 = float(corners_u.min()) - 2.0
    u = u0 + du * np.arange(int((corners_u.max() + 2.0 - u0) / du) + 2)

    # Edge centres spread over the image so every drawn step is visible.
    span = 0.8 * image_half_nm
    offsets = np.sort(rng.uniform(-span, span, n_steps))
    for _ in range(100):
        if n_steps < 2 or np.diff(offsets).min() >= params.min_terrace_width_nm:
            break
        offsets = np.sort(rng.uniform(-span, span, n_steps))
    else:
        n_steps = 1
        offsets = offsets[:1]
    # Edge 0 borders the top terrace: it comes first along the direction of descent.
    centres = offsets if down_sign > 0 else offsets[::-1]
    tilt = math.tan(math.radians(rng.normal(0.0, params.edge_angle_jitter_deg)))

    row_phase = rng.uniform(0.0, s, n_steps + 1)
    dimer_phase = rng.uniform(0.0, a, n_steps + 1)
    edges = np.zeros((n_steps, u.size))
    edge_types: list[str] = []
    for k in range(n_steps):
        upper_along_u = (k + parity0) % 2 == 0
        meander = rng.uniform(*params.edge_meander_nm) * _smooth_noise(
            rng, u.size, params.edge_meander_length_nm / du / 2.0
        )
        if upper_along_u:
            meander *= params.sa_meander_factor
        ideal = centres[k] + tilt * u + meander
        make_edge = _sa_edge if upper_along_u else _sb_edge
        edge_types.append("SA" if upper_along_u else "SB")
        edges[k] = make_edge(rng, u, ideal, row_phase[k], dimer_phase[k], params)
    # Keep edges ordered so that levels only increase across them (meanders could cross).
    if n_steps > 1:
        edges = np.sort(edges, axis=0)
        if down_sign < 0:
            edges = edges[::-1]
    return Terraces(
        theta_rad=theta,
        parity0=parity0,
        down_sign=down_sign,
        u0_nm=u0,
        du_nm=du,
        edges=edges,
        edge_types=edge_types,
        row_phase_nm=row_phase,
        dimer_phase_nm=dimer_phase,
    )


def row_gain(sigma_nm: float, period_nm: float) -> float:
    """Amplitude transmitted by a Gaussian blur of std `sigma_nm` at spatial period `period_nm`."""
    return math.exp(-2.0 * math.pi**2 * sigma_nm**2 / period_nm**2)


def row_field(
    terraces: Terraces,
    level: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    amplitude_nm: float,
    modulation: float,
    params: SimulationParams,
) -> np.ndarray:
    """Dimer-row corrugation before the tip blur: bright rows, dark trenches.

    Args:
        terraces: orientation and phases per level.
        level: (H, W) terrace level of each point.
        u, v: lattice-frame coordinates broadcastable to (H, W), nm.
        amplitude_nm: half the peak-to-peak of the across-row wave.
        modulation: strength of the 0.384 nm wave along the rows (dimers), relative to
            `amplitude_nm`, carried on the bright rows only.
        params: lattice constants.

    Returns:
        (H, W) float32 heights in nm with zero mean over a row period.
    """
    along_u = terraces.rows_along_u(level)
    across = np.where(along_u, v, u) - terraces.row_phase_nm[level]
    along = np.where(along_u, u, v) - terraces.dimer_phase_nm[level]
    across_wave = np.cos((2.0 * math.pi / params.row_spacing_nm) * across)
    field = across_wave
    if modulation > 0:
        dimers = np.cos((2.0 * math.pi / params.dimer_spacing_nm) * along)
        field = field + modulation * dimers * 0.5 * (1.0 + across_wave)
    return (amplitude_nm * field).astype(np.float32)

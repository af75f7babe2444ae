"""Point defects and adsorbates of a pristine Si(001):H surface, drawn on the lattice and rendered.

Two kinds of rendering, because they enter the image at different stages:
- dimer vacancies are *structure*: they remove dimers (and with them the row corrugation) before
  the tip blur, so their apparent shape comes from the blur like the rows' does;
- dangling bonds, their halos, contamination and subsurface bumps are drawn with their *apparent*
  (already tip-broadened) sizes and heights after the blur, so their widths and heights are the
  numbers measured in filled-state images (Schofield et al. 2013) rather than guesses of the
  underlying electronic state.
Every defect is a small patch added to a canvas: a few hundred cheap numpy operations per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.simulate.lattice import Grid, Terraces
from training.simulate.params import SimulationParams

DB_ATOM_OFFSET_NM = 0.12  # a dangling bond sits on one Si atom of its dimer, off the row centre
VACANCY_WIDTH_NM = 0.5  # footprint of a missing dimer across its row (the rest is trench)
EDGE_SOFTNESS_NM = 0.04
HALO_KINDS = ("none", "bright", "dark")


@dataclass
class Defects:
    """Everything point-like on one simulated surface, in scan-frame nm.

    Attributes:
        vacancies: (n, 6) centre x, centre y, row direction angle (rad), length along the row,
            width across it, depth before the tip blur (nm).
        dangling_bonds: (n, 4) x, y, apparent height, apparent Gaussian sigma (nm).
        halo: "none", "bright" or "dark"; halo_amplitude_nm / halo_decay_nm describe it.
        blobs: per contamination cluster, (m, 4) Gaussians x, y, sigma, height.
        bumps: (n, 4) x, y, sigma, signed amplitude of broad subsurface bumps.
        n_vacancy_sites, n_db_pairs, n_db_chains: counts for the image's record.
    """

    vacancies: np.ndarray
    dangling_bonds: np.ndarray
    halo: str
    halo_amplitude_nm: float
    halo_decay_nm: float
    blobs: list[np.ndarray] = field(default_factory=list)
    bumps: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    n_vacancy_sites: int = 0
    n_db_pairs: int = 0
    n_db_chains: int = 0


@dataclass(frozen=True)
class _Site:
    """A lattice site snapped to a row centre and a dimer position of its terrace."""

    across: float  # row-centre coordinate across the rows (nm, lattice frame)
    along: float  # dimer-centre coordinate along the row (nm, lattice frame)
    along_u: bool  # rows of this terrace run along u
    theta: float

    def to_xy(self, along: float, across: float) -> tuple[float, float]:
        """Lattice (along, across) of this terrace to scan-frame (x, y) in nm."""
        u, v = (along, across) if self.along_u else (across, along)
        c, s = math.cos(self.theta), math.sin(self.theta)
        return u * c - v * s, u * s + v * c

    @property
    def row_angle(self) -> float:
        """Direction of the rows in the scan frame, rad."""
        return self.theta if self.along_u else self.theta + math.pi / 2


def _snap(terraces: Terraces, x: float, y: float, params: SimulationParams) -> _Site:
    """The row centre and dimer position of the terrace under (x, y)."""
    u, v = terraces.to_lattice(np.array(y), np.array(x))
    level = terraces.level(u, v)
    along_u = bool(terraces.rows_along_u(level))
    lvl = int(level)
    across, along = (float(v), float(u)) if along_u else (float(u), float(v))
    s, a = params.row_spacing_nm, params.dimer_spacing_nm
    phase, dphase = terraces.row_phase_nm[lvl], terraces.dimer_phase_nm[lvl]
    return _Site(
        across=phase + round((across - phase) / s) * s,
        along=dphase + round((along - dphase) / a) * a,
        along_u=along_u,
        theta=terraces.theta_rad,
    )


def _box_gain(length_nm: float, width_nm: float, sigma_nm: float) -> float:
    """Peak of a unit box after a Gaussian blur: how much of a vacancy's depth survives the tip."""
    k = 1.0 / (2.0 * math.sqrt(2.0) * sigma_nm)
    return math.erf(length_nm * k) * math.erf(width_nm * k)


def draw_defects(
    rng: np.random.Generator,
    params: SimulationParams,
    terraces: Terraces,
    grid: Grid,
    tip_sigma_nm: float,
) -> Defects:
    """Draw all defects over the fine grid's area (Poisson counts from the drawn densities).

    Args:
        rng: the image's generator.
        params: densities, sizes and heights.
        terraces: where the rows and dimers are.
        grid: the fine grid; its area sets the expected counts.
        tip_sigma_nm: the tip blur, so that vacancy depths can be set to their apparent values.

    Returns:
        The drawn defects.
    """
    h, w = grid.shape
    x_lo, y_lo = grid.x0_nm, grid.y0_nm
    x_hi, y_hi = x_lo + w * grid.step_nm, y_lo + h * grid.step_nm
    area = (x_hi - x_lo) * (y_hi - y_lo)
    a, s = params.dimer_spacing_nm, params.row_spacing_nm

    def positions(density_range: tuple[float, float]) -> np.ndarray:
        n = rng.poisson(rng.uniform(*density_range) * area)
        return np.column_stack([rng.uniform(x_lo, x_hi, n), rng.uniform(y_lo, y_hi, n)])

    # Dimer vacancies: a few dimers along a row, sometimes with a partner further along the same
    # row or on the neighbouring one (the clusters of the reference scan).
    length_probs = np.asarray(params.vacancy_length_probs, dtype=float)
    length_probs /= length_probs.sum()
    vacancies = []
    sites = positions(params.vacancy_density_nm2)
    for x, y in sites:
        site = _snap(terraces, x, y, params)
        members = [(0.0, 0.0)]
        lengths = [int(rng.choice(len(length_probs), p=length_probs)) + 1]
        if rng.random() < params.p_vacancy_cluster:
            if rng.random() < 0.5:
                # Further along the same row, one dimer left standing in between.
                members.append(((lengths[0] + 1) * a, 0.0))
            else:
                members.append((float(rng.integers(-1, 2)) * a, float(rng.choice([-s, s]))))
            lengths.append(int(rng.choice(len(length_probs), p=length_probs)) + 1)
        for (along_shift, across_shift), n_dimers in zip(members, lengths, strict=True):
            length = n_dimers * a
            depth = rng.uniform(*params.vacancy_depth_nm)
            depth_pre = depth / _box_gain(length, VACANCY_WIDTH_NM, tip_sigma_nm)
            cx, cy = site.to_xy(
                site.along + along_shift + 0.5 * (n_dimers - 1) * a, site.across + across_shift
            )
            vacancies.append([cx, cy, site.row_angle, length, VACANCY_WIDTH_NM, depth_pre])

    # Dangling bonds: singles, pairs two dimers apart along a row, and chains along a row.
    dbs = []
    n_pairs = n_chains = 0
    for x, y in positions(params.db_density_nm2):
        site = _snap(terraces, x, y, params)
        draw = rng.random()
        if draw < params.p_db_chain:
            count = int(rng.integers(params.db_chain_length[0], params.db_chain_length[1] + 1))
            n_chains += 1
        elif draw < params.p_db_chain + params.p_db_pair:
            count = 2
            n_pairs += 1
        else:
            count = 1
        side = float(rng.choice([-1.0, 1.0])) * DB_ATOM_OFFSET_NM
        for i in range(count):
            bx, by = site.to_xy(site.along + 2 * a * i, site.across + side)
            sigma = rng.uniform(*params.db_fwhm_nm) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
            dbs.append([bx, by, rng.uniform(*params.db_height_nm), sigma])

    halo_probs = np.asarray(params.halo_probs, dtype=float)
    halo = HALO_KINDS[int(rng.choice(3, p=halo_probs / halo_probs.sum()))]
    halo_amplitude = rng.uniform(*params.halo_amplitude_nm)
    halo_decay = rng.uniform(*params.halo_decay_nm)

    # Contamination: irregular clusters of a few overlapping Gaussians.
    blobs = []
    for x, y in positions(params.blob_density_nm2):
        size = rng.uniform(*params.blob_size_nm)
        height = rng.uniform(*params.blob_height_nm)
        m = int(rng.integers(2, 6))
        parts = np.column_stack(
            [
                x + rng.normal(0.0, 0.6 * size, m),
                y + rng.normal(0.0, 0.6 * size, m),
                size * rng.uniform(0.4, 1.0, m),
                height * rng.uniform(0.4, 1.0, m),
            ]
        )
        blobs.append(parts)

    bump_xy = positions(params.bump_density_nm2)
    n_bumps = len(bump_xy)
    bumps = np.column_stack(
        [
            bump_xy,
            rng.uniform(*params.bump_sigma_nm, n_bumps),
            rng.uniform(*params.bump_amplitude_nm, n_bumps) * rng.choice([-1.0, 1.0], n_bumps),
        ]
    )
    return Defects(
        vacancies=np.asarray(vacancies, dtype=float).reshape(-1, 6),
        dangling_bonds=np.asarray(dbs, dtype=float).reshape(-1, 4),
        halo=halo,
        halo_amplitude_nm=float(halo_amplitude),
        halo_decay_nm=float(halo_decay),
        blobs=blobs,
        bumps=bumps.reshape(-1, 4),
        n_vacancy_sites=len(sites),
        n_db_pairs=n_pairs,
        n_db_chains=n_chains,
    )


def _patch(
    grid: Grid, x: float, y: float, radius: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Slices of the grid within `radius` nm of (x, y) and the offsets (dy (r, 1), dx (1, c)) of
    their points from (x, y) in nm; None when the patch misses the grid."""
    step = grid.step_nm
    r0 = max(int((y - radius - grid.y0_nm) / step), 0)
    r1 = min(int((y + radius - grid.y0_nm) / step) + 2, grid.shape[0])
    c0 = max(int((x - radius - grid.x0_nm) / step), 0)
    c1 = min(int((x + radius - grid.x0_nm) / step) + 2, grid.shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    dy = grid.y0_nm + step * np.arange(r0, r1)[:, None] - y
    dx = grid.x0_nm + step * np.arange(c0, c1)[None, :] - x
    return (slice(r0, r1), slice(c0, c1)), dy, dx


def _add(
    canvas: np.ndarray,
    grid: Grid,
    x: float,
    y: float,
    radius: float,
    shape: Callable[[np.ndarray], np.ndarray],
) -> None:
    """canvas += shape(r^2) over the patch around (x, y), r^2 in nm^2."""
    patch = _patch(grid, x, y, radius)
    if patch is not None:
        sl, dy, dx = patch
        canvas[sl] += shape(dy**2 + dx**2)


def _soft_step(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(x / EDGE_SOFTNESS_NM))


def render_vacancies(defects: Defects, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Vacancy footprints before the tip blur.

    Returns:
        mask: (H, W) float32 in [0, 1], 1 where a dimer is missing (the rows vanish there).
        depth: (H, W) float32 nm to subtract there.
    """
    mask = np.zeros(grid.shape, dtype=np.float32)
    depth = np.zeros(grid.shape, dtype=np.float32)
    for x, y, angle, length, width, depth_pre in defects.vacancies:
        patch = _patch(grid, x, y, 0.5 * length + width)
        if patch is None:
            continue
        sl, dy, dx = patch
        c, s = math.cos(angle), math.sin(angle)
        along = dx * c + dy * s
        across = dy * c - dx * s
        footprint = _soft_step(0.5 * length - np.abs(along)) * _soft_step(
            0.5 * width - np.abs(across)
        )
        np.maximum(mask[sl], footprint, out=mask[sl])
        np.maximum(depth[sl], depth_pre * footprint, out=depth[sl])
    return mask, depth


def render_apparent(defects: Defects, grid: Grid, canvas: np.ndarray, unstable: np.ndarray) -> None:
    """Add dangling bonds (with halos), contamination and bumps to a tip-blurred height map.

    Args:
        defects: what to draw.
        grid: the canvas's grid.
        canvas: (H, W) heights in nm, modified in place.
        unstable: (H, W) where the tunnelling junction is unstable (0..1, over contamination),
            modified in place (maximum with what is there).
    """
    halo_sign = {"none": 0.0, "bright": 1.0, "dark": -1.0}[defects.halo]
    halo_amp = halo_sign * defects.halo_amplitude_nm
    decay = defects.halo_decay_nm
    for x, y, height, sigma in defects.dangling_bonds:
        # The halo is cut at 3 decay lengths (5 % of a few pm: below the noise).
        patch = _patch(grid, x, y, 3.5 * sigma + (3.0 * decay if halo_amp else 0.0))
        if patch is None:
            continue
        sl, dy, dx = patch
        r2 = dy**2 + dx**2
        canvas[sl] += height * np.exp(-r2 / (2.0 * sigma**2))
        if halo_amp:
            # Softened at the centre so that the halo has no cusp under the DB.
            canvas[sl] += halo_amp * np.exp(-np.sqrt(r2 + sigma**2) / decay)
    for parts in defects.blobs:
        for x, y, sigma, height in parts:
            patch = _patch(grid, x, y, 3.5 * sigma)
            if patch is None:
                continue
            sl, dy, dx = patch
            profile = np.exp(-(dy**2 + dx**2) / (2.0 * sigma**2))
            canvas[sl] += height * profile
            np.maximum(unstable[sl], profile, out=unstable[sl])
    for x, y, sigma, amplitude in defects.bumps:
        _add(
            canvas,
            grid,
            x,
            y,
            3.0 * sigma,
            lambda r2, a=amplitude, s=sigma: a * np.exp(-r2 / (2.0 * s**2)),
        )

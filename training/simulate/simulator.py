"""`simulate_scan`: one pristine filled-state Si(001):H STM scan from one integer seed.

The recipe of si001h-physics.md, in order:
1. raster positions with drift, calibration error and creep decide which patch of surface the scan
   sees; the surface is drawn on a grid 3x finer than the pixels (at most 0.08 nm) covering it;
2. terraces with monatomic steps (alternating straight SA / rough SB edges), rows turning 90
   degrees at every step, each terrace with its own row and dimer phase;
3. dimer rows (0.768 nm, bright rows and dark trenches, a weak 0.384 nm modulation along them)
   with dimer vacancies cut out of them;
4. the good-tip Gaussian blur, with each layer's pre-blur amplitude set so that its apparent
   (post-blur) height is the drawn one; then dangling bonds (pairs, chains, halos),
   contamination and subsurface bumps at their apparent sizes;
5. the raster: bilinear sampling at the drifting positions, a faint mottling of the surface,
   noise entering the z feedback loop (a lagging, ringing low-pass along the fast axis, noisier
   over unstable sites), electronic noise and line offsets;
6. levelling as a user would (terrace-aware plane, sometimes line by line), heights in nm.
All randomness comes from `np.random.default_rng(seed)`, drawn in a fixed order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from stm_zoo.errors import StmZooError
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM
from training.simulate import defects as defects_mod
from training.simulate import lattice, scanning
from training.simulate.params import DrawnParams, SimulationParams

if TYPE_CHECKING:
    from stm_zoo.io.scan import Scan

UNSTABLE_SPREAD_NM = 0.4  # the junction is unsettled a little beyond a vacancy's footprint


@dataclass
class SimulatedScan:
    """One simulated scan.

    Attributes:
        heights_nm: (size_px, size_px) float32 levelled heights in nm; row 0 is the first line,
            columns run along the fast axis.
        pixel_size_nm: pixel pitch in nm (square pixels).
        params: what was drawn for this image (`params.to_dict()` is JSON-friendly).
        terrace_level: (size_px, size_px) int8 terrace index of each pixel (0 = top terrace),
            the ground truth behind the steps.
    """

    heights_nm: np.ndarray
    pixel_size_nm: float
    params: DrawnParams
    terrace_level: np.ndarray

    def to_scan(self) -> Scan:
        """The scan as a `stm_zoo.io.Scan` (heights in metres, frame size in metres)."""
        from stm_zoo.io.scan import Scan

        size_m = self.heights_nm.shape[1] * self.pixel_size_nm * 1e-9
        return Scan(
            data=self.heights_nm.astype(np.float64) * 1e-9,
            unit="m",
            channel="Z",
            direction="forward",
            scan_size_m=(size_m, self.heights_nm.shape[0] * self.pixel_size_nm * 1e-9),
            bias_v=-2.0,
            metadata={"simulated": True, "simulation": self.params.to_dict()},
            history=[f"simulated by training.simulate (seed {self.params.seed})"],
        )


def simulate_scan(
    seed: int,
    size_px: int = 512,
    pixel_size_nm: float = DEFAULT_PIXEL_SIZE_NM,
    params: SimulationParams | None = None,
) -> SimulatedScan:
    """Simulate one pristine filled-state Si(001):H scan.

    Args:
        seed: the only source of randomness; the same seed (and params) gives an identical array.
        size_px: output side in pixels (the frame is size_px x size_px).
        pixel_size_nm: output pixel pitch in nm (default 100 nm / 512 px = 0.1953125 nm).
        params: distributions to draw from (default: the calibrated `SimulationParams()`).

    Returns:
        The scan: heights in nm (float32), pixel size, drawn parameters and terrace levels.

    Raises:
        StmZooError: for a negative seed, a size below 16 px or a non-positive pixel size.
    """
    if seed < 0:
        raise StmZooError(f"The simulator seed must be zero or positive, got {seed}.")
    if size_px < 16:
        raise StmZooError(f"Simulated scans need at least 16 px per side, got size_px={size_px}.")
    if not pixel_size_nm > 0:
        raise StmZooError(f"The pixel size must be positive, got {pixel_size_nm} nm.")
    params = params or SimulationParams()
    rng = np.random.default_rng(seed)

    # 1. Which surface the raster sees, and the fine grid that covers it.
    distortion = scanning.draw_distortion(rng, params)
    y_nm, x_nm = scanning.raster_positions(distortion, size_px, pixel_size_nm)
    tip_sigma = float(rng.uniform(*params.tip_sigma_nm))
    step = min(pixel_size_nm / params.oversample, params.max_fine_pixel_nm)
    # The margin keeps the periodic FFT tip blur from wrapping into the image.
    pad = 5.0 * tip_sigma + 2.0 * step
    grid = scanning.fine_grid(y_nm, x_nm, step, pad_nm=pad)

    # 2. Terraces and steps.
    row_angle = lattice.draw_row_angle(rng, params)
    image_half = 0.5 * size_px * pixel_size_nm
    terraces = lattice.draw_terraces(rng, params, row_angle, grid, image_half)
    gy, gx = grid.axes()
    # float32 keeps 1e-5 nm precision over the +-100 nm a frame spans, at half the cost.
    u, v = terraces.to_lattice(gy.astype(np.float32), gx.astype(np.float32))
    level = terraces.level(u, v)

    # 3. Rows with vacancies cut out, scaled so that the blurred rows have the drawn corrugation.
    corrugation = float(rng.uniform(*params.corrugation_pp_nm))
    modulation = float(rng.uniform(*params.along_row_modulation))
    amplitude_pre = 0.5 * corrugation / lattice.row_gain(tip_sigma, params.row_spacing_nm)
    # The tip leaves exp(-2 pi^2 sigma^2 / 0.384^2) of the dimer wave (~1e-3 for a good tip):
    # skip computing it when what would survive is far below the noise.
    dimer_gain = lattice.row_gain(tip_sigma, params.dimer_spacing_nm)
    draw_dimers = modulation * amplitude_pre * dimer_gain > 1e-4
    surface = lattice.row_field(
        terraces, level, u, v, amplitude_pre, modulation if draw_dimers else 0.0, params
    )
    del u, v
    drawn_defects = defects_mod.draw_defects(rng, params, terraces, grid, tip_sigma)
    mask, depth = defects_mod.render_vacancies(drawn_defects, grid)
    surface *= 1.0 - mask
    surface -= depth
    surface -= np.float32(params.step_height_nm) * level

    # 4. Tip, then the features drawn at their apparent size.
    surface = scanning.gaussian_blur(surface, tip_sigma / step)
    unstable = np.zeros_like(mask)
    defects_mod.render_apparent(drawn_defects, grid, surface, unstable)

    # 5. Raster through the feedback loop, with noise.
    heights = scanning.sample(surface, grid, y_nm, x_nm)
    pixel_level = scanning.sample(level, grid, y_nm, x_nm, order=0)
    # The junction is unsettled on the rim of a vacancy (where the tip drops in and climbs out)
    # and all over contamination.
    vacancy = scanning.sample(mask, grid, y_nm, x_nm)
    rim = 2.0 * (ndi.gaussian_filter(vacancy, UNSTABLE_SPREAD_NM / pixel_size_nm) - vacancy)
    pixel_unstable = np.clip(np.maximum(rim, scanning.sample(unstable, grid, y_nm, x_nm)), 0.0, 1.0)
    heights, recording = scanning.record(heights, pixel_unstable, pixel_size_nm, rng, params)

    # 6. Levelling.
    off_axis = min(row_angle % 90.0, 90.0 - row_angle % 90.0)
    by_lines = bool(rng.random() < params.p_line_level) and (
        off_axis > params.line_level_min_angle_deg
    )
    heights = scanning.level(heights, pixel_level, by_lines)

    drawn = DrawnParams(
        seed=int(seed),
        size_px=int(size_px),
        pixel_size_nm=float(pixel_size_nm),
        row_angle_deg=row_angle,
        n_steps=len(terraces.edge_types),
        step_down_angle_deg=float(
            (math.degrees(terraces.theta_rad) + (90.0 if terraces.down_sign > 0 else -90.0)) % 360.0
        ),
        edge_types=list(terraces.edge_types),
        corrugation_pp_nm=corrugation,
        along_row_modulation=modulation,
        tip_sigma_nm=tip_sigma,
        n_vacancies=len(drawn_defects.vacancies),
        n_dangling_bonds=len(drawn_defects.dangling_bonds),
        n_db_pairs=drawn_defects.n_db_pairs,
        n_db_chains=drawn_defects.n_db_chains,
        halo=drawn_defects.halo,
        halo_amplitude_nm=drawn_defects.halo_amplitude_nm,
        n_blobs=len(drawn_defects.blobs),
        n_bumps=len(drawn_defects.bumps),
        mottling_nm=recording.mottling_nm,
        drift_shear=distortion.shear,
        scale_x=distortion.scale_x,
        scale_y=distortion.scale_y,
        creep_x_nm=distortion.creep_x_nm,
        creep_y_nm=distortion.creep_y_nm,
        creep_lines=distortion.creep_lines,
        feedback_resonance_cpp=recording.feedback_resonance_cpp,
        feedback_pole_radius=recording.feedback_pole_radius,
        line_noise_nm=recording.line_noise_nm,
        defect_noise_nm=recording.defect_noise_nm,
        pixel_noise_nm=recording.pixel_noise_nm,
        line_offset_nm=recording.line_offset_nm,
        levelling="terraces+lines" if by_lines else "terraces",
    )
    return SimulatedScan(
        heights_nm=heights.astype(np.float32),
        pixel_size_nm=float(pixel_size_nm),
        params=drawn,
        terrace_level=pixel_level.astype(np.int8),
    )

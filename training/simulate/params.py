"""What the simulator draws from (`SimulationParams`) and drew for one image (`DrawnParams`).

Lengths are in nm, heights in nm, angles in degrees, densities per nm^2. A `(low, high)` pair is a
uniform range that is drawn once per image (per defect where the name says so). Defaults are the
calibrated numbers (see docs/simulator.md): where the physics table of si001h-physics.md gives a
range, the default sits inside it unless the real reference scan disagrees, in which case the
reference wins and the docs say so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

Range = tuple[float, float]


@dataclass(frozen=True)
class SimulationParams:
    """Distributions of everything that varies between simulated Si(001):H filled-state scans.

    Lattice and terraces:
        row_spacing_nm: dimer-row period (2x1 reconstruction), 0.768 nm.
        dimer_spacing_nm: dimer period along a row (1x1 surface cell), 0.384 nm.
        step_height_nm: monatomic step height a/4, 0.136 nm.
        p_aligned_angle: probability that the rows lie near 0 / 45 / 90 / 135 degrees to the fast
            axis (as users align the scan frame); otherwise the angle is uniform.
        aligned_angle_jitter_deg: standard deviation around those angles.
        step_count_probs: probability of 0, 1, 2, ... monatomic steps in the frame.
        min_terrace_width_nm: closest spacing between neighbouring step edges.
        edge_angle_jitter_deg: std of the mean edge direction relative to the rows (miscut azimuth);
            the deviation makes kinks.
        edge_meander_nm: amplitude range of the slow meander of an SB edge.
        sa_meander_factor: SA edges meander this much less (they are the straight ones).
        edge_meander_length_nm: correlation length of that meander.
        sb_roughness_dimers: std of the SB edge position, in dimers (0.384 nm), row to row.
        sb_correlation: row-to-row correlation of the SB edge roughness (AR(1) coefficient).
        sa_kink_rate_nm: extra single-row kinks per nm of SA edge (SA edges are straight).
    Rows:
        corrugation_pp_nm: apparent (after the tip) peak-to-peak row corrugation; the feedback
            resonance adds up to ~15 % for rows crossing the fast axis.
        along_row_modulation: 0.384 nm modulation along a row, relative to the row corrugation
            before the tip blur (a good tip at 0.195 nm/px leaves almost nothing of it).
    Defects (heights and sizes as they appear after the tip):
        vacancy_density_nm2: dimer-vacancy sites per nm^2.
        vacancy_length_probs: probability of 1, 2, 3, ... missing dimers along the row.
        p_vacancy_cluster: probability that a vacancy has a partner, half the time further
            along the same row (one dimer between them), half the time on a neighbouring row.
        vacancy_depth_nm: apparent depth of the depression a vacancy adds beyond the row it
            removes, per vacancy.
        db_density_nm2: dangling-bond sites per nm^2 (a pair or chain counts as one site).
        db_height_nm, db_fwhm_nm: apparent height and width of one dangling bond, per DB.
        p_db_pair, p_db_chain: probability that a site is a pair (two DBs 0.768 nm apart along a
            row) or a chain of `db_chain_length` DBs along a row.
        halo_probs: probability that the sample shows no halo, a bright halo (n-type) or a dark
            ring (p-type / charged defects) around dangling bonds; drawn once per image.
        halo_amplitude_nm, halo_decay_nm: halo height (negative for the ring) and decay length.
        blob_density_nm2: contamination clusters per nm^2; blob_height_nm, blob_size_nm per blob.
        bump_density_nm2: broad subsurface bumps per nm^2; bump_amplitude_nm (sign random),
            bump_sigma_nm.
        mottling_nm: std of a faint random height field (subsurface dopants, disorder in the H
            layer) that keeps terraces from looking machine-perfect; mottling_length_nm its
            correlation length.
    Tip and scanning:
        tip_sigma_nm: Gaussian blur of a good tip, sigma^2 ~ (R + d) / (2 kappa).
        drift_shear: x displacement per nm of slow-axis travel (thermal drift), std.
        scale_error: relative piezo calibration error per axis, std.
        creep_nm: logarithmic-creep displacement at the first line, per axis, range (sign random).
        creep_lines: decay of the creep, in lines.
        feedback_resonance_cpp: resonance of the z feedback loop and preamplifier along the fast
            axis, in cycles per pixel (the loop's bandwidth relative to the pixel rate).
        feedback_pole_radius: damping of that resonance: 0 is none, towards 1 it rings longer.
        line_noise_nm: std of the per-pixel noise that enters the feedback loop (so it is
            smoothed along the fast axis and independent from line to line).
        defect_noise_nm: extra std of the in-loop noise over vacancies and contamination, where
            the tip-sample junction is less stable: this makes the line-to-line streaks at
            defects that real scans show (they hold most of the reference's high-frequency power).
        pixel_noise_nm: std of white noise added after the loop (electronics).
        line_offset_nm: std of the per-line shocks of AR(1) line offsets (coefficient 0.97:
            1/f-like stripes without an unbounded walk).
        p_line_level: probability that line offsets are also levelled line by line (as in the
            reference scan) after the terrace-aware plane; never when rows lie within
            `line_level_min_angle_deg` of the fast axis (line levelling would erase them).
        line_level_min_angle_deg: see p_line_level.
        oversample: fine-grid points per output pixel.
        max_fine_pixel_nm: the fine grid is never coarser than this, whatever the pixel size.
    """

    row_spacing_nm: float = 0.768
    dimer_spacing_nm: float = 0.384
    step_height_nm: float = 0.136
    p_aligned_angle: float = 0.8
    aligned_angle_jitter_deg: float = 3.0
    step_count_probs: tuple[float, ...] = (0.3, 0.35, 0.2, 0.15)
    min_terrace_width_nm: float = 12.0
    edge_angle_jitter_deg: float = 3.0
    edge_meander_nm: Range = (0.5, 4.0)
    sa_meander_factor: float = 0.3
    edge_meander_length_nm: float = 25.0
    sb_roughness_dimers: float = 2.0
    sb_correlation: float = 0.6
    sa_kink_rate_nm: float = 0.01
    corrugation_pp_nm: Range = (0.04, 0.065)
    along_row_modulation: Range = (0.0, 0.2)
    vacancy_density_nm2: Range = (0.02, 0.045)
    vacancy_length_probs: tuple[float, ...] = (0.2, 0.3, 0.3, 0.2)
    p_vacancy_cluster: float = 0.45
    vacancy_depth_nm: Range = (0.05, 0.11)
    db_density_nm2: Range = (0.003, 0.008)
    db_height_nm: Range = (0.1, 0.18)
    db_fwhm_nm: Range = (0.75, 1.05)
    p_db_pair: float = 0.2
    p_db_chain: float = 0.03
    db_chain_length: tuple[int, int] = (3, 8)
    halo_probs: tuple[float, float, float] = (0.5, 0.3, 0.2)
    halo_amplitude_nm: Range = (0.01, 0.03)
    halo_decay_nm: Range = (1.5, 2.5)
    blob_density_nm2: Range = (0.0001, 0.0009)
    blob_height_nm: Range = (0.15, 0.5)
    blob_size_nm: Range = (0.8, 2.5)
    bump_density_nm2: Range = (0.0, 0.0008)
    bump_amplitude_nm: Range = (0.005, 0.02)
    bump_sigma_nm: Range = (1.5, 4.0)
    mottling_nm: Range = (0.002, 0.006)
    mottling_length_nm: float = 0.6
    tip_sigma_nm: Range = (0.18, 0.26)
    drift_shear: float = 0.025
    scale_error: float = 0.01
    creep_nm: Range = (0.0, 2.0)
    creep_lines: Range = (10.0, 60.0)
    feedback_resonance_cpp: Range = (0.21, 0.25)
    feedback_pole_radius: Range = (0.5, 0.7)
    line_noise_nm: Range = (0.007, 0.011)
    defect_noise_nm: Range = (0.05, 0.1)
    pixel_noise_nm: Range = (0.002, 0.004)
    line_offset_nm: Range = (0.0005, 0.002)
    p_line_level: float = 0.3
    line_level_min_angle_deg: float = 10.0
    oversample: int = 3
    max_fine_pixel_nm: float = 0.08

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (tuples become lists)."""
        return asdict(self)


@dataclass
class DrawnParams:
    """The values drawn for one simulated image (JSON-friendly through `to_dict`)."""

    seed: int
    size_px: int
    pixel_size_nm: float
    row_angle_deg: float
    n_steps: int
    step_down_angle_deg: float
    edge_types: list[str]
    corrugation_pp_nm: float
    along_row_modulation: float
    tip_sigma_nm: float
    n_vacancies: int
    n_dangling_bonds: int
    n_db_pairs: int
    n_db_chains: int
    halo: str
    halo_amplitude_nm: float
    n_blobs: int
    n_bumps: int
    mottling_nm: float
    drift_shear: float
    scale_x: float
    scale_y: float
    creep_x_nm: float
    creep_y_nm: float
    creep_lines: float
    feedback_resonance_cpp: float
    feedback_pole_radius: float
    line_noise_nm: float
    defect_noise_nm: float
    pixel_noise_nm: float
    line_offset_nm: float
    levelling: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy."""
        return asdict(self)

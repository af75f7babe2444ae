"""Realism statistics of a Si(001):H height map, measured identically on real and simulated scans.

`measure` reduces a scan to the numbers of the realism checks in si001h-physics.md: where the
dimer-row peak sits in the 2-D power spectrum, the peak-to-peak row corrugation, the noise level
(line-to-line and within a line) and the densities of dark (vacancy) and bright (dangling bond,
contamination) features. `python -m training.simulate.calibrate` prints them for the reference scan
next to simulated scans and can redraw the documentation figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from stm_zoo.lattice import power_spectrum, row_peaks
from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM

logger = logging.getLogger(__name__)

FEATURE_SMOOTH_NM = 0.45  # kills the 1.30 nm^-1 rows (gain 1e-3) but keeps ~1 nm defects
BACKGROUND_NM = 4.0  # median window that follows terraces but not single defects
DARK_THRESHOLD_NM = 0.02
BRIGHT_THRESHOLD_NM = 0.03
MIN_FEATURE_NM2 = 0.15
LARGE_FEATURE_NM2 = 6.0  # bright features larger than this count as contamination
BORDER_NM = 2.0

DEFAULT_REFERENCE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "si001h-reference"
    / "brockley_23_2_forward.npy"
)


def corrugation_pp(heights_nm: np.ndarray, pixel_size_nm: float, k_row_nm_inv: float) -> float:
    """Peak-to-peak amplitude of the dimer-row wave, robust to defects.

    The image is band-passed to an annulus of +-0.25 nm^-1 around the row peak; for a sinusoid of
    peak-to-peak p the band-passed signal has RMS p / (2 sqrt 2). The local RMS over ~4 nm windows
    is taken at its median so that defects, blobs and steps do not count.
    """
    h, w = heights_nm.shape
    ky = np.fft.fftfreq(h, pixel_size_nm)[:, None]
    kx = np.fft.fftfreq(w, pixel_size_nm)[None, :]
    radius = np.hypot(ky, kx)
    annulus = np.abs(radius - k_row_nm_inv) < 0.25
    band = np.real(np.fft.ifft2(np.fft.fft2(heights_nm - heights_nm.mean()) * annulus))
    local_rms = np.sqrt(ndi.uniform_filter(band**2, size=max(3, round(4.0 / pixel_size_nm))))
    return float(2.0 * np.sqrt(2.0) * np.median(local_rms))


def noise_levels(heights_nm: np.ndarray, pixel_size_nm: float) -> dict[str, float]:
    """Noise as an equivalent white-noise standard deviation (nm) in two spectral regions.

    line_noise_nm: high slow-axis frequency (|ky| > 1.8 nm^-1), low fast-axis frequency
        (0.05 < |kx| < 0.6 nm^-1): variation from one scan line to the next, which the surface
        (blurred by the tip) barely reaches.
    pixel_noise_nm: both frequencies above 2.0 nm^-1: the pixel-to-pixel noise that survives the
        feedback loop along the fast axis.
    Medians (divided by ln 2, the median of an exponential variable) ignore defect spikes.
    """
    power, k = power_spectrum(heights_nm, pixel_size_nm)
    aky, akx = np.abs(k[..., 0]), np.abs(k[..., 1])
    line = (aky > 1.8) & (akx > 0.05) & (akx < 0.6)
    pixel = (aky > 2.0) & (akx > 2.0)
    result = {}
    for name, region in (("line_noise_nm", line), ("pixel_noise_nm", pixel)):
        value = np.median(power[region]) / np.log(2.0) if region.any() else float("nan")
        result[name] = float(np.sqrt(value))
    return result


def quiet_noise(heights_nm: np.ndarray, pixel_size_nm: float, k_rows: list[float]) -> float:
    """Noise where the surface is quiet: the RMS of everything but the rows and the large-scale
    shape, in ~4 nm windows, at its 20th percentile (so defects and their streaks do not count).

    The image is high-passed above 0.6 nm^-1 with +-0.3 nm^-1 annuli around the row peaks
    removed; what is left on a defect-free terrace is noise (and the faint disorder of the
    surface, which is what an STM user perceives as noise too).
    """
    h, w = heights_nm.shape
    ky = np.fft.fftfreq(h, pixel_size_nm)[:, None]
    kx = np.fft.fftfreq(w, pixel_size_nm)[None, :]
    radius = np.hypot(ky, kx)
    keep = radius > 0.6
    for k_row in k_rows:
        keep &= np.abs(radius - k_row) > 0.3
    residual = np.real(np.fft.ifft2(np.fft.fft2(heights_nm - heights_nm.mean()) * keep))
    local_rms = np.sqrt(ndi.uniform_filter(residual**2, size=max(3, round(4.0 / pixel_size_nm))))
    return float(np.percentile(local_rms, 20.0))


def feature_residual(heights_nm: np.ndarray, pixel_size_nm: float) -> np.ndarray:
    """(H, W) heights minus the terrace background with the rows smoothed away, in nm."""
    smooth = ndi.gaussian_filter(heights_nm, FEATURE_SMOOTH_NM / pixel_size_nm)
    # The median runs on a 2x coarser copy (the smoothed image has nothing finer), 4x faster.
    coarse = smooth[::2, ::2]
    size = max(3, round(BACKGROUND_NM / (2.0 * pixel_size_nm)) | 1)
    background = ndi.median_filter(coarse, size=size, mode="nearest")
    background = np.repeat(np.repeat(background, 2, axis=0), 2, axis=1)
    return smooth - background[: smooth.shape[0], : smooth.shape[1]]


def feature_densities(heights_nm: np.ndarray, pixel_size_nm: float) -> dict[str, float]:
    """Densities (nm^-2) of dark and bright point features, detected the same way on any scan.

    Features are connected regions of the residual (`feature_residual`) below -0.02 nm (dark:
    dimer vacancies and clusters) or above +0.03 nm (bright: dangling bonds and contamination),
    at least 0.15 nm^2 large, with their centre more than 2 nm from the border. Bright regions
    larger than 6 nm^2 are counted separately as contamination.
    """
    residual = feature_residual(heights_nm, pixel_size_nm)
    h, w = residual.shape
    border = round(BORDER_NM / pixel_size_nm)
    area_nm2 = (h - 2 * border) * (w - 2 * border) * pixel_size_nm**2
    pixel_nm2 = pixel_size_nm**2
    result = {}
    for name, mask in (
        ("dark", residual < -DARK_THRESHOLD_NM),
        ("bright", residual > BRIGHT_THRESHOLD_NM),
    ):
        labels, count = ndi.label(mask, structure=np.ones((3, 3)))
        if count == 0:
            areas = np.zeros(0)
            centres = np.zeros((0, 2))
        else:
            index = np.arange(1, count + 1)
            areas = ndi.sum_labels(np.ones_like(residual), labels, index) * pixel_nm2
            centres = np.array(ndi.center_of_mass(mask, labels, index)).reshape(-1, 2)
        inside = (
            (centres[:, 0] >= border)
            & (centres[:, 0] < h - border)
            & (centres[:, 1] >= border)
            & (centres[:, 1] < w - border)
        )
        keep = inside & (areas >= MIN_FEATURE_NM2)
        if name == "bright":
            large = keep & (areas > LARGE_FEATURE_NM2)
            result["bright_density_nm2"] = float((keep & ~large).sum() / area_nm2)
            result["contamination_density_nm2"] = float(large.sum() / area_nm2)
        else:
            result["dark_density_nm2"] = float(keep.sum() / area_nm2)
            result["dark_median_area_nm2"] = float(np.median(areas[keep])) if keep.any() else 0.0
    return result


def measure(heights_nm: np.ndarray, pixel_size_nm: float) -> dict[str, float]:
    """All realism statistics of one scan.

    Args:
        heights_nm: (H, W) levelled heights in nm (float32 or float64).
        pixel_size_nm: pixel pitch in nm (square pixels).

    Returns:
        row_peak_nm_inv / row_angle_deg: the strongest dimer-row peak (1/0.768 = 1.30 nm^-1 for an
        undistorted lattice); row_peak2_nm_inv / row_angle2_deg: a second, differently oriented
        peak when a second terrace shows (NaN otherwise); corrugation_pp_nm; noise_nm (quiet
        regions); line_noise_nm and pixel_noise_nm (spectral, whole image); dark_density_nm2;
        dark_median_area_nm2; bright_density_nm2; contamination_density_nm2.
    """
    z = np.asarray(heights_nm, dtype=np.float64)
    peaks = row_peaks(z, pixel_size_nm)
    result: dict[str, float] = {
        "row_peak_nm_inv": peaks[0].k_nm_inv if peaks else float("nan"),
        "row_angle_deg": peaks[0].angle_deg if peaks else float("nan"),
        "row_peak2_nm_inv": peaks[1].k_nm_inv if len(peaks) > 1 else float("nan"),
        "row_angle2_deg": peaks[1].angle_deg if len(peaks) > 1 else float("nan"),
    }
    k_rows = [p.k_nm_inv for p in peaks] or [1.0 / 0.768]
    result["corrugation_pp_nm"] = corrugation_pp(z, pixel_size_nm, float(np.mean(k_rows)))
    result["noise_nm"] = quiet_noise(z, pixel_size_nm, k_rows)
    result.update(noise_levels(z, pixel_size_nm))
    result.update(feature_densities(z, pixel_size_nm))
    return result


# Checks from si001h-physics.md: (statistic, allowed ratio simulated / real).
# None: reported for information only.
REALISM_TOLERANCES: dict[str, float | None] = {
    "row_peak_nm_inv": None,
    "row_peak2_nm_inv": None,
    "corrugation_pp_nm": 1.5,
    "noise_nm": 1.5,
    "line_noise_nm": 1.5,
    "pixel_noise_nm": 1.5,
    "dark_density_nm2": 2.0,
    "dark_median_area_nm2": None,
    "bright_density_nm2": 2.0,
    "contamination_density_nm2": None,
}


def compare(reference: dict[str, float], simulated: list[dict[str, float]]) -> list[dict]:
    """Per statistic: the reference value, the mean and range over simulated scans, the ratio
    mean / reference, and whether it is within its tolerance (None where no tolerance applies)."""
    rows = []
    for name in REALISM_TOLERANCES:
        values = np.array([s[name] for s in simulated], dtype=float)
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else float("nan")
        ratio = mean / reference[name] if reference[name] else float("nan")
        tolerance = REALISM_TOLERANCES.get(name)
        ok = None if tolerance is None else bool(1.0 / tolerance <= ratio <= tolerance)
        rows.append(
            {
                "statistic": name,
                "reference": reference[name],
                "simulated_mean": mean,
                "simulated_min": float(finite.min()) if finite.size else float("nan"),
                "simulated_max": float(finite.max()) if finite.size else float("nan"),
                "ratio": ratio,
                "tolerance": tolerance,
                "ok": ok,
            }
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The comparison as a markdown table (what docs/simulator.md shows)."""
    lines = [
        "| statistic | reference | simulated mean [min, max] | ratio | check |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        check = "-" if r["ok"] is None else (f"{'ok' if r['ok'] else 'FAIL'} (x{r['tolerance']})")
        lines.append(
            f"| {r['statistic']} | {r['reference']:.4g} | {r['simulated_mean']:.4g} "
            f"[{r['simulated_min']:.4g}, {r['simulated_max']:.4g}] | {r['ratio']:.2f} | {check} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m training.simulate.calibrate`: reference vs simulated statistics (and figures)."""
    from training.simulate.simulator import simulate_scan

    parser = argparse.ArgumentParser(
        prog="python -m training.simulate.calibrate",
        description="Compare realism statistics of simulated scans with the real reference scan.",
    )
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--reference-pixel-nm", type=float, default=DEFAULT_PIXEL_SIZE_NM)
    parser.add_argument("--n", type=int, default=12, help="number of simulated scans")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first simulated scan")
    parser.add_argument("--json", type=Path, help="also write all numbers to this JSON file")
    parser.add_argument("--figures", type=Path, help="write the documentation figures here")
    parser.add_argument(
        "--figure-seeds",
        default="6,19,1,24,4,0",
        help="comma-separated seeds of the scans shown in the figures",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if not args.reference.is_file():
        print(
            f"error: reference scan {args.reference} not found; pass --reference", file=sys.stderr
        )
        return 2
    real = np.load(args.reference)
    ref_stats = measure(real, args.reference_pixel_nm)
    scans = [simulate_scan(args.seed + i) for i in range(args.n)]
    sim_stats = [measure(s.heights_nm, s.pixel_size_nm) for s in scans]
    rows = compare(ref_stats, sim_stats)
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(
            json.dumps({"reference": ref_stats, "simulated": sim_stats, "rows": rows}, indent=2)
        )
    if args.figures:
        from training.simulate.figures import write_figures

        shown = [simulate_scan(int(seed)) for seed in args.figure_seeds.split(",")]
        for path in write_figures(real, args.reference_pixel_nm, shown, args.figures):
            print(f"wrote {path}")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Documentation figures of the simulator: real vs simulated crops, a full scan with its spectrum.

Written by `python -m training.simulate.calibrate --figures docs/img`; matplotlib only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stm_zoo.lattice import power_spectrum, row_peaks
from training.simulate.simulator import SimulatedScan

CROP_PX = 128
REAL_CROPS = ((20, 30), (380, 40), (120, 360), (300, 330))  # (row, col) corners in the reference
COLORMAP = "afmhot"


def _show(ax, image: np.ndarray) -> None:
    """One panel, scaled to its 1st-99th height percentiles (the same rule for every panel)."""
    lo, hi = np.percentile(image, [1.0, 99.0])
    ax.imshow(image, cmap=COLORMAP, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def crop_corner(scan: SimulatedScan, prefer_step: bool) -> tuple[int, int]:
    """Corner of a 128 px crop: on a step edge when asked and the scan has one, else central."""
    h, w = scan.heights_nm.shape
    centre = (h // 2, w // 2)
    if prefer_step:
        level = scan.terrace_level
        edge = np.argwhere(np.diff(level, axis=1) != 0)
        inner = edge[
            (edge[:, 0] > CROP_PX // 2)
            & (edge[:, 0] < h - CROP_PX // 2)
            & (edge[:, 1] > CROP_PX // 2)
            & (edge[:, 1] < w - CROP_PX // 2)
        ]
        if len(inner):
            centre = tuple(inner[len(inner) // 2])
    return (
        int(np.clip(centre[0] - CROP_PX // 2, 0, h - CROP_PX)),
        int(np.clip(centre[1] - CROP_PX // 2, 0, w - CROP_PX)),
    )


def real_vs_simulated(
    real: np.ndarray, scans: list[SimulatedScan], path: Path, n_crops: int = 4
) -> Path:
    """Top row: crops of the real scan; bottom row: crops of simulated scans (alternately on a
    step edge and in the middle of a terrace)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, n_crops, figsize=(2.6 * n_crops, 5.6))
    for i in range(n_crops):
        r, c = REAL_CROPS[i % len(REAL_CROPS)]
        _show(axes[0, i], real[r : r + CROP_PX, c : c + CROP_PX])
        scan = scans[i % len(scans)]
        sr, sc = crop_corner(scan, prefer_step=i % 2 == 0)
        _show(axes[1, i], scan.heights_nm[sr : sr + CROP_PX, sc : sc + CROP_PX])
        axes[1, i].set_xlabel(f"simulated, seed {scan.params.seed}", fontsize=8)
        axes[0, i].set_xlabel(f"real, rows {r}-{r + CROP_PX}, cols {c}-{c + CROP_PX}", fontsize=8)
    axes[0, 0].set_ylabel("real (reference)")
    axes[1, 0].set_ylabel("simulated")
    fig.suptitle("Si(001):H filled states, 128 x 128 px = 25 x 25 nm", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scan_and_spectrum(heights_nm: np.ndarray, pixel_size_nm: float, path: Path, title: str) -> Path:
    """A full scan beside its log power spectrum with the 1.30 nm^-1 dimer-row circle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = heights_nm.astype(np.float64)
    p = pixel_size_nm
    power, _ = power_spectrum(z, p)
    power = np.fft.fftshift(power)
    k_max = 0.5 / p
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.4))
    extent_nm = z.shape[1] * p
    lo, hi = np.percentile(z, [1.0, 99.0])
    axes[0].imshow(z, cmap=COLORMAP, vmin=lo, vmax=hi, extent=(0, extent_nm, extent_nm, 0))
    axes[0].set_xlabel("x (nm), fast axis")
    axes[0].set_ylabel("y (nm), slow axis")
    axes[0].set_title(title, fontsize=9)
    axes[1].imshow(
        np.log10(power + 1e-12),
        cmap="gray",
        extent=(-k_max, k_max, k_max, -k_max),
        vmin=np.percentile(np.log10(power + 1e-12), 50),
    )
    theta = np.linspace(0, 2 * np.pi, 200)
    k_row = 1.0 / 0.768
    axes[1].plot(
        k_row * np.cos(theta), k_row * np.sin(theta), "c--", lw=0.8, label="1.30 nm$^{-1}$"
    )
    for peak in row_peaks(z, p):
        a = np.radians(peak.angle_deg)
        for sign in (1, -1):
            axes[1].plot(
                sign * peak.k_nm_inv * np.cos(a),
                sign * peak.k_nm_inv * np.sin(a),
                "r+",
                ms=10,
            )
    axes[1].set_xlabel("k$_x$ (nm$^{-1}$)")
    axes[1].set_ylabel("k$_y$ (nm$^{-1}$)")
    axes[1].set_title("log power spectrum; + detected row peaks", fontsize=9)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=75)
    plt.close(fig)
    return path


def examples(scans: list[SimulatedScan], path: Path, n: int = 6) -> Path:
    """A grid of full simulated scans with their row angle and step types."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    rows = -(-min(n, len(scans)) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, scan in zip(axes.ravel(), scans[:n], strict=False):
        _show(ax, scan.heights_nm)
        ax.axis("on")
        steps = ",".join(scan.params.edge_types) or "no step"
        ax.set_title(
            f"seed {scan.params.seed}: rows {scan.params.row_angle_deg:.0f} deg, {steps}",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)
    return path


def write_figures(
    real: np.ndarray, real_pixel_nm: float, scans: list[SimulatedScan], out_dir: Path
) -> list[Path]:
    """All simulator figures of docs/simulator.md into `out_dir`.

    Args:
        real: (H, W) the reference scan in nm (at least 512 x 512 for the fixed crop positions).
        real_pixel_nm: its pixel size (used for the real scan's spectrum).
        scans: simulated scans; the one with the most steps is shown in full with its spectrum.
        out_dir: folder for the PNG files (created if missing).

    Returns:
        The written paths.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stepped = max(scans, key=lambda s: (len(s.params.edge_types), -s.params.seed))
    written = [
        real_vs_simulated(real, scans, out_dir / "simulator_vs_real.png"),
        scan_and_spectrum(
            stepped.heights_nm,
            stepped.pixel_size_nm,
            out_dir / "simulator_scan_fft.png",
            f"simulated, seed {stepped.params.seed}: {len(stepped.params.edge_types)} steps",
        ),
        examples(scans, out_dir / "simulator_examples.png"),
    ]
    written.append(
        scan_and_spectrum(
            real, real_pixel_nm, out_dir / "simulator_reference_fft.png", "real reference"
        )
    )
    return written

"""Figures of the evaluation: violin plots of per-image scores (the paper's Fig. 4 / 6) and example
grids (input | outputs | ground truth).

Matplotlib with the non-interactive Agg backend, so plots render on machines without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "kid": "KID", "cmmd": "CMMD"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def violin_plot(
    path: Path,
    groups: Sequence[tuple[str, Any]],
    metrics: Sequence[str] = ("psnr", "ssim"),
    title: str = "",
) -> Path:
    """One panel per metric with a violin per group (the paper's Fig. 4 / 6).

    Args:
        path: PNG to write (parents created).
        groups: (label, row) pairs; `getattr(row, metric)` is a (N,) array of per-image scores.
        metrics: attribute names to plot, one panel each ("psnr", "ssim").
        title: figure title.

    Returns:
        `path`.
    """
    plt = _pyplot()
    labels = [label for label, _ in groups]
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(4.0, 1.3 * len(groups)) * len(metrics), 4.2), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics, strict=True):
        data = [np.asarray(getattr(row, metric), dtype=np.float64) for _, row in groups]
        # Identical images score PSNR = inf; a violin needs finite values.
        finite = [d[np.isfinite(d)] for d in data]
        positions = [i for i, d in enumerate(finite) if d.size]
        if positions:
            parts = ax.violinplot(
                [finite[i] for i in positions],
                positions=positions,
                showmeans=True,
                showextrema=True,
            )
            for body in parts["bodies"]:
                body.set_alpha(0.6)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def example_grid(
    path: Path, columns: Sequence[tuple[str, np.ndarray]], rows: int = 4, cmap: str = "afmhot"
) -> Path:
    """A grid of example tiles: one column per image set, one row per example.

    Args:
        path: PNG to write (parents created).
        columns: (title, (N, H, W) images in [-1, 1]) pairs, e.g. input, each model, ground truth.
        rows: examples to show (the first ones; fewer when the sets are smaller).
        cmap: matplotlib colour map (STM height maps are usually shown in a hot map).

    Returns:
        `path`.
    """
    plt = _pyplot()
    n = min(rows, min(len(images) for _, images in columns))
    if n < 1:
        raise ValueError("example_grid needs at least one image per column")
    fig, axes = plt.subplots(
        n, len(columns), figsize=(1.9 * len(columns), 1.9 * n + 0.4), squeeze=False
    )
    for c, (title, images) in enumerate(columns):
        for r in range(n):
            ax = axes[r][c]
            ax.imshow(images[r], cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

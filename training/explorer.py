"""The web app's synthetic data: example scans made at start-up and the degradation explorer.

It lives in `training` because it drives the Si(001):H simulator and the paper's degradation
pipeline; ARCHITECTURE.md allows the app this one import of `training`, for the explorer and the
examples. `stm_zoo` itself never imports `training`.

- `example_scans` simulates pristine Si(001):H, degrades it with the paper's pipeline and writes
  instrument-like files a visitor can try without a file of their own (about a second, cached on
  disk between restarts).
- `explore` applies the pipeline to a simulated pristine crop with every artefact's parameters
  fixed by the caller (each artefact on or off, its magnitudes set, the rest of its random draw
  from a seed), and also each enabled artefact alone, so a user sees what the models learn to undo.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.io import save_scan
from stm_zoo.io.scan import Scan

log = logging.getLogger(__name__)

EXAMPLES_VERSION = 1  # bump when the recipe below changes, so cached files are rebuilt
EXAMPLE_SIZE_PX = 256
ARTEFACTS = ("multi_tip", "misalignment", "blunt_tip", "tip_change", "scan_lines")
ARTEFACT_LABELS = {
    "multi_tip": "Multi-tip (ghost images)",
    "misalignment": "Scan-line misalignment",
    "blunt_tip": "Blunt tip (blur)",
    "tip_change": "Tip change",
    "scan_lines": "Scan-line noise",
    "low_res": "Slow-axis sub-sampling",
}
KERNEL_KINDS = ("gaussian", "median", "random")
SEGMENT_KINDS = ("constant", "lognormal", "sine")


@dataclass(frozen=True)
class ExampleScan:
    """One example file for the Restore tab.

    Attributes:
        path: the file (in a cache folder).
        task: the task it is meant for ("restore", "sr2").
        label: what a visitor sees.
    """

    path: Path
    task: str
    label: str


def examples_dir() -> Path:
    """STM_ZOO_APP_EXAMPLES, else `<system temp>/stm_zoo_app/examples-v<EXAMPLES_VERSION>`."""
    configured = os.environ.get("STM_ZOO_APP_EXAMPLES")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "stm_zoo_app" / f"examples-v{EXAMPLES_VERSION}"


def _heights_scan(heights_nm: np.ndarray, size_nm: tuple[float, float], note: str) -> Scan:
    return Scan(
        data=heights_nm.astype(np.float64) * 1e-9,
        scan_size_m=(size_nm[0] * 1e-9, size_nm[1] * 1e-9),
        bias_v=-2.0,
        setpoint_a=20e-12,
        metadata={"simulated": True, "note": note},
        history=[note],
        scan_dir="down",
    )


def _degraded_example(seed: int) -> Scan:
    """A 256 x 256 px, 50 nm simulated scan with tip-change, misalignment, blur and line noise."""
    from training.degradations import (
        BluntTipConfig,
        DegradationConfig,
        MisalignmentConfig,
        MultiTipConfig,
        RotationConfig,
        ScanLineConfig,
        TipChangeConfig,
        degrade,
    )
    from training.simulate import simulate_scan

    pristine = simulate_scan(seed, size_px=EXAMPLE_SIZE_PX)
    # The paper's distributions, with the artefacts forced on so the example shows each of them;
    # noise lines and segment lengths scale with the frame (the paper's numbers are per 128 px).
    config = DegradationConfig(
        crop_size_px=EXAMPLE_SIZE_PX,
        rotation=RotationConfig(quarter_turns=(0,)),
        multi_tip=MultiTipConfig(probability=0.0),
        misalignment=MisalignmentConfig(probability=1.0, shift_sigma_px=0.6),
        blunt_tip=BluntTipConfig(probability=1.0),
        tip_change=TipChangeConfig(probability=1.0, offset_probability=1.0),
        scan_lines=ScanLineConfig(
            probability=1.0, line_count_range=(40, 50), segment_length_range_px=(20, 200)
        ),
    )
    sample = degrade(pristine.heights_nm, np.random.default_rng(seed), "restore", config)
    # The pipeline ends in [-1, 1]; map back to the pristine scan's height range in nm.
    lo, hi = float(pristine.heights_nm.min()), float(pristine.heights_nm.max())
    heights = (sample.degraded.astype(np.float64) + 1.0) / 2.0 * (hi - lo) + lo
    size_nm = EXAMPLE_SIZE_PX * pristine.pixel_size_nm
    fired = ", ".join(r.step for r in sample.record)
    return _heights_scan(
        heights,
        (size_nm, size_nm),
        f"simulated Si(001):H (seed {seed}) degraded by the stm-zoo pipeline ({fired})",
    )


def _half_lines_example(seed: int) -> Scan:
    """A simulated 50 nm frame scanned with every second line only: 128 lines x 256 px."""
    from training.simulate import simulate_scan

    pristine = simulate_scan(seed, size_px=EXAMPLE_SIZE_PX)
    size_nm = EXAMPLE_SIZE_PX * pristine.pixel_size_nm
    return _heights_scan(
        pristine.heights_nm[::2],
        (size_nm, size_nm),
        f"simulated Si(001):H (seed {seed}) with every second line (a x2 faster scan)",
    )


def example_scans(folder: Path | None = None) -> list[ExampleScan]:
    """The Restore tab's examples, simulated on first use and then read from `folder`.

    Returns:
        A degraded 256 x 256 px scan (.sxm, task restore) and a half-line scan (.gwy, task sr2).
    """
    folder = folder or examples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    recipes = (
        ("si001h_degraded.sxm", "restore", "Degraded Si(001):H, 50 nm (restore)", 3),
        ("si001h_half_lines.gwy", "sr2", "Half the lines, 50 nm (super-resolve x2)", 5),
    )
    examples = []
    for name, task, label, seed in recipes:
        path = folder / name
        if not path.is_file():
            scan = _degraded_example(seed) if task == "restore" else _half_lines_example(seed)
            save_scan(scan, path)  # written to a temporary name first, then moved into place
            log.info("wrote example scan %s", path)
        examples.append(ExampleScan(path, task, label))
    return examples


# ---------------------------------------------------------------------------------------------
# The degradation explorer


@dataclass(frozen=True)
class ExplorerSettings:
    """Everything the Degradations tab exposes; defaults sit inside the paper's ranges.

    Attributes:
        surface_seed: which simulated pristine surface (256 x 256 px at 0.195 nm/px).
        draw_seed: seed of what the settings leave random (crop position, offset signs, which
            lines are noisy, ...).
        task: "restore", "sr2" or "sr4" (SR adds the slow-axis sub-sampling).
        crop_px: side of the crop the pipeline cuts (the models train on 128).
        quarter_turns: rotation by 90 degree steps before the artefacts.
        multi_tip: apply the multi-tip artefact; tips: extra apexes; tip_offset_px: |offset|
            of each ghost along x and y; tip_amplitude: A of Eq. 1; tip_centre, tip_steepness:
            c and d of its sigmoid; tip_kernel: "gaussian", "median" or "random".
        misalignment: shift scan lines; shift_sigma_px: std of the shifts; line_fraction: share
            of lines shifted.
        blunt_tip: blur everything; blunt_sigma_px: Gaussian sigma.
        tip_change: blunter tip from a line on; change_at: that line as a fraction of the
            height; change_blur_px: its blur; change_offset: its height step (normalised units).
        scan_lines: noisy line segments; noisy_lines: how many lines; max_segment_px: longest
            segment; segment_kinds: subset of "constant", "lognormal", "sine"; max_offset:
            largest constant offset (normalised units).
    """

    surface_seed: int = 0
    draw_seed: int = 0
    task: str = "restore"
    crop_px: int = 128
    quarter_turns: int = 0
    multi_tip: bool = True
    tips: int = 1
    tip_offset_px: float = 6.0
    tip_amplitude: float = 1.5
    tip_centre: float = 7.0
    tip_steepness: float = 8.5
    tip_kernel: str = "gaussian"
    misalignment: bool = False
    shift_sigma_px: float = 0.8
    line_fraction: float = 1.0
    blunt_tip: bool = True
    blunt_sigma_px: float = 0.45
    tip_change: bool = True
    change_at: float = 0.6
    change_blur_px: float = 1.5
    change_offset: float = 0.15
    scan_lines: bool = True
    noisy_lines: int = 30
    max_segment_px: int = 102
    segment_kinds: tuple[str, ...] = SEGMENT_KINDS
    max_offset: float = 0.4

    def check(self) -> None:
        """Refuse settings the pipeline cannot run with one sentence each."""
        if self.task not in ("restore", "sr2", "sr4"):
            raise StmZooError(f"Unknown task {self.task!r}: choose restore, sr2 or sr4.")
        if not 16 <= self.crop_px <= EXAMPLE_SIZE_PX:
            raise StmZooError(
                f"The crop must be 16 to {EXAMPLE_SIZE_PX} px, not {self.crop_px} px."
            )
        if self.tip_kernel not in KERNEL_KINDS:
            raise StmZooError(
                f"Unknown tip kernel {self.tip_kernel!r}: choose {', '.join(KERNEL_KINDS)}."
            )
        unknown = set(self.segment_kinds) - set(SEGMENT_KINDS)
        if unknown:
            raise StmZooError(
                f"Unknown scan-line segment kind(s) {', '.join(sorted(unknown))}: choose from "
                f"{', '.join(SEGMENT_KINDS)}."
            )
        if self.tips < 1 or self.noisy_lines < 0 or self.max_segment_px < 0:
            raise StmZooError("Tips must be at least 1 and line counts and lengths at least 0.")

    def config(self):
        """The `DegradationConfig` whose ranges collapse to these values (probabilities 0 or 1)."""
        from training.degradations import (
            BluntTipConfig,
            DegradationConfig,
            MisalignmentConfig,
            MultiTipConfig,
            RotationConfig,
            ScanLineConfig,
            TipChangeConfig,
        )

        kinds = [k for k in SEGMENT_KINDS if k in self.segment_kinds]
        lines_on = self.scan_lines and bool(kinds) and self.noisy_lines > 0
        return DegradationConfig(
            crop_size_px=self.crop_px,
            rotation=RotationConfig(quarter_turns=(self.quarter_turns % 4,)),
            multi_tip=MultiTipConfig(
                probability=float(self.multi_tip),
                tip_counts=(self.tips,),
                tip_count_probabilities=(1.0,),
                offset_range_px=(self.tip_offset_px, self.tip_offset_px),
                amplitude_range=(self.tip_amplitude, self.tip_amplitude),
                sigmoid_centre_range=(self.tip_centre, self.tip_centre),
                sigmoid_steepness_range=(self.tip_steepness, self.tip_steepness),
                kernel_probabilities=tuple(float(k == self.tip_kernel) for k in KERNEL_KINDS),
            ),
            misalignment=MisalignmentConfig(
                probability=float(self.misalignment),
                shift_sigma_px=self.shift_sigma_px,
                line_fraction=self.line_fraction,
            ),
            blunt_tip=BluntTipConfig(
                probability=float(self.blunt_tip),
                sigma_range_px=(self.blunt_sigma_px, self.blunt_sigma_px),
            ),
            # The change line and offset are set exactly in `explore`; the config only turns it on.
            tip_change=TipChangeConfig(probability=float(self.tip_change)),
            scan_lines=ScanLineConfig(
                probability=float(lines_on),
                line_count_range=(self.noisy_lines, self.noisy_lines),
                segment_length_range_px=(0, self.max_segment_px),
                kind_probabilities=tuple(
                    float(k in kinds) / max(len(kinds), 1) for k in SEGMENT_KINDS
                ),
                constant_offset_range=(0.0, self.max_offset),
            ),
        )


@dataclass
class ExplorerResult:
    """What `explore` returns.

    Attributes:
        clean: (S, S) float32 in [-1, 1], the pristine crop (the training target).
        degraded: (S, S) float32 in [-1, 1], every enabled artefact applied (the model input).
        singles: (label, (S, S) image) for each enabled artefact applied alone.
        record: the steps that fired with their parameters (long lists summarised).
        pixel_size_nm: pixel pitch of the crop.
    """

    clean: np.ndarray
    degraded: np.ndarray
    singles: list[tuple[str, np.ndarray]]
    record: list[dict[str, Any]]
    pixel_size_nm: float


@lru_cache(maxsize=8)
def pristine_surface(seed: int) -> tuple[np.ndarray, float]:
    """(heights_nm (256, 256) float32, pixel size in nm) of one simulated pristine scan."""
    from training.simulate import simulate_scan

    scan = simulate_scan(seed, size_px=EXAMPLE_SIZE_PX)
    scan.heights_nm.setflags(write=False)  # shared between requests through the cache
    return scan.heights_nm, scan.pixel_size_nm


def explore(settings: ExplorerSettings) -> ExplorerResult:
    """Apply the degradation pipeline to a simulated pristine crop with the given parameters.

    Raises:
        StmZooError: settings out of range.
    """
    from training.degradations import apply_pipeline, sample_pipeline
    from training.degradations.tip_change import TipChangeParams

    settings.check()
    heights, pixel_size_nm = pristine_surface(int(settings.surface_seed))
    rng = np.random.default_rng(int(settings.draw_seed))
    params = sample_pipeline(rng, heights.shape, settings.task, settings.config())
    if params.tip_change is not None:
        size = settings.crop_px
        line = int(np.clip(round(settings.change_at * size), 1, size - 1))
        params = dataclasses.replace(
            params,
            tip_change=TipChangeParams(line, settings.change_blur_px, settings.change_offset),
        )
    clean, degraded = apply_pipeline(heights, params)
    names = [n for n in (*ARTEFACTS, "low_res") if getattr(params, n) is not None]
    singles = []
    if len(names) > 1:
        for name in names:
            alone = dataclasses.replace(
                params, **{other: None for other in (*ARTEFACTS, "low_res") if other != name}
            )
            singles.append((ARTEFACT_LABELS[name], apply_pipeline(heights, alone)[1]))
    record = [_summarise(r.to_dict()) for r in params.records()]
    return ExplorerResult(clean, degraded, singles, record, pixel_size_nm)


def _summarise(value: Any, limit: int = 6) -> Any:
    """A JSON-friendly copy with long sequences cut to `limit` items and a count, floats rounded."""
    if isinstance(value, dict):
        return {k: _summarise(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_summarise(v, limit) for v in value[:limit]]
        if len(value) > limit:
            items.append(f"... {len(value)} in all")
        return items
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else str(value)
    return value

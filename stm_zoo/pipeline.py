"""The one path from scan to scan: `restore` driven by one `RestoreOptions`.

Data flow (ARCHITECTURE.md): Scan (metres) -> limits and repairs (`stm_zoo.limits`: cut incomplete
lines, inpaint NaN pixels and glitches, refuse flat channels and model grids that are too large,
too small or too far from the model's scale) -> resample to the model's pixel size (for SR: the
line pitch rule of `stm_zoo.io.scan.sr_input_frame`, lines at k times the model's line spacing,
then nearest-neighbour up by k along the slow axis, as the training pipeline does) -> 128x128 tiles
with overlap -> the tile runner `stm_zoo.inference.make_tile_fn` (per-tile normalisation, sampler
under the one autocast, map back to metres) -> squared-cosine blend -> finite check -> original
pixel grid -> Scan with the original metadata and a history entry, plus warnings
(`quality_warnings`: scale, a nearly flat input, the Si(001):H dimer rows of `stm_zoo.lattice` in
the input and the output, uncertainty).

The CLI, the app, the expert study and the evaluation build a `RestoreOptions` and call
`restore(scan, options, model=...)`; none of them repeats a step of this path.
"""

from __future__ import annotations

import logging
import numbers
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.inference import make_tile_fn
from stm_zoo.io.scan import Scan, sr_input_frame
from stm_zoo.limits import (
    MAX_GRID_PIXELS,
    MAX_INPUT_PIXELS,
    GridPlan,
    check_finite_output,
    check_pixels,
    check_signal,
    plan_grid,
    repair_input,
)
from stm_zoo.methods import get_baseline
from stm_zoo.registry import (
    DEFAULT_PIXEL_SIZE_NM,
    FAMILIES,
    FAMILY_SIZES,
    SIZES,
    SR_FACTOR,
    TASKS,
    is_learned,
    takes_steps,
)
from stm_zoo.tiling import count_tiles, tiled_map
from stm_zoo.zoo import LoadedModel, load_model

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
DTYPES = ("float32", "bfloat16")
"""Compute precisions a model can run in."""
MIN_TILE_PX = 8
"""Smallest tile edge: the size multiple of the small U-Net preset."""
LOW_RELIEF_M = 20e-12
"""Heights spanning less than this (plane-levelled, 0.5-99.5 %) are a nearly flat scan: under
the ~50 pm dimer-row corrugation, at the level of instrument noise."""
LOW_RELIEF_RELATIVE = 1e-3
"""The same for a channel that is not a height: a span under this fraction of its magnitude."""
SPECTRUM_PX = 1024
"""The lattice checks look at the central SPECTRUM_PX x SPECTRUM_PX pixels of the input."""
UNCERTAIN_STD_FRACTION = 0.1
"""A pixel whose std across samples exceeds this fraction of the result's height range (plane-
levelled, 0.5-99.5 %) is flagged as uncertain."""
__all__ = ["RestoreOptions", "RestoreResult", "check_entry", "quality_warnings", "restore"]


def check_entry(task: str, family: str, size: str) -> None:
    """Refuse an unknown task or family and a size the family does not come in (Table I)."""
    if task not in TASKS:
        raise StmZooError(f"Unknown task {task!r}: choose one of {', '.join(TASKS)}.")
    if family not in FAMILIES:
        raise StmZooError(f"Unknown model family {family!r}: choose one of {', '.join(FAMILIES)}.")
    sizes = FAMILY_SIZES.get(family, SIZES)
    if size not in sizes:
        raise StmZooError(
            f"The {family} family comes in size {' or '.join(sizes)} only (paper Table I), "
            f"not {size!r}: pick {sizes[0]}."
        )


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class RestoreOptions:
    """Everything that decides what `restore` does, checked once when made.

    Attributes:
        task: "restore", "sr2" or "sr4". For SR the input has H lines and the result k*H lines.
        family, size: the zoo entry (one of `stm_zoo.registry.FAMILIES`; "small" or "large", as
            the family comes).
        steps: sampler steps (ignored by the families that restore in one pass: ae, classical).
        samples: independent samples; the result is their mean and `std` their per-pixel
            standard deviation.
        seed: seed of the noise field (None: random).
        device: "auto", "cpu", "cuda" or "cuda:N"; dtype: compute precision, "float32" or
            "bfloat16".
        keep_measured: SR only: copy the measured lines into the result unchanged.
        tile: tile edge in pixels (None: the model's training crop size).
        overlap: tile overlap in pixels; batch_size: tiles per network call.
        no_resample: run the model on the scan's own pixels instead of resampling them to the
            model's pixel size (the scale limits then do not apply; a warning gives the ratio).
        max_grid_pixels: most pixels the model grid may have (callers may set a tighter cap).

    Raises:
        StmZooError: a field out of range, in one sentence naming it.
    """

    task: str = "restore"
    family: str = "fm"
    size: str = "small"
    steps: int = 2
    samples: int = 1
    seed: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    keep_measured: bool = False
    tile: int | None = None
    overlap: int = 32
    batch_size: int = 8
    no_resample: bool = False
    max_grid_pixels: int = MAX_GRID_PIXELS

    def __post_init__(self) -> None:
        check_entry(self.task, self.family, self.size)
        for name in ("steps", "samples", "batch_size", "max_grid_pixels"):
            value = getattr(self, name)
            if not _whole(value) or value < 1:
                raise StmZooError(f"{name} must be a whole number of at least 1, not {value!r}.")
        if self.seed is not None and (not _whole(self.seed) or self.seed < 0):
            raise StmZooError(f"seed must be None or a whole number >= 0, not {self.seed!r}.")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise StmZooError(f"Unknown device {self.device!r}: use auto, cpu, cuda or cuda:N.")
        if self.dtype not in DTYPES:
            raise StmZooError(f"dtype must be float32 or bfloat16, not {self.dtype!r}.")
        if self.tile is not None and (not _whole(self.tile) or self.tile < MIN_TILE_PX):
            raise StmZooError(
                f"tile must be None (the model's crop size) or at least {MIN_TILE_PX} px, "
                f"not {self.tile!r}."
            )
        if not _whole(self.overlap) or self.overlap < 0:
            raise StmZooError(f"overlap must be a whole number of px >= 0, not {self.overlap!r}.")
        if self.tile is not None and self.overlap >= self.tile:
            raise StmZooError(
                f"overlap ({self.overlap} px) must be smaller than the tile ({self.tile} px)."
            )

    @property
    def factor(self) -> int:
        """Lines of the result per input line: 1 for restore, k for srk."""
        return SR_FACTOR[self.task]


@dataclass
class RestoreResult:
    """What `restore` returns.

    Attributes:
        scan: the restored (or super-resolved) scan in physical units, original metadata kept.
        std: (H, W) per-pixel standard deviation across samples (same units), when samples > 1:
            where independent samples disagree the model is guessing (hallucination risk).
        samples: (K, H, W) the individual samples in physical units when samples > 1.
        seconds: wall time of the model part.
        model: label of the zoo entry used, e.g. "restore/fm-small (2 steps)".
        options: the options of the run, with the family, size, device and precision of the model
            that ran.
        warnings: one sentence each about what was repaired or is unusual (lines cut, pixels
            inpainted, glitches masked, resampling factor, assumed pixel size) and about how far
            to trust the result (`quality_warnings`: a nearly flat input, no Si(001):H dimer
            rows, rows the model moved or weakened, uncertain pixels); also logged.
        input: the scan the model restored, on its own pixel grid: complete lines only, bad
            pixels inpainted (what a before/after view should show); None if not recorded.
    """

    scan: Scan
    std: np.ndarray | None
    samples: np.ndarray | None
    seconds: float
    model: str
    options: RestoreOptions
    warnings: list[str] = field(default_factory=list)
    input: Scan | None = None


def restore(
    scan: Scan | np.ndarray,
    options: RestoreOptions | None = None,
    model: LoadedModel | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> RestoreResult:
    """Restore (task "restore") or super-resolve along the slow axis (task "sr2"/"sr4") a scan.

    Before anything large is allocated, `stm_zoo.limits` checks the input: incomplete lines are
    cut off, scattered NaN / inf pixels and glitches are inpainted, flat channels are refused, and
    so is a model grid that is too large, too small, or too far (4x down, 8x up) from the scan's
    pixels. What was repaired or is unusual is returned in `RestoreResult.warnings`, followed by
    what `quality_warnings` finds in the input and the result.

    Args:
        scan: a Scan, or a (H, W) array (then the paper's pitch, 100 nm per 512 px, is assumed).
        options: what to run (default: `RestoreOptions()`).
        model: an already loaded model (skips the zoo lookup); it must be for `options.task`,
            and its family, size, device and precision replace those of `options`.
        progress: called as progress(fraction, message).
        **overrides: `RestoreOptions` fields replacing those of `options`, e.g.
            `restore(scan, task="sr2", family="ae", size="large")`.

    Raises:
        StmZooError: bad options, a file beyond the limits, a flat channel, a missing model, or
            a model output that is not finite.
    """
    options = replace(options or RestoreOptions(), **overrides)
    if not isinstance(scan, Scan):
        data = np.asarray(scan, dtype=np.float32)
        pitch_m = DEFAULT_PIXEL_SIZE_NM * 1e-9  # the paper's 100 nm per 512 px
        frame_m = (data.shape[-1] * pitch_m, data.shape[0] * pitch_m) if data.ndim == 2 else (0, 0)
        scan = Scan(data, scan_size_m=frame_m, pixel_size_assumed=True)
    check_pixels(scan.describe(), scan.shape, MAX_INPUT_PIXELS, "has", "crop it first")
    factor = options.factor
    scan = sr_input_frame(scan, factor)
    if model is None:
        model = load_model(
            options.task, options.family, options.size, device=options.device, dtype=options.dtype
        )
    elif model.config.task != options.task:
        raise StmZooError(f"Model {model.key} is for task {model.config.task}, not {options.task}.")
    options = replace(
        options,
        family=model.key.family,
        size=model.key.size,
        device=model.device,
        dtype=model.dtype,
    )

    def grid_plan(scan: Scan) -> GridPlan:
        return plan_grid(
            scan,
            model.config.pixel_size_nm,
            factor,
            no_resample=options.no_resample,
            max_grid_pixels=options.max_grid_pixels,
        )

    grid_plan(scan)  # a frame beyond the limits is refused before the repair works on it
    repaired = repair_input(scan)
    warnings = list(repaired.warnings)
    scan = repaired.scan
    check_signal(scan)
    if scan.pixel_size_assumed and scan.source is not None:
        lines = f", lines {factor}x further apart (a {factor}x faster scan)" if factor > 1 else ""
        warnings.append(
            f"the file carries no physical size: {scan.pixel_size_m[0] * 1e9:.4g} nm/px "
            f'assumed{lines}; give the scan width (--scan-size-nm; in the app "Scan width in nm") '
            "if that is wrong"
        )
    plan = grid_plan(scan)  # again: cutting unfinished lines may leave too small a frame
    warnings += plan.warnings
    tile = options.tile or model.config.tile_size
    if options.overlap >= tile:
        raise StmZooError(
            f"overlap ({options.overlap} px) must be smaller than the tile ({tile} px, the "
            f"crop size of {model.key}): lower it or pass a larger tile."
        )
    notify = progress or (lambda fraction, message: None)

    from stm_zoo.resampling import resample_to_shape

    h, w = scan.shape
    data = scan.data.astype(np.float64)
    grid = resample_to_shape(data, plan.shape) if plan.shape != (h, w) else data
    grid = np.repeat(grid, factor, axis=0)  # nearest-neighbour up along the slow axis
    started = time.perf_counter()
    samples = options.samples
    if not is_learned(model.config.family):
        outputs = [get_baseline(model.config.family).restore(grid, options.task)]
    else:
        outputs = []
        per_sample = count_tiles(grid.shape, tile, options.overlap)
        run_tiles = make_tile_fn(model, options.steps, scan.describe())
        for k in range(samples):
            rng = np.random.default_rng(None if options.seed is None else [options.seed, k])
            noise = rng.standard_normal(grid.shape).astype(np.float32)

            def tick(done: int, total: int, k: int = k) -> None:
                notify(
                    (k * per_sample + done) / (samples * per_sample),
                    f"sample {k + 1}/{samples}: tile {done}/{total}",
                )

            outputs.append(
                tiled_map(
                    run_tiles,
                    grid,
                    tile,
                    options.overlap,
                    options.batch_size,
                    field=noise,
                    progress=tick,
                )
            )
    seconds = time.perf_counter() - started
    label = f"{model.key}" + (
        f" ({options.steps} steps)" if takes_steps(model.config.family) else ""
    )
    for output in outputs:
        check_finite_output(output, label, scan.describe())
    target = (h * factor, w)
    stack = np.stack(
        [resample_to_shape(o, target) if o.shape != target else o for o in outputs]
    ).astype(np.float32)
    result = stack.mean(axis=0)
    kept = options.keep_measured and factor > 1
    if kept:
        result[::factor] = scan.data
    std = stack.std(axis=0) if samples > 1 else None
    step = f"stm-zoo {options.task} with {label}, seed={options.seed}, samples={samples}" + (
        ", measured lines kept" if kept else ""
    )
    if options.no_resample:
        step += ", at the file's own pixels"
    restored = scan.replace(data=result)
    restored.history.append(step)
    warnings += quality_warnings(
        scan, result, std, plan, model.config.pixel_size_nm, factor, options.no_resample
    )
    for warning in warnings:
        log.debug("%s: %s", scan.describe(), warning)
    notify(1.0, "done")
    return RestoreResult(
        restored,
        std,
        stack if samples > 1 else None,
        seconds,
        label,
        options,
        warnings,
        input=scan,
    )


def quality_warnings(
    scan: Scan,
    result: np.ndarray,
    std: np.ndarray | None,
    plan: GridPlan,
    model_pixel_nm: float,
    factor: int,
    no_resample: bool = False,
) -> list[str]:
    """What the user should know about a finished run: one FFT of the input and one of the output.

    The resampling factor (when `plan_grid` did not already report it), a nearly flat input,
    an input without the Si(001):H dimer rows the models were trained on, rows the model moved or
    weakened, and with several samples the share of uncertain pixels. A check that cannot run
    says so in its line instead of failing the run.

    Args:
        scan: the input the model restored (repaired, heights in its unit).
        result: (k*H, W) the restored or super-resolved heights, same unit.
        std: (k*H, W) per-pixel std across samples, or None for one sample.
        plan: where the model ran; model_pixel_nm: its training pixel size; factor: SR factor;
        no_resample: the model ran on the scan's own pixels.
    """
    checks: list[tuple[str, Callable[[], list[str]]]] = [
        ("relief", lambda: _relief_note(scan)),
        ("lattice", lambda: _lattice_notes(scan, result, factor)),
        ("uncertainty", lambda: _uncertainty_note(result, std, scan.unit)),
    ]
    notes = []
    for name, check in checks:
        try:
            notes += check()
        except Exception as error:  # a warning must never fail the run it describes
            log.warning("the %s check failed on %s", name, scan.describe(), exc_info=True)
            notes.append(f"the {name} check could not run ({type(error).__name__}: {error})")
    return notes


def _relief_note(scan: Scan) -> list[str]:
    """A nearly flat input: the levelled heights span less than `LOW_RELIEF_M`."""
    from stm_zoo.io.cli_info import format_si
    from stm_zoo.lattice import plane_levelled

    low, high = np.percentile(plane_levelled(scan.data), [0.5, 99.5])
    span = float(high - low)
    if scan.unit == "m":
        if span >= LOW_RELIEF_M:
            return []
        limit = format_si(LOW_RELIEF_M, "m")
    else:
        magnitude = float(np.abs(np.percentile(scan.data, [0.5, 99.5])).max())
        if span >= LOW_RELIEF_RELATIVE * magnitude:
            return []
        limit = f"{LOW_RELIEF_RELATIVE:.1%} of its magnitude"
    return [
        f"the input is nearly flat: its plane-levelled heights span only "
        f"{format_si(span, scan.unit)} (0.5-99.5 %), under {limit}, so the model sees mostly "
        "noise and may invent structure"
    ]


def _lattice_notes(scan: Scan, result: np.ndarray, factor: int) -> list[str]:
    """The dimer-row checks of `stm_zoo.lattice` on the input and, if it shows rows, the output."""
    from stm_zoo.lattice import check_input, compare_peaks

    px_x_nm, px_y_nm = (p * 1e9 for p in scan.pixel_size_m)
    assumed = f" (at the assumed {px_x_nm:.4g} nm/px)" if scan.pixel_size_assumed else ""
    # The central SPECTRUM_PX x SPECTRUM_PX of a large scan is plenty for the rows (a 200 nm
    # frame at the models' pixel size) and keeps both FFTs cheap.
    h, w = scan.shape
    top, left = max(0, (h - SPECTRUM_PX) // 2), max(0, (w - SPECTRUM_PX) // 2)
    before = scan.data[top : top + SPECTRUM_PX, left : left + SPECTRUM_PX]
    after = result[top * factor : (top + SPECTRUM_PX) * factor, left : left + SPECTRUM_PX]
    found = check_input(before, (px_x_nm, px_y_nm))
    if found.warning is not None:
        return [found.warning + assumed]
    changed = compare_peaks(found.rows, before.size, after, (px_x_nm, px_y_nm / factor))
    return [] if changed is None else [changed + assumed]


def _uncertainty_note(result: np.ndarray, std: np.ndarray | None, unit: str) -> list[str]:
    """With several samples: the share of pixels whose std exceeds `UNCERTAIN_STD_FRACTION` of
    the result's levelled height range."""
    if std is None:
        return []
    from stm_zoo.io.cli_info import format_si
    from stm_zoo.lattice import plane_levelled

    low, high = np.percentile(plane_levelled(result), [0.5, 99.5])
    limit = UNCERTAIN_STD_FRACTION * float(high - low)
    share = float(np.mean(std > limit))
    return [
        f"{100 * share:.2g} % of the pixels are uncertain (std across the samples above "
        f"{100 * UNCERTAIN_STD_FRACTION:.0f} % of the result's height range, "
        f"{format_si(limit, unit)})" + (": treat features there as guesses" if share else "")
    ]

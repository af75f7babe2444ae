"""The paper's synthetic-data pipeline (section II.A) as one composition: `degrade`.

Order (paper's numbering): 0 normalise the pristine scan to [0, 1]; 1 rotation; 2 multi-tip;
3 scan-line misalignment; 4 crop; 5 blunt tip; 6 tip change; 7 slow-axis down/up-sampling (SR tasks
only); 8 scan-line noise; 9 normalise clean and degraded independently to [-1, 1]. The clean target
is the rotated, normalised pristine crop at the same place as the degraded crop.

Windowing. Steps 1-3 act on the whole image in the paper, but only the crop survives step 4. Every
step before the crop is local: multi-tip reads at most ``|offset| + 1 + kernel radius`` pixels away,
misalignment ``|shift| + 1`` pixels along x, and rows never mix in misalignment. So all
parameters are drawn first (misalignment draws only the crop's row shifts; the crop position is
independent of the artefacts, so drawing it early leaves the distribution unchanged), then steps
2-3 run on a window of the rotated image that extends the crop by exactly those reaches, clipped at
the image border, and the multi-tip kernels only filter what the crop needs. Away from the image
border this is the full-image pipeline by construction; where the window is clipped it shares the
image's own border and both apply the same boundary rule (reflect for filters, clamp for shifts),
so the crop is the same everywhere, up to float rounding (~1e-12).
`apply_pipeline(..., windowed=False)` runs the full-image pipeline and the tests compare the two.
Step 0 uses the full image's min and max, applied to the window.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.registry import SR_FACTOR, TASKS
from training.degradations import (
    blunt_tip,
    crop,
    low_res,
    misalignment,
    multi_tip,
    normalise,
    rotation,
    scan_lines,
    tip_change,
)
from training.degradations.blunt_tip import BluntTipConfig, BluntTipParams
from training.degradations.crop import CropParams
from training.degradations.low_res import LowResParams
from training.degradations.misalignment import MisalignmentConfig, MisalignmentParams
from training.degradations.multi_tip import MultiTipConfig, MultiTipParams
from training.degradations.rotation import RotationConfig, RotationParams
from training.degradations.scan_lines import ScanLineConfig, ScanLineParams
from training.degradations.tip_change import TipChangeConfig, TipChangeParams

log = logging.getLogger(__name__)

TARGET_SCALES = ("own", "degraded")
TARGETED = ("multi_tip", "misalignment", "tip_change", "blunt_tip", "scan_lines", "low_res")
SR_FACTORS = {task: k for task, k in SR_FACTOR.items() if k > 1}

# The artefacts that fire with a probability, by their record name and DegradationConfig field.
_RANDOM_ARTEFACTS = ("multi_tip", "misalignment", "blunt_tip", "tip_change", "scan_lines")


@dataclass(frozen=True)
class DegradationConfig:
    """Every distribution of the pipeline; the defaults are the paper's numbers.

    Attributes:
        crop_size_px: side of the square crop (paper: 128).
        rotation: step 1.
        multi_tip: step 2.
        misalignment: step 3.
        blunt_tip: step 5.
        tip_change: step 6.
        scan_lines: step 8.
        target_scale: step 9 for the clean image. "own" (the paper): each image of the pair is
            min/max-normalised to [-1, 1] on its own. "degraded": the clean image is mapped by the
            degraded image's min/max map, so the pair shares one map (the only one inference
            knows: a model then learns the artefacts, not a guess of the clean image's range;
            the clean image may leave [-1, 1]).
    """

    crop_size_px: int = 128
    rotation: RotationConfig = field(default_factory=RotationConfig)
    multi_tip: MultiTipConfig = field(default_factory=MultiTipConfig)
    misalignment: MisalignmentConfig = field(default_factory=MisalignmentConfig)
    blunt_tip: BluntTipConfig = field(default_factory=BluntTipConfig)
    tip_change: TipChangeConfig = field(default_factory=TipChangeConfig)
    scan_lines: ScanLineConfig = field(default_factory=ScanLineConfig)
    target_scale: str = "own"

    def __post_init__(self) -> None:
        if self.crop_size_px < 1:
            raise StmZooError(f"The crop size must be at least 1 pixel, not {self.crop_size_px}.")
        if self.target_scale not in TARGET_SCALES:
            raise StmZooError(
                f"Unknown target scale {self.target_scale!r}: choose one of "
                f"{', '.join(TARGET_SCALES)}."
            )
        for name in _RANDOM_ARTEFACTS:
            p = getattr(self, name).probability
            if not 0.0 <= p <= 1.0:
                raise StmZooError(f"The {name} probability must lie in [0, 1], not {p}.")

    def only(self, step: str) -> DegradationConfig:
        """This config with `step` forced to fire (probability 1) and every other artefact off.

        `step` "low_res" turns every artefact off (the SR down/up-sampling always applies).
        """
        changes = {
            name: dataclasses.replace(getattr(self, name), probability=float(name == step))
            for name in _RANDOM_ARTEFACTS
        }
        return dataclasses.replace(self, **changes)


DEFAULT_CONFIG = DegradationConfig()


@dataclass(frozen=True)
class StepRecord:
    """One step that fired, with the parameters it used.

    Attributes:
        step: "rotation", "multi_tip", "misalignment", "crop", "blunt_tip", "tip_change",
            "low_res" or "scan_lines".
        params: that step's parameter dataclass (all plain ints, floats, strings and tuples).
    """

    step: str
    params: Any

    def to_dict(self) -> dict[str, Any]:
        """``{"step": ..., **params}``, ready for `json.dumps`."""
        return {"step": self.step, **dataclasses.asdict(self.params)}


@dataclass(frozen=True)
class PipelineParams:
    """Every random choice of one sample; `apply_pipeline` is a pure function of these.

    Attributes:
        task: "restore", "sr2" or "sr4".
        rotation: step 1.
        crop: step 4, in the rotated image's coordinates.
        multi_tip: step 2, or None when it did not fire (and likewise for the others).
        misalignment: step 3; one shift per crop row.
        blunt_tip: step 5.
        tip_change: step 6; line in crop rows.
        low_res: step 7 (SR tasks only).
        scan_lines: step 8; rows and columns in crop coordinates.
    """

    task: str
    rotation: RotationParams
    crop: CropParams
    multi_tip: MultiTipParams | None = None
    misalignment: MisalignmentParams | None = None
    blunt_tip: BluntTipParams | None = None
    tip_change: TipChangeParams | None = None
    low_res: LowResParams | None = None
    scan_lines: ScanLineParams | None = None

    def records(self) -> list[StepRecord]:
        """The steps that fired, in the order they are applied."""
        order = (
            "rotation",
            "multi_tip",
            "misalignment",
            "crop",
            "blunt_tip",
            "tip_change",
            "low_res",
            "scan_lines",
        )
        return [StepRecord(name, getattr(self, name)) for name in order if getattr(self, name)]


@dataclass
class Sample:
    """One training pair.

    Attributes:
        clean: (S, S) float32 in [-1, 1], the rotated pristine crop (S = crop size).
        degraded: (S, S) float32 in [-1, 1], the same crop after the artefacts.
        record: the steps that fired with their parameters, in order.
        params: the same choices as one `PipelineParams` (re-run with `apply_pipeline`).
    """

    clean: np.ndarray
    degraded: np.ndarray
    record: list[StepRecord]
    params: PipelineParams


def check_pristine(pristine: np.ndarray, crop_size_px: int) -> None:
    """Raise StmZooError unless `pristine` is a finite, non-constant (H, W) image >= the crop."""
    if pristine.ndim != 2:
        raise StmZooError(
            f"A pristine scan must be a 2-D height image, got an array of shape {pristine.shape}."
        )
    h, w = pristine.shape
    if h < crop_size_px or w < crop_size_px:
        raise StmZooError(
            f"A pristine scan of {h}x{w} pixels is smaller than the {crop_size_px}x{crop_size_px} "
            "crop; use scans at least that large or a smaller crop size."
        )
    # min and max propagate NaN and inf: two reductions check finiteness and flatness at once.
    low, high = float(np.min(pristine)), float(np.max(pristine))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise StmZooError(
            "A pristine scan holds NaN or infinite heights; crop it to its valid rows first "
            "(Scan.crop_valid)."
        )
    if high == low:
        raise StmZooError("A pristine scan is perfectly flat; it holds no surface to degrade.")


def sample_pipeline(
    rng: np.random.Generator,
    image_shape: tuple[int, int],
    task: str = "restore",
    config: DegradationConfig = DEFAULT_CONFIG,
    only: str | None = None,
) -> PipelineParams:
    """Draw every random choice of one sample for a pristine image of `image_shape` (H, W).

    Args:
        rng: the sample's generator (the only source of randomness).
        image_shape: (H, W) of the pristine image, both >= the crop size.
        task: one of TASKS.
        config: distributions.
        only: None, or one of TARGETED: that artefact alone fires (see `degrade`).

    Returns:
        The parameters; steps that do not fire are None.
    """
    if task not in TASKS:
        raise StmZooError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if only is not None:
        if only not in TARGETED:
            raise StmZooError(
                f"Unknown targeted degradation {only!r}; choose one of {', '.join(TARGETED)}."
            )
        if only == "low_res" and task not in SR_FACTORS:
            raise StmZooError(
                "The low_res targeted set exists only for super-resolution tasks; use task sr2 "
                "or sr4."
            )
        config = config.only(only)
    size = config.crop_size_px

    rot = rotation.sample_params(rng, config.rotation)
    mt = (
        multi_tip.sample_params(rng, config.multi_tip)
        if rng.random() < config.multi_tip.probability
        else None
    )
    mis = (
        misalignment.sample_params(rng, config.misalignment, size)
        if rng.random() < config.misalignment.probability
        else None
    )
    box = crop.sample_params(rng, size, rotation.rotated_shape(image_shape, rot))
    blunt = (
        blunt_tip.sample_params(rng, config.blunt_tip)
        if rng.random() < config.blunt_tip.probability
        else None
    )
    change = (
        tip_change.sample_params(rng, config.tip_change, size)
        if rng.random() < config.tip_change.probability
        else None
    )
    lowres = LowResParams(SR_FACTORS[task]) if task in SR_FACTORS else None
    noise = (
        scan_lines.sample_params(rng, config.scan_lines, (size, size))
        if rng.random() < config.scan_lines.probability
        else None
    )
    return PipelineParams(
        task=task,
        rotation=rot,
        crop=box,
        multi_tip=mt,
        misalignment=mis,
        blunt_tip=blunt,
        tip_change=change,
        low_res=lowres,
        scan_lines=noise,
    )


def apply_pipeline(
    pristine: np.ndarray,
    params: PipelineParams,
    windowed: bool = True,
    target_scale: str = "own",
) -> tuple[np.ndarray, np.ndarray]:
    """Apply steps 0-9 with the given choices.

    Args:
        pristine: (H, W) heights in any unit (checked by `check_pristine`).
        params: from `sample_pipeline` for this image's shape.
        windowed: run steps 1-3 on the window the crop needs (fast); False runs them on the whole
            image as the paper describes (slow, for checking: the results are identical).
        target_scale: how step 9 maps the clean image (`DegradationConfig.target_scale`).

    Returns:
        (clean, degraded), each (S, S) float32; degraded in [-1, 1], clean too for "own".
    """
    low, scale = normalise.unit_range_affine(pristine)
    rotated = rotation.apply(pristine, params.rotation)
    box = params.crop
    size = box.size_px
    h, w = rotated.shape
    if windowed:
        reach_y = multi_tip.reach_px(params.multi_tip) if params.multi_tip else 0
        reach_x = reach_y + (
            misalignment.reach_px(params.misalignment) if params.misalignment else 0
        )
        y0, y1 = max(0, box.top - reach_y), min(h, box.top + size + reach_y)
        x0, x1 = max(0, box.left - reach_x), min(w, box.left + size + reach_x)
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    window = (np.asarray(rotated[y0:y1, x0:x1], dtype=np.float64) - low) * scale
    in_window = CropParams(top=box.top - y0, left=box.left - x0, size_px=size)

    # Rows and columns of the window that the crop needs after misalignment; misalignment is
    # row-wise, so shifting only the crop's rows equals shifting every row and cropping afterwards.
    rows = slice(in_window.top, in_window.top + size)
    cols = slice(0, x1 - x0)
    if windowed:
        reach = misalignment.reach_px(params.misalignment) if params.misalignment else 0
        cols = slice(max(0, in_window.left - reach), min(x1 - x0, in_window.left + size + reach))
    image = window
    if params.multi_tip:
        image = multi_tip.apply(window, params.multi_tip, (rows, cols) if windowed else None)
    if params.misalignment:
        band = misalignment.apply(image[rows, cols], params.misalignment)
        image = image.copy()
        image[rows, cols] = band

    clean = crop.apply(window, in_window)
    degraded = crop.apply(image, in_window)
    if params.blunt_tip:
        degraded = blunt_tip.apply(degraded, params.blunt_tip)
    if params.tip_change:
        degraded = tip_change.apply(degraded, params.tip_change)
    if params.low_res:
        degraded = low_res.apply(degraded, params.low_res)
    if params.scan_lines:
        degraded = scan_lines.apply(degraded, params.scan_lines)
    if target_scale == "degraded":
        return normalise.with_map_of(clean, degraded), normalise.to_symmetric_range(degraded)
    return normalise.to_symmetric_range(clean), normalise.to_symmetric_range(degraded)


def degrade(
    pristine: np.ndarray,
    rng: np.random.Generator,
    task: str = "restore",
    config: DegradationConfig = DEFAULT_CONFIG,
    only: str | None = None,
) -> Sample:
    """One (clean, degraded) training pair from a pristine scan, as in the paper's section II.A.

    Args:
        pristine: (H, W) heights in any unit, H and W >= `config.crop_size_px`, all finite.
        rng: the sample's generator; the same generator state gives the same sample and record.
        task: "restore", "sr2" (keep every 2nd line) or "sr4" (every 4th line).
        config: the distributions (default: the paper's).
        only: build the paper's targeted test sets: exactly this artefact fires (probability 1)
            and all others are off; rotation and crop still apply, and for SR tasks the slow-axis
            sub-sampling always applies. "low_res" (SR tasks only) means sub-sampling alone.

    Returns:
        The sample: clean and degraded (S, S) float32 in [-1, 1], and the record of what fired.

    Raises:
        StmZooError: for an unusable pristine image or an unknown task / `only`.
    """
    pristine = np.asarray(pristine)
    check_pristine(pristine, config.crop_size_px)
    params = sample_pipeline(rng, pristine.shape, task, config, only)
    clean, degraded = apply_pipeline(pristine, params, target_scale=config.target_scale)
    return Sample(clean=clean, degraded=degraded, record=params.records(), params=params)


def benchmark(n: int, pristine_size: int = 512, seed: int = 0) -> dict[str, float]:
    """Samples per CPU-second of `degrade`, per task, with the default config.

    `degrade` runs on one core (numpy and scipy.ndimage do not thread these operations), so the
    rate is measured in process CPU time: on a machine shared with other jobs, wall-clock time
    would measure the neighbours. The pristine image is a smooth random field: the cost depends
    on which steps fire, not on the surface.

    Args:
        n: samples per task.
        pristine_size: side of the square pristine image, pixels.
        seed: seed of the random field and of the samples.

    Returns:
        {task: samples per second}.
    """
    rng = np.random.default_rng(seed)
    pristine = normalise.to_unit_range(
        np.cumsum(np.cumsum(rng.standard_normal((pristine_size, pristine_size)), 0), 1)
    )
    rates = {}
    for task in TASKS:
        rng = np.random.default_rng(seed)
        start = time.process_time()
        for _ in range(n):
            degrade(pristine, rng, task)
        rates[task] = n / (time.process_time() - start)
        log.info("degrade %s: %.0f samples/s", task, rates[task])
    return rates

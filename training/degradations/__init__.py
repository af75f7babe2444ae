"""The paper's physics-informed degradation pipeline (section II.A), one module per step.

Public API::

    from training.degradations import degrade, DegradationConfig, TASKS, TARGETED
    sample = degrade(pristine, np.random.default_rng(seed), task="restore")
    sample.clean, sample.degraded   # (128, 128) float32 in [-1, 1]
    sample.record                   # [StepRecord(step, params), ...] of the steps that fired

Each artefact module (`multi_tip`, `misalignment`, `blunt_tip`, `tip_change`, `scan_lines`, plus
`rotation`, `crop`, `low_res`, `normalise`) holds a config dataclass with the paper's numbers as
defaults, a params dataclass of one draw, ``sample_params(rng, cfg, ...) -> params`` and a pure
``apply(image, params) -> image``. `pipeline` composes them in the paper's order, on a window
around the crop (identical to the full-image pipeline; see `pipeline`'s docstring). Change a
distribution with e.g. ``DegradationConfig(multi_tip=MultiTipConfig(probability=0.3))``.
"""

from __future__ import annotations

from training.degradations.blunt_tip import BluntTipConfig
from training.degradations.misalignment import MisalignmentConfig
from training.degradations.multi_tip import MultiTipConfig
from training.degradations.pipeline import (
    DEFAULT_CONFIG,
    SR_FACTORS,
    TARGET_SCALES,
    TARGETED,
    TASKS,
    DegradationConfig,
    PipelineParams,
    Sample,
    StepRecord,
    apply_pipeline,
    benchmark,
    check_pristine,
    degrade,
    sample_pipeline,
)
from training.degradations.rotation import RotationConfig
from training.degradations.scan_lines import ScanLineConfig
from training.degradations.tip_change import TipChangeConfig

__all__ = [
    "BluntTipConfig",
    "DEFAULT_CONFIG",
    "DegradationConfig",
    "MisalignmentConfig",
    "MultiTipConfig",
    "PipelineParams",
    "RotationConfig",
    "SR_FACTORS",
    "Sample",
    "ScanLineConfig",
    "StepRecord",
    "TARGET_SCALES",
    "TARGETED",
    "TASKS",
    "TipChangeConfig",
    "apply_pipeline",
    "benchmark",
    "check_pristine",
    "degrade",
    "sample_pipeline",
]

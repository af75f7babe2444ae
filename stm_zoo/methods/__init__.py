"""The restoration families and the registry that training and inference use to find them.

`get_method(family)` returns a learned family's `Method`: its objective (`loss`), its sampler
(`sample`), whether sampling starts from noise, and which network a (family, size) uses.
`get_baseline(family)` returns a family without a network (`Baseline`: the classical baseline,
`stm_zoo.methods.classical`), which restores a whole grid in one call. Which of the two a family
is, `stm_zoo.registry.is_learned` says. One module per family holds the plain functions:
`flow_matching`, `ddim` (DDIM and DDIM + FFT), `autoencoder`, `classical`.

Importing this package imports neither torch nor the family modules (they load on the first
`get_method`), so `stm_zoo.methods.classical` stays a light numpy import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import TYPE_CHECKING

from stm_zoo.errors import StmZooError
from stm_zoo.registry import (
    CLASSICAL,
    FAMILIES,
    FAMILY_SIZES,
    is_learned,
    takes_steps,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from stm_zoo.nn import UNetConfig

LossFn = Callable[..., "torch.Tensor"]
"""`loss(net, x0, cond, generator) -> scalar`; x0, cond (B, 1, H, W) in [-1, 1]."""

SampleFn = Callable[..., "torch.Tensor"]
"""`sample(net, cond, steps, noise) -> (B, 1, H, W)` float32 restored images."""

RestoreFn = Callable[["np.ndarray", str], "np.ndarray"]
"""`restore(grid, task) -> grid`: (H, W) heights in any units -> (H, W) float64, same units."""


@dataclass(frozen=True)
class Method:
    """One learned family.

    Attributes:
        name: the family name ("fm", "ddim", "ddim-fft", "ae").
        loss: the training objective, loss(net, x0, cond, generator).
        sample: the sampler, sample(net, cond, steps, noise); noise (B, 1, H, W) standard normal
            shaped like cond (ignored when `uses_noise` is False, and so is steps).
        uses_noise: whether sampling starts from noise (False: one deterministic forward pass).
        sizes: the network sizes the family comes in (the paper's Table I).
        time_scale: `UNetConfig.time_scale` of its networks; None for no time conditioning.
        prediction: what its networks output: "native" (the paper: velocity, noise, or the
            image for the autoencoder) or "x0" (the clean image as the conditioning image plus a
            correction, `UNetConfig.residual`; the sampler derives velocity or noise from it).
        output_range: "free" (the sample as the sampler ends it, the paper) or "minmax" (the
            sample mapped affinely onto exactly [-1, 1], `project_sample`).
    """

    name: str
    loss: LossFn
    sample: SampleFn
    uses_noise: bool
    sizes: tuple[str, ...]
    time_scale: float | None
    prediction: str = "native"
    output_range: str = "free"

    def network_config(self, size: str) -> UNetConfig:
        """The network preset a zoo entry of this family and size uses.

        Raises:
            StmZooError: a size the family does not come in.
        """
        if size not in self.sizes:
            raise StmZooError(
                f"Family {self.name!r} comes in size {' or '.join(self.sizes)} only "
                f"(paper Table I), not {size!r}: choose --size {self.sizes[0]}."
            )
        from stm_zoo.nn import UNetConfig

        if self.time_scale is None:
            return UNetConfig.autoencoder(residual=self.prediction == "x0")
        preset = UNetConfig.small if size == "small" else UNetConfig.large
        return preset(time_scale=self.time_scale, residual=self.prediction == "x0")


@cache
def _methods() -> dict[str, Method]:
    from stm_zoo.methods import autoencoder, ddim, flow_matching

    parts = {
        "fm": (flow_matching.loss, flow_matching.sample, flow_matching.FM_TIME_SCALE),
        "ddim": (ddim.loss, ddim.sample, 1.0),
        "ddim-fft": (ddim.loss_fft, ddim.sample, 1.0),
        "ae": (autoencoder.loss, autoencoder.sample, None),
    }
    return {
        name: Method(name, loss, sample, takes_steps(name), FAMILY_SIZES[name], time_scale)
        for name, (loss, sample, time_scale) in parts.items()
    }


@dataclass(frozen=True)
class Baseline:
    """A family without a network, weights or size: one deterministic pass over the whole grid.

    Attributes:
        name: the family name (`stm_zoo.registry.CLASSICAL`).
        description: what it does, in a few words.
        restore: restore(grid, task) on the model grid the pipeline builds (for SR, the measured
            lines repeated k times along the slow axis); (H, W) in any units -> (H, W) float64.
    """

    name: str
    restore: RestoreFn
    description: str


@cache
def _baselines() -> dict[str, Baseline]:
    from stm_zoo.methods.classical import classical_restore

    return {
        CLASSICAL: Baseline(
            CLASSICAL, classical_restore, "Gwyddion-style row alignment and scar removal"
        )
    }


def get_baseline(family: str) -> Baseline:
    """The family without a network called `family` (`stm_zoo.registry.is_learned` is False).

    Raises:
        StmZooError: for a learned family (it has a network: `get_method`) and unknown names.
    """
    if is_learned(family):
        raise StmZooError(
            f"The {family} family has a network: load it with stm_zoo.load_model and run its "
            "sampler (stm_zoo.methods.get_method)."
        )
    if family not in FAMILIES:
        raise StmZooError(f"Unknown model family {family!r}: choose one of {', '.join(FAMILIES)}.")
    return _baselines()[family]


PREDICTIONS: tuple[str, ...] = ("native", "x0")
"""Network output parametrisations (`Method.prediction`)."""

OUTPUT_RANGES: tuple[str, ...] = ("free", "minmax")
"""What the sampler does with its last state (`Method.output_range`)."""


def project_sample(sample: SampleFn, *args, **kwargs) -> torch.Tensor:
    """Run `sample` and map each output affinely onto exactly [-1, 1] (min to -1, max to 1).

    The clean training images are min/max-normalised to exactly [-1, 1] (the pipeline's last
    step), so a restored image is projected onto that set, as the classical baseline's output is
    in every table. At inference the result is mapped back to the input's units by an affine fit
    (`stm_zoo.inference`), which this map does not change.
    """
    from stm_zoo.preprocess import normalise_tiles

    return normalise_tiles(sample(*args, **kwargs))[0]


def get_method(
    family: str,
    prediction: str = "native",
    time_sampling: str = "uniform",
    output_range: str = "free",
) -> Method:
    """The learned family called `family`, with its networks' output parametrisation and the
    training time distribution (`stm_zoo.methods.common.TimeSampling`) bound into `loss` and
    `sample`.

    Raises:
        StmZooError: for a family without a network (`get_baseline`), unknown names and
            options, and the autoencoder with options (it has no time and always predicts the
            image).
    """
    if family not in FAMILIES:
        raise StmZooError(f"Unknown model family {family!r}: choose one of {', '.join(FAMILIES)}.")
    if not is_learned(family):
        raise StmZooError(
            f"The {family} family has no network or sampler: restore with "
            f"stm_zoo.methods.get_baseline({family!r}).restore(image, task) instead."
        )
    if prediction not in PREDICTIONS:
        raise StmZooError(
            f"Unknown prediction {prediction!r}: choose one of {', '.join(PREDICTIONS)}."
        )
    if time_sampling not in ("uniform", "grid", "logit-normal"):
        raise StmZooError(
            f"Unknown time sampling {time_sampling!r}: choose uniform, grid or logit-normal."
        )
    if output_range not in OUTPUT_RANGES:
        raise StmZooError(
            f"Unknown output range {output_range!r}: choose one of {', '.join(OUTPUT_RANGES)}."
        )
    method = _methods()[family]
    if output_range == "minmax":
        method = replace(
            method, sample=partial(project_sample, method.sample), output_range="minmax"
        )
    if prediction == "native" and time_sampling == "uniform":
        return method
    if not method.uses_noise:
        if prediction == "x0" and time_sampling == "uniform":
            # The image plus a correction: the network starts as the identity (issue 12's
            # finding for CPU budgets), the loss and the one-pass "sampler" are unchanged.
            return replace(method, prediction="x0")
        raise StmZooError(
            f"The {family} family predicts the image in one pass: it takes no time-sampling "
            "option (prediction x0 only adds an identity start)."
        )
    base = _methods()[family]
    sample = partial(base.sample, prediction=prediction)
    return replace(
        method,
        loss=partial(base.loss, prediction=prediction, times=time_sampling),
        sample=partial(project_sample, sample) if output_range == "minmax" else sample,
        prediction=prediction,
    )

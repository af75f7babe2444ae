"""Model configurations of an expert study: `ModelSpec` (`fm-small-2`, `ddim-large-10`,
`ddim-fft-large-10`, `ae-large`, `classical`), its label in the paper's style, and the checked list
of a study's configurations (`parse_models`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from stm_zoo.errors import StmZooError
from stm_zoo.registry import (
    CLASSICAL,
    FAMILIES,
    LEARNED_FAMILIES,
    SIZES,
    has_fourier_loss,
    is_learned,
    takes_steps,
)

MAX_OUTPUTS = 8
"""Most model configurations per study: each needs its own column on the rater's screen."""
_MODEL_RE = re.compile(
    # Longest names first, so that "ddim-fft-large" is not read as family "ddim".
    rf"^({'|'.join(map(re.escape, sorted(LEARNED_FAMILIES, key=len, reverse=True)))})"
    rf"-({'|'.join(SIZES)})(?:-(\d+))?$"
)
_FAMILY_NAMES = {
    "fm": "FM",
    "ddim": "DDIM",
    "ddim-fft": "DDIM",
    "ae": "Autoencoder",
    CLASSICAL: "Classical (Gwyddion-style)",
}


@dataclass(frozen=True)
class ModelSpec:
    """One model configuration of a study.

    Attributes:
        family: one of `stm_zoo.registry.FAMILIES`.
        size: "small" or "large" ("small" for a family without a network, which has no size).
        steps: sampler steps (1 for the families that take none: ae, classical).
    """

    family: str
    size: str
    steps: int

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Read `fm-small-2`, `ddim-large-10`, `ddim-fft-large-10`, `ae-large` or `classical`.

        Raises:
            StmZooError: an unknown family or size, a size the family does not come in (paper
                Table I), or a missing/extra step count.
        """
        text = text.strip().lower()
        if text in FAMILIES and not is_learned(text):
            return cls(text, "small", 1)
        match = _MODEL_RE.match(text)
        if match is None:
            raise StmZooError(
                f"Model configuration {text!r} is not FAMILY-SIZE[-STEPS]: write e.g. fm-small-2, "
                "ddim-large-10, ddim-fft-large-10, ae-large or classical."
            )
        family, size, steps = match.group(1), match.group(2), match.group(3)
        from stm_zoo.entry_format import registry

        if not any(k.family == family and k.size == size for k in registry()):
            raise StmZooError(
                f"Model configuration {text!r}: family {family} comes in size large only "
                f"(paper Table I): write {family}-large{'' if steps is None else '-' + steps}."
            )
        if takes_steps(family):
            if steps is None or int(steps) < 1:
                raise StmZooError(
                    f"Model configuration {text!r} needs a step count of at least 1, "
                    f"e.g. {family}-{size}-10."
                )
            return cls(family, size, int(steps))
        if steps is not None:
            raise StmZooError(
                f"Model configuration {text!r}: the autoencoder takes no steps; write ae-{size}."
            )
        return cls(family, size, 1)

    @property
    def name(self) -> str:
        """The canonical configuration string, e.g. `fm-small-2` (parses back to itself)."""
        if not is_learned(self.family):
            return self.family
        if takes_steps(self.family):
            return f"{self.family}-{self.size}-{self.steps}"
        return f"{self.family}-{self.size}"

    @property
    def label(self) -> str:
        """A human label in the paper's style, e.g. "DDIM Large (FFT, 10 steps)"."""
        if not is_learned(self.family):
            return _FAMILY_NAMES[self.family]
        base = f"{_FAMILY_NAMES[self.family]} {self.size.capitalize()}"
        details = ["FFT"] if has_fourier_loss(self.family) else []
        if takes_steps(self.family):
            details.append(f"{self.steps} step{'s' if self.steps > 1 else ''}")
        return f"{base} ({', '.join(details)})" if details else base


def model_label(name: str) -> str:
    """`ModelSpec.parse(name).label`, or the name itself when it does not parse."""
    try:
        return ModelSpec.parse(name).label
    except StmZooError:
        return name


def parse_models(models: Sequence[str]) -> list[ModelSpec]:
    """Parse the configurations of a study, refusing duplicates and too many.

    Raises:
        StmZooError: fewer than 2 or more than `MAX_OUTPUTS` configurations, a duplicate, or one
            that does not parse.
    """
    specs = [ModelSpec.parse(m) for m in models]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StmZooError(f"--models lists {', '.join(duplicates)} twice: give each once.")
    if not 2 <= len(specs) <= MAX_OUTPUTS:
        raise StmZooError(
            f"--models gives {len(specs)} configuration(s): a study compares 2 to {MAX_OUTPUTS}."
        )
    return specs

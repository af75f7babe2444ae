"""One zoo entry: its name, its `config.json` and the folder it is written to.

An entry is a folder `<task>/<family>-<size>/` laid out like a Hugging Face Hub model repo:
`config.json` (everything needed to rebuild the network and its sampler, the training budget and
the measured metrics), `model.safetensors` (EMA weights) and `README.md` (the model card).
`EntryKey` names an entry, `registry()` lists the paper's, `EntryConfig` is its validated
config.json and `write_entry` writes the folder. Finding and loading entries is `stm_zoo.zoo`'s job.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stm_zoo import config_checks as checks
from stm_zoo.errors import StmZooError
from stm_zoo.methods import OUTPUT_RANGES, PREDICTIONS, Method, get_method
from stm_zoo.registry import (
    DEFAULT_PIXEL_SIZE_NM,
    FAMILIES,
    FAMILY_SIZES,
    LEARNED_FAMILIES,
    SIZES,
    SR_FACTOR,
    TASKS,
    is_learned,
)

if TYPE_CHECKING:
    from stm_zoo.nn import UNetConfig

FORMAT_VERSION = 1
WEIGHTS_DTYPES = ("float32", "float16", "bfloat16")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
PUBLISHED_MODE = 0o644
"""File mode of everything in a zoo entry folder: publishable, readable by every user."""


@dataclass(frozen=True)
class EntryKey:
    """Which model: task x family x size (the `classical` family has no size)."""

    task: str
    family: str
    size: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise StmZooError(f"Unknown task {self.task!r}: choose one of {', '.join(TASKS)}.")
        if self.family not in FAMILIES:
            raise StmZooError(
                f"Unknown model family {self.family!r}: choose one of {', '.join(FAMILIES)}."
            )
        if self.size not in SIZES:
            raise StmZooError(f"Unknown model size {self.size!r}: choose small or large.")

    @property
    def subdir(self) -> str:
        """Path of the entry inside a zoo folder or Hub repo, e.g. `restore/fm-small`."""
        return f"{self.task}/{self.family}-{self.size}"

    @classmethod
    def parse(cls, name: str) -> EntryKey:
        """`restore/ae-large` -> EntryKey("restore", "ae", "large"), for command-line names."""
        task, _, entry = name.strip("/").partition("/")
        family, _, size = entry.rpartition("-")
        if not (task and family and size):
            raise StmZooError(
                f"{name!r} is not an entry name: write <task>/<family>-<size>, e.g. "
                "restore/ae-large (`python -m stm_zoo zoo list` shows them all)."
            )
        return cls(task, family, size)

    def __str__(self) -> str:
        return self.subdir


def registry() -> list[EntryKey]:
    """Every zoo entry of the paper's Table I for every task (ae and ddim-fft are large only)."""
    return [
        EntryKey(task, family, size)
        for task in TASKS
        for family in LEARNED_FAMILIES
        for size in FAMILY_SIZES[family]
    ]


@dataclass(frozen=True)
class EntryConfig:
    """The contents of an entry's `config.json`.

    Attributes:
        task, family, size: which entry.
        network: the U-Net; None exactly for a family without a network (`classical`), whose
            config.json holds an empty `network` object.
        pixel_size_nm: pixel pitch of the training data; inputs are resampled to it.
        tile_size: edge of the square training crops (the inference tile).
        sr_factor: 1 for restoration, 2 or 4 for slow-axis super-resolution.
        weights_dtype: dtype the safetensors file is stored in.
        training: training budget and provenance (steps, batch, samples seen, device, wall time,
            seed, data manifest summary).
        metrics: validation / test metrics measured for this entry.
        prediction: what the network outputs, "native" (the paper's target for the family) or
            "x0" (the clean image; `stm_zoo.methods.Method.prediction`).
        output_range: "free" (the paper) or "minmax" (each sample mapped onto exactly [-1, 1],
            like the min/max-normalised clean images; `stm_zoo.methods.project_sample`).
    """

    task: str
    family: str
    size: str
    network: UNetConfig | None
    pixel_size_nm: float = DEFAULT_PIXEL_SIZE_NM
    tile_size: int = 128
    sr_factor: int = 1
    weights_dtype: str = "float32"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    prediction: str = "native"
    output_range: str = "free"

    def __post_init__(self) -> None:
        assert (self.network is not None) == is_learned(self.family), (
            f"a {self.family} entry {'needs' if is_learned(self.family) else 'has no'} network"
        )

    @property
    def key(self) -> EntryKey:
        return EntryKey(self.task, self.family, self.size)

    def method(self) -> Method:
        """The family's objective and sampler, with this entry's output parametrisation."""
        return get_method(self.family, self.prediction, output_range=self.output_range)

    def to_json(self) -> str:
        """config.json's text: every field, the network as `UNetConfig.to_dict()`."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["network"] = {} if self.network is None else self.network.to_dict()
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_file(cls, path: Path) -> EntryConfig:
        """Read and validate a config.json before anything is built from it.

        Every field is checked for type and range, and the network it describes for its cost
        (`stm_zoo.config_checks`); unknown top-level fields are ignored (forward compatible).

        Raises:
            StmZooError: one sentence naming the file and the faulty field.
        """
        path = Path(path)
        raw = checks.read_json_object(path)
        missing = {"task", "family", "size", "network"} - raw.keys()
        if missing:
            raise StmZooError(f"{path} lacks the field(s) {', '.join(sorted(missing))}.")
        version = checks.integer(
            path, "format_version", raw.get("format_version", FORMAT_VERSION), 1, 10**6
        )
        if version > FORMAT_VERSION:
            raise StmZooError(
                f"{path} uses zoo format {version}, newer than this stm-zoo "
                f"understands ({FORMAT_VERSION}): upgrade stm-zoo."
            )
        given = {f.name: raw[f.name] if f.name in raw else _default(f) for f in fields(cls)}
        task = checks.choice(path, "task", given["task"], TASKS)
        family = checks.choice(path, "family", given["family"], FAMILIES)
        checks.choice(path, "size", given["size"], SIZES)
        checks.choice(path, "prediction", given["prediction"], PREDICTIONS)
        checks.choice(path, "output_range", given["output_range"], OUTPUT_RANGES)
        checks.choice(path, "weights_dtype", given["weights_dtype"], WEIGHTS_DTYPES)
        given["pixel_size_nm"] = checks.number(
            path, "pixel_size_nm", given["pixel_size_nm"], *checks.PIXEL_SIZE_RANGE_NM
        )
        tile_size = checks.integer(path, "tile_size", given["tile_size"], 1, checks.MAX_TILE_SIZE)
        sr_factor = checks.integer(
            path, "sr_factor", given["sr_factor"], 1, max(SR_FACTOR.values())
        )
        if sr_factor != SR_FACTOR[task]:
            raise StmZooError(
                f"{path} says sr_factor={sr_factor} for task {task}: expected {SR_FACTOR[task]}."
            )
        for name in ("network", "training", "metrics"):
            checks.mapping(path, name, given[name])
        if is_learned(family):
            time_conditioned = get_method(family).time_scale is not None
            given["network"] = checks.check_network(
                path, given["network"], tile_size, time_conditioned
            )
        else:
            given["network"] = None
        return cls(**given)


def _default(f: Field) -> Any:
    """The default of a dataclass field (MISSING for a required one)."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def write_entry(
    directory: Path,
    config: EntryConfig,
    state_dict: dict[str, Any],
    card: str,
    weights_dtype: str | None = None,
) -> Path:
    """Write one zoo entry folder: config.json, model.safetensors and the README.md card.

    Args:
        directory: the entry folder (created), usually `<zoo>/<task>/<family>-<size>`.
        config: the entry's configuration (written with the `weights_dtype` stored).
        state_dict: network weights (EMA), name -> tensor.
        card: the model card (markdown, with YAML front matter when published).
        weights_dtype: store weights as "float32", "float16" or "bfloat16" (default: config's).

    Returns:
        The entry folder.
    """
    import torch
    from safetensors.torch import save_file

    dtype_name = weights_dtype or config.weights_dtype
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype_name not in dtypes:
        raise StmZooError(f"Unknown weights dtype {dtype_name!r}: use one of {', '.join(dtypes)}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: (
            t.detach().to("cpu", dtypes[dtype_name]) if t.is_floating_point() else t.cpu()
        ).contiguous()
        for name, t in state_dict.items()
    }
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    config = replace(config, weights_dtype=dtype_name)
    (directory / CONFIG_NAME).write_text(config.to_json() + "\n", encoding="utf-8")
    (directory / CARD_NAME).write_text(card, encoding="utf-8")
    # Published files are world-readable whatever the umask (safetensors itself writes 0600).
    for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
        (directory / name).chmod(PUBLISHED_MODE)
    return directory

"""Training configurations: one frozen dataclass, and a named preset for every zoo entry.

`TrainConfig` holds every knob of a training run; `python -m training train` builds its options
from the dataclass fields (name, type, default and the `help` metadata), so the CLI and the Python
API cannot drift apart. `ZOO_CONFIGS` maps preset names to configs:

- `"<task>/<family>-<size>"` (e.g. `"restore/fm-small"`): the full budget for a GPU, one per
  entry of `stm_zoo.entry_format.registry()` (18 entries);
- `"<task>/<family>-<size>@cpu"`: a reduced budget that trains a small model on a few CPU cores in
  about an hour (fm and ddim small, 6 entries).

The paper does not state its optimisation hyperparameters; the full budgets below follow common
practice for conditional U-Net diffusion models of this size (AdamW, lr 2e-4 / 1e-4, batch 64,
EMA, ~190 epochs of the 20,000-sample training set).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from stm_zoo.entry_format import EntryKey, registry
from stm_zoo.errors import StmZooError
from stm_zoo.methods import get_method
from stm_zoo.registry import LEARNED_FAMILIES, SIZES, TASKS, is_learned, takes_steps

PRECISIONS = ("auto", "fp32", "bf16")
WEIGHTS_DTYPES = ("float32", "float16", "bfloat16")
CPU_SUFFIX = "@cpu"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (the data folder and output folders excepted).

    Batch sizes are global: under DDP each of the W processes takes `batch / W` samples per step,
    so `batch`, `lr` and `steps` mean the same optimisation on any number of GPUs.
    """

    task: str = field(default="restore", metadata={"help": "restore, sr2 or sr4"})
    family: str = field(default="fm", metadata={"help": "fm, ddim, ddim-fft or ae"})
    size: str = field(default="small", metadata={"help": "small or large"})
    steps: int = field(default=60_000, metadata={"help": "optimiser steps in total"})
    batch: int = field(default=64, metadata={"help": "global batch size (all processes)"})
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate of AdamW"})
    weight_decay: float = field(
        default=1e-4, metadata={"help": "AdamW weight decay (conv/linear weights only)"}
    )
    betas: tuple[float, ...] = field(default=(0.9, 0.999), metadata={"help": "AdamW betas"})
    warmup_steps: int = field(default=1000, metadata={"help": "linear learning-rate warm-up"})
    final_lr_ratio: float = field(
        default=0.05, metadata={"help": "learning rate at the end of the cosine, / peak"}
    )
    ema_decay: float = field(default=0.9995, metadata={"help": "EMA decay of published weights"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient L2 norm (0: off)"})
    val_every: int = field(default=2000, metadata={"help": "validate every N steps (0: end)"})
    val_samples: int = field(default=64, metadata={"help": "fixed validation subset size"})
    val_steps: tuple[int, ...] = field(
        default=(2, 10), metadata={"help": "sampler steps evaluated at validation"}
    )
    checkpoint_every: int = field(default=1000, metadata={"help": "save resumable state every N"})
    log_every: int = field(default=50, metadata={"help": "CSV log row every N steps"})
    seed: int = field(default=0, metadata={"help": "seed of weights, noise and data order"})
    precision: str = field(
        default="auto", metadata={"help": "auto (bf16 where GPU/CPU do it natively), fp32, bf16"}
    )
    channels_last: bool = field(default=False, metadata={"help": "NHWC memory format"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the network"})
    num_workers: int = field(default=2, metadata={"help": "DataLoader worker processes"})
    channels: tuple[int, ...] = field(
        default=(), metadata={"help": "override the U-Net widths per level (empty: the preset)"}
    )
    blocks_per_level: tuple[int, ...] = field(
        default=(), metadata={"help": "override the residual blocks per level (empty: preset)"}
    )
    norm_groups: int = field(
        default=0, metadata={"help": "override the GroupNorm groups (0: the preset's)"}
    )
    patch_size: int = field(
        default=0,
        metadata={"help": "override the space-to-depth factor of the stem (0: the preset's)"},
    )
    weights_dtype: str = field(
        default="float32", metadata={"help": "dtype of the published model.safetensors"}
    )
    prediction: str = field(
        default="native",
        metadata={"help": "network output: native (paper: velocity/noise) or x0 (identity start)"},
    )
    time_sampling: str = field(
        default="uniform", metadata={"help": "training times: uniform, grid or logit-normal"}
    )
    output_range: str = field(
        default="free", metadata={"help": "samples as they end (free) or mapped onto [-1, 1]"}
    )
    crop_px: int = field(
        default=0, metadata={"help": "train on random square crops of this side (0: whole)"}
    )
    time_budget_min: float = field(
        default=0.0,
        metadata={
            "help": "wall-clock budget in minutes: warm-up and cosine laid over it, the run ends "
            "when it is spent (steps then only bound the run); 0: off"
        },
    )
    crop_renormalise: bool = field(
        default=True, metadata={"help": "map each crop onto [-1, 1] again (else keep its scale)"}
    )
    global_context: bool = field(
        default=False, metadata={"help": "U-Net global-context branch (UNetConfig)"}
    )
    init_from: str = field(
        default="", metadata={"help": "warm start: a zoo entry folder whose weights to load"}
    )

    def __post_init__(self) -> None:
        EntryKey(self.task, self.family, self.size)  # validates the names
        if not is_learned(self.family):
            raise StmZooError(
                f"The {self.family} baseline has nothing to train: pick fm, ddim, ddim-fft or ae."
            )
        if EntryKey(self.task, self.family, self.size) not in registry():
            raise StmZooError(
                f"There is no zoo entry {self.task}/{self.family}-{self.size}: "
                f"{self.family} exists in size large only."
            )
        positive = ("steps", "batch", "val_samples", "checkpoint_every", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise StmZooError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}."
                )
        non_negative = ("weight_decay", "warmup_steps", "grad_clip", "val_every", "num_workers")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise StmZooError(
                    f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}."
                )
        if not self.lr > 0:
            raise StmZooError(f"--lr must be > 0, got {self.lr}.")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise StmZooError(f"--final-lr-ratio must be in [0, 1], got {self.final_lr_ratio}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise StmZooError(f"--ema-decay must be in [0, 1), got {self.ema_decay}.")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise StmZooError(f"--betas needs two values in [0, 1), got {self.betas}.")
        if not self.val_steps or min(self.val_steps) < 1:
            raise StmZooError(f"--val-steps needs sampler step counts >= 1, got {self.val_steps}.")
        if self.precision not in PRECISIONS:
            raise StmZooError(
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}."
            )
        if self.weights_dtype not in WEIGHTS_DTYPES:
            raise StmZooError(
                f"--weights-dtype must be one of {', '.join(WEIGHTS_DTYPES)}, "
                f"got {self.weights_dtype!r}."
            )
        for name in ("channels", "blocks_per_level"):
            if any(v < 1 for v in getattr(self, name)):
                raise StmZooError(
                    f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}."
                )
        if self.norm_groups < 0:
            raise StmZooError(f"--norm-groups must be >= 0, got {self.norm_groups}.")
        if self.patch_size < 0:
            raise StmZooError(f"--patch-size must be >= 0, got {self.patch_size}.")
        # Validates the options.
        get_method(self.family, self.prediction, self.time_sampling, self.output_range)
        if self.time_budget_min < 0:
            raise StmZooError(f"--time-budget-min must be >= 0, got {self.time_budget_min}.")
        if self.crop_px and (self.crop_px < 16 or self.crop_px % 16):
            raise StmZooError(f"--crop-px must be 0 or a multiple of 16 >= 16, got {self.crop_px}.")

    @property
    def key(self) -> EntryKey:
        """The zoo entry this run trains."""
        return EntryKey(self.task, self.family, self.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error (a config from a newer version)."""
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise StmZooError(f"Unknown training option(s) {', '.join(sorted(unknown))}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


# Fields that may change when a run is resumed: they affect bookkeeping, speed or the published
# file, never the optimisation trajectory. `steps` may grow (to extend a run): the cosine then
# stretches from the resumed step on, which is stated in the log.
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "val_every",
        "val_samples",
        "val_steps",
        "checkpoint_every",
        "log_every",
        "num_workers",
        "weights_dtype",
        "compile",
        "init_from",
        "output_range",
        "time_budget_min",
    }
)


def _full_budget(key: EntryKey) -> TrainConfig:
    """The GPU budget of one zoo entry."""
    large = key.size == "large"
    return TrainConfig(
        task=key.task,
        family=key.family,
        size=key.size,
        steps=60_000,
        batch=64,
        # The larger, attention-bearing network is trained at half the step size, as is usual.
        lr=1e-4 if large else 2e-4,
        warmup_steps=1000,
        ema_decay=0.9995,
        val_every=2000,
        val_samples=64,
        checkpoint_every=1000,
        num_workers=4,
    )


CPU_MINUTES = {
    ("restore", "fm"): 60.0,
    ("sr2", "fm"): 9.0,
    ("sr4", "fm"): 9.0,
    ("restore", "ddim"): 25.0,
    ("sr2", "ddim"): 8.0,
    ("sr4", "ddim"): 8.0,
    ("restore", "ae"): 90.0,
    ("sr2", "ae"): 30.0,
    ("sr4", "ae"): 30.0,
}
"""Wall-clock budget (minutes, 2 CPU cores) of each small entry's CPU preset, the budgets the
bundled entries were trained with; SR and DDIM entries are warm-started from restore/fm-small
(`scripts/train_small_zoo.sh`), so they need less. `--time-budget-min` changes it."""


CPU_RECIPE: dict[str, Any] = dict(
    steps=100_000,
    batch=32,
    lr=1e-3,
    warmup_steps=2000,  # 2 % of the budget
    final_lr_ratio=0.05,
    ema_decay=0.999,
    val_every=500,
    val_samples=64,
    val_steps=(2, 5, 10),
    checkpoint_every=100,
    log_every=25,
    num_workers=1,
    precision="bf16",
    channels_last=False,
    prediction="x0",
    time_sampling="grid",
    global_context=True,
    weights_dtype="bfloat16",
)
"""The fields the `@cpu` presets share (`_cpu_budget`)."""


def _cpu_budget(key: EntryKey) -> TrainConfig:
    """A small model on a 2-core CPU, the recipe the learning-efficiency study picked
    (`scripts/bench_learning.py`, docs/benchmarks.md): the network predicts the clean image as
    its input plus a correction (identity start), trained on the x0 error at the times the 2-,
    5- and 10-step samplers evaluate, on whole 128x128 pairs (64 px crops, renormalised or not,
    learn a calibration that is wrong at 128 px), with the U-Net's global-context branch, batch
    32 at lr 1e-3 with the warm-up and cosine laid over a wall-clock budget, bf16 autocast in NCHW
    (channels_last costs bf16 its speed-up, docs/benchmarks.md). `steps` only bounds the run;
    the budget ends it."""
    return dataclasses.replace(
        _full_budget(key),
        **CPU_RECIPE,
        time_budget_min=CPU_MINUTES.get((key.task, key.family), 10.0),
    )


def _cpu_budget_autoencoder(key: EntryKey) -> TrainConfig:
    """The autoencoder baseline (large, the paper's only AE size) on a 2-core CPU: the small
    recipe's schedule with the identity start (`prediction="x0"`: the image plus a correction),
    no time (so no time sampling and no global-context branch, which rides on the time
    embedding), batch 16 at half the small nets' step size, as the larger attention-bearing
    network is trained on the GPU too, and a 2x space-to-depth stem: at equal CPU time it saw
    5.2x the samples of the paper's full-resolution first level and scored higher
    (docs/benchmarks.md, "Large net: 2x space-to-depth stem")."""
    recipe = {
        **CPU_RECIPE,
        "patch_size": 2,
        "time_sampling": "uniform",
        "global_context": False,
        "batch": 16,
        "lr": 5e-4,
        "time_budget_min": CPU_MINUTES.get((key.task, key.family), 90.0),
    }
    return dataclasses.replace(_full_budget(key), **recipe)


def _zoo_configs() -> dict[str, TrainConfig]:
    configs: dict[str, TrainConfig] = {}
    for key in registry():
        configs[key.subdir] = _full_budget(key)
    for key in registry():
        if key.size == "small":
            configs[key.subdir + CPU_SUFFIX] = _cpu_budget(key)
        elif not takes_steps(key.family):
            configs[key.subdir + CPU_SUFFIX] = _cpu_budget_autoencoder(key)
    return configs


ZOO_CONFIGS: dict[str, TrainConfig] = _zoo_configs()


def preset(name: str) -> TrainConfig:
    """The named preset, with a one-sentence error listing the names when it does not exist."""
    try:
        return ZOO_CONFIGS[name]
    except KeyError:
        raise StmZooError(
            f"Unknown training preset {name!r}: use one of {', '.join(ZOO_CONFIGS)}."
        ) from None


# ---------------------------------------------------------------------------------------------
# CLI generated from the dataclass fields.

# The CLI names the family `--model` (as `python -m stm_zoo restore` does).
CLI_NAMES = {"family": "model"}
CLI_CHOICES = {
    "task": TASKS,
    "family": LEARNED_FAMILIES,
    "size": SIZES,
    "precision": PRECISIONS,
    "weights_dtype": WEIGHTS_DTYPES,
    "prediction": ("native", "x0"),
    "time_sampling": ("uniform", "grid", "logit-normal"),
    "output_range": ("free", "minmax"),
}


def _field_types() -> dict[str, tuple[type, bool]]:
    """Field name -> (scalar type, whether it is a variable-length tuple)."""
    out: dict[str, tuple[type, bool]] = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        origin = typing.get_origin(hint)
        if origin is tuple:
            out[name] = (typing.get_args(hint)[0], True)
        elif origin in (typing.Union, types.UnionType):
            raise AssertionError(f"optional field {name} is not supported by the CLI")
        else:
            out[name] = (hint, False)
    return out


def add_config_arguments(parser: Any) -> None:
    """Add one option per `TrainConfig` field to an argparse parser (defaults: None = preset).

    Args:
        parser: an `argparse.ArgumentParser` (or argument group).
    """
    import argparse

    for f in dataclasses.fields(TrainConfig):
        scalar, is_tuple = _field_types()[f.name]
        flag = "--" + CLI_NAMES.get(f.name, f.name).replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if scalar is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = scalar
            if f.name in CLI_CHOICES:
                kwargs["choices"] = CLI_CHOICES[f.name]
            else:
                kwargs["metavar"] = {int: "N", float: "X"}.get(scalar, "VALUE")
            if is_tuple:
                kwargs["nargs"] = "*"
        parser.add_argument(flag, **kwargs)


def config_from_args(args: Any, base: TrainConfig) -> TrainConfig:
    """`base` with every option the user gave on the command line applied (validated).

    Args:
        args: the parsed argparse namespace (fields left at None keep the base value).
        base: the preset the options refine.
    """
    overrides = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(base, **overrides)

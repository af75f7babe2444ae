"""Scoring the zoo on the synthetic test split: every entry of a task, the `classical` baseline
and the degraded input, at each sampler step count.

This is what `python -m evaluation synthetic` measures: the test split of a dataset written by
`python -m training data`, and its targeted single-degradation sets when present. Targeted sets
run each model at its best step count on the main test set (by SSIM): the paper's Tables II and V
average "all generative models" without naming a step count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.benchmarks import (
    Outputs,
    TileSet,
    available_entries,
    load_entries,
    load_split,
    models_device,
    produce_outputs,
    row_specs,
    score_set,
    targeted_sets,
)
from evaluation.metrics import DATA_RANGE
from evaluation.rows import ScoredRow, best_rows
from stm_zoo.errors import StmZooError

logger = logging.getLogger(__name__)


@dataclass
class SyntheticResult:
    """Everything `evaluate_synthetic` measured.

    Attributes:
        task: "restore", "sr2" or "sr4".
        rows: scored rows on the test split: the input, classical, then every model x steps.
        targeted: per targeted set, scored rows (input, classical, each model at its best steps).
        outputs: the first test-split outputs per row (for the example grid), not serialised.
        test: the test tiles.
        settings: how the run was made (zoo, data, seed, limit, steps, device, dtype, batch).
    """

    task: str
    rows: list[ScoredRow]
    targeted: dict[str, list[ScoredRow]]
    outputs: list[Outputs]
    test: TileSet
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "settings": self.settings,
            "data_range": DATA_RANGE,
            "test": {
                "indices": self.test.indices.tolist(),
                "rows": [r.to_dict() for r in self.rows],
            },
            "targeted": {
                name: {"rows": [r.to_dict() for r in rows]} for name, rows in self.targeted.items()
            },
        }


def evaluate_synthetic(
    zoo: str | Path,
    data_dir: Path,
    task: str,
    steps: Sequence[int] = (2, 5, 10),
    limit: int | None = None,
    batch: int = 16,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    only: Iterable[str] | None = None,
    targeted: bool = True,
    examples: int = 4,
) -> SyntheticResult:
    """Evaluate every available zoo entry of `task` on a dataset's test split (and targeted sets).

    Args:
        zoo: the zoo folder, or several separated by `os.pathsep` (as in STM_ZOO_DIR).
        data_dir: dataset folder written by `python -m training data --task <task>`.
        task: "restore", "sr2" or "sr4".
        steps: sampler step counts for the generative families.
        limit: at most this many samples per set (the first ones).
        batch: tiles per network call.
        device: "auto", "cpu" or "cuda"; dtype: "float32" or "bfloat16".
        seed: noise seed.
        only: entry names to evaluate ("fm-small", ...); None: all available.
        targeted: also evaluate the targeted sets when the dataset has them.
        examples: output images kept per row for the example grid.

    Returns:
        The scored rows and the settings.
    """
    from tqdm import tqdm

    from training.shards import read_manifest

    manifest = read_manifest(data_dir)
    if manifest["task"] != task:
        raise StmZooError(
            f"Dataset {data_dir} is for task {manifest['task']}, not {task}: pass --task "
            f"{manifest['task']} or a {task} dataset."
        )
    if any(s < 1 for s in steps):
        raise StmZooError(f"--steps must all be >= 1, got {list(steps)}.")
    keys = available_entries(task, zoo, only)
    if not keys:
        logger.warning("no %s entry in %s: only the input and classical rows", task, zoo)
    models = load_entries(keys, zoo, device, dtype)
    specs = {key: row_specs(key, steps) for key in keys}
    test = load_split(Path(data_dir), "test", limit)
    sets = targeted_sets(Path(data_dir), limit) if targeted else {}
    total = len(test) * (1 + sum(len(s) for s in specs.values()))
    total += sum(len(t) * (1 + len(keys)) for t in sets.values())
    with tqdm(total=total, desc=f"evaluate {task}", unit="img", disable=None) as bar:
        rows, outputs = score_set(
            test, produce_outputs(test, task, models, specs, seed, batch, bar=bar), keep=examples
        )
        best = {
            (r.spec.family, r.spec.size): [r.spec]
            for r in best_rows([r for r in rows if r.spec.learned])
        }
        targeted_rows = {}
        for name, tiles in sets.items():
            best_specs = {key: best[(key.family, key.size)] for key in keys}
            targeted_rows[name], _ = score_set(
                tiles, produce_outputs(tiles, task, models, best_specs, seed, batch, bar=bar)
            )
    settings = {
        "zoo": str(zoo),
        "data": str(data_dir),
        "dataset_seed": manifest["seed"],
        "split": "test",
        "images": len(test),
        "limit": limit,
        "seed": seed,
        "steps": list(steps),
        "device": models_device(models, device),
        "dtype": dtype,
        "batch": batch,
        "entries": {f"{k.family}-{k.size}": models[k].source for k in keys},
    }
    return SyntheticResult(task, rows, targeted_rows, outputs, test, settings)

"""`python -m evaluation synthetic`: the paper's synthetic tables (II, III, V, VI, IX, XI).

Evaluates every available zoo entry of a task, the `classical` baseline and the degraded input on
the test split of a dataset written by `python -m training data` (and its targeted
single-degradation sets when present), at each sampler step count, and writes to --out:
`synthetic_<task>.md` (every table, with the paper's numbers beside ours), one CSV per table,
`synthetic_<task>.json` (settings and every per-image score), `violin_<task>.png` (Fig. 4 / 6) and
`examples_<task>.png` (input | outputs | ground truth).

Targeted sets run each model at its best step count on the main test set (by SSIM): the paper's
Tables II and V average "all generative models" without naming a step count.

`--update-cards` writes each entry's means into its config.json (`metrics["test"]`) and regenerates
its README.md card, which is how the bundled zoo's cards get their numbers; re-running the same
command (same data, --limit and --seed) reproduces them.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.benchmarks import (
    PAPER_SYNTHETIC,
    PAPER_TARGETED,
    TARGETED_NAMES,
    Outputs,
    RowSpec,
    ScoredRow,
    TileSet,
    available_entries,
    best_rows,
    in_paper_order,
    load_entries,
    load_split,
    models_device,
    paper_value,
    produce_outputs,
    row_name,
    row_specs,
    score_set,
    targeted_sets,
)
from evaluation.metrics import DATA_RANGE
from evaluation.tables import Cell, Table, write_json, write_tables
from stm_zoo.errors import StmZooError
from stm_zoo.registry import CLASSICAL, takes_steps
from stm_zoo.zoo import (
    CARD_NAME,
    CONFIG_NAME,
    SR_FACTOR,
    TASKS,
    EntryConfig,
    EntryKey,
    locate,
    zoo_search_path,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Synthetic evaluation


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
    zoo: Path,
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
        zoo: zoo root folder.
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


def _paper_cells(task: str, spec: RowSpec, metrics: Sequence[str]) -> list[Cell]:
    return [paper_value(PAPER_SYNTHETIC, task, spec, m) for m in metrics]


def synthetic_tables(result: SyntheticResult) -> list[Table]:
    """The paper's synthetic tables for the run's task.

    restore: Table IX (every row) and Table III (best steps per model), PSNR and SSIM; Table II
    on the targeted sets. SR: Table XI and VI (SSIM, with PSNR as an extra column the paper omits),
    Table V on the targeted sets.
    """
    task = result.task
    n = result.settings["images"]
    restore = task == "restore"
    factor = f"x{SR_FACTOR[task]}"
    data_note = (
        f"Means over {n} test images (first {n} of the split), noise seed "
        f"{result.settings['seed']}; PSNR/SSIM on [-1, 1] images with data_range = 2; "
        "'affine PSNR' / 'affine SSIM' after the best affine map of each output onto its clean "
        "tile (structure only, blind to the [-1, 1] intensity calibration). "
        "'paper' columns: the paper's numbers for the same row (blank: no such row in the paper)."
    )
    identical = [r for r in result.rows if r.identical]
    if identical:
        data_note += " PSNR = inf left out of the mean (output identical to the clean tile): " + (
            ", ".join(f"{row_name(r.spec, task)} {r.identical} image(s)" for r in identical) + "."
        )

    def model_rows(rows: Sequence[ScoredRow]) -> list[list[Cell]]:
        out = []
        for row in rows:
            psnr, ssim = row.mean("psnr"), row.mean("ssim")
            affine = [row.mean("apsnr"), row.mean("assim")]
            paper = _paper_cells(task, row.spec, ("psnr", "ssim") if restore else ("ssim",))
            name = row_name(row.spec, task)
            if restore:
                out.append([name, row.spec.steps_cell, psnr, ssim, *paper, *affine])
            else:
                out.append([name, row.spec.steps_cell, ssim, *paper, psnr, *affine])
        return out

    if restore:
        columns = [
            "Model",
            "Steps",
            "PSNR (dB)",
            "SSIM",
            "paper PSNR",
            "paper SSIM",
            "affine PSNR (dB)",
            "affine SSIM",
        ]
        formats = ["", "", ".2f", ".3f", ".2f", ".3f", ".2f", ".3f"]
        full_name, best_name = "IX", "III"
    else:
        columns = [
            "Model",
            "Steps",
            f"SSIM ({factor})",
            f"paper SSIM ({factor})",
            "PSNR (dB)",
            "affine PSNR (dB)",
            "affine SSIM",
        ]
        formats = ["", "", ".3f", ".3f", ".2f", ".2f", ".3f"]
        full_name, best_name = "XI", "VI"
    ordered = in_paper_order(result.rows)
    tables = [
        Table(
            f"table_{full_name}_{task}",
            f"Table {full_name} ({task}): every model and step count on the synthetic test set",
            columns,
            model_rows(ordered),
            formats,
            [data_note, _seconds_note(result.rows)],
        ),
        Table(
            f"table_{best_name}_{task}",
            f"Table {best_name} ({task}): each model at its best step count (by SSIM)",
            columns,
            model_rows(in_paper_order(best_rows(ordered))),
            formats,
            [data_note],
        ),
    ]
    if result.targeted:
        tables += targeted_tables(result)
    return tables


def _seconds_note(rows: Sequence[ScoredRow]) -> str:
    timed = [r for r in rows if r.spec.family != "input"]
    parts = [
        f"{r.spec.model}{' ' + r.spec.steps_cell if r.spec.learned else ''}: "
        f"{r.seconds_per_image * 1e3:.0f} ms"
        for r in timed
    ]
    return "Wall time per image (batched): " + "; ".join(parts) + "."


def targeted_tables(result: SyntheticResult) -> list[Table]:
    """Table II (restore) / V (SR) on the single-degradation sets, and every row in detail.

    The first table has, per degradation type, the mean over the generative models (what the paper
    reports) beside the paper's number, and the input and classical rows; the second lists every
    row (input, classical, each model at its best step count) per set.
    """
    task = result.task
    restore = task == "restore"
    metrics = ("psnr", "ssim") if restore else ("ssim",)
    fmt = {"psnr": ".2f", "ssim": ".3f"}
    names = [n for n in TARGETED_NAMES if n in result.targeted]
    columns, formats = ["Degradation", "n"], ["", ""]
    for m in metrics:
        columns += [f"{m.upper()} generative mean", f"paper {m.upper()}"]
        formats += [fmt[m]] * 2
    for who in ("input", CLASSICAL):
        label = row_name(RowSpec(who), task).split(" (")[0]
        columns += [f"{label} {m.upper()}" for m in metrics]
        formats += [fmt[m] for m in metrics]
    affine = ("apsnr", "assim")
    for who in ("generative mean", "input", CLASSICAL):
        columns += [f"{who} affine PSNR", f"{who} affine SSIM"]
        formats += [".2f", ".3f"]
    summary, detail = [], []
    for name in names:
        scored = result.targeted[name]
        generative = [r for r in scored if r.spec.generative]
        cells: list[Cell] = [TARGETED_NAMES[name], len(scored[0].psnr)]
        for m in metrics:
            mean = float(np.mean([r.mean(m) for r in generative])) if generative else None
            cells += [mean, PAPER_TARGETED.get(task, {}).get(name, {}).get(m)]
        for who in ("input", CLASSICAL):
            row = next(r for r in scored if r.spec.family == who)
            cells += [row.mean(m) for m in metrics]
        for m in affine:
            cells.append(float(np.mean([r.mean(m) for r in generative])) if generative else None)
        for who in ("input", CLASSICAL):
            row = next(r for r in scored if r.spec.family == who)
            cells += [row.mean(m) for m in affine]
        summary.append(cells)
        for row in in_paper_order(scored):
            detail.append(
                [TARGETED_NAMES[name], row_name(row.spec, task), row.spec.steps_cell]
                + [row.mean(m) for m in ("psnr", "ssim", "apsnr", "assim")]
            )
    number = "II" if restore else "V"
    factor = "" if restore else f" (x{SR_FACTOR[task]})"
    note = (
        "'generative mean' averages the FM and DDIM entries, each at its best step count on the "
        "main test set, as the paper averages its generative models (blank: none evaluated)."
    )
    return [
        Table(
            f"table_{number}_{task}",
            f"Table {number} ({task}): single-degradation test sets{factor}",
            columns,
            summary,
            formats,
            [note],
        ),
        Table(
            f"table_{number}_{task}_detail",
            f"Table {number} ({task}) in detail: every row on every single-degradation set",
            ["Degradation", "Model", "Steps", "PSNR (dB)", "SSIM", "affine PSNR", "affine SSIM"],
            detail,
            ["", "", "", ".2f", ".3f", ".2f", ".3f"],
        ),
    ]


# --------------------------------------------------------------------------------------------------
# Model cards


def card_metrics(result: SyntheticResult, key: EntryKey) -> dict[str, Any]:
    """The `metrics["test"]` dict of one entry from a synthetic run.

    Keys follow the training loop's validation metrics: `psnr_<N>steps` / `ssim_<N>steps` per step
    count (`psnr_direct` / `ssim_direct` for the autoencoder), `input_psnr` / `input_ssim`,
    `classical_psnr` / `classical_ssim` (what `stm_zoo.zoo.default_model` compares against), plus
    `images` and `seed` (what reproduces them) and a `data` description (a string, not shown as a
    metric).
    """
    from stm_zoo.methods import get_method

    direct = not get_method(key.family).uses_noise
    metrics: dict[str, Any] = {}
    for row in result.rows:
        if (row.spec.family, row.spec.size) != (key.family, key.size):
            continue
        label = "direct" if direct else f"{row.spec.steps}steps"
        metrics[f"psnr_{label}"] = round(row.mean("psnr"), 6)
        metrics[f"ssim_{label}"] = round(row.mean("ssim"), 6)
        metrics[f"apsnr_{label}"] = round(row.mean("apsnr"), 6)
        metrics[f"assim_{label}"] = round(row.mean("assim"), 6)
    for who in ("input", CLASSICAL):
        row = next((r for r in result.rows if r.spec.family == who), None)
        if row is not None:
            metrics[f"{who}_psnr"] = round(row.mean("psnr"), 6)
            metrics[f"{who}_ssim"] = round(row.mean("ssim"), 6)
            metrics[f"{who}_apsnr"] = round(row.mean("apsnr"), 6)
            metrics[f"{who}_assim"] = round(row.mean("assim"), 6)
    metrics["images"] = result.settings["images"]
    metrics["seed"] = result.settings["seed"]
    metrics["data"] = (
        f"test split of {Path(result.settings['data']).name} (dataset seed "
        f"{result.settings['dataset_seed']}), first {result.settings['images']} images, "
        "`python -m evaluation synthetic`"
    )
    return metrics


def _merge_card_sections(new_card: str, old_card: str) -> str:
    """Keep the sections ("## ...") of the old card that the regenerated one does not have."""
    new_headings = {line.strip() for line in new_card.splitlines() if line.startswith("## ")}
    parts = old_card.split("\n## ")
    kept = [
        "## " + part.rstrip("\n")
        for part in parts[1:]
        if "## " + part.splitlines()[0].strip() not in new_headings
    ]
    if not kept:
        return new_card
    return new_card.rstrip("\n") + "\n\n" + "\n\n".join(kept) + "\n"


def update_cards(result: SyntheticResult, zoo: Path) -> list[Path]:
    """Write each evaluated entry's test metrics into its config.json and regenerate its card.

    `metrics["test"]` is replaced, or merged when it was measured with the same images, seed and
    data (so runs with different step counts add up). The card is `stm_zoo.cards.entry_card`,
    followed by any extra section of the previous card (e.g. the training loop's validation note).

    Returns:
        The entry folders updated.
    """
    from stm_zoo.cards import entry_card

    updated = []
    keys = {
        EntryKey(result.task, r.spec.family, r.spec.size) for r in result.rows if r.spec.learned
    }
    for key in sorted(keys, key=str):
        folder = locate(key, allow_hub=False, search_path=zoo)  # the folder that served it
        config = EntryConfig.from_file(folder / CONFIG_NAME)
        fresh = card_metrics(result, key)
        old = config.metrics.get("test", {})
        same = all(old.get(k) == fresh[k] for k in ("images", "seed", "data"))
        test = {**old, **fresh} if same else fresh
        config = replace(config, metrics={**config.metrics, "test": test})
        (folder / CONFIG_NAME).write_text(config.to_json() + "\n", encoding="utf-8")
        card_path = folder / CARD_NAME
        old_card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
        card_path.write_text(_merge_card_sections(entry_card(config), old_card), encoding="utf-8")
        updated.append(folder)
    return updated


# --------------------------------------------------------------------------------------------------
# Plots and CLI


def write_plots(result: SyntheticResult, out_dir: Path, examples: int = 4) -> list[Path]:
    """Fig. 4 / 6 violin plots and the example grid of a synthetic run."""
    from evaluation.plots import example_grid, violin_plot

    task = result.task
    picks = violin_rows(result.rows)
    metrics = ("psnr", "ssim") if task == "restore" else ("ssim", "psnr")
    violin = violin_plot(
        out_dir / f"violin_{task}.png",
        [(row_name(r.spec, task) + _steps_suffix(r.spec), r) for r in picks],
        metrics,
        f"{task}: synthetic test set ({len(result.test)} images)",
    )
    by_spec = {o.spec: o.images for o in result.outputs}
    columns = [(row_name(RowSpec("input"), task), result.test.degraded)]
    for row in in_paper_order(best_rows([r for r in result.rows if r.spec.family != "input"])):
        columns.append((row.spec.model + _steps_suffix(row.spec), by_spec[row.spec]))
    assert result.test.clean is not None
    columns.append(("Ground truth", result.test.clean))
    grid = example_grid(out_dir / f"examples_{task}.png", columns, examples)
    return [violin, grid]


def _steps_suffix(spec: RowSpec) -> str:
    return f" ({spec.steps} steps)" if takes_steps(spec.family) else ""


def violin_rows(rows: Sequence[ScoredRow]) -> list[ScoredRow]:
    """The paper's Fig. 4 / 6 selection: the input, the autoencoder, the best small and the best
    large generative model (by mean SSIM), plus our classical baseline."""
    picks = [r for r in rows if r.spec.family in ("input", CLASSICAL)]
    best = best_rows([r for r in rows if r.spec.learned])
    picks += [r for r in best if not r.spec.generative]  # the autoencoder
    for size in ("small", "large"):
        generative = [r for r in best if r.spec.generative and r.spec.size == size]
        if generative:
            picks.append(max(generative, key=lambda r: r.mean("ssim")))
    return picks


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m evaluation synthetic`."""
    parser.add_argument(
        "--zoo", type=Path, default=None, help="zoo folder(s) as in STM_ZOO_DIR (default: it)"
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="dataset folder from `python -m training data`"
    )
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[2, 5, 10], help="sampler step counts"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set")
    parser.add_argument("--batch", type=int, default=16, help="tiles per network call")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument(
        "--models", nargs="+", default=None, metavar="FAMILY-SIZE",
        help="only these entries, e.g. fm-small ae-large (default: every available one)",
    )  # fmt: skip
    parser.add_argument(
        "--no-targeted", action="store_true", help="skip the single-degradation sets"
    )
    parser.add_argument("--examples", type=int, default=4, help="rows of the example grid")
    parser.add_argument(
        "--update-cards",
        action="store_true",
        help="write the test metrics into each entry's config.json and README.md card",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate, write tables, JSON and plots, optionally update the cards; print the tables."""
    if args.limit is not None and args.limit < 1:
        raise StmZooError(f"--limit must be at least 1, got {args.limit}.")
    if args.batch < 1 or args.examples < 1:
        raise StmZooError("--batch and --examples must be at least 1.")
    zoo = args.zoo or Path(zoo_search_path())
    result = evaluate_synthetic(
        zoo,
        args.data,
        args.task,
        steps=args.steps,
        limit=args.limit,
        batch=args.batch,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
        only=args.models,
        targeted=not args.no_targeted,
        examples=args.examples,
    )
    tables = synthetic_tables(result)
    command = _command(args, zoo)
    heading = f"Synthetic evaluation: {args.task}\n\nRe-run: `{command}`"
    md = write_tables(args.out, f"synthetic_{args.task}", heading, tables)
    raw = write_json(
        args.out / f"synthetic_{args.task}.json", {**result.to_dict(), "command": command}
    )
    plots = write_plots(result, args.out, args.examples)
    for table in tables:
        print(table.markdown(), end="\n\n")
    if args.update_cards:
        for folder in update_cards(result, zoo):
            print(f"updated {folder / CONFIG_NAME} and {CARD_NAME}")
    print(f"wrote {md}, {raw.name}, {', '.join(p.name for p in plots)} and the CSV tables")
    return 0


def _command(args: argparse.Namespace, zoo: Path) -> str:
    parts = [
        "python -m evaluation synthetic",
        f"--zoo {zoo}",
        f"--data {args.data}",
        f"--task {args.task}",
        "--steps " + " ".join(str(s) for s in args.steps),
        f"--out {args.out}",
    ]
    if args.limit is not None:
        parts.append(f"--limit {args.limit}")
    if args.seed:
        parts.append(f"--seed {args.seed}")
    if args.models:
        parts.append("--models " + " ".join(args.models))
    return " ".join(parts)

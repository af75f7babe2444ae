"""`python -m evaluation synthetic`: the paper's synthetic tables (II, III, V, VI, IX, XI).

Scores the zoo on a dataset's synthetic test split (`evaluation.synthetic`) and writes to --out:
`synthetic_<task>.md` (every table, with the paper's numbers beside ours), one CSV per table,
`synthetic_<task>.json` (settings and every per-image score), `violin_<task>.png` (Fig. 4 / 6) and
`examples_<task>.png` (input | outputs | ground truth). `--update-cards` writes each entry's means
into its config.json and card (`evaluation.card_updates`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.card_updates import update_cards
from evaluation.rows import (
    PAPER_SYNTHETIC,
    PAPER_TARGETED,
    TARGETED_NAMES,
    RowSpec,
    ScoredRow,
    best_rows,
    in_paper_order,
    paper_value,
    row_name,
)
from evaluation.synthetic import SyntheticResult, evaluate_synthetic
from evaluation.tables import Cell, Table, write_json, write_tables
from stm_zoo.entry_format import CARD_NAME, CONFIG_NAME
from stm_zoo.errors import StmZooError
from stm_zoo.registry import CLASSICAL, SR_FACTOR, TASKS, takes_steps
from stm_zoo.zoo import add_zoo_argument, zoo_search_path

# --------------------------------------------------------------------------------------------------
# Tables


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
    add_zoo_argument(parser)
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
    zoo = args.zoo or zoo_search_path()
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

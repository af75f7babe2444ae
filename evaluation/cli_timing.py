"""`python -m evaluation timing`: the paper's Tables VIII and XIV (inference time at 128x128).

The measurements are `stm_zoo.bench`'s (timed with `stm_zoo.timing`): each network of the zoo's
architectures with random weights (time does not depend on the weights' values), one sampler step
on a 1x1x128x128 input, on CPU and on CUDA when available. Table VIII compares the per-step time
in fp32 (what the paper ran) with the paper's; a column gives our fastest configuration. Table XIV
gives the time per image for the paper's step counts as steps x the per-step time (sampling time is
linear in the number of steps: every step runs the same network evaluations). The paper's numbers
are `stm_zoo.paper`'s.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from evaluation.tables import Table, write_json, write_tables
from stm_zoo import paper
from stm_zoo.bench.measure import BENCH_MODELS
from stm_zoo.bench.suite import MODES, BenchReport, StepRow, add_run_arguments, run_bench
from stm_zoo.errors import StmZooError
from stm_zoo.registry import evaluations_per_step, model_label


def _best(row: StepRow) -> tuple[str, float]:
    name = min(row.timings, key=lambda m: row.timings[m].min)
    return name, row.timings[name].min


def _per_device(report: BenchReport) -> dict[tuple[str, str], dict[str, StepRow]]:
    rows: dict[tuple[str, str], dict[str, StepRow]] = {}
    for row in report.steps:
        rows.setdefault((row.family, row.size), {})[row.device.split(":")[0]] = row
    return rows


def timing_tables(report: BenchReport) -> list[Table]:
    """Tables VIII (seconds per step) and XIV (seconds per image) beside the paper's numbers."""
    rows = _per_device(report)
    load = max((t.load for r in report.steps for t in r.timings.values()), default=math.nan)
    notes = [
        f"Min over repeats, 1x1x128x128 input, torch threads {report.threads}, 1-minute load "
        f"average up to {load:.1f}. Random-initialised networks (time does not depend on the "
        "weights). Paper: AMD Ryzen 5 2600 CPU (6 cores), RTX 3060 Ti GPU."
    ]
    if not any(r.device.startswith("cuda") for r in report.steps):
        notes.append("GPU columns empty: no CUDA device in this run.")
    step_rows = []
    for (family, size), devices in rows.items():
        cpu, gpu = devices.get("cpu"), devices.get("cuda")
        cpu_s = cpu.timings["fp32"].min if cpu and "fp32" in cpu.timings else None
        gpu_s = gpu.timings["fp32"].min if gpu and "fp32" in gpu.timings else None
        best_name, best_s = _best(cpu) if cpu else ("", None)
        published = paper.step_seconds().get((family, size))
        step_rows.append(
            [
                model_label(family, size),
                evaluations_per_step(family),
                cpu_s,
                gpu_s,
                cpu_s / gpu_s if cpu_s and gpu_s else None,
                best_s,
                best_name,
                published.cpu if published else None,
                published.gpu if published else None,
                published.speedup if published else None,
            ]
        )
    image_rows = []
    for (family, size, steps), (paper_cpu, paper_gpu) in paper.image_seconds().items():
        devices = rows.get((family, size))
        if not devices:
            continue
        cpu, gpu = devices.get("cpu"), devices.get("cuda")
        cpu_s = steps * cpu.timings["fp32"].min if cpu and "fp32" in cpu.timings else None
        gpu_s = steps * gpu.timings["fp32"].min if gpu and "fp32" in gpu.timings else None
        best_s = steps * _best(cpu)[1] if cpu else None
        image_rows.append(
            [model_label(family, size), steps, cpu_s, gpu_s, best_s, paper_cpu, paper_gpu]
        )
    return [
        Table(
            "table_VIII_timing",
            "Table VIII: seconds per sampler step at 128x128 (fp32)",
            [
                "Model",
                "evals/step",
                "CPU (s)",
                "GPU (s)",
                "Speedup",
                "CPU best (s)",
                "CPU best config",
                "paper CPU (s)",
                "paper GPU (s)",
                "paper speedup",
            ],  # fmt: skip
            step_rows,
            ["", "", ".3f", ".4f", ".1f", ".3f", "", ".2f", ".2f", ".2f"],
            notes,
        ),
        Table(
            "table_XIV_timing",
            "Table XIV: seconds per 128x128 image (steps x per-step time)",
            [
                "Model",
                "Steps",
                "CPU (s)",
                "GPU (s)",
                "CPU best (s)",
                "paper CPU (s)",
                "paper GPU (s)",
            ],
            image_rows,
            ["", "", ".3f", ".4f", ".3f", ".2f", ".2f"],
            notes,
        ),
    ]


def report_dict(report: BenchReport) -> dict:
    """Every timed run, for the JSON file."""
    return {
        "threads": report.threads,
        "steps": [
            {
                "family": row.family,
                "size": row.size,
                "device": row.device,
                "params_m": row.params_m,
                "evaluations_per_step": evaluations_per_step(row.family),
                "timings": {mode: t.to_dict() for mode, t in row.timings.items()},
            }
            for row in report.steps
        ],
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m evaluation timing`."""
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_run_arguments(parser)
    parser.add_argument(
        "--fp32-only", action="store_true", help="skip the channels_last and bf16 configurations"
    )


def run(args: argparse.Namespace) -> int:
    """Time every network and write the tables."""
    if args.repeats < 1:
        raise StmZooError(f"--repeats must be at least 1, got {args.repeats}.")
    report = run_bench(
        devices=args.device,
        repeats=args.repeats,
        models=BENCH_MODELS,
        modes=MODES[:1] if args.fp32_only else MODES,
        e2e_variants=(),
        threads=args.threads,
    )
    tables = timing_tables(report)
    command = f"python -m evaluation timing --out {args.out} --repeats {args.repeats}"
    md = write_tables(args.out, "timing", f"Inference timing\n\nRe-run: `{command}`", tables)
    write_json(args.out / "timing.json", {**report_dict(report), "command": command})
    for table in tables:
        print(table.markdown(), end="\n\n")
    print(f"wrote {md}, timing.json and the CSV tables")
    return 0

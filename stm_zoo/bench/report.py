"""The benchmark's markdown: per-step latency and per-image time beside the paper's Tables VIII
and XIV (`stm_zoo.paper`), and the end-to-end configurations as ratios against the first."""

from __future__ import annotations

import math

from stm_zoo import paper
from stm_zoo.bench.suite import OMP_ENV, BenchReport
from stm_zoo.registry import evaluations_per_step, model_label
from stm_zoo.timing import Timing, markdown_table


def _ms(t: Timing) -> str:
    return f"{t.min * 1e3:.0f} / {t.median * 1e3:.0f}"


def step_table(report: BenchReport) -> str:
    """Per-step latency (ms, min / median) per model, mode and device, beside the paper's."""
    modes = list(dict.fromkeys(m for row in report.steps for m in row.timings))
    header = [
        "model",
        "device",
        "params (M)",
        "evals/step",
        *(f"{m} (ms/step)" for m in modes),
        "best vs fp32",
        "paper CPU (ms/step)",
        "paper GPU (ms/step)",
        "load",
    ]
    published = paper.step_seconds()
    rows = []
    for row in report.steps:
        base = row.timings.get(modes[0])
        best = min(t.min for t in row.timings.values())
        known = published.get((row.family, row.size))
        rows.append(
            [
                model_label(row.family, row.size),
                row.device,
                f"{row.params_m:.2f}",
                evaluations_per_step(row.family),
                *(_ms(row.timings[m]) if m in row.timings else "-" for m in modes),
                f"{base.min / best:.2f}x" if base else "-",
                f"{known.cpu * 1e3:.0f}" if known else "-",
                f"{known.gpu * 1e3:.0f}" if known else "-",
                f"{max(t.load for t in row.timings.values()):.1f}",
            ]
        )
    return markdown_table(header, rows)


def image_table(report: BenchReport) -> str:
    """Paper Table XIV: seconds per 128x128 image = steps x the best measured per-step time."""
    header = [
        "model",
        "steps",
        "device",
        "ours: steps x best per-step (s)",
        "paper CPU (s)",
        "paper GPU (s)",
    ]
    rows = []
    for row in report.steps:
        best = min(t.min for t in row.timings.values())
        for (family, size, steps), (cpu, gpu) in paper.image_seconds().items():
            if (family, size) == (row.family, row.size):
                ours = f"{steps * best:.3f}"
                label = model_label(family, size)
                rows.append([label, steps, row.device, ours, f"{cpu:.2f}", f"{gpu:.2f}"])
    return markdown_table(header, rows)


def end_to_end_table(report: BenchReport) -> str:
    """End-to-end restore times of each variant, as ratios against the first (naive) one."""
    family, size = report.e2e_model
    header = [
        "configuration",
        "device",
        "tiles",
        "seconds (min / median)",
        "speed-up vs naive",
        "PSNR vs naive output (dB)",
        "load",
    ]
    rows = []
    for row in report.end_to_end:
        first = next(r for r in report.end_to_end if r.device == row.device)
        if row is first:
            psnr = "reference"
        elif math.isinf(row.psnr_vs_reference):
            psnr = "identical"
        else:
            psnr = f"{row.psnr_vs_reference:.1f}"
        rows.append(
            [
                row.variant.name,
                row.device,
                row.tiles,
                f"{row.timing.min:.2f} / {row.timing.median:.2f}",
                f"{first.timing.min / row.timing.min:.2f}x",
                psnr,
                f"{row.timing.load:.1f}",
            ]
        )
    title = (
        f"{report.e2e_size}x{report.e2e_size} scan, {model_label(family, size)}, "
        f"{report.e2e_steps} steps, through stm_zoo.restore"
    )
    return f"{title}\n\n" + markdown_table(header, rows)


def markdown(report: BenchReport, command: str = "python -m stm_zoo bench") -> str:
    """The whole report as markdown, with how it was measured and how to re-run it."""
    text = f"""## Per-step latency at 128x128, batch 1

Random-initialised networks with the zoo's architectures (latency does not depend on the weights'
values). One step = {evaluations_per_step("fm")} network evaluations for FM (RK2 midpoint), 1 for
DDIM, 1 forward pass for the autoencoder. Milliseconds, min / median over the repeats (the
configurations of a model timed round-robin); torch threads: {report.threads},
{OMP_ENV}={report.omp_wait_policy}; load = 1-minute load average at the end of the measurement.
The paper's numbers (Table VIII) are for an AMD Ryzen 5 2600 (6 cores) and an RTX 3060 Ti.

{step_table(report)}

## Per 128x128 image (paper Table XIV)

{image_table(report)}
"""
    if report.end_to_end:
        text += f"""
## End-to-end restore

{end_to_end_table(report)}

Speed-ups are against the naive baseline measured in the same run, round-robin with the others:
the engine's tile function (same tiles, normalisation, noise, sampler, blending) one tile per
network call with fp32 NCHW weights, without restore()'s checks. "PSNR vs naive output" measures
how much a configuration changes the result (over the output's range; > 60 dB: float rounding
only). The paper reconstructs a 512x512 scan in about {paper.restore_512px_cpu_seconds():.0f} s on
a standard 6-core CPU.
"""
    return text + f"\nRe-run: `{command}`\n"

"""The Model zoo tab's table: every entry with its status, training budget and synthetic-test
scores beside the paper's (Tables IX and XI), and the command that trains a missing entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stm_zoo.registry import CLASSICAL, TASKS, steps_label, takes_steps
from webapp.models import FAMILY_LABELS

ZOO_COLUMNS = [
    "Task",
    "Family",
    "Size",
    "Status",
    "Training budget",
    "PSNR gain (dB) at 2 / 5 / 10 steps",
    "Paper PSNR gain",
    "SSIM at 2 / 5 / 10 steps",
    "Paper SSIM",
    "KID at 2 / 5 / 10 steps",
    "Paper KID",
    "How to get it",
]
"""The Model zoo table (`zoo_rows`): one row per entry, grouped by task like the paper's tables."""
_STATUS = {
    "bundled": "✅ bundled",
    "local": "✅ local",
    "hub-cache": "✅ Hub (downloaded)",
    "builtin": "✅ built in",
    "card-only": "⚠️ card only, no weights",
    "untrained": "missing",
    "invalid": "❌ invalid entry",
}
_NO_VALUE = "–"
_STEP_COUNTS = (2, 5, 10)


def train_command(task: str, entry: str) -> str:
    """The command that trains a missing entry with the paper's budget (a GPU preset) on the
    dataset `python -m training data --task <task> --simulate 54 --out data/<task>` writes."""
    return f"python -m training train --preset {task}/{entry} --data data/{task} --out zoo"


def _cells(values: list[float | None], fmt: str) -> str:
    """'+3.71 / +3.45 / +3.01' from one value per step count; '–' where there is none."""
    if all(v is None for v in values):
        return _NO_VALUE
    return " / ".join(_NO_VALUE if v is None else format(v, fmt) for v in values)


def zoo_rows(root: Path | None = None) -> list[list[Any]]:
    """The Model zoo table (`ZOO_COLUMNS`), read like the paper's Tables IX and XI.

    Per task (restore, sr2, sr4): the input row (its own PSNR and SSIM, the reference of the
    gains), the classical baseline (its numbers from the cards' `metrics.test`), then every
    registry entry with its status, training budget and synthetic-test scores at 2 / 5 / 10
    sampler steps (PSNR as the gain over the input, SSIM, KID where the card has it) beside the
    paper's. A missing entry shows the commands that train it.
    """
    from stm_zoo.zoo_cli import list_entries

    statuses = [s for s in list_entries(root) if s.available != "builtin"]
    rows = []
    for task in TASKS:
        entries = [s for s in statuses if s.entry.startswith(f"{task}/")]
        # Every card of a task scores the input and `classical` on the same test images.
        test = next((t for s in entries if (t := _test_metrics(s))), {})
        rows += _baseline_rows(task, test)
        paper_input_psnr = _paper_input(task).get("psnr")
        rows += [_entry_row(s, test.get("input_psnr"), paper_input_psnr) for s in entries]
    return rows


def _paper_input(task: str) -> dict[str, float]:
    """The paper's scores of the degraded / low-resolution input (Tables III and VI)."""
    # The paper's numbers live with the benchmarks; the app sits above both packages.
    from evaluation.rows import PAPER_SYNTHETIC, RowSpec

    return PAPER_SYNTHETIC.get(task, {}).get(RowSpec("input"), {})


def _baseline_rows(task: str, test: dict[str, float]) -> list[list[Any]]:
    """The input and classical rows of one task, from a card's `metrics.test`."""
    from evaluation.rows import PAPER_EXPERIMENTAL, RowSpec, paper_value

    input_psnr, classical_psnr = test.get("input_psnr"), test.get("classical_psnr")
    paper = _paper_input(task)

    def absolute(psnr: float | None) -> str:
        return _NO_VALUE if psnr is None else f"0 ({psnr:.2f} dB)"

    classical_gain = (
        None if input_psnr is None or classical_psnr is None else classical_psnr - input_psnr
    )
    budget = [""]  # neither is trained
    return [
        [
            task,
            "Degraded input" if task == "restore" else "Low-resolution input",
            "",
            "reference",
            *budget,
            absolute(input_psnr),
            absolute(paper.get("psnr")),
            _cells([test.get("input_ssim")], ".3f"),
            _cells([paper.get("ssim")], ".3f"),
            _NO_VALUE,
            _cells([paper_value(PAPER_EXPERIMENTAL, task, RowSpec("input"), "kid")], ".4f"),
            "",
        ],
        [
            task,
            FAMILY_LABELS[CLASSICAL],
            "",
            _STATUS["builtin"],
            *budget,
            _cells([classical_gain], "+.2f"),
            _NO_VALUE,  # the paper has no classical row
            _cells([test.get("classical_ssim")], ".3f"),
            _NO_VALUE,
            _NO_VALUE,
            _NO_VALUE,
            "",
        ],
    ]


def _test_metrics(status: Any) -> dict[str, float]:
    """The card's synthetic-test numbers ("psnr_2steps": ...) of a `zoo_cli.EntryStatus`."""
    return {
        name.removeprefix("test/"): value
        for name, value in status.metrics.items()
        if name.startswith("test/")
    }


def _entry_row(status: Any, input_psnr: float | None, paper_input_psnr: float | None) -> list[Any]:
    """One learned entry's row of `zoo_rows`."""
    from evaluation.rows import PAPER_EXPERIMENTAL, PAPER_SYNTHETIC, RowSpec, paper_value

    task, name = status.entry.split("/", 1)
    family, size = name.rsplit("-", 1)
    test = _test_metrics(status)
    # The autoencoder has one pass ("direct"; the paper's 1-step row); the samplers 2 / 5 / 10.
    counts = _STEP_COUNTS if takes_steps(family) else (1,)
    labels = [(steps_label(family, n), n) for n in counts]
    specs = [RowSpec(family, size, steps) for _, steps in labels]

    def ours(metric: str) -> list[float | None]:
        return [test.get(f"{metric}_{label}") for label, _ in labels]

    def kid() -> list[float | None]:
        found = {
            label: value
            for name, value in status.metrics.items()
            for label, _ in labels
            if name.rsplit("/", 1)[-1] == f"kid_{label}"
        }
        return [found.get(label) for label, _ in labels]

    def paper(table: dict, metric: str) -> list[float | None]:
        return [paper_value(table, task, spec, metric) for spec in specs]

    def gains(values: list[float | None], reference: float | None) -> list[float | None]:
        return [None if v is None or reference is None else v - reference for v in values]

    training = status.training
    available = status.available
    state = _STATUS.get(available, available)
    if available in ("bundled", "local", "hub-cache") and training.get("complete") is False:
        state = "🔶 preview (training not finished)"
    steps, samples, hours = (training.get(k) for k in ("steps", "samples_seen", "wall_time_h"))
    budget = ", ".join(
        part
        for part in (
            f"{steps:,} steps" if isinstance(steps, int) else "",
            f"{samples:,} samples" if isinstance(samples, int) else "",
            f"{hours:.2f} h" if isinstance(hours, int | float) else "",
        )
        if part
    )
    if budget and training.get("device"):
        budget += f" on {training['device']}"
    return [
        task,
        FAMILY_LABELS.get(family, family),
        size,
        state,
        budget,
        _cells(gains(ours("psnr"), input_psnr), "+.2f"),
        _cells(gains(paper(PAPER_SYNTHETIC, "psnr"), paper_input_psnr), "+.2f"),
        _cells(ours("ssim"), ".3f"),
        _cells(paper(PAPER_SYNTHETIC, "ssim"), ".3f"),
        _cells(kid(), ".4f"),
        _cells(paper(PAPER_EXPERIMENTAL, "kid"), ".4f"),
        f"`{train_command(task, name)}`"
        if available in ("untrained", "card-only", "invalid")
        else "",
    ]

"""Train the twelve large zoo entries on one GPU in a few minutes, as concurrent processes.

    python scripts/train_large_gpu.py --data-root DIR --out OUTDIR --minutes 6 \
        [--device cuda] [--processes 4] [--compile] [--build-data] [--bundle DIR] \
        [--entries restore/ae-large,restore/fm-large] [--train-args "--batch 8"]

Entries: restore, sr2, sr4 x ae-large, fm-large, ddim-large, ddim-fft-large. Each one is a
`python -m training train` process on the full preset of its entry, refined by a short-run recipe
(`recipe`): the network predicts the clean image as its input plus a correction (identity
start), grid training times and the global-context branch (both but the autoencoder), batch 64
at lr 5e-4 with the warm-up and cosine laid over a wall-clock budget (`--time-budget-min`), EMA
0.999 warmed up from the first step, bf16 autocast where the device computes it natively,
channels_last on CUDA, bf16 weights.

Plan (`plan`): the entries run in waves of at most `--processes` processes that share the GPU
(one process of the large net at batch 64 leaves the GPU idle while it starts, loads data and
validates; several hide that). Restore entries come first, the autoencoder first of all (it is
the cheapest to validate: one pass); sr2 / sr4 entries start from the restore entry of their
family (`--init-from`, every tensor of the same name and shape) and so wait for it. Every entry
of a wave gets the wave's budget; `--minutes` is split over the waves, restore waves weighted
`--restore-weight` (they start from scratch). `--minutes` is training time: each wave adds its
processes' start-up and the final validation and writing on top (about half a minute).

Output: OUTDIR laid out like zoo/ (`<task>/<family>-large/`: config.json, bf16
model.safetensors, README.md card, training_log.csv), so `cp -r OUTDIR/{restore,sr2,sr4} zoo/`
or `python -m stm_zoo publish --zoo OUTDIR --dry-run` works; OUTDIR/summary.md (one row per entry:
steps, samples, wall time, last validation PSNR / SSIM against the input's) and OUTDIR/curves.png
(`python -m evaluation curves`). Entries already in OUTDIR are kept and serve as warm starts
(`--overwrite` trains them again). Run folders (checkpoint, log, grids, each process's output in
`train.out`) go to `--runs` (default `~/.cache/stm-zoo/runs/large-gpu/`).

`--build-data` builds each missing dataset `DATA_ROOT/<task>` with `python -m training data
--simulate 54` (about half a minute per task on 16 cores): restore before training starts, sr2
and sr4 in the background while the restore wave trains. `--bundle DIR` packs OUTDIR for a
device machine that returns at most 8 files of 16 MiB (64 MiB) per command: DIR/meta.tar
(everything but the weights), DIR/weights.tar.gz.NN (the weights, gzip, parts of 16,000,000
bytes) and DIR/SHA256SUMS. Put them together with
`sha256sum -c SHA256SUMS && cat weights.tar.gz.* | tar xz -C OUTDIR && tar xf meta.tar -C OUTDIR`.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import logging
import math
import os
import shlex
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stm_zoo.entry_format import EntryKey  # noqa: E402
from stm_zoo.errors import StmZooError  # noqa: E402
from stm_zoo.registry import takes_steps  # noqa: E402
from training.configs import CLI_NAMES, TrainConfig, preset  # noqa: E402

log = logging.getLogger("train_large_gpu")

TASK_ORDER = ("restore", "sr2", "sr4")
FAMILY_ORDER = ("ae", "fm", "ddim", "ddim-fft")  # the autoencoder first: it is the cheapest
ALL_ENTRIES = tuple(f"{t}/{f}-large" for t in TASK_ORDER for f in FAMILY_ORDER)
SOURCE_TASK = "restore"  # sr2 / sr4 entries warm-start from this task's entry of their family
WEIGHTS_NAME = "model.safetensors"
PART_BYTES = 16_000_000  # under the device machine's 16 MiB per returned file, 4 under 64 MiB

RECIPE: dict[str, Any] = dict(
    steps=1_000_000,  # only bounds the run: the wall-clock budget ends it
    warmup_steps=50_000,  # 5 % of the budget warms up
    batch=64,
    lr=5e-4,
    final_lr_ratio=0.05,
    ema_decay=0.999,
    val_steps=(2, 10),
    val_samples=64,
    val_every=50,  # ~20 s at the ~2.5 steps/s each of 4 processes should get on an H100
    log_every=10,
    checkpoint_every=1_000_000,  # only the final state: these runs are not resumed
    precision="auto",
    prediction="x0",
    time_sampling="grid",
    global_context=True,
    weights_dtype="bfloat16",
)
"""The short-run recipe every entry gets on top of its full (GPU) preset."""

AUTOENCODER_RECIPE: dict[str, Any] = dict(time_sampling="uniform", global_context=False)
"""No time input: no time sampling, and no global-context branch (it rides on the time
embedding), as in the autoencoder's CPU preset."""


@dataclass(frozen=True)
class PlannedRun:
    """One entry's training process.

    Attributes:
        entry: "<task>/<family>-large".
        init_from: the entry it warm-starts from ("restore/fm-large"), or None.
        budget_min: its wall-clock training budget (`--time-budget-min`).
    """

    entry: str
    init_from: str | None
    budget_min: float


@dataclass(frozen=True)
class Wave:
    """Processes that run at the same time; a wave starts when the one before it has ended.

    Attributes:
        index: 0-based position.
        start_min: planned start, in training minutes from the first wave (overheads excluded).
        budget_min: every run's budget.
        runs: the runs, in start order.
    """

    index: int
    start_min: float
    budget_min: float
    runs: tuple[PlannedRun, ...]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.entry.split("/")[0] for r in self.runs))


def parse_entries(text: str | None) -> list[str]:
    """The entries a comma-separated list names, in the canonical order (all twelve for None)."""
    if not text:
        return list(ALL_ENTRIES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_ENTRIES]
    if unknown:
        raise StmZooError(
            f"Unknown large entr{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}: "
            f"choose from {', '.join(ALL_ENTRIES)}."
        )
    return [e for e in ALL_ENTRIES if e in names]


def warm_start_source(entry: str) -> str | None:
    """The entry `entry` warm-starts from: the restore entry of its family for sr2 / sr4."""
    task, name = entry.split("/")
    return None if task == SOURCE_TASK else f"{SOURCE_TASK}/{name}"


def plan(
    entries: list[str],
    minutes: float,
    processes: int,
    restore_weight: float = 1.5,
    done: frozenset[str] = frozenset(),
) -> list[Wave]:
    """Waves of at most `processes` runs, with budgets that add up to `minutes` along the waves.

    Args:
        entries: the entries to train, canonical order (`parse_entries`).
        minutes: training wall-clock of all waves together.
        processes: most runs at a time.
        restore_weight: a wave without warm starts gets this many times the budget of one with.
        done: entries already trained (not run again; warm-start sources from the first wave on).

    Returns:
        The waves: first those whose runs wait for nothing, then those whose warm-start source is
        trained in an earlier wave; each phase split into equal waves in the entries' order.
    """
    if processes < 1:
        raise StmZooError(f"--processes must be >= 1, got {processes}.")
    if not minutes > 0:
        raise StmZooError(f"--minutes must be > 0, got {minutes}.")
    todo = [e for e in entries if e not in done]
    if not todo:
        return []
    available = set(done) | set(todo)
    sources = {e: s if (s := warm_start_source(e)) in available else None for e in todo}
    phases = [
        [e for e in todo if sources[e] is None or sources[e] in done],
        [e for e in todo if sources[e] is not None and sources[e] not in done],
    ]
    chunks: list[list[str]] = []
    for phase in phases:
        if phase:
            count = math.ceil(len(phase) / processes)
            size = math.ceil(len(phase) / count)
            chunks += [phase[i : i + size] for i in range(0, len(phase), size)]
    weights = [
        max(1.0 if sources[e] is not None else restore_weight for e in chunk) for chunk in chunks
    ]
    unit = minutes / sum(weights)
    waves, start = [], 0.0
    for index, (chunk, weight) in enumerate(zip(chunks, weights, strict=True)):
        budget = round(weight * unit, 4)
        runs = tuple(PlannedRun(e, sources[e], budget) for e in chunk)
        waves.append(Wave(index, start, budget, runs))
        start += budget
    return waves


def recipe(entry: str, budget_min: float, device: str) -> TrainConfig:
    """The entry's full preset with the short-run recipe and a wall-clock budget."""
    key = entry_key(entry)
    overrides = {**RECIPE, "time_budget_min": budget_min, "channels_last": device == "cuda"}
    if not takes_steps(key.family):
        overrides.update(AUTOENCODER_RECIPE)
    return dataclasses.replace(preset(key.subdir), **overrides)


def entry_key(entry: str) -> EntryKey:
    """ "restore/ddim-fft-large" -> EntryKey("restore", "ddim-fft", "large")."""
    task, name = entry.split("/")
    family, size = name.rsplit("-", 1)
    return EntryKey(task, family, size)


def config_arguments(config: TrainConfig, base: TrainConfig) -> list[str]:
    """The `python -m training train` options that turn `base` into `config`."""
    args: list[str] = []
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if value == getattr(base, f.name):
            continue
        flag = "--" + CLI_NAMES.get(f.name, f.name).replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            args += [flag, *(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


@dataclass(frozen=True)
class Resources:
    """What each training process may use of the machine's CPUs."""

    threads: int
    workers: int


def resources(processes: int, cpus: int, device: str) -> Resources:
    """Each process's share of the CPUs: on a GPU half for torch threads (which launch kernels
    and score validation), half for data workers; on a CPU all of it for the threads, which do
    the training."""
    share = max(1, cpus // processes)
    if device == "cpu":
        return Resources(threads=share, workers=1)
    threads = max(1, share // 2)
    return Resources(threads=threads, workers=max(1, min(4, share - threads)))


def train_command(
    run: PlannedRun,
    device: str,
    data_root: Path,
    out: Path,
    runs: Path,
    res: Resources,
    compile_net: bool,
    extra: list[str],
) -> list[str]:
    """The `python -m training train` command line of one run."""
    config = recipe(run.entry, run.budget_min, device)
    config = dataclasses.replace(config, num_workers=res.workers, compile=compile_net)
    if run.init_from:  # relative to OUTDIR, where the process runs: the card names the entry
        config = dataclasses.replace(config, init_from=run.init_from)
    task = run.entry.split("/")[0]
    return [
        sys.executable,
        "-m",
        "training",
        "train",
        "--preset",
        run.entry,
        "--data",
        str(data_root / task),
        "--out",
        str(out),
        "--run-dir",
        str(runs / run.entry),
        "--device",
        device,
        "--threads",
        str(res.threads),
        "--no-resume",
        *config_arguments(config, preset(run.entry)),
        *extra,
    ]


# ---------------------------------------------------------------------------------------------
# Data


def has_data(data_root: Path, task: str) -> bool:
    return (data_root / task / "manifest.json").is_file()


def start_data_build(
    data_root: Path, task: str, workers: int, nice: bool, extra: list[str]
) -> subprocess.Popen:
    """`python -m training data --task T --simulate 54 [extra]` into DATA_ROOT/T, in the
    background."""
    command = [
        sys.executable,
        "-m",
        "training",
        "data",
        "--task",
        task,
        "--simulate",
        "54",
        "--out",
        str(data_root / task),
        "--workers",
        str(workers),
        *extra,
    ]
    log.info("building the %s dataset: %s", task, shlex.join(command))
    data_root.mkdir(parents=True, exist_ok=True)
    output = open(data_root / f"{task}.build.log", "w", encoding="utf-8")  # noqa: SIM115
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=(lambda: os.nice(5)) if nice else None,
    )


def wait_for_data(builds: dict[str, subprocess.Popen], task: str, data_root: Path) -> None:
    """Block until the dataset of `task` is there (built in the background or beforehand)."""
    if task in builds:
        started = time.perf_counter()
        if builds.pop(task).wait() != 0:
            raise StmZooError(
                f"Building the {task} dataset failed: see {data_root / f'{task}.build.log'}."
            )
        log.info("%s dataset ready (waited %.0f s)", task, time.perf_counter() - started)
    if not has_data(data_root, task):
        raise StmZooError(
            f"No {task} dataset in {data_root / task}: build it with `python -m training data "
            f"--task {task} --simulate 54 --out {data_root / task}`, or pass --build-data."
        )


# ---------------------------------------------------------------------------------------------
# Running the waves


@dataclass
class Outcome:
    entry: str
    status: str  # "trained", "failed (rc N)", "kept" (already in OUTDIR)
    process_s: float = 0.0


def run_wave(
    wave: Wave, commands: dict[str, list[str]], out: Path, runs: Path, env: dict[str, str]
) -> list[Outcome]:
    """Start every run of the wave in OUTDIR (warm starts are named relative to it), wait for all
    of them, report each one's exit."""
    processes = {}
    for run in wave.runs:
        run_dir = runs / run.entry
        run_dir.mkdir(parents=True, exist_ok=True)
        output = open(run_dir / "train.out", "w", encoding="utf-8")  # noqa: SIM115
        log.info("wave %d: %s", wave.index, shlex.join(commands[run.entry]))
        processes[run.entry] = (
            subprocess.Popen(
                commands[run.entry], cwd=out, env=env, stdout=output, stderr=subprocess.STDOUT
            ),
            time.perf_counter(),
            output,
        )
    outcomes = []
    try:
        for entry, (process, started, output) in processes.items():
            rc = process.wait()
            output.close()
            seconds = time.perf_counter() - started
            status = "trained" if rc == 0 else f"failed (rc {rc})"
            if rc != 0:
                log.error("%s failed (rc %d): see %s", entry, rc, runs / entry / "train.out")
            else:
                log.info("%s done in %.0f s", entry, seconds)
            outcomes.append(Outcome(entry, status, seconds))
    except KeyboardInterrupt:
        for process, _, _ in processes.values():
            process.terminate()  # each run saves its state and stops
        raise
    return outcomes


# ---------------------------------------------------------------------------------------------
# Summary, curves, bundle


def summary_row(out: Path, outcome: Outcome) -> dict[str, Any]:
    """One entry's numbers from its config.json (an empty row when there is none)."""
    row: dict[str, Any] = {"entry": outcome.entry, "status": outcome.status}
    path = out / outcome.entry / "config.json"
    if not path.is_file():
        return row
    config = json.loads(path.read_text(encoding="utf-8"))
    training, val = config.get("training", {}), config.get("metrics", {}).get("val", {})
    init_from = training.get("config", {}).get("init_from")
    # The first sampler setting validated, as the learning curves show it (json sorts the keys).
    steps = training.get("config", {}).get("val_steps") or [2]
    label = "direct" if "psnr_direct" in val else f"{steps[0]}steps"
    row.update(
        warm_start=init_from or "-",
        budget_min=training.get("time_budget_min"),
        steps=training.get("steps"),
        samples=training.get("samples_seen"),
        wall_min=training.get("wall_time_s", 0.0) / 60.0,
        process_min=outcome.process_s / 60.0,
        samples_per_s=training.get("samples_seen", 0) / max(training.get("wall_time_s", 0), 1e-9),
        label=label,
        psnr=val.get(f"psnr_{label}"),
        input_psnr=val.get("input_psnr"),
        ssim=val.get(f"ssim_{label}"),
        input_ssim=val.get("input_ssim"),
        device=training.get("device", ""),
    )
    return row


def summary_markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The summary table (markdown)."""

    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        value = row.get(key)
        return "" if value is None else format(value, fmt)

    lines = [
        header,
        "",
        "| entry | status | warm start | budget (min) | steps | samples | samples/s | train wall "
        "(min) | process (min) | val PSNR (dB) | input PSNR | val SSIM | input SSIM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        psnr = cell(r, "psnr", ".2f")
        lines.append(
            f"| {r['entry']} | {r['status']} | {r.get('warm_start', '')} | "
            f"{cell(r, 'budget_min', '.2f')} | {cell(r, 'steps', 'd')} | "
            f"{cell(r, 'samples', 'd')} | {cell(r, 'samples_per_s', '.0f')} | "
            f"{cell(r, 'wall_min', '.2f')} | {cell(r, 'process_min', '.2f')} | "
            f"{psnr + ' (' + r['label'] + ')' if psnr else ''} | {cell(r, 'input_psnr', '.2f')} | "
            f"{cell(r, 'ssim', '.3f')} | {cell(r, 'input_ssim', '.3f')} |"
        )
    return "\n".join(lines) + "\n"


class _Parts:
    """A write-only file that rolls over to `<stem>.00`, `<stem>.01`... every `size` bytes."""

    def __init__(self, stem: Path, size: int) -> None:
        self.stem, self.size = stem, size
        self.paths: list[Path] = []
        self._file: IO[bytes] | None = None
        self._left = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._left == 0:
                self._roll()
            assert self._file is not None
            n = min(self._left, len(view))
            self._file.write(view[:n])
            self._left -= n
            view = view[n:]
        return len(data)

    def _roll(self) -> None:
        if self._file is not None:
            self._file.close()
        self.paths.append(self.stem.with_name(f"{self.stem.name}.{len(self.paths):02d}"))
        self._file = open(self.paths[-1], "wb")  # noqa: SIM115
        self._left = self.size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()


def bundle(out: Path, directory: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """Pack `out` into `directory`: meta.tar (all but the weights), weights.tar.gz.NN (gzip
    level 1, parts of `part_bytes`) and SHA256SUMS. Returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("weights.tar.gz.*"):
        old.unlink()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    with tarfile.open(directory / "meta.tar", "w") as tar:
        for path in files:
            if path.name != WEIGHTS_NAME:
                tar.add(path, arcname=str(path.relative_to(out)))
    parts = _Parts(directory / "weights.tar.gz", part_bytes)
    with (
        gzip.GzipFile(fileobj=parts, mode="wb", compresslevel=1, mtime=0) as packed,  # type: ignore[arg-type]
        tarfile.open(fileobj=packed, mode="w|") as tar,
    ):
        for path in files:
            if path.name == WEIGHTS_NAME:
                tar.add(path, arcname=str(path.relative_to(out)))
    parts.close()
    written = [directory / "meta.tar", *parts.paths]
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in written)
    (directory / "SHA256SUMS").write_text(sums, encoding="utf-8")
    return [*written, directory / "SHA256SUMS"]


# ---------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the large zoo entries on one GPU as concurrent processes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        required=True,
        metavar="DIR",
        help="datasets DIR/<task> (`python -m training data`)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="OUTDIR",
        help="output zoo folder (<task>/<family>-large/)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=6.0,
        help="training wall-clock of all waves together (default 6)",
    )
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="training processes at a time (default 4 on cuda, 1 on cpu)",
    )
    parser.add_argument(
        "--entries",
        default=None,
        metavar="LIST",
        help="comma-separated entries (default: all twelve)",
    )
    parser.add_argument(
        "--restore-weight",
        type=float,
        default=1.5,
        metavar="X",
        help="budget of a wave without warm starts / one with (default 1.5)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training network (its compile time is budget)",
    )
    parser.add_argument(
        "--build-data",
        action="store_true",
        help="build missing datasets with `python -m training data --simulate 54`",
    )
    parser.add_argument(
        "--data-args",
        default="",
        metavar="ARGS",
        help='options appended to `python -m training data` (--build-data), e.g. "--train 8000"',
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        metavar="DIR",
        help="run folders (default ~/.cache/stm-zoo/runs/large-gpu)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="train entries that OUTDIR already holds again"
    )
    parser.add_argument(
        "--train-args",
        default="",
        metavar="ARGS",
        help="options appended to every `python -m training train`, e.g. "
        '"--batch 4 --channels 16 32 64 --norm-groups 8"',
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        metavar="DIR",
        help="pack OUTDIR into DIR for a 16 MiB-per-file transfer",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, train nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    processes = args.processes or (4 if args.device == "cuda" else 1)
    entries = parse_entries(args.entries)
    out: Path = args.out.expanduser().resolve()
    data_root: Path = args.data_root.expanduser().resolve()
    from training.checkpoint import default_runs_dir

    runs = (args.runs or default_runs_dir() / "large-gpu").expanduser().resolve()
    done = frozenset(
        e for e in entries if not args.overwrite and (out / e / WEIGHTS_NAME).is_file()
    )
    waves = plan(entries, args.minutes, processes, args.restore_weight, done)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    res = resources(processes, cpus or 1, args.device)
    extra = shlex.split(args.train_args)
    commands = {
        r.entry: train_command(r, args.device, data_root, out, runs, res, args.compile, extra)
        for w in waves
        for r in w.runs
    }
    for w in waves:
        runs_text = ", ".join(
            r.entry + (f" <- {r.init_from}" if r.init_from else "") for r in w.runs
        )
        print(
            f"wave {w.index}: start {w.start_min:.2f} min, {w.budget_min:.2f} min each: {runs_text}"
        )
    print(
        f"kept: {', '.join(sorted(done)) or 'none'}; {res.threads} threads and {res.workers} "
        f"data workers per process"
    )
    if args.dry_run:
        for w in waves:
            for r in w.runs:
                print(shlex.join(commands[r.entry]))
        return 0

    started = time.perf_counter()
    builds: dict[str, subprocess.Popen] = {}
    needed = list(dict.fromkeys(t for w in waves for t in w.tasks))
    missing = [t for t in needed if not has_data(data_root, t)]
    if missing and not args.build_data:
        wait_for_data({}, missing[0], data_root)  # raises with the command to run
    if missing:
        first, later = missing[0], missing[1:]
        data_extra = shlex.split(args.data_args)
        builds[first] = start_data_build(data_root, first, cpus or 1, False, data_extra)
        wait_for_data(builds, first, data_root)
        for task in later:  # while the first waves train
            builds[task] = start_data_build(
                data_root, task, max(1, (cpus or 1) // (2 * len(later))), True, data_extra
            )

    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS=str(res.threads), PYTHONPATH=python_path)
    env.setdefault("TQDM_MININTERVAL", "30")  # a progress line every 30 s in train.out
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    outcomes = [Outcome(e, "kept") for e in entries if e in done]
    out.mkdir(parents=True, exist_ok=True)
    for wave in waves:
        for task in wave.tasks:
            wait_for_data(builds, task, data_root)
        outcomes += run_wave(wave, commands, out, runs, env)
    total_min = (time.perf_counter() - started) / 60.0

    order = {e: i for i, e in enumerate(ALL_ENTRIES)}
    rows = [summary_row(out, o) for o in sorted(outcomes, key=lambda o: order[o.entry])]
    header = (
        f"# Large entries: {args.minutes:g} training minutes in {len(waves)} waves of at most "
        f"{processes} processes ({args.device}{', compiled' if args.compile else ''}), "
        f"{total_min:.1f} min end to end"
    )
    text = summary_markdown(rows, header)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    try:
        from evaluation.curves import plot_curves, zoo_curves

        print(f"wrote {plot_curves(zoo_curves(out), out / 'curves.png')}")
    except StmZooError as error:
        log.warning("no learning curves: %s", error)
    if args.bundle is not None:
        for path in bundle(out, args.bundle.expanduser().resolve()):
            print(f"bundle: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0 if all(not o.status.startswith("failed") for o in outcomes) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StmZooError as error:
        sys.exit(f"error: {error}")

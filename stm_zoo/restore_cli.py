"""`python -m stm_zoo restore IN... -o OUTDIR`: restore or super-resolve files and folders.

Results are named `<stem>_<channel>-<direction>_<task>.<ext>`; a folder argument's subfolders are
mirrored under OUTDIR, so equal names in different folders never meet. An existing result is
never overwritten without `--overwrite`. .sxm and .gwy results keep every channel of the input
(see `stm_zoo.io.results`). A batch goes on past a file that fails and ends with a summary.

Exit codes: 0 every file done; 2 a user error (bad option, missing model, existing result, or
every file failed with a user error such as a bad file); 1 when some files failed and others were
done, or a file failed for another reason (out of memory, a crash; `-v` shows the traceback).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from stm_zoo.errors import StmZooError
from stm_zoo.registry import FAMILIES, FAMILY_SIZES, SIZES, TASKS

if TYPE_CHECKING:
    from stm_zoo.pipeline import RestoreOptions

log = logging.getLogger(__name__)
MAX_NAME_BYTES = 240
"""Longest result file name (the usual limit is 255 bytes; room is left for `_std`)."""
WRITABLE = ("sxm", "gwy", "png", "tiff", "npy")


def collect_jobs(paths: list[Path], out: Path | None = None) -> list[tuple[Path, Path]]:
    """(scan file, folder of its result relative to OUTDIR) for every input.

    Folders are expanded into the scan files they hold (MATRIX parameter files are not inputs),
    each with its subfolder relative to the folder given; files given directly go to OUTDIR.
    Files inside `out` are results of an earlier run, not inputs, when a folder is expanded.
    """
    from stm_zoo.io import SUPPORTED_READ

    readable = tuple(ext.lower() for ext in SUPPORTED_READ)
    results = out.resolve() if out is not None else None
    found: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                (p, p.parent.relative_to(path))
                for p in path.rglob("*")
                if p.is_file()
                and p.name.lower().endswith(readable)
                and not p.name.lower().endswith(".mtrx")  # MATRIX parameter files
                and (results is None or not p.resolve().is_relative_to(results))
            )
        elif path.is_file():
            found.append((path, Path()))
        else:
            raise StmZooError(f"{path} does not exist: give scan files or folders holding them.")
    if not found:
        raise StmZooError(
            f"No scan files found in {', '.join(map(str, paths))}: supported are "
            f"{', '.join(readable)}."
        )
    return found


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Expand folders into the scan files they hold (MATRIX parameter files are not inputs)."""
    return [source for source, _ in collect_jobs(paths)]


def output_path(
    source: Path, folder: Path, channel: str, direction: str, task: str, fmt: str | None
) -> Path:
    """Where a result goes: FOLDER/<stem>_<channel>-<direction>_<task>.<ext>, in the input's
    format when it is writable (MATRIX: .gwy)."""
    ext = fmt or source.suffix.lower().lstrip(".")
    ext = {"tif": "tiff", "z_mtrx": "gwy", "i_mtrx": "gwy"}.get(ext, ext)
    if ext not in WRITABLE:
        ext = "gwy"
    suffix = ".tif" if ext == "tiff" else f".{ext}"
    channel = re.sub(r"[^A-Za-z0-9.+-]+", "_", channel).strip("_") or "channel"
    tail = f"_{channel}-{direction}_{task}{suffix}"
    stem = source.stem
    if len((stem + tail).encode()) > MAX_NAME_BYTES:
        # Too long for the file system: keep a readable head and a hash of the whole stem, so two
        # long names that share their head still get different results.
        digest = hashlib.sha256(stem.encode()).hexdigest()[:8]
        room = MAX_NAME_BYTES - len(tail.encode()) - len(digest) - 1
        stem = stem.encode()[: max(room, 1)].decode(errors="ignore") + "-" + digest
    return folder / f"{stem}{tail}"


def plan_outputs(
    jobs: list[tuple[Path, Path]], args: argparse.Namespace
) -> list[tuple[Path, Path]]:
    """(source, output folder) per distinct input; two inputs meeting in one result are an error.

    Raises:
        StmZooError: two different files would be written to the same result.
    """
    planned: dict[Path, Path] = {}
    distinct = []
    for source, relative in jobs:
        folder = args.out / relative
        target = output_path(source, folder, args.channel, args.direction, args.task, args.format)
        other = planned.setdefault(target, source)
        if other.resolve() == source.resolve():
            if other is source:
                distinct.append((source, folder))
            continue
        raise StmZooError(
            f"{other} and {source} would both be written to {target}: give the folder holding "
            "them instead, so that the results mirror its subfolders."
        )
    return distinct


def restore_options(args: argparse.Namespace) -> RestoreOptions:
    """The run's `RestoreOptions`, checked before any file is read: --model's family (default:
    the task's best entry by its card, else classical) in --size (default: its first size)."""
    from stm_zoo.pipeline import RestoreOptions
    from stm_zoo.zoo import default_model

    size = args.scan_size_nm
    if size is not None and not (0 < size < float("inf")):
        raise StmZooError(f"--scan-size-nm must be a positive number of nm, not {size}.")
    family, default_size = default_model(args.task)
    if args.model is not None and args.model != family:
        family, default_size = args.model, FAMILY_SIZES.get(args.model, SIZES)[0]
    return RestoreOptions(
        task=args.task,
        family=family,
        size=args.size or default_size,
        steps=args.steps,
        samples=args.samples,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        keep_measured=args.keep_measured,
        no_resample=args.no_resample,
    )


def check_free(targets: list[Path], overwrite: bool) -> None:
    """Refuse to replace an existing result unless asked to."""
    for target in targets:
        if target.exists() and not overwrite:
            raise StmZooError(
                f"{target} already exists: pass --overwrite to replace it, or write to another "
                "folder with -o."
            )


@dataclass(frozen=True)
class Failure:
    """A file of a batch that could not be done: why, and whether the user can fix it."""

    source: Path
    reason: str
    user_error: bool

    def line(self) -> str:
        """The "<path>: <reason>" line, the file name not repeated at the start of the reason."""
        return f"{self.source}: {self.reason.removeprefix(f'{self.source.name}: ')}"


def failure(source: Path, error: BaseException) -> Failure:
    """A `Failure` from what one file raised; anything but a `StmZooError` is not a user error."""
    if isinstance(error, StmZooError):
        return Failure(source, str(error), True)
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return Failure(
            source,
            "out of memory: crop or bin the scan, or run it on a machine with more memory "
            "(--device cpu uses the main memory).",
            False,
        )
    detail = (str(error).splitlines() or [""])[0][:200]
    return Failure(
        source, f"{type(error).__name__}: {detail} (rerun with -v for the traceback).", False
    )


def exit_code(done: int, failures: list[Failure]) -> int:
    """0 when nothing failed, 2 when every file failed with a user error, else 1."""
    if not failures:
        return 0
    if done == 0 and all(f.user_error for f in failures):
        return 2
    return 1


def summary(done: int, failures: list[Failure]) -> str:
    """The line "N done, M failed", then one line per failed file saying why."""
    return "\n".join([f"{done} done, {len(failures)} failed", *(f"  {f.line()}" for f in failures)])


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="scan files or folders")
    parser.add_argument("--task", choices=TASKS, default="restore")
    parser.add_argument(
        "--model",
        choices=FAMILIES,
        default=None,
        help="model family (default: the task's best entry by its card, else classical)",
    )
    parser.add_argument(
        "--size", choices=SIZES, default=None, help="network size (default: as --model's default)"
    )
    parser.add_argument("--steps", type=int, default=2, help="sampler steps")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    parser.add_argument("--samples", type=int, default=1, help="samples for an uncertainty map")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channel", default="Z", help="channel to restore (default Z)")
    parser.add_argument("--direction", choices=["forward", "backward"], default="forward")
    parser.add_argument(
        "--scan-size-nm",
        type=float,
        default=None,
        help="physical width for images without one (png/tiff/npy)",
    )
    parser.add_argument(
        "--keep-measured",
        action="store_true",
        help="SR: keep the measured lines unchanged in the result",
    )
    parser.add_argument(
        "--no-resample",
        action="store_true",
        help="run the model on the file's own pixels instead of resampling them to the model's "
        "pixel size (for frames beyond the 4x down / 8x up resampling limits)",
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace results that already exist"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help=".sxm/.gwy: put the result in place of the channel it came from (default: add it "
        "as a new channel <channel>_<task>_<model> beside every channel of the input)",
    )
    parser.add_argument(
        "--format",
        choices=WRITABLE,
        default=None,
        help="output format (default: the input's, .gwy for MATRIX)",
    )


def run(args: argparse.Namespace) -> int:
    from stm_zoo.io import load_scan, result_label, save_result
    from stm_zoo.pipeline import restore
    from stm_zoo.zoo import load_model

    options = restore_options(args)
    jobs = plan_outputs(collect_jobs(args.inputs, args.out), args)
    model = load_model(
        options.task, options.family, options.size, device=options.device, dtype=options.dtype
    )
    make_folder(args.out)
    label = result_label(options.task, model.key.family, model.key.size)
    done, failures = 0, []
    bar = tqdm(jobs, unit="file", desc=f"{options.task} {model.key}", disable=len(jobs) == 1)
    for source, folder in bar:
        try:
            scan = load_scan(
                source,
                channel=args.channel,
                direction=args.direction,
                scan_size_nm=args.scan_size_nm,
            )
            target = output_path(
                source, folder, scan.channel, args.direction, options.task, args.format
            )
            std_file = target.with_name(f"{target.stem}_std{target.suffix}")
            separate_std = options.samples > 1 and target.suffix not in (".sxm", ".gwy")
            check_free([target, *([std_file] if separate_std else [])], args.overwrite)
            result = restore(scan, options, model=model)
            make_folder(folder)
            written = save_result(
                result.scan,
                target,
                label=label,
                source=source,
                std=result.std,
                replace=args.replace,
                scan_size_nm=args.scan_size_nm,
            )
            done += 1
            bar.write(
                f"{source} -> {', '.join(map(str, written))} ({result.model}, "
                f"{result.seconds:.1f} s)"
            )
            for warning in result.warnings:
                bar.write(f"  warning: {warning}", file=sys.stderr)
        except Exception as error:  # one file's failure, even out of memory, ends no batch
            if len(jobs) == 1 and isinstance(error, StmZooError):
                raise  # one file: the user error itself, exit code 2
            log.debug("%s failed", source, exc_info=True)
            failures.append(failure(source, error))
            bar.write(f"failed: {failures[-1].line()}", file=sys.stderr)
    bar.close()
    if len(jobs) > 1:
        print(summary(done, failures), file=sys.stderr)
    return exit_code(done, failures)


def make_folder(folder: Path) -> None:
    """Create an output folder (and its parents), or say why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StmZooError(f"{folder} is a file, not a folder: give another -o folder.") from None
    except OSError as error:
        raise StmZooError(
            f"Cannot create the output folder {folder} ({error.strerror or error}): check the "
            "path and its access rights."
        ) from None

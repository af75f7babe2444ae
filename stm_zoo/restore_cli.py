"""`python -m stm_zoo restore IN... -o OUTDIR`: restore or super-resolve files and folders."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tqdm import tqdm

from stm_zoo.errors import StmZooError
from stm_zoo.zoo import FAMILIES, SIZES, TASKS

log = logging.getLogger(__name__)
WRITABLE = ("sxm", "gwy", "png", "tiff", "npy")


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Expand folders into the scan files they hold (MATRIX parameter files are not inputs)."""
    from stm_zoo.io import SUPPORTED_READ

    readable = tuple(ext.lower() for ext in SUPPORTED_READ)
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.name.lower().endswith(readable)
                and not p.name.lower().endswith(".mtrx")  # MATRIX parameter files
            )
        elif path.is_file():
            found.append(path)
        else:
            raise StmZooError(f"{path} does not exist: give scan files or folders holding them.")
    if not found:
        raise StmZooError(
            f"No scan files found in {', '.join(map(str, paths))}: supported are "
            f"{', '.join(readable)}."
        )
    return found


def output_path(source: Path, out_dir: Path, task: str, fmt: str | None) -> Path:
    """Where a result goes: OUTDIR/<stem>_<task>.<ext>, in the input's format when writable."""
    ext = fmt or source.suffix.lower().lstrip(".")
    ext = {"tif": "tiff", "z_mtrx": "gwy", "i_mtrx": "gwy"}.get(ext, ext)
    if ext not in WRITABLE:
        ext = "gwy"
    suffix = ".tif" if ext == "tiff" else f".{ext}"
    return out_dir / f"{source.stem}_{task}{suffix}"


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
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
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
        "--format",
        choices=WRITABLE,
        default=None,
        help="output format (default: the input's, .gwy for MATRIX)",
    )


def run(args: argparse.Namespace) -> int:
    from stm_zoo.inference import restore
    from stm_zoo.io import load_scan, save_scan
    from stm_zoo.zoo import default_model, load_model, registry

    inputs = collect_inputs(args.inputs)
    family, size = default_model(args.task)
    if args.model is not None and args.model != family:
        sizes = [k.size for k in registry() if k.family == args.model] or ["small"]
        family, size = args.model, sizes[0]
    size = args.size or size
    model = load_model(args.task, family, size, device=args.device, dtype=args.dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    bar = tqdm(inputs, unit="file", desc=f"{args.task} {model.key}")
    for source in bar:
        try:
            scan = load_scan(
                source,
                channel=args.channel,
                direction=args.direction,
                scan_size_nm=args.scan_size_nm,
            )
            result = restore(
                scan,
                task=args.task,
                steps=args.steps,
                seed=args.seed,
                samples=args.samples,
                keep_measured=args.keep_measured,
                model=model,
                no_resample=args.no_resample,
            )
            target = save_scan(result.scan, output_path(source, args.out, args.task, args.format))
            if result.std is not None:
                save_scan(
                    result.scan.replace(data=result.std),
                    target.with_name(f"{target.stem}_std{target.suffix}"),
                )
            bar.write(f"{source} -> {target} ({result.seconds:.1f} s)")
            for warning in result.warnings:
                bar.write(f"  warning: {warning}")
        except StmZooError as error:
            failures += 1
            bar.write(f"failed: {error}")
    if failures:
        log.warning("%d of %d files failed", failures, len(inputs))
    return 1 if failures == len(inputs) else 0

"""`python -m stm_zoo bench [--device cpu cuda] [--repeats N] [--out FILE.md]`: the inference
benchmark's command line; prints (and optionally writes) the markdown of `stm_zoo.bench.report`."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from stm_zoo.bench.measure import BENCH_MODELS, TILE_PX
from stm_zoo.bench.report import markdown
from stm_zoo.bench.suite import OMP_ENV, VARIANTS, Variant, add_run_arguments, run_bench
from stm_zoo.errors import StmZooError

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m stm_zoo bench`."""
    add_run_arguments(parser)
    parser.add_argument("--size", type=int, default=512, help="edge of the end-to-end test scan")
    parser.add_argument("--steps", type=int, default=2, help="sampler steps of the end-to-end run")
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="FAMILY-SIZE",
        help="per-step table rows, e.g. fm-small ddim-large (default: the paper's five)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        metavar="KEY",
        help="end-to-end configurations, the first being the reference: "
        + ", ".join(v.key for v in VARIANTS)
        + " (default: all)",
    )
    parser.add_argument(
        "--skip-e2e", action="store_true", help="only the per-step table, no end-to-end restore"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    parser.add_argument(
        "--omp-wait-policy",
        choices=("PASSIVE", "ACTIVE", "inherit"),
        default="PASSIVE",
        help="OpenMP threads sleep (PASSIVE, default) or spin (ACTIVE) between parallel regions; "
        "spinning threads slow everything down many times on a machine shared with other work",
    )


def _set_omp_wait_policy(policy: str) -> None:
    """Set OMP_WAIT_POLICY for this process, which works only before torch loads OpenMP."""
    import sys

    if policy == "inherit":
        return
    if "torch" in sys.modules:
        if os.environ.get(OMP_ENV) != policy:
            log.warning("torch is already imported: %s stays %s", OMP_ENV, os.environ.get(OMP_ENV))
        return
    os.environ[OMP_ENV] = policy


def _parse_variants(keys: list[str] | None) -> tuple[Variant, ...]:
    if not keys:
        return VARIANTS
    by_key = {v.key: v for v in VARIANTS}
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise StmZooError(
            f"Unknown --variants {' '.join(unknown)}: choose from {', '.join(by_key)}."
        )
    return tuple(by_key[k] for k in keys)


def _parse_models(names: list[str] | None) -> tuple[tuple[str, str], ...]:
    if not names:
        return BENCH_MODELS
    parsed = []
    for name in names:
        family, _, size = name.rpartition("-")
        if not family or size not in ("small", "large"):
            raise StmZooError(f"--models takes FAMILY-SIZE names such as fm-small, not {name!r}.")
        parsed.append((family, size))
    return tuple(parsed)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print (and optionally write) the markdown report."""
    from tqdm import tqdm

    if args.repeats < 1:
        raise StmZooError(f"--repeats must be at least 1, got {args.repeats}.")
    _set_omp_wait_policy(args.omp_wait_policy)
    if args.size < TILE_PX or args.size % 4:
        raise StmZooError(
            f"--size must be a multiple of 4 and at least {TILE_PX}, not {args.size}."
        )
    report = run_bench(
        devices=args.device,
        repeats=args.repeats,
        models=_parse_models(args.models),
        e2e_variants=() if args.skip_e2e else _parse_variants(args.variants),
        e2e_size=args.size,
        e2e_steps=args.steps,
        threads=args.threads,
        progress=lambda line: tqdm.write(line) if log.isEnabledFor(logging.INFO) else None,
    )
    text = markdown(report)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0

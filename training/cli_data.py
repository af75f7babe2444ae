"""`python -m training data`: build a synthetic train/val/test dataset from pristine scans."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.degradations import TARGET_SCALES, TASKS, DegradationConfig
from training.shards import DEFAULT_SHARD_SIZE, build_dataset, check_request
from training.sources import (
    SPLITS,
    assign_splits,
    load_pristine_folder,
    simulate_sources,
    split_counts,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m training data`."""
    parser.add_argument("--task", required=True, choices=TASKS, help="which dataset to build")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pristine", type=Path, metavar="DIR", help="folder of pristine scans")
    source.add_argument("--simulate", type=int, metavar="N", help="simulate N pristine scans")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="new output folder")
    parser.add_argument("--train", type=int, default=20000, metavar="N", help="training samples")
    parser.add_argument("--val", type=int, default=2000, metavar="N", help="validation samples")
    parser.add_argument("--test", type=int, default=2000, metavar="N", help="test samples")
    parser.add_argument(
        "--targeted", action="store_true", help="also write the single-degradation test sets"
    )
    parser.add_argument(
        "--n-targeted", type=int, default=1000, metavar="N", help="samples per targeted set"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (>= 0)")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="W", help="processes (default: all cores)"
    )
    parser.add_argument(
        "--size-px", type=int, default=512, metavar="PX", help="side of simulated scans"
    )
    parser.add_argument(
        "--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N", help="samples per shard"
    )
    parser.add_argument(
        "--target-scale",
        choices=TARGET_SCALES,
        default="own",
        help="step 9 for the clean image: its own [-1, 1] map (the paper) or the degraded "
        "image's map, shared by the pair",
    )


def run(args: argparse.Namespace) -> int:
    """Build the dataset and print where it went."""
    # Check the options before spending minutes on simulation.
    counts = [args.train, args.val, args.test, args.n_targeted]
    check_request(args.task, counts, args.seed, args.shard_size, args.out)
    if args.simulate is not None:
        split_counts(args.simulate)  # fail before simulating when there are too few scans
        sources = simulate_sources(args.simulate, args.seed, args.size_px, workers=args.workers)
    else:
        sources = load_pristine_folder(args.pristine)
    result = build_dataset(
        sources,
        args.task,
        args.out,
        n_train=args.train,
        n_val=args.val,
        n_test=args.test,
        seed=args.seed,
        workers=args.workers,
        targeted=args.targeted,
        n_targeted=args.n_targeted,
        shard_size=args.shard_size,
        config=DegradationConfig(target_scale=args.target_scale),
    )
    splits = assign_splits(len(sources), args.seed)
    print(
        f"{args.task}: {len(sources)} pristine scans split "
        + "/".join(str(len(splits[s])) for s in SPLITS)
        + " (train/val/test)"
    )
    for name, count in result.counts.items():
        print(f"  {name}: {count} samples")
    print(
        f"wrote {result.manifest_path} ({result.samples_per_second:.0f} samples/s, "
        f"{result.seconds:.1f} s)"
    )
    return 0

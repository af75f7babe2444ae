"""`python -m stm_zoo convert IN OUT`: any readable scan file to any writable format.

.sxm and .gwy outputs hold several images: by default they get every channel and direction of
the input (narrow it with --channel / --direction). PNG, TIFF and .npy hold one image: the Z
forward image by default.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stm_zoo.errors import StmZooError

log = logging.getLogger(__name__)
_MULTI_IMAGE = (".sxm", ".gwy")
_LISTED = 8  # images named in the summary line; a file may hold thousands


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="scan file to read (MATRIX: the *.Z_mtrx file)")
    parser.add_argument("output", type=Path, help="file to write: .sxm, .gwy, .png, .tif, .npy")
    parser.add_argument(
        "--channel", help="channel to convert (default: all for .sxm/.gwy output, else Z)"
    )
    parser.add_argument(
        "--direction",
        help="forward or backward (default: both for .sxm/.gwy output, else forward)",
    )
    parser.add_argument(
        "--scan-size-nm",
        type=float,
        nargs="+",
        metavar="NM",
        help="width (or width height) in nm for inputs without a physical size",
    )
    parser.add_argument(
        "--bit-depth",
        type=int,
        choices=[8, 16, 32],
        help="PNG: 16 (default) or 8; TIFF: 32 = float32 (default) or 16",
    )


def run(args: argparse.Namespace) -> int:
    from stm_zoo.io import FORMAT_NAMES, detect_format, list_channels, load_scans, save_scan
    from stm_zoo.io._common import match_channel, parse_direction

    if args.input.resolve() == args.output.resolve():
        raise StmZooError(f"{args.output} is the input file; choose another output name.")
    size = args.scan_size_nm
    scan_size_nm = size[0] if size and len(size) == 1 else size
    multi = args.output.suffix.lower() in _MULTI_IMAGE
    detect_format(args.input)
    if multi:
        channels = list_channels(args.input)
        wanted = args.channel and match_channel(args.channel, [c.name for c in channels])
        direction = args.direction and parse_direction(args.direction)
        selection = [
            (channel.name, d)
            for channel in channels
            if args.channel is None or channel.name == wanted
            for d in channel.directions
            if direction is None
            or parse_direction(d) == direction
            or (direction[1] is None and parse_direction(d)[0] == direction[0])
        ]
        if args.output.suffix.lower() == ".sxm" and direction is None:
            # An .sxm file has one slow-scan direction: MATRIX down traces need their own file.
            dropped = [f"{c} {d}" for c, d in selection if d.endswith("/down")]
            selection = [(c, d) for c, d in selection if not d.endswith("/down")]
            if dropped:
                print(f"not written (convert them with --direction): {', '.join(dropped)}")
        if not selection:
            held = "; ".join(f"{c.name}: {', '.join(c.directions)}" for c in channels)
            raise StmZooError(
                f"{args.input.name} has no image for --channel {args.channel} --direction "
                f"{args.direction}; it holds {held}."
            )
    else:
        selection = [(args.channel or "Z", args.direction or "forward")]
    scans = load_scans(args.input, selection, scan_size_nm=scan_size_nm)
    path = save_scan(scans if multi else scans[0], args.output, bit_depth=args.bit_depth)
    names = [f"{s.channel} {s.direction}" for s in scans]
    if len(names) > _LISTED:
        names = [*names[: _LISTED - 1], f"... ({len(names)} images in all)", names[-1]]
    images = ", ".join(names)
    print(f"wrote {path} ({FORMAT_NAMES[detect_format(path)]}): {images}")
    return 0

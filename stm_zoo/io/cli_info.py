"""`python -m stm_zoo info FILE [--json]`: what a scan file holds, without opening a GUI."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

_PREFIXES = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")]
_PREFIXED_UNITS = ("m", "A", "V", "s")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="scan file (.sxm, *.Z_mtrx, .gwy, .png, .tif, .npy)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--scan-size-nm",
        type=float,
        nargs="+",
        metavar="NM",
        help="width (or width height) in nm for files without a physical size",
    )


def run(args: argparse.Namespace) -> int:
    from stm_zoo.io import scan_info

    size = args.scan_size_nm
    info = scan_info(args.file, scan_size_nm=size[0] if size and len(size) == 1 else size)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def format_si(value: float | None, unit: str) -> str:
    """A value with an SI prefix for SI units: "-20 mV", "50 pA", "370 pm", "0.6 V".

    The one formatter of physical values for the CLI, the app and warnings. Unitless values
    (unit "", image codes) and units without a prefix table here print as plain numbers ("0.37",
    "12 deg"), never "370 m" for 0.37 of nothing; None prints "unknown".
    """
    if value is None:
        return "unknown"
    factor, label = si_scale(value, unit)
    return f"{value / factor:.4g} {label}".strip()


def si_scale(value: float, unit: str) -> tuple[float, str]:
    """(factor, label) to show `value` (or values spanning it) in SI units: value / factor in
    `label`, with the prefix that makes it read between 1 and 1000 ((1e-12, "pm") for 3e-10 m);
    unitless data, units without a prefix table here, zero and non-finite values get (1.0, unit).
    """
    if value == 0 or not math.isfinite(value) or unit not in _PREFIXED_UNITS:
        return 1.0, unit
    factor, prefix = next(((f, p) for f, p in reversed(_PREFIXES) if abs(value) >= f), _PREFIXES[0])
    return factor, prefix + unit


def format_info(info: dict[str, Any]) -> str:
    """The `scan_info` dict as an aligned, human-readable table."""
    h, w = info["shape"]
    x_nm, y_nm = info["scan_size_nm"]
    px, py = info["pixel_size_nm"]
    assumed = " (assumed: the file has none; set it with --scan-size-nm)"
    channels = [
        f"{c['name']} [{c['unit'] or 'a.u.'}]: {', '.join(c['directions'])}"
        for c in info["channels"]
    ]
    rows = [
        ("file", f"{info['file']} ({info['format_name']})"),
        ("channels", channels[0]),
        *(("", line) for line in channels[1:]),
        ("shape", f"{h} lines x {w} px ({info['channel']})"),
        (
            "scan size",
            f"{x_nm:.6g} x {y_nm:.6g} nm" + (assumed if info["pixel_size_assumed"] else ""),
        ),
        ("pixel size", f"{px:.6g} x {py:.6g} nm"),
        ("bias", format_si(info["bias_v"], "V")),
        ("setpoint", format_si(info["setpoint_a"], "A")),
        ("slow scan", info["scan_dir"] or "unknown"),
        ("valid lines", f"{info['valid_lines']} of {h}"),
    ]
    return "\n".join(f"{name:<12}{value}" for name, value in rows)

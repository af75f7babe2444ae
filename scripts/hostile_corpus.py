"""Hostile-input corpus (issue 13): build it, run the command line on every file, tabulate.

Usage (from the repository root):
    python scripts/hostile_corpus.py [--out docs/hostile_corpus.md] [--timeout 60]
        [--memory-gb 8] [--jobs 1] [--keep DIR] [--no-shared]

Builds, in a temporary folder (or `--keep DIR`), files no instrument should produce but a user may
still hand us: truncated and bit-flipped copies of the real files in ../shared/data (skipped when
that folder is absent; see its SOURCES.md), and synthetic ones: empty files, wrong extensions, a
PNG declaring a huge size and a decompression bomb, .npy files with odd dtypes, shapes and lying
headers, NaN / inf / 5.8e30 / 3e38-laden .npy and .sxm scans (the .sxm written by stm-zoo's own
`save_scan`), flat scans, tiny frames, .sxm headers whose size or pixel count lies, hostile file
names, two different files of one name in two folders, and zoo entries with bad config.json or
weights.

Every scan file goes through `python -m stm_zoo info`, `convert` (to .png) and
`restore --model classical`; every zoo entry through `zoo list` and `restore --model fm` with
STM_ZOO_DIR pointing at it; the two same-named files through `restore a/scan.sxm b/scan.sxm`
(must refuse in one sentence before any work) and `restore <their folder>` (must write both results
under the mirrored subfolders). Each run is a subprocess with a wall-clock timeout and an
address-space limit (so a runaway allocation fails instead of swapping the machine), and we record
its exit code, whether stderr holds a Python traceback, its wall time and its peak RSS
(`os.wait4`). A run that exits 0 is then judged by what it wrote (`check_run`): each result must
be where the command line promises, hold no NaN or inf where its input was finite (a PNG, TIFF or
.npy restore result none at all) and not be constant when its input was not. A clean outcome is
exit 0 (handled, results sound) or exit 2 (a one-sentence `StmZooError` or argparse error);
`restore` exits 1 when it caught something else (its message ends "rerun with -v for the
traceback"), which counts as unclean. The script prints a count table per command and writes it,
with every unclean case and a row per input, as markdown to `--out`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stm_zoo.io import (  # noqa: E402
    Scan,
    load_all_scans,
    load_scan,
    result_channel,
    result_label,
    save_scan,
)
from stm_zoo.registry import CLASSICAL  # noqa: E402
from stm_zoo.restore_cli import collect_jobs, output_path  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
SCAN_COMMANDS = ("info", "convert", "restore")
ENTRY_COMMANDS = ("zoo-list", "restore-fm")
NAMES_COMMANDS = ("restore-names", "restore-folder")
COMMANDS = {"scan": SCAN_COMMANDS, "entry": ENTRY_COMMANDS, "names": NAMES_COMMANDS}
ALL_COMMANDS = (*SCAN_COMMANDS, *ENTRY_COMMANDS, *NAMES_COMMANDS)
CLEAN_EXITS = {
    **{command: {0, 2} for command in (*SCAN_COMMANDS, *ENTRY_COMMANDS)},
    "restore-names": {2},
    "restore-folder": {0},
}
"""0: handled; 2: a user error in one sentence. `restore` on one file exits 1 only when the file
failed for a reason other than a `StmZooError` (a crash it caught), so 1 is not clean. Two files of
one name given by name must be refused (2); given as their folder, both must be restored (0)."""
LABELS = {
    "restore": result_label("restore", CLASSICAL, "small"),
    "restore-folder": result_label("restore", CLASSICAL, "small"),
    "restore-fm": result_label("restore", "fm", "small"),
}
"""The label of each restoring command's results (names the restored channel of .sxm/.gwy)."""
TRACEBACK = "Traceback (most recent call last)"
NM = 1e-9


@dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        name: short unique id (the tables' row label), also its folder name.
        what: what is hostile about it.
        path: the file (scan cases), the zoo root holding `restore/fm-small` (entry cases) or the
            folder holding `a/scan.sxm` and `b/scan.sxm` (names cases).
        kind: "scan", "entry" or "names" (picks the commands, `COMMANDS[kind]`).
    """

    name: str
    what: str
    path: Path
    kind: str = "scan"


@dataclass(frozen=True)
class ResultCheck:
    """What a run left behind, judged after it ended (all false/empty: as it should be).

    Attributes:
        nonfinite: exit 0, and a result holds NaN or inf where its input was finite (a PNG, TIFF
            or .npy restore result: anywhere, for it holds only the restored block).
        constant: exit 0, and a result is constant (over its finite values) while its input was
            not.
        problem: a promised result missing or unreadable, or a refusal that wrote files or said
            more than one line.
    """

    nonfinite: bool = False
    constant: bool = False
    problem: str = ""

    @property
    def sound(self) -> bool:
        return not (self.nonfinite or self.constant or self.problem)


@dataclass
class Outcome:
    """What one command did with one case (`exit_code` None: killed at the timeout)."""

    case: str
    command: str
    exit_code: int | None
    traceback: bool
    seconds: float
    peak_rss_mb: float
    last_line: str
    check: ResultCheck = ResultCheck()

    @property
    def clean(self) -> bool:
        return (
            not self.traceback
            and self.exit_code is not None
            and self.exit_code in CLEAN_EXITS[self.command]
            and self.check.sound
        )


class Corpus:
    """Writes cases into `root/<name>/`, one folder each (names may repeat, pairs stay together)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cases: list[Case] = []

    def folder(self, name: str) -> Path:
        assert all(c.name != name for c in self.cases), f"duplicate case {name}"
        folder = self.root / name
        folder.mkdir(parents=True)
        return folder

    def raw(self, name: str, what: str, filename: str, content: bytes) -> Path:
        path = self.folder(name) / filename
        path.write_bytes(content)
        self.cases.append(Case(name, what, path))
        return path

    def files(self, name: str, what: str, contents: dict[str, bytes], main: str) -> None:
        """Several files in one folder (a MATRIX pair); `main` is the one the commands get."""
        folder = self.folder(name)
        for filename, content in contents.items():
            (folder / filename).write_bytes(content)
        self.cases.append(Case(name, what, folder / main))

    def written(self, name: str, what: str, filename: str, write: Callable[[Path], object]) -> None:
        path = self.folder(name) / filename
        write(path)
        self.cases.append(Case(name, what, path))

    def npy(self, name: str, what: str, array: np.ndarray, filename: str = "scan.npy") -> None:
        self.written(name, what, filename, lambda p: np.save(p, array, allow_pickle=True))

    def scan(self, name: str, what: str, scan: Scan, filename: str = "scan.sxm") -> None:
        self.written(name, what, filename, lambda p: save_scan(scan, p))

    def same_names(self, name: str, what: str, scans: dict[str, Scan]) -> None:
        """One file per subfolder (`scans`: relative path -> scan), given as the folder."""
        folder = self.folder(name)
        for relative, scan in scans.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            save_scan(scan, folder / relative)
        self.cases.append(Case(name, what, folder, kind="names"))


def lattice(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A small plausible topography in metres: a lattice, a slope and row offsets."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    z = 0.1 * np.sin(x / 2.0) * np.cos(y / 2.0) + 0.002 * x + 0.05 * rng.standard_normal((h, 1))
    return (z * NM).astype(np.float32)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, bit_depth: int, idat: bytes) -> bytes:
    """A greyscale PNG with the given IHDR and raw IDAT payload."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_bomb(side: int) -> bytes:
    """A valid 8-bit PNG of side x side zeros: ~side^2 bytes decompressed, ~side^2/1000 stored."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return png(side, side, 8, body)


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A .npy header declaring `shape` (the caller appends as little data as it likes)."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return np.lib.format.magic(1, 0) + buffer.getvalue()


def patched_sxm(data: np.ndarray, old: bytes, new: bytes) -> Callable[[Path], object]:
    """Writer of a stm-zoo .sxm whose header has `old` replaced by `new`."""

    def write(path: Path) -> None:
        save_scan(Scan(data), path)
        content = path.read_bytes()
        assert old in content, old
        path.write_bytes(content.replace(old, new, 1))

    return write


def add_synthetic(corpus: Corpus) -> None:
    """Every synthetic scan case (needs nothing outside the repository)."""
    good = lattice()
    for suffix in (".sxm", ".npy", ".png", ".tif", ".gwy", "--1_1.Z_mtrx"):
        corpus.raw(f"empty{suffix.replace('.', '-')}", "empty file", f"empty{suffix}", b"")

    buffer = io.BytesIO()
    np.save(buffer, good)
    good_npy = buffer.getvalue()
    small_png = png(4, 4, 8, zlib.compress(b"".join(b"\x00" + bytes(4) for _ in range(4))))
    corpus.raw("ext-png-as-sxm", "a PNG named .sxm", "scan.sxm", small_png)
    corpus.raw("ext-npy-as-png", "a .npy named .png", "scan.png", good_npy)
    corpus.raw("ext-text-as-npy", "a text file named .npy", "scan.npy", b"hello, world\n" * 10)
    corpus.raw("ext-text-as-gwy", "a text file named .gwy", "scan.gwy", b"GWYP" + b"x" * 40)
    corpus.raw("ext-text-as-tif", "a text file named .tif", "scan.tif", b"II*\x00" + b"x" * 40)
    corpus.raw("ext-unknown", "unknown extension", "scan.xyz", good_npy)
    corpus.raw("ext-none", "no extension", "scan", good_npy)
    corpus.written("ext-sxm-as-gwy", "an .sxm named .gwy", "scan.gwy", _renamed(good, ".sxm"))

    corpus.raw(
        "png-huge-header", "PNG declaring 100000x100000", "huge.png", png(10**5, 10**5, 8, b"")
    )
    corpus.raw(
        "png-huge-16bit",
        "16-bit PNG declaring 65535x65535 with a tiny IDAT",
        "huge16.png",
        png(65535, 65535, 16, zlib.compress(b"\x00" * 100)),
    )
    corpus.raw(
        "png-bomb", "valid 12000x12000 PNG of zeros (144 Mpx, 150 kB)", "bomb.png", png_bomb(12000)
    )
    corpus.raw("png-zero-size", "PNG declaring 0x0", "zero.png", png(0, 0, 8, b""))

    # .npy oddities: dtypes, shapes, lying headers, pickles.
    objects = np.empty(2, dtype=object)
    objects[:] = [good, "x"]
    corpus.npy("npy-object-pickle", "object array (needs pickle)", objects)
    corpus.npy("npy-3d", "3-D array", np.stack([good, good]))
    corpus.npy("npy-0d", "0-D array", np.array(1.0))
    corpus.npy("npy-1d", "1-D array", good[0])
    corpus.npy("npy-empty-rows", "shape (0, 64)", np.zeros((0, 64), np.float32))
    corpus.npy("npy-empty-cols", "shape (64, 0)", np.zeros((64, 0), np.float32))
    corpus.npy("npy-complex", "complex64", good.astype(np.complex64))
    corpus.npy("npy-bool", "bool", good > 0)
    corpus.npy("npy-uint64", "uint64 near 2^64", np.full((64, 64), 2**64 - 1, np.uint64))
    corpus.npy(
        "npy-float16-inf", "float16 overflowing to inf", (good / NM * 1e5).astype(np.float16)
    )
    corpus.npy("npy-big-endian-f8", "big-endian float64", good.astype(">f8"))
    corpus.npy("npy-fortran", "Fortran-ordered", np.asfortranarray(good))
    corpus.npy(
        "npy-structured", "structured dtype", np.zeros((8, 8), dtype=[("a", "<f4"), ("b", "<i4")])
    )
    corpus.npy("npy-float64-1e300", "float64 1e300 (inf once float32)", np.full((64, 64), 1e300))
    corpus.raw(
        "npy-lying-shape",
        "header declares 100000x100000 float32, file holds 16 bytes",
        "scan.npy",
        npy_header((100_000, 100_000)) + bytes(16),
    )
    corpus.raw(
        "npy-bad-header",
        "NUMPY magic then garbage",
        "scan.npy",
        b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 60,
    )
    corpus.raw(
        "npy-truncated", "a valid .npy cut in half", "scan.npy", good_npy[: len(good_npy) // 2]
    )

    # Values: NaN, inf, huge, near float32 max; the .npy and the .sxm of each.
    nan_row = good.copy()
    nan_row[40:] = np.nan  # an aborted scan
    scattered = good.copy()
    scattered[np.random.default_rng(1).random(good.shape) < 0.1] = np.nan
    one_inf, neg_inf, huge_patch = good.copy(), good.copy(), good.copy()
    one_inf[10, 10] = np.inf
    neg_inf[:, 5] = -np.inf
    huge_patch[20:30, 20:30] = 5.8e30
    signed_max = np.where(np.indices(good.shape).sum(0) % 2, 3e38, -3e38).astype(np.float32)
    values = {
        "all-nan": ("every pixel NaN", np.full_like(good, np.nan)),
        "nan-rows": ("lower 3/8 NaN (aborted scan)", nan_row),
        "nan-scattered": ("10% of pixels NaN", scattered),
        "one-inf": ("one +inf pixel", one_inf),
        "neg-inf-column": ("a -inf column", neg_inf),
        "5.8e30-patch": ("a 10x10 patch of 5.8e30", huge_patch),
        "3e38-everywhere": ("every pixel 3e38 (sums overflow float32)", np.full_like(good, 3e38)),
        "3e38-checker": ("+-3e38 checkerboard", signed_max),
        "subnormal": ("every pixel 1e-45", np.full_like(good, 1e-45)),
        "flat-zero": ("constant 0", np.zeros_like(good)),
        "flat-1nm": ("constant 1 nm", np.full_like(good, NM)),
        "flat-row": ("every row constant, rows differ", np.repeat(good[:, :1], 64, axis=1)),
    }
    for key, (what, data) in values.items():
        corpus.npy(f"npy-{key}", what, data)
        corpus.scan(f"sxm-{key}", what, Scan(data, scan_size_m=(12.5 * NM, 12.5 * NM)))

    for h, w in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (7, 5), (1, 256), (256, 1)):
        corpus.npy(f"npy-tiny-{h}x{w}", f"{h}x{w} frame", lattice(h, w))
    for h, w in ((1, 1), (2, 2), (1, 256), (256, 1)):
        corpus.scan(
            f"sxm-tiny-{h}x{w}",
            f"{h}x{w} frame",
            Scan(lattice(h, w), scan_size_m=(w * 0.2 * NM, h * 0.2 * NM)),
        )

    # Physical sizes that lie (the restore engine resamples to the model's pixel pitch).
    big = lattice(256, 256)
    for name, metres in (("10um", 10e-6), ("1m", 1.0), ("1fm", 1e-15)):
        corpus.scan(
            f"sxm-{name}-at-256px",
            f"header claims {name} at 256 px",
            Scan(big, scan_size_m=(metres, metres)),
        )
    corpus.scan(
        "png-10um-at-256px",
        "PNG metadata claims 10 um at 256 px",
        Scan(big, scan_size_m=(10e-6, 10e-6)),
        "scan.png",
    )
    corpus.scan(
        "tif-nan",
        "float32 TIFF with NaN rows",
        Scan(nan_row, scan_size_m=(12.5 * NM, 12.5 * NM)),
        "scan.tif",
    )
    corpus.scan(
        "gwy-nan",
        "Gwyddion file with NaN rows",
        Scan(nan_row, scan_size_m=(12.5 * NM, 12.5 * NM)),
        "scan.gwy",
    )
    pixels = b":SCAN_PIXELS:\n        64        64"
    scan_range = b":SCAN_RANGE:\n1E-07 1E-07"
    for name, old, new in (
        ("sxm-pixels-1e6", pixels, b":SCAN_PIXELS:\n   1000000   1000000"),
        ("sxm-pixels-zero", pixels, b":SCAN_PIXELS:\n         0         0"),
        ("sxm-pixels-negative", pixels, b":SCAN_PIXELS:\n       -64        64"),
        ("sxm-pixels-text", pixels, b":SCAN_PIXELS:\n      many      many"),
        ("sxm-range-nan", scan_range, b":SCAN_RANGE:\nNaN NaN"),
        ("sxm-range-zero", scan_range, b":SCAN_RANGE:\n0 0"),
        ("sxm-range-negative", scan_range, b":SCAN_RANGE:\n-1E-07 1E-07"),
        ("sxm-range-1e30", scan_range, b":SCAN_RANGE:\n1E+30 1E+30"),
        ("sxm-no-end", b":SCANIT_END:", b":SCANIT_???:"),
        ("sxm-no-channels", b"\t14\tZ\tm\tforward\t1.000E+0\t0.000E+0\n", b""),
    ):
        corpus.written(
            name, f"header edited: {new[:40]!r}", "scan.sxm", patched_sxm(good, old, new)
        )

    for name, filename in (
        ("name-spaces", "my scan (copy) 2.npy"),
        ("name-unicode", "Ångström_スキャン_µm.npy"),
        ("name-dash", "-rf --help.npy"),
        ("name-newline", "two\nlines.npy"),
        ("name-shell", "$(touch pwned);rm -rf ~.npy"),
        ("name-long", "x" * 240 + ".npy"),
        ("name-dots", "..npy"),
        ("name-upper-ext", "SCAN.NPY"),
    ):
        corpus.raw(name, f"file name {filename[:30]!r}", filename, good_npy)
    size = (12.5 * NM, 12.5 * NM)
    corpus.same_names(
        "names-two-scan-sxm",
        "two different scan.sxm in folders a/ and b/",
        {
            "a/scan.sxm": Scan(lattice(seed=1), scan_size_m=size),
            "b/scan.sxm": Scan(2 * lattice(seed=2), scan_size_m=size),
        },
    )


def _renamed(data: np.ndarray, real_suffix: str) -> Callable[[Path], object]:
    def write(path: Path) -> None:
        source = path.with_name("source" + real_suffix)
        save_scan(Scan(data), source)
        source.rename(path)

    return write


def add_shared(corpus: Corpus, shared: Path, only: Collection[str] | None = None) -> int:
    """Truncated and bit-flipped copies of the real files in ../shared/data; returns how many.

    `only` keeps just the cases of those names (the flips stay the same: every copy is drawn).
    """
    rng = random.Random(13)
    before = len(corpus.cases)
    sources = sorted(p for p in shared.rglob("*") if p.is_file() and p.suffix != ".md")
    for source in sources:
        if source.name.endswith("_0001.mtrx"):
            continue  # travels with its Z_mtrx
        content = source.read_bytes()
        params = (
            {p.name: p.read_bytes() for p in source.parent.glob("*_0001.mtrx")}
            if source.name.endswith(".Z_mtrx")
            else {}
        )
        stem = source.name.replace(".", "-").replace("_", "-").lower()
        flipped_all, flipped_head = bytearray(content), bytearray(content)
        for _ in range(32):
            flipped_all[rng.randrange(len(content))] ^= 1 << rng.randrange(8)
        for _ in range(8):
            flipped_head[rng.randrange(min(2048, len(content)))] ^= 1 << rng.randrange(8)
        variants = {
            "cut-half": ("truncated to half", content[: len(content) // 2]),
            "cut-1k": ("truncated to 1 kB", content[:1024]),
            "cut-last-byte": ("last byte missing", content[:-1]),
            "flip-32": ("32 random bit flips", bytes(flipped_all)),
            "flip-header-8": ("8 bit flips in the first 2 kB", bytes(flipped_head)),
        }
        copies = {
            f"real-{stem}-{key}": (f"{source.name}: {what}", {**params, source.name: data})
            for key, (what, data) in variants.items()
        }
        for name, data in params.items():
            copies[f"real-{stem}-params-cut"] = (
                f"{source.name} with its parameter file cut in half",
                {name: data[: len(data) // 2], source.name: content},
            )
        if params:
            copies[f"real-{stem}-no-params"] = (
                f"{source.name} without its parameter file",
                {source.name: content},
            )
        for name, (what, contents) in copies.items():
            if only is None or name in only:
                corpus.files(name, what, contents, source.name)
    return len(corpus.cases) - before


ENTRY_CHANGES: dict[str, tuple[str, dict]] = {
    "entry-valid": ("a valid tiny entry (control)", {}),
    "entry-norm-groups-0": ("network.norm_groups 0", {"net_norm_groups": 0}),
    "entry-heads-0": (
        "attention on, attention_heads 0",
        {"net_attention": True, "net_attention_heads": 0},
    ),
    "entry-pixel-size-0": ("pixel_size_nm 0", {"pixel_size_nm": 0}),
    "entry-pixel-size-string": ("pixel_size_nm '0.2'", {"pixel_size_nm": "0.2"}),
    "entry-pixel-size-tiny": ("pixel_size_nm 1e-9", {"pixel_size_nm": 1e-9}),
    "entry-tile-string": ("tile_size '64'", {"tile_size": "64"}),
    "entry-tile-huge": ("tile_size 1e6", {"tile_size": 10**6}),
    "entry-blocks-1e6": ("blocks_per_level [1e6, 1]", {"net_blocks_per_level": [10**6, 1]}),
    "entry-channels-huge": (
        "channels 4x2048, 8 blocks each (~6.5 G parameters)",
        {"net_channels": [2048] * 4, "net_blocks_per_level": [8] * 4},
    ),
    "entry-channels-strings": ("channels ['8', '16']", {"net_channels": ["8", "16"]}),
    "entry-in-channels-1": ("fm network with 1 input channel", {"net_in_channels": 1}),
    "entry-task-unknown": ("task 'denoise'", {"task": "denoise"}),
    "entry-sr-factor-bool": ("sr_factor true", {"sr_factor": True}),
}


def add_entries(corpus: Corpus) -> None:
    """Zoo roots each holding one `restore/fm-small` entry, bad in one way."""
    import torch
    from safetensors.torch import load_file, save_file

    from stm_zoo.entry_format import EntryConfig, write_entry
    from stm_zoo.nn import UNet, UNetConfig

    tiny = UNetConfig(
        channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4, time_scale=1000.0
    )
    torch.manual_seed(0)
    state = UNet(tiny).state_dict()

    def entry(name: str, what: str) -> Path:
        root = corpus.folder(name)
        config = EntryConfig("restore", "fm", "small", tiny, tile_size=64)
        write_entry(root / "restore" / "fm-small", config, state, "card")
        corpus.cases.append(Case(name, what, root, kind="entry"))
        return root / "restore" / "fm-small"

    for name, (what, changes) in ENTRY_CHANGES.items():
        folder = entry(name, what)
        raw = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key.startswith("net_"):
                raw["network"][key[4:]] = value
            else:
                raw[key] = value
        (folder / "config.json").write_text(json.dumps(raw))
    depth = 100_000
    entry("entry-nested-json", "config.json nested 100000 deep").joinpath("config.json").write_text(
        '{"task": ' + "[" * depth + "]" * depth + "}"
    )
    entry("entry-config-2mb", "2 MB config.json").joinpath("config.json").write_text(
        " " * 2_000_000 + "{}"
    )
    entry("entry-config-not-json", "config.json is not JSON").joinpath("config.json").write_text(
        "{oops"
    )
    for name, value in (("entry-weights-nan", float("nan")), ("entry-weights-inf", float("inf"))):
        weights = entry(name, f"one {value} weight") / "model.safetensors"
        tensors = load_file(str(weights))
        tensors["stem.weight"].view(-1)[0] = value
        save_file(tensors, str(weights))
    weights = (
        entry("entry-weights-truncated", "model.safetensors cut in half") / "model.safetensors"
    )
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (entry("entry-weights-missing", "no model.safetensors") / "model.safetensors").unlink()


def build_corpus(
    root: Path, shared: Path | None = SHARED_DATA, real_cases: Collection[str] | None = None
) -> list[Case]:
    """Write the whole corpus under `root`; `shared=None` (or absent) skips the real-file copies,
    `real_cases` keeps only those of them."""
    corpus = Corpus(root)
    add_synthetic(corpus)
    if shared is not None and shared.is_dir():
        add_shared(corpus, shared, real_cases)
    add_entries(corpus)
    return corpus.cases


def command_line(command: str, case: Case, scratch: Path, probe: Path) -> list[str]:
    """The `python -m stm_zoo` arguments of `command` on `case` (outputs go under `scratch`)."""
    if command == "info":
        return ["info", str(case.path)]
    if command == "convert":
        return ["convert", str(case.path), str(scratch / "converted.png")]
    if command == "restore":
        return ["restore", str(case.path), "--model", CLASSICAL, "-o", str(scratch)]
    if command == "restore-names":
        files = [str(p) for p in sorted(case.path.rglob("*.sxm"))]
        return ["restore", *files, "--model", CLASSICAL, "-o", str(scratch / "refused")]
    if command == "restore-folder":
        return ["restore", str(case.path), "--model", CLASSICAL, "-o", str(scratch)]
    if command == "zoo-list":
        return ["zoo", "list", "--zoo", str(case.path)]
    assert command == "restore-fm", command
    return [
        "restore",
        str(probe),
        "--model",
        "fm",
        "--size",
        "small",
        "--device",
        "cpu",
        "-o",
        str(scratch),
    ]


def expected_results(
    command: str, case: Case, scratch: Path, probe: Path
) -> list[tuple[Path, Path]]:
    """(input file, result file) for every result a run of `command` that exits 0 must write.

    `convert` writes the OUT path it is given; `restore` writes
    `<stem>_<channel>-forward_restore.<ext>` under -o (the channel named as `load_scan` names the
    input's Z), a folder argument's subfolders mirrored there.
    """
    if command == "convert":
        return [(case.path, scratch / "converted.png")]
    if command == "restore":
        sources = [(case.path, scratch)]
    elif command == "restore-fm":
        sources = [(probe, scratch)]
    elif command == "restore-folder":
        sources = [(path, scratch / relative) for path, relative in collect_jobs([case.path])]
    else:
        return []
    return [
        (path, output_path(path, folder, load_scan(path).channel, "forward", "restore", None))
        for path, folder in sources
    ]


def result_image(path: Path, channel: str, label: str | None) -> np.ndarray | None:
    """The image a result file holds: a PNG/TIFF/.npy its one image, an .sxm/.gwy its restored
    channel (`label`; None: the file's only image); None when it lacks it."""
    scans = load_all_scans(path)
    if label is None or len(scans) == 1:
        return scans[0].data if len(scans) == 1 else None
    name = result_channel(channel, label)
    found = [s.data for s in scans if s.channel == name and s.direction == "forward"]
    return found[0] if found else None


def judge_result(source: Path, target: Path, label: str | None) -> ResultCheck:
    """One result against its input's Z forward image (see `ResultCheck`)."""
    if not target.is_file():
        return ResultCheck(problem=f"exit 0 but no {target.name}")
    image = load_scan(source)
    result = result_image(target, image.channel, label)
    if result is None:
        return ResultCheck(problem=f"{target.name} holds no {result_channel(image.channel, label)}")
    finite_in, finite_out = np.isfinite(image.data), np.isfinite(result)
    bad = ~finite_out
    keeps_input_nan = label is None or target.suffix.lower() in (".sxm", ".gwy")
    if keeps_input_nan and result.shape == image.shape:
        bad &= finite_in  # convert keeps NaN pixels; .sxm/.gwy results keep aborted lines
    values, reference = result[finite_out], image.data[finite_in]
    return ResultCheck(
        nonfinite=bool(bad.any()),
        constant=bool(
            values.size
            and values.max() == values.min()
            and reference.size
            and reference.max() > reference.min()
        ),
    )


def check_run(
    command: str, case: Case, scratch: Path, probe: Path, exit_code: int | None, stderr: str
) -> ResultCheck:
    """Judge what a finished run left behind (see `ResultCheck`)."""
    if command == "restore-names":
        said = [line for line in stderr.splitlines() if line.strip()]
        if (scratch / "refused").exists():
            return ResultCheck(problem="refused after creating its output folder")
        if len(said) != 1:
            return ResultCheck(problem=f"refused in {len(said)} lines, not one")
        return ResultCheck()
    if exit_code != 0:
        return ResultCheck()
    checks = []
    for source, target in expected_results(command, case, scratch, probe):
        try:
            checks.append(judge_result(source, target, LABELS.get(command)))
        except Exception as error:  # an unreadable result is a finding, not a harness crash
            checks.append(ResultCheck(problem=f"{target.name} unreadable: {error}"[:240]))
    return ResultCheck(
        nonfinite=any(c.nonfinite for c in checks),
        constant=any(c.constant for c in checks),
        problem="; ".join(c.problem for c in checks if c.problem),
    )


def run_command(
    argv: list[str], env: dict[str, str], timeout_s: float, memory_bytes: int
) -> tuple[int | None, str, float, float]:
    """Run `python -m stm_zoo *argv`; returns (exit code or None on timeout, stderr, s, peak MB)."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "stm_zoo", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=REPO,
            env=env,
            start_new_session=True,
            preexec_fn=limit_memory,
        )
        timed_out = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout_s:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: only what it started
                pid, status, usage = os.wait4(process.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    code = None if timed_out else process.returncode
    return code, stderr, seconds, usage.ru_maxrss / 1024  # ru_maxrss is in kB on Linux


def last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    meaningful = [line for line in lines if "it/s]" not in line and "file/s]" not in line]
    line = (meaningful or lines or [""])[-1]
    line = re.sub(r"(.)\1{19,}", lambda m: f"{m.group(1)}...({len(m.group(0))} times)", line)
    return line[:240]


def run_case(
    case: Case, command: str, workdir: Path, timeout_s: float, memory_bytes: int
) -> Outcome:
    scratch = workdir / "out" / case.name / command
    scratch.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # one core per run: the corpus is about robustness, not speed
        "TQDM_DISABLE": "1",
        "STM_ZOO_DIR": str(case.path if case.kind == "entry" else workdir / "empty-zoo"),
        "PYTHONPATH": str(REPO),
    }
    probe = workdir / "probe.npy"
    argv = command_line(command, case, scratch, probe)
    code, stderr, seconds, rss = run_command(argv, env, timeout_s, memory_bytes)
    shown = stderr.replace(f"{workdir}/", "")  # messages without the temporary folder
    check = check_run(command, case, scratch, probe, code, stderr)
    return Outcome(
        case.name, command, code, TRACEBACK in stderr, seconds, rss, last_line(shown), check
    )


def run_corpus(
    cases: list[Case], workdir: Path, timeout_s: float, memory_bytes: int, jobs: int = 1
) -> list[Outcome]:
    """Every case through its commands; prints one line per unclean outcome as it goes."""
    (workdir / "empty-zoo").mkdir(parents=True, exist_ok=True)
    np.save(workdir / "probe.npy", lattice())
    work = [(case, command) for case in cases for command in COMMANDS[case.kind]]

    def one(item: tuple[Case, str]) -> Outcome:
        outcome = run_case(*item, workdir, timeout_s, memory_bytes)
        if not outcome.clean:
            print(
                f"  {outcome.command:<10} {outcome.case}: exit {outcome.exit_code}, "
                f"{verdict(outcome.check) or outcome.last_line}",
                flush=True,
            )
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, work))


def verdict(check: ResultCheck) -> str:
    """What is wrong with a run's results, in words ("" when nothing is)."""
    said = ["non-finite output"] * check.nonfinite + ["constant output"] * check.constant
    return "; ".join([*said, *([check.problem] if check.problem else [])])


def summary_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    for command in ALL_COMMANDS:
        mine = [o for o in outcomes if o.command == command]
        if not mine:
            continue
        codes = [o.exit_code for o in mine]
        rows.append(
            [
                command,
                str(len(mine)),
                str(codes.count(0)),
                str(codes.count(1)),
                str(codes.count(2)),
                str(sum(c not in (None, 0, 1, 2) for c in codes)),
                str(sum(o.traceback for o in mine)),
                str(codes.count(None)),
                str(sum(o.check.nonfinite for o in mine)),
                str(sum(o.check.constant for o in mine)),
                str(sum(bool(o.check.problem) for o in mine)),
                str(sum(o.clean for o in mine)),
                f"{max(o.seconds for o in mine):.1f}",
                f"{max(o.peak_rss_mb for o in mine):.0f}",
            ]
        )
    return rows


SUMMARY_HEADER = [
    "command",
    "inputs",
    "exit 0",
    "exit 1",
    "exit 2",
    "other exit",
    "tracebacks",
    "timeouts",
    "exit 0 with non-finite output",
    "exit 0 with constant output",
    "results misplaced",
    "clean",
    "max wall (s)",
    "max peak RSS (MB)",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    cases: list[Case], outcomes: list[Outcome], args: argparse.Namespace, shared: int
) -> str:
    what = {c.name: c.what for c in cases}
    unclean = [o for o in outcomes if not o.clean]
    text = [
        "# Hostile-input corpus",
        "",
        f"`python scripts/hostile_corpus.py` ({len(cases)} inputs: {shared} copies of real files "
        f"from ../shared/data, the rest synthetic; timeout {args.timeout:g} s and address space "
        f"{args.memory_gb:g} GB per run, one OpenMP thread). Clean: exit 0 with sound results, or "
        "exit 2 with a one-sentence error. Unclean: tracebacks, timeouts, any other exit code "
        "(`restore` exits 1 when it caught an error other than a user error), and an exit 0 whose "
        "result is missing from where the command line promises it (convert: the OUT path; "
        "restore: `<stem>_<channel>-forward_restore.<ext>` under -o, a folder's subfolders "
        "mirrored), holds NaN or inf where its input was finite (a PNG, TIFF or .npy restore "
        "result: anywhere; an .sxm/.gwy result is judged by its restored channel, which keeps an "
        "aborted scan's NaN lines on purpose), or is constant while its input was not. Two files "
        "of one name given by name (`restore-names`) must be refused with exit 2 in one line "
        "before the output folder is made; given as their folder (`restore-folder`), both "
        "results must be written.",
        "",
        markdown_table(SUMMARY_HEADER, summary_rows(outcomes)),
        "",
    ]
    if unclean:
        text += [
            "## Unclean outcomes",
            "",
            markdown_table(
                ["case", "input", "command", "exit", "traceback", "wall (s)", "what is wrong"],
                [
                    [
                        o.case,
                        what[o.case],
                        o.command,
                        "timeout" if o.exit_code is None else str(o.exit_code),
                        "yes" if o.traceback else "",
                        f"{o.seconds:.1f}",
                        verdict(o.check) or o.last_line,
                    ]
                    for o in unclean
                ],
            ),
            "",
        ]
    by_case: dict[str, dict[str, Outcome]] = {}
    for o in outcomes:
        by_case.setdefault(o.case, {})[o.command] = o
    rows = []
    for case in cases:
        mine = by_case.get(case.name, {})
        failed = [o for o in mine.values() if o.exit_code != 0]
        found = [f"{o.command}: {verdict(o.check)}" for o in mine.values() if verdict(o.check)]
        rows.append(
            [
                case.name,
                case.what,
                " / ".join(
                    "timeout" if o.exit_code is None else str(o.exit_code) + "!" * (not o.clean)
                    for o in mine.values()
                ),
                "; ".join(filter(None, [failed[-1].last_line if failed else "", *found])),
            ]
        )
    text += [
        "## Every input",
        "",
        "Exit codes in command order (info / convert / restore; zoo list / restore --model fm; "
        "or restore by names / restore the folder; `!` marks an unclean one), the last stderr "
        "line of the last command that failed, and what was wrong with any command's results.",
        "",
        markdown_table(["case", "input", "exit codes", "message"], rows),
        "",
    ]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "hostile_corpus.md")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="address-space cap per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument("--keep", type=Path, default=None, help="build the corpus here and keep it")
    parser.add_argument("--no-shared", action="store_true", help="skip ../shared/data copies")
    parser.add_argument("--only", default=None, help="comma-separated case-name prefixes to run")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="hostile-")) if args.keep is None else args.keep
    try:
        shared = None if args.no_shared else SHARED_DATA
        if shared is not None and not shared.is_dir():
            print(f"{shared} is absent: no copies of real files", file=sys.stderr)
        cases = build_corpus(workdir / "corpus", shared)
        if args.only:
            prefixes = tuple(args.only.split(","))
            cases = [c for c in cases if c.name.startswith(prefixes)]
        n_shared = sum(c.name.startswith("real-") for c in cases)
        print(f"{len(cases)} inputs in {workdir / 'corpus'}", flush=True)
        started = time.perf_counter()
        outcomes = run_corpus(cases, workdir, args.timeout, int(args.memory_gb * 2**30), args.jobs)
        print(markdown_table(SUMMARY_HEADER, summary_rows(outcomes)))
        print(f"{len(outcomes)} runs in {time.perf_counter() - started:.0f} s")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(cases, outcomes, args, n_shared) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bad input: every problem with a file is one STMFileError sentence naming it, never a crash."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stm_zoo.__main__ import main
from stm_zoo.io import Scan, STMFileError, list_channels, load_scan, save_scan, scan_info

REPO = Path(__file__).resolve().parents[2]
READERS = [".sxm", ".gwy", ".png", ".tif", ".npy", ".Z_mtrx"]


def one_sentence(error: STMFileError, name: str) -> str:
    message = str(error)
    assert message.startswith(f"{name}: "), message
    assert message.endswith(".") and "\n" not in message, message
    return message


def test_unknown_extension_lists_the_supported_formats(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"anything")
    with pytest.raises(STMFileError) as error:
        load_scan(path)
    message = one_sentence(error.value, "scan.xyz")
    for ending in (".sxm", ".gwy", ".png", ".tif", ".npy", ".Z_mtrx", "_0001.mtrx"):
        assert ending in message


@pytest.mark.parametrize("suffix", READERS)
def test_empty_files(tmp_path, suffix):
    path = tmp_path / f"empty--1_1{suffix}"
    path.touch()
    with pytest.raises(STMFileError, match="the file is empty") as error:
        load_scan(path)
    one_sentence(error.value, path.name)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(STMFileError, match="no such file"):
        load_scan(tmp_path / "absent.sxm")
    (tmp_path / "folder.sxm").mkdir()
    with pytest.raises(STMFileError, match="is a folder"):
        load_scan(tmp_path / "folder.sxm")


def test_truncated_sxm(nanonis_files, tmp_path):
    raw = nanonis_files[0].read_bytes()
    for cut, expected in ((len(raw) // 2, "data block is truncated"), (300, "header is cut off")):
        path = tmp_path / "cut.sxm"
        path.write_bytes(raw[:cut])
        with pytest.raises(STMFileError, match=expected) as error:
            load_scan(path)
        one_sentence(error.value, "cut.sxm")


@pytest.mark.parametrize("suffix", [".gwy", ".png", ".tif", ".npy", ".Z_mtrx"])
def test_truncated_binaries(nanonis_files, gwy_file, matrix_file, tmp_path, suffix):
    folder = tmp_path / "cut"
    folder.mkdir()
    if suffix == ".gwy":
        source = gwy_file
    elif suffix == ".Z_mtrx":
        source = matrix_file
        shutil.copy(matrix_file.with_name("20201111_0001.mtrx"), folder)
    else:
        source = save_scan(load_scan(nanonis_files[0]), tmp_path / f"whole{suffix}")
    raw = source.read_bytes()
    path = folder / (source.name if suffix == ".Z_mtrx" else f"cut{suffix}")
    path.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(STMFileError) as error:
        load_scan(path)
    one_sentence(error.value, path.name)


def test_absurd_dimensions_are_refused_before_allocating(nanonis_files, tmp_path):
    header, data = nanonis_files[0].read_bytes().split(b":SCANIT_END:")
    huge = re.sub(rb":SCAN_PIXELS:\n[^\n]*", b":SCAN_PIXELS:\n    100000    100000", header)
    path = tmp_path / "huge.sxm"
    path.write_bytes(huge + b":SCANIT_END:" + data)
    tracemalloc.start()
    try:
        with pytest.raises(STMFileError, match="announces 100000 x 100000 px") as error:
            load_scan(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_sentence(error.value, "huge.sxm")
    assert peak < 20e6  # 100000^2 float32 would be 40 GB
    # within the per-side limit but still far more data than the file holds
    big = re.sub(rb":SCAN_PIXELS:\n[^\n]*", b":SCAN_PIXELS:\n      8000      8000", header)
    path.write_bytes(big + b":SCANIT_END:" + data)
    with pytest.raises(STMFileError, match="truncated"):
        load_scan(path)


def test_absurd_dimensions_in_npy_and_png_headers(tmp_path):
    npy = tmp_path / "huge.npy"
    with open(npy, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
        )
        f.write(b"\0" * 64)
    with pytest.raises(STMFileError, match="announces 1000000 x 1000000 px"):
        load_scan(npy)
    png = tmp_path / "huge.png"
    Image.new("L", (4, 4)).save(png)
    raw = bytearray(png.read_bytes())
    raw[16:24] = (200000).to_bytes(4, "big") * 2  # IHDR width and height, then its CRC
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    png.write_bytes(bytes(raw))
    with pytest.raises(STMFileError, match="huge.png: the image header announces"):
        load_scan(png)


def test_png_decompression_bomb_is_refused_before_decoding(tmp_path, capsys):
    """Issue 13 (6b): an 8 kB PNG announcing 8192 x 8192 px once took 2.9 GB to convert."""
    width = height = 8192  # 1-bit black: zlib packs the 8.4 MB of rows into about 8 kB
    stream = zlib.compress(bytes(height * (1 + width // 8)), 9)
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    path = tmp_path / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + b"".join(
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
            for kind, data in ((b"IHDR", ihdr), (b"IDAT", stream), (b"IEND", b""))
        )
    )
    assert path.stat().st_size < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(STMFileError, match="decompression bomb") as error:
            load_scan(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = one_sentence(error.value, "bomb.png")
    assert "8192 x 8192 px" in message and "save it as an uncompressed TIFF or as .npy" in message
    assert peak < 5e6
    assert main(["convert", str(path), str(tmp_path / "out.png")]) == 2
    assert "decompression bomb" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", READERS)
def test_text_file_renamed(tmp_path, suffix):
    folder = tmp_path / "renamed"
    folder.mkdir()
    path = folder / f"20201111--4_1{suffix}"
    path.write_text("Scan notes: tip changed at line 120, bias 1.2 V.\n" * 20)
    if suffix == ".Z_mtrx":
        (folder / "20201111_0001.mtrx").write_text("not a parameter file either")
    with pytest.raises(STMFileError) as error:
        load_scan(path)
    message = one_sentence(error.value, path.name)
    assert "not" in message


def test_text_renamed_sxm_names_the_format(tmp_path):
    path = tmp_path / "notes.sxm"
    path.write_text("just some text\n")
    with pytest.raises(STMFileError, match="notes.sxm: is not a Nanonis .sxm file"):
        load_scan(path)


def test_matrix_without_its_parameter_file(matrix_file, tmp_path):
    shutil.copy(matrix_file, tmp_path)
    with pytest.raises(STMFileError) as error:
        load_scan(tmp_path / matrix_file.name)
    message = one_sentence(error.value, matrix_file.name)
    assert "parameter file 20201111_0001.mtrx is missing" in message


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "notes.sxm"
    path.write_text("just some text\n")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: notes.sxm: is not a Nanonis .sxm file")
    assert len(err.strip().splitlines()) == 1
    assert main(["convert", str(path), str(tmp_path / "out.gwy")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_subprocess_has_no_traceback(tmp_path):
    path = tmp_path / "scan.Z_mtrx"
    path.write_bytes(b"ONTMATRX0101" + bytes(100))
    done = subprocess.run(
        [sys.executable, "-m", "stm_zoo", "info", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: scan.Z_mtrx: does not follow MATRIX naming")
    assert "Traceback" not in done.stderr


def check_only_stm_file_errors(path: Path) -> None:
    """Every public reader either succeeds or raises STMFileError on `path`."""
    for read in (load_scan, list_channels, scan_info):
        try:
            read(path)
        except STMFileError as error:
            one_sentence(error, path.name)


FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


class Seeds(dict):
    """File contents by suffix; a short repr keeps hypothesis' failure reports readable."""

    def __repr__(self) -> str:
        return f"Seeds({sorted(self)})"


@pytest.fixture(scope="module")
def seeds(fixtures_dir: Path, fuzz_dir: Path) -> Seeds:
    """A real (or our own) file per reader, to be mutated."""
    rng = np.random.default_rng(0)
    scan = Scan(rng.normal(size=(12, 16)).astype(np.float32), history=["seed"])
    own = {s: save_scan(scan, fuzz_dir / f"seed{s}").read_bytes() for s in (".png", ".tif", ".npy")}
    return Seeds(
        {
            ".sxm": (fixtures_dir / "nanonis" / "Si_7x7_028.sxm").read_bytes(),
            ".gwy": (fixtures_dir / "gwyddion" / "test.gwy").read_bytes(),
            ".Z_mtrx": (fixtures_dir / "matrix" / "20201111--4_1.Z_mtrx").read_bytes(),
            ".mtrx": (fixtures_dir / "matrix" / "20201111_0001.mtrx").read_bytes(),
            **own,
        }
    )


def write_case(folder: Path, suffix: str, payload: bytes, seeds: dict[str, bytes]) -> Path:
    name = "20201111--4_1.Z_mtrx" if suffix == ".Z_mtrx" else f"case{suffix}"
    if suffix == ".Z_mtrx":
        (folder / "20201111_0001.mtrx").write_bytes(seeds[".mtrx"])
    path = folder / name
    path.write_bytes(payload)
    return path


@FUZZ
@given(suffix=st.sampled_from(READERS), payload=st.binary(min_size=1, max_size=4096))
def test_random_bytes_raise_only_stm_file_errors(fuzz_dir, suffix, payload):
    # a MATRIX data file gets a parameter file of the same noise beside it
    check_only_stm_file_errors(write_case(fuzz_dir, suffix, payload, Seeds({".mtrx": payload})))


@st.composite
def mutations(draw, size: int, header: int) -> list[tuple[int, bytes]]:
    """Byte replacements, mostly inside the first `header` bytes where the structure lives."""
    edits = []
    for _ in range(draw(st.integers(1, 6))):
        end = header if draw(st.booleans()) else size
        position = draw(st.integers(0, max(0, end - 1)))
        edits.append((position, draw(st.binary(min_size=1, max_size=8))))
    return edits


@FUZZ
@given(suffix=st.sampled_from(READERS), data=st.data())
def test_mutated_real_headers_raise_only_stm_file_errors(fuzz_dir, seeds, suffix, data):
    raw = bytearray(seeds[suffix])
    header = raw.find(b":SCANIT_END:") + 20 if suffix == ".sxm" else 512
    for position, replacement in data.draw(mutations(len(raw), header)):
        raw[position : position + len(replacement)] = replacement
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(1, len(raw)))]
    check_only_stm_file_errors(write_case(fuzz_dir, suffix, bytes(raw), seeds))


@settings(FUZZ, max_examples=12)  # each example parses the 1.6 MB parameter file five times
@given(data=st.data())
def test_mutated_matrix_parameter_file_raises_only_stm_file_errors(fuzz_dir, seeds, data):
    path = write_case(fuzz_dir, ".Z_mtrx", seeds[".Z_mtrx"], seeds)
    raw = bytearray(seeds[".mtrx"])
    for position, replacement in data.draw(mutations(len(raw), 4096)):
        raw[position : position + len(replacement)] = replacement
    (fuzz_dir / "20201111_0001.mtrx").write_bytes(bytes(raw))
    check_only_stm_file_errors(path)


@FUZZ
@given(
    values=st.lists(st.sampled_from(["0", "-3", "1e400", "nan", "x", "7 7 7", ""]), min_size=1),
    tag=st.sampled_from(["SCAN_PIXELS", "SCAN_RANGE", "SCAN_DIR", "BIAS", "SCANIT_TYPE"]),
)
def test_mutated_sxm_values_raise_only_stm_file_errors(fuzz_dir, seeds, values, tag):
    header, data = seeds[".sxm"].split(b":SCANIT_END:")
    value = " ".join(values).encode()
    mutated = re.sub(
        rb":" + tag.encode() + rb":\n[^\n]*", b":" + tag.encode() + b":\n" + value, header
    )
    path = fuzz_dir / "values.sxm"
    path.write_bytes(mutated + b":SCANIT_END:" + data)
    check_only_stm_file_errors(path)

"""Omicron MATRIX: the fixture pair, its parameter file, uploads, partial scans, conversions."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import access2thematrix
import numpy as np
import pytest

from stm_zoo.io import STMFileError, list_channels, load_scan, open_matrix_upload, save_scan

PARAMETER_FILE = "20201111_0001.mtrx"


def test_fixture_loads_with_parameter_file_values(matrix_file):
    mtrx = access2thematrix.MtrxData()
    _, message = mtrx.open(str(matrix_file))
    assert message.startswith("Successfully")
    scan = load_scan(matrix_file)
    assert scan.shape == (400, 400)
    assert scan.shape == (
        mtrx.param["EEPA::XYScanner.Lines"][0],
        mtrx.param["EEPA::XYScanner.Points"][0],
    )
    assert scan.scan_size_m == (
        mtrx.param["EEPA::XYScanner.Width"][0],
        mtrx.param["EEPA::XYScanner.Height"][0],
    )
    assert scan.scan_size_m == pytest.approx((100e-9, 100e-9))
    assert (scan.channel, scan.unit, scan.direction) == ("Z", "m", "forward")
    assert scan.bias_v == pytest.approx(0.6)
    assert scan.setpoint_a == pytest.approx(300e-12)
    assert scan.scan_dir == "up"
    assert scan.metadata["parameter_file"] == PARAMETER_FILE
    assert np.isfinite(scan.data).all() and scan.data.dtype == np.float32
    # heights in metres: a 100 nm scan of a flat surface spans well under 10 nm
    assert 1e-11 < np.ptp(scan.data) < 1e-8


def test_orientation_is_access2thematrix_flipped_to_top_first(matrix_file, corr):
    mtrx = access2thematrix.MtrxData()
    mtrx.open(str(matrix_file))
    for trace, direction in (("forward/up", "forward"), ("backward/up", "backward")):
        image, _ = mtrx.select_image(trace)
        scan = load_scan(matrix_file, direction=direction)
        assert np.array_equal(scan.data, image.data[::-1].astype(np.float32))
    forward = load_scan(matrix_file, direction="forward").data
    backward = load_scan(matrix_file, direction="backward/up").data
    assert corr(forward, backward) > corr(forward, backward[:, ::-1]) + 0.2


def test_channel_names_and_sibling_files(matrix_file, tmp_path):
    for alias in ("Z", "z", "Topography", "height"):
        assert load_scan(matrix_file, channel=alias).channel == "Z"
    with pytest.raises(STMFileError, match="holds channel Z and no data file for 'Current'"):
        load_scan(matrix_file, channel="Current")
    # a sibling data file of the same scan for another channel is found by name
    shutil.copy(matrix_file, tmp_path / matrix_file.name)
    shutil.copy(matrix_file.with_name(PARAMETER_FILE), tmp_path / PARAMETER_FILE)
    shutil.copy(matrix_file, tmp_path / "20201111--4_1.I_mtrx")
    current = load_scan(tmp_path / matrix_file.name, channel="current")
    assert (current.channel, current.unit) == ("I", "A")
    names = [(c.name, c.unit, c.directions) for c in list_channels(tmp_path / matrix_file.name)]
    assert names == [("Z", "m", ("forward", "backward")), ("I", "A", ("forward", "backward"))]


def test_missing_parameter_file_is_named(matrix_file, tmp_path):
    lonely = tmp_path / matrix_file.name
    shutil.copy(matrix_file, lonely)
    with pytest.raises(STMFileError) as error:
        load_scan(lonely)
    message = str(error.value)
    assert message.startswith(f"{matrix_file.name}: ")
    assert PARAMETER_FILE in message and str(tmp_path) in message
    # the library itself does not raise: it returns an error string
    _, library_message = access2thematrix.MtrxData().open(str(lonely))
    assert library_message.startswith("Error in opening")


def test_parameter_file_and_renamed_data_file_are_explained(matrix_file, tmp_path):
    with pytest.raises(STMFileError, match="is a MATRIX parameter file"):
        load_scan(matrix_file.with_name(PARAMETER_FILE))
    renamed = tmp_path / "scan.Z_mtrx"
    shutil.copy(matrix_file, renamed)
    with pytest.raises(STMFileError, match="does not follow MATRIX naming"):
        load_scan(renamed)


def test_open_matrix_upload_joins_files_from_separate_folders(matrix_file, tmp_path, same_scan):
    upload_a, upload_b = tmp_path / "u1", tmp_path / "u2"
    upload_a.mkdir()
    upload_b.mkdir()
    data = Path(shutil.copy(matrix_file, upload_a / matrix_file.name))
    param = Path(shutil.copy(matrix_file.with_name(PARAMETER_FILE), upload_b / PARAMETER_FILE))
    with pytest.raises(STMFileError, match="parameter file"):
        load_scan(data)
    opened = open_matrix_upload([param, data], dest_dir=tmp_path / "joined")
    assert opened == tmp_path / "joined" / matrix_file.name
    assert (tmp_path / "joined" / PARAMETER_FILE).is_file()
    same_scan(load_scan(opened), load_scan(matrix_file))
    default = open_matrix_upload([data, param])  # a fresh temporary folder
    assert default.parent != data.parent and default.name == matrix_file.name
    shutil.rmtree(default.parent)
    with pytest.raises(STMFileError, match=f"{PARAMETER_FILE} was not uploaded"):
        open_matrix_upload([data])
    with pytest.raises(STMFileError, match="No MATRIX data file"):
        open_matrix_upload([param])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(STMFileError, match="notes.txt: not part of an Omicron MATRIX scan"):
        open_matrix_upload([data, param, notes])


def make_partial(matrix_file: Path, folder: Path, values: int) -> Path:
    """The fixture cut to its first `values` data items, as an aborted scan is stored.

    Layout: TLKB block (length at byte 16) holding CSED (data item count at byte 64) and ATAD
    (length at byte 100, int32 data from byte 104).
    """
    raw = matrix_file.read_bytes()
    assert raw[20 + 12 : 20 + 16] == b"CSED" and raw[96:100] == b"ATAD"
    full_count = struct.unpack("<i", raw[64:68])[0]
    tlkb = struct.unpack("<L", raw[16:20])[0] - (full_count - values) * 4
    cut = (
        raw[:16]
        + struct.pack("<L", tlkb)
        + raw[20:64]
        + struct.pack("<i", values)
        + raw[68:100]
        + struct.pack("<L", values * 4)
        + raw[104 : 104 + values * 4]
    )
    (folder / matrix_file.name).write_bytes(cut)
    shutil.copy(matrix_file.with_name(PARAMETER_FILE), folder / PARAMETER_FILE)
    return folder / matrix_file.name


def test_aborted_scan_comes_back_full_size_with_nan_lines(matrix_file, tmp_path):
    # 250 complete lines (trace + retrace of 400 points each) and a few points of the next one
    partial = make_partial(matrix_file, tmp_path, 250 * 2 * 400 + 123)
    full = load_scan(matrix_file)
    scan = load_scan(partial)
    assert scan.shape == full.shape and scan.scan_size_m == full.scan_size_m
    # an up scan starts at the bottom: the 150 lines never scanned are the top rows
    assert scan.valid_rows().tolist() == [False] * 150 + [True] * 250
    assert np.array_equal(scan.data[150:], full.data[150:])
    cropped = scan.crop_valid()
    assert cropped.shape == (250, 400)
    assert cropped.scan_size_m == pytest.approx((100e-9, 62.5e-9))


@pytest.mark.parametrize("suffix", [".sxm", ".gwy"])
def test_matrix_converts_to_sxm_and_gwy_keeping_size_and_units(
    matrix_file, tmp_path, suffix, same_scan
):
    scans = [load_scan(matrix_file, direction=d) for d in ("forward", "backward")]
    out = save_scan(scans, tmp_path / f"converted{suffix}")
    for scan in scans:
        again = load_scan(out, "Z", scan.direction)
        same_scan(again, scan)
        assert again.scan_size_m == pytest.approx((100e-9, 100e-9))
        assert again.unit == "m"

"""Nanonis .sxm: fixtures against their headers, orientation, partial scans, the writer."""

from __future__ import annotations

import re
from pathlib import Path

import nanonispy2
import numpy as np
import pytest

from stm_zoo.io import Scan, STMFileError, list_channels, load_scan, save_scan


def header_values(path: Path) -> dict:
    """The numbers of an .sxm header, parsed with regular expressions (independently of us)."""
    text = path.read_bytes().split(b":SCANIT_END:")[0].decode("latin-1")
    nx, ny = re.search(r":SCAN_PIXELS:\n\s*(\d+)\s+(\d+)", text).groups()
    x, y = re.search(r":SCAN_RANGE:\n\s*(\S+)\s+(\S+)", text).groups()
    return {
        "shape": (int(ny), int(nx)),
        "size": (float(x), float(y)),
        "bias": float(re.search(r":BIAS:\n\s*(\S+)", text)[1]),
        "setpoint": float(re.search(r"\tlog Current\t1\t(\S+) A", text)[1]),
        "scan_dir": re.search(r":SCAN_DIR:\n(\w+)", text)[1],
        "channels": re.findall(r"^\t\d+\t(\S+)\t(\S+)\t(\w+)\t", text, re.MULTILINE),
    }


def test_fixtures_load_with_header_shape_size_units(nanonis_files):
    for path in nanonis_files:
        expected = header_values(path)
        infos = list_channels(path)
        assert [(c.name, c.unit) for c in infos] == [(n, u) for n, u, _ in expected["channels"]]
        for info in infos:
            for direction in info.directions:
                scan = load_scan(path, info.name, direction)
                assert scan.data.dtype == np.float32 and scan.data.flags.c_contiguous
                assert scan.shape == expected["shape"]
                assert scan.scan_size_m == expected["size"]
                assert scan.unit == info.unit
                assert scan.bias_v == expected["bias"]
                assert scan.setpoint_a == expected["setpoint"]
                assert scan.scan_dir == expected["scan_dir"]
                assert not scan.pixel_size_assumed
                assert scan.metadata["format"] == "sxm"
                assert "SCAN_RANGE" in scan.metadata["header"]


def test_reader_agrees_with_nanonispy2_after_the_orientation_flips(nanonis_files):
    for path in nanonis_files:
        reference = nanonispy2.read.Scan(str(path))
        up = reference.header["scan_dir"] == "up"
        for name, directions in reference.signals.items():
            for direction, raw in directions.items():
                expected = raw.astype(np.float32)
                if direction == "backward":
                    expected = expected[:, ::-1]
                if up:
                    expected = expected[::-1]
                scan = load_scan(path, name, direction)
                assert np.array_equal(scan.data, expected, equal_nan=True), (path.name, name)


def test_mirroring_backward_aligns_it_with_forward(nanonis_files, corr):
    """The left-right mirror of retrace images is what makes them correlate with trace images."""
    for path in nanonis_files:
        forward = load_scan(path, "Z", "forward").data
        backward = load_scan(path, "Z", "backward").data
        raw_backward = backward[:, ::-1]  # as stored in the file (up to the common vertical flip)
        aligned, unaligned = corr(forward, backward), corr(forward, raw_backward)
        assert aligned > unaligned + 0.15, (path.name, aligned, unaligned)
        assert aligned > 0.25, (path.name, aligned)


@pytest.mark.parametrize("scan_dir", ["up", "down"])
def test_slow_axis_follows_scan_dir(tmp_path, raw_sxm, scan_dir):
    """File lines are in acquisition order; an up scan started at the bottom, so it is flipped."""
    ny, nx = 6, 5
    line_number = np.repeat(np.arange(ny, dtype=np.float32)[:, None], nx, axis=1)
    column = np.repeat(np.arange(nx, dtype=np.float32)[None, :], ny, axis=0)
    path = raw_sxm(
        tmp_path / "t.sxm",
        [line_number + column / 10, line_number + column / 10],
        scan_dir=scan_dir,
    )
    forward = load_scan(path, "Z", "forward")
    backward = load_scan(path, "Z", "backward")
    expected_lines = np.arange(ny)[::-1] if scan_dir == "up" else np.arange(ny)
    assert np.array_equal(np.floor(forward.data[:, 0]), expected_lines)
    assert np.allclose(forward.data[0] % 1, np.arange(nx) / 10)
    assert np.allclose(backward.data[0] % 1, np.arange(nx)[::-1] / 10)  # mirrored
    assert forward.scan_dir == scan_dir
    # the writer restores the instrument's order: nanonispy2 sees the original file layout
    out = save_scan([forward, backward], tmp_path / "out.sxm")
    again = nanonispy2.read.Scan(str(out))
    for direction in ("forward", "backward"):
        original = nanonispy2.read.Scan(str(path)).signals["Z"][direction]
        assert np.array_equal(again.signals["Z"][direction], original)


def test_forward_only_channels_are_read_from_data_info(tmp_path, raw_sxm):
    rng = np.random.default_rng(0)
    z_fwd, z_bwd, current = (rng.normal(size=(4, 7)).astype(np.float32) for _ in range(3))
    path = raw_sxm(
        tmp_path / "fwd_only.sxm",
        [z_fwd, z_bwd, current],
        channels=[("Z", "m", "both"), ("Current", "A", "forward")],
    )
    with pytest.raises(ValueError):  # the library assumes both directions everywhere
        nanonispy2.read.Scan(str(path))
    assert [c.directions for c in list_channels(path)] == [("forward", "backward"), ("forward",)]
    assert np.array_equal(load_scan(path, "current").data, current)
    assert np.array_equal(load_scan(path, "Z", "backward").data, z_bwd[:, ::-1])
    with pytest.raises(STMFileError, match="recorded forward only"):
        load_scan(path, "Current", "backward")


def test_partial_scan_keeps_nan_lines_and_crops(tmp_path, raw_sxm):
    """An aborted up scan: Nanonis writes NaN for the lines it never reached (the last stored)."""
    rng = np.random.default_rng(1)
    plane = rng.normal(size=(10, 8)).astype(np.float32)
    plane[7:] = np.nan
    path = raw_sxm(tmp_path / "aborted.sxm", [plane, plane], scan_dir="up")
    scan = load_scan(path)
    assert scan.shape == (10, 8)
    assert scan.valid_rows().tolist() == [False] * 3 + [True] * 7
    cropped = scan.crop_valid()
    assert cropped.shape == (7, 8) and np.isfinite(cropped.data).all()
    assert cropped.scan_size_m == pytest.approx((4e-8, 2e-8 * 7 / 10))
    assert np.array_equal(cropped.data, plane[:7][::-1])
    assert cropped.history == ["crop_valid: kept rows 3..9"]


def test_round_trip_keeps_every_channel_and_the_header(nanonis_files, tmp_path, same_scan):
    for path in nanonis_files:
        scans = [load_scan(path, c.name, d) for c in list_channels(path) for d in c.directions]
        out = save_scan(scans, tmp_path / path.name)
        for scan in scans:
            again = load_scan(out, scan.channel, scan.direction)
            same_scan(again, scan)
            assert again.metadata["header"]["REC_DATE"] == scan.metadata["header"]["REC_DATE"]
        original, written = nanonispy2.read.Scan(str(path)), nanonispy2.read.Scan(str(out))
        for name, directions in original.signals.items():
            for direction, raw in directions.items():
                assert np.array_equal(written.signals[name][direction], raw, equal_nan=True)
        # header entries the writer does not own travel unchanged
        before = load_scan(path).metadata["header"]
        after = load_scan(out).metadata["header"]
        for key in ("SCAN_OFFSET", "SCAN_TIME", "ACQ_TIME", "Piezo Calibration>Calib. X (m/V)"):
            assert after.get(key) == before.get(key)


def test_writer_builds_a_header_for_scans_from_other_formats(tmp_path, same_scan, sxm_reference):
    rng = np.random.default_rng(2)
    data = rng.normal(scale=1e-10, size=(24, 40)).astype(np.float32)
    scan = Scan(
        data,
        unit="m",
        channel="Topography map",
        direction="backward",
        scan_size_m=(80e-9, 48e-9),
        bias_v=1.5,
        setpoint_a=2e-11,
        metadata={"format": "png", "header": {"anything": 1}},
        history=["restore: fm small, 2 steps", "line\nbreak and ':colon:'"],
        pixel_size_assumed=True,
        scan_dir="up",
    )
    out = save_scan(scan, tmp_path / "restored.sxm")
    with pytest.raises(ValueError):  # nanonispy2 assumes both directions everywhere
        nanonispy2.read.Scan(str(out))
    reference = sxm_reference(out)
    assert list(reference.header["data_info"]["Direction"]) == ["backward"]
    assert list(reference.header["scan_pixels"]) == [40, 24]
    assert list(reference.header["scan_range"]) == [80e-9, 48e-9]
    assert reference.header["bias"] == 1.5
    # file layout: backward mirrored and up flipped back to the instrument's order
    stored = reference.signals["Topography_map"]["backward"]
    assert np.array_equal(stored, data[::-1, ::-1])
    assert list(reference.signals["Topography_map"]) == ["backward"]  # no NaN forward image
    again = load_scan(out, "topography map", "backward")
    same_scan(again, scan.replace(channel="Topography_map"))
    assert again.history == scan.history
    with pytest.raises(STMFileError, match="recorded backward only"):
        load_scan(out, "Topography_map", "forward")
    comment = reference.header["comment"].split("\n")
    assert "stm-zoo Topography_map backward: line break and ':colon:'" in comment


def test_unknown_unit_and_missing_bias_round_trip(tmp_path, same_scan):
    scan = Scan(np.arange(12, dtype=np.float32).reshape(3, 4), unit="", channel="Z")
    again = load_scan(save_scan(scan, tmp_path / "plain.sxm"))
    same_scan(again, scan)
    assert again.bias_v is None and again.setpoint_a is None and again.scan_dir is None


def test_writer_refuses_mixed_frames(tmp_path):
    a = Scan(np.zeros((4, 4), np.float32))
    with pytest.raises(STMFileError, match="different shapes"):
        save_scan([a, Scan(np.zeros((4, 5), np.float32))], tmp_path / "x.sxm")
    with pytest.raises(STMFileError, match="two forward images"):
        save_scan([a, a], tmp_path / "x.sxm")
    assert not (tmp_path / "x.sxm").exists()

"""Gwyddion .gwy: the fixture, round trips, units, NaN masks, channel selection."""

from __future__ import annotations

import tracemalloc

import gwyfile
import numpy as np
import pytest
from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

from stm_zoo.io import Scan, STMFileError, list_channels, load_scan, save_scan


def test_fixture_loads_with_its_field_values(gwy_file):
    field = gwyfile.load(str(gwy_file))["/0/data"]
    scan = load_scan(gwy_file)
    assert scan.shape == (field["yres"], field["xres"]) == (128, 128)
    assert np.array_equal(scan.data, field.data.astype(np.float32))
    assert (scan.channel, scan.unit) == ("Test", "")
    # xreal = 128 with no lateral unit: no physical size, so it is assumed and said so
    assert scan.metadata["xreal"] == field["xreal"] == 128.0
    assert scan.metadata["si_unit_xy"] == ""
    assert scan.pixel_size_assumed
    assert scan.pixel_size_m == pytest.approx((100e-9 / 512, 100e-9 / 512))
    assert "no physical size" in scan.metadata["notes"][0]
    assert load_scan(gwy_file, scan_size_nm=64).scan_size_m == pytest.approx((64e-9, 64e-9))
    assert [(c.name, c.directions) for c in list_channels(gwy_file)] == [("Test", ("forward",))]


def test_gwy_round_trip_is_exact(gwy_file, tmp_path, same_scan):
    scan = load_scan(gwy_file)
    out = save_scan(scan, tmp_path / "again.gwy")
    same_scan(load_scan(out), scan)
    # what Gwyddion will see: metres laterally, the title a string (not a one-byte char)
    container = gwyfile.load(str(out))
    field = container["/0/data"]
    assert field["si_unit_xy"]["unitstr"] == "m"
    assert field["xreal"] == pytest.approx(25e-9)
    assert container["/0/data/title"] == "Test (Forward)"
    assert container.typecodes["/0/data/title"] == "s"
    assert container["/0/meta"]["stm_zoo.pixel_size_assumed"] == "true"


def test_sxm_to_gwy_keeps_every_channel_exactly(nanonis_files, tmp_path, same_scan):
    path = nanonis_files[0]
    scans = [load_scan(path, c.name, d) for c in list_channels(path) for d in c.directions]
    out = save_scan(scans, tmp_path / "all.gwy")
    assert len(list_channels(out)) == len(list_channels(path))
    for scan in scans:
        again = load_scan(out, scan.channel, scan.direction)
        same_scan(again, scan)
        assert again.history == scan.history
        assert again.metadata["header"]["sxm:SCAN_RANGE"] == scan.metadata["header"]["SCAN_RANGE"]
    with pytest.raises(STMFileError, match="has no Phase forward field"):
        load_scan(out, "Phase")


def test_missing_pixels_become_a_mask_and_come_back_as_nan(tmp_path, same_scan):
    data = np.arange(30, dtype=np.float32).reshape(5, 6) * 1e-11
    data[:2] = np.nan
    scan = Scan(
        data,
        scan_size_m=(6e-9, 5e-9),
        bias_v=0.1,
        setpoint_a=1e-10,
        scan_dir="up",
        history=["aborted"],
    )
    out = save_scan(scan, tmp_path / "partial.gwy")
    container = gwyfile.load(str(out))
    stored = container["/0/data"].data
    assert np.isfinite(stored).all()  # Gwyddion has no NaN
    assert np.array_equal(container["/0/mask"].data > 0.5, np.isnan(data))
    again = load_scan(out)
    same_scan(again, scan)
    assert again.history == ["aborted"]
    assert again.valid_rows().tolist() == [False, False, True, True, True]


def test_prefixed_units_are_converted_to_si(tmp_path):
    container = GwyContainer()
    field = GwyDataField(
        np.full((3, 4), 2.5),
        xreal=40.0,
        yreal=30.0,
        si_unit_xy=GwySIUnit(unitstr="nm"),
        si_unit_z=GwySIUnit(unitstr="nm"),
    )
    container["/0/data"] = field
    container["/0/data/title"] = "Height"
    path = tmp_path / "nm.gwy"
    container.tofile(str(path))
    scan = load_scan(path)
    assert scan.scan_size_m == pytest.approx((40e-9, 30e-9))
    assert scan.unit == "m"
    assert np.allclose(scan.data, 2.5e-9)
    assert not scan.pixel_size_assumed


def test_reading_a_large_gwy_allocates_less_than_the_file(tmp_path):
    """Issue 13 (6a): no whole-file copies (a 3 GB file once took 6.4 GB to read)."""
    data = np.random.default_rng(0).normal(scale=1e-10, size=(1024, 2048)).astype(np.float32)
    scans = [Scan(data, scan_size_m=(2e-7, 1e-7)), Scan(data[::-1], direction="backward")]
    path = save_scan(scans, tmp_path / "big.gwy")
    size = path.stat().st_size  # two float64 fields: 32 MiB
    tracemalloc.start()
    try:
        channels = list_channels(path)
        listing_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        scan = load_scan(path, direction="backward")
        reading_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(c.name, c.directions) for c in channels] == [("Z", ("forward", "backward"))]
    assert np.array_equal(scan.data, data[::-1])
    assert listing_peak < 0.05 * size  # no field's values are read to list them
    assert reading_peak < 0.5 * size  # one float32 copy of one field: a quarter of the file

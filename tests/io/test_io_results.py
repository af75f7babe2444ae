"""Results keep everything their source held: every channel and direction, read back with the
reference readers (nanonispy2, gwyfile, access2theMatrix through our reader) and compared."""

from __future__ import annotations

import logging

import gwyfile
import nanonispy2
import numpy as np
import pytest

from stm_zoo.io import (
    Scan,
    STMFileError,
    list_channels,
    load_all_scans,
    load_scan,
    save_result,
    save_scan,
)
from stm_zoo.io.results import result_channel, result_label


def restored_from(scan, history: str = "stm-zoo restore with restore/classical"):
    """A stand-in result: the image changed, its history extended, like the engine's."""
    result = scan.replace(data=scan.data * 0.5 + np.float32(1e-10))
    result.history.append(history)
    return result


def assert_channels_equal(written: dict, original: dict) -> None:
    for name, directions in original.items():
        for direction, plane in directions.items():
            assert np.array_equal(written[name][direction], plane, equal_nan=True), (
                name,
                direction,
            )


def test_label_and_channel_names():
    assert result_label("restore", "classical", "small") == "restore_classical"
    assert result_label("sr2", "fm", "large") == "sr2_fm-large"
    assert result_channel("Z", "restore_fm-small") == "Z_restore_fm-small"
    assert result_channel("OC D1 Phase", "sr4_ae-small") == "OC_D1_Phase_sr4_ae-small"


def test_sxm_result_keeps_every_channel_and_adds_the_restored_one(
    nanonis_files, tmp_path, sxm_reference
):
    for path in nanonis_files:
        source = load_scan(path, "Z", "backward")
        restored = restored_from(source)
        out = save_result(restored, tmp_path / path.name, label="restore_classical")[0]
        original = nanonispy2.read.Scan(str(path))
        written = sxm_reference(out)
        assert list(written.header["data_info"]["Name"]) == [
            *original.header["data_info"]["Name"],
            "Z_restore_classical",
        ]
        assert written.header["data_info"]["Direction"][-1] == "backward"
        assert_channels_equal(written.signals, original.signals)
        # stored in file order: backward mirrored back, up scans flipped back
        expected = restored.data[:, ::-1]
        expected = expected[::-1] if source.scan_dir == "up" else expected
        stored = written.signals["Z_restore_classical"]["backward"]
        assert np.array_equal(stored, expected, equal_nan=True)
        # every stm-zoo reader sees the same: complete channels, one direction for the new one
        channels = {c.name: c.directions for c in list_channels(out)}
        assert channels["Z_restore_classical"] == ("backward",)
        back = load_scan(out, "Z_restore_classical", "backward")
        assert np.array_equal(back.data, restored.data, equal_nan=True)
        assert back.history == restored.history
        assert load_scan(out, "Z", "backward").history == source.history
        assert "stm-zoo Z_restore_classical backward: stm-zoo restore" in written.header["comment"]


def test_sxm_replace_puts_the_result_in_place_of_its_channel(nanonis_files, tmp_path):
    path = nanonis_files[0]
    restored = restored_from(load_scan(path))
    out = save_result(restored, tmp_path / "r.sxm", label="restore_classical", replace=True)[0]
    original = nanonispy2.read.Scan(str(path))
    written = nanonispy2.read.Scan(str(out))  # every channel still holds both directions
    assert list(written.signals) == list(original.signals)
    for name, directions in original.signals.items():
        for direction, plane in directions.items():
            if (name, direction) != ("Z", "forward"):
                assert np.array_equal(written.signals[name][direction], plane, equal_nan=True)
    assert np.array_equal(load_scan(out).data, restored.data)
    assert load_scan(out).history == restored.history
    assert load_scan(out, "Z", "backward").history == []


def test_restored_block_of_an_aborted_scan_goes_back_on_its_lines(tmp_path, raw_sxm, sxm_reference):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(10, 8)).astype(np.float32)
    z[7:] = np.nan  # up scan aborted: the last stored lines were never scanned
    current = rng.normal(size=(10, 8)).astype(np.float32)
    path = raw_sxm(
        tmp_path / "aborted.sxm",
        [z, z, current, current],
        channels=[("Z", "m", "both"), ("Current", "A", "both")],
        scan_dir="up",
    )
    scan = load_scan(path)
    restored = restored_from(scan.crop_valid())  # what the engine returns: the valid block
    out = save_result(restored, tmp_path / "out.sxm", label="restore_classical")[0]
    written = sxm_reference(out)
    assert_channels_equal(written.signals, nanonispy2.read.Scan(str(path)).signals)
    back = load_scan(out, "Z_restore_classical")
    assert back.shape == scan.shape and back.scan_size_m == scan.scan_size_m
    assert back.valid_rows().tolist() == scan.valid_rows().tolist()
    assert np.array_equal(back.data[3:], restored.data)


def test_super_resolved_sxm_is_written_alone_and_gwy_keeps_everything(
    nanonis_files, tmp_path, caplog
):
    path = nanonis_files[0]
    scan = load_scan(path)
    sr = scan.replace(data=np.repeat(scan.data, 2, axis=0))
    sr.history.append("stm-zoo sr2 with sr2/classical")
    with caplog.at_level(logging.WARNING, logger="stm_zoo.io.results"):
        alone = save_result(sr, tmp_path / "sr.sxm", label="sr2_classical")[0]
    assert "one pixel grid" in caplog.text
    assert [(c.name, c.directions) for c in list_channels(alone)] == [
        ("Z_sr2_classical", ("forward",))
    ]
    assert load_scan(alone, "Z_sr2_classical").shape == (2 * scan.shape[0], scan.shape[1])

    out = save_result(sr, tmp_path / "sr.gwy", label="sr2_classical")[0]
    fields = gwyfile.util.get_datafields(gwyfile.load(str(out)))
    originals = load_all_scans(path)
    assert list(fields) == [
        *(f"{s.channel} ({s.direction.title()})" for s in originals),
        "Z_sr2_classical (Forward)",
    ]
    for s in originals:
        field = fields[f"{s.channel} ({s.direction.title()})"]
        assert np.array_equal(field.data, s.data.astype(np.float64), equal_nan=True)
    assert fields["Z_sr2_classical (Forward)"].data.shape == sr.shape
    assert load_scan(out, "Z_sr2_classical").history == sr.history


def test_gwy_source_is_copied_object_by_object(gwy_file, tmp_path):
    scan = load_scan(gwy_file)
    restored = restored_from(scan)
    out = save_result(restored, tmp_path / "out.gwy", label="restore_classical")[0]
    before, after = gwyfile.load(str(gwy_file)), gwyfile.load(str(out))
    for key, value in before.items():
        if key == "/0/data/visible":
            continue
        if key == "/0/data":
            assert np.array_equal(after[key].data, value.data)  # float64, bit for bit
        elif not hasattr(value, "data"):
            assert after[key] == value, key
    fields = gwyfile.util.get_datafields(after)
    assert list(fields) == ["Test", "Test_restore_classical (Forward)"]
    assert after["/1/data/visible"] and not after["/0/data/visible"]
    assert np.allclose(fields["Test_restore_classical (Forward)"].data, restored.data, rtol=1e-6)

    replaced = save_result(
        restored, tmp_path / "replaced.gwy", label="restore_classical", replace=True
    )[0]
    fields = gwyfile.util.get_datafields(gwyfile.load(str(replaced)))
    assert len(fields) == 1
    back = load_scan(replaced)
    assert np.array_equal(back.data, restored.data) and back.history == restored.history


def test_matrix_result_is_a_gwy_with_every_channel_read(matrix_file, tmp_path):
    originals = load_all_scans(matrix_file)
    assert len(originals) >= 2  # forward and backward of the Z file at least
    restored = restored_from(originals[1].crop_valid())
    out = save_result(restored, tmp_path / "m.gwy", label="restore_classical")[0]
    fields = gwyfile.util.get_datafields(gwyfile.load(str(out)))
    assert len(fields) == len(originals) + 1
    again = load_all_scans(out)
    for before, after in zip(originals, again, strict=False):
        assert (after.channel, after.direction, after.scan_dir) == (
            before.channel,
            before.direction,
            before.scan_dir,
        )
        assert np.array_equal(after.data, before.data, equal_nan=True)
    new = again[-1]
    assert new.channel == f"{restored.channel}_restore_classical"
    assert new.shape == originals[1].shape


def test_sxm_cannot_mix_grids_of_a_source(tmp_path):
    a = save_scan(
        [
            load_scan(save_scan(_scan((4, 6)), tmp_path / "a.gwy")),
            _scan((5, 6), "Current", "A"),
        ],
        tmp_path / "two.gwy",
    )
    restored = restored_from(load_scan(a))
    with pytest.raises(STMFileError, match="one pixel grid.*write .gwy"):
        save_result(restored, tmp_path / "x.sxm", label="restore_classical")


def test_single_image_formats_get_the_result_and_a_std_file(nanonis_files, tmp_path):
    restored = restored_from(load_scan(nanonis_files[0]))
    std = np.full(restored.shape, 1e-12, np.float32)
    written = save_result(restored, tmp_path / "r.npy", label="x", std=std)
    assert [p.name for p in written] == ["r.npy", "r_std.npy"]
    assert np.array_equal(np.load(written[0]), restored.data)
    out = save_result(restored, tmp_path / "r.gwy", label="restore_classical", std=std)[0]
    assert np.allclose(load_scan(out, "Z_restore_classical_std").data, std)


def _scan(shape: tuple[int, int], channel: str = "Z", unit: str = "m"):
    from stm_zoo.io import Scan

    data = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape) * 1e-11
    return Scan(data, unit=unit, channel=channel, scan_size_m=(6e-9, shape[0] * 1e-9))


# The engine and the writer agree on which lines a result covers (found in review).


def _two_channel_sxm(path, z: np.ndarray) -> None:
    current = np.random.default_rng(1).normal(size=z.shape).astype(np.float32) * 1e-10
    size = (12.5e-9, 12.5e-9 * z.shape[0] / z.shape[1])
    save_scan(
        [Scan(z, channel="Z", scan_size_m=size), Scan(current, "A", "Current", scan_size_m=size)],
        path,
    )


def _surface(shape) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]]
    rng = np.random.default_rng(0)
    return ((0.03 * np.cos(x / 0.63) + 0.01 * rng.standard_normal(shape)) * 1e-9).astype("f4")


def test_super_resolving_a_scan_with_a_dead_column_writes_everything(tmp_path):
    """No line is complete (one NaN column): restore inpaints it; the writer must not need one."""
    from stm_zoo.__main__ import main

    z = _surface((64, 128))
    z[:, 10] = np.nan
    _two_channel_sxm(tmp_path / "c.sxm", z)
    args = ["restore", str(tmp_path / "c.sxm"), "--task", "sr2", "--model", "classical"]
    assert main([*args, "--format", "gwy", "-o", str(tmp_path / "out")]) == 0
    (written,) = (tmp_path / "out").glob("*.gwy")
    channels = {s.channel for s in load_all_scans(written)}
    assert {"Z", "Current", "Z_sr2_classical"} <= channels


def test_an_aborted_scan_keeps_its_other_channels_when_the_last_line_is_mostly_done(tmp_path):
    """The engine keeps a line with up to half its pixels missing; the writer follows it."""
    from stm_zoo.__main__ import main

    z = _surface((64, 64))
    z[40:] = np.nan
    z[39, 45:] = np.nan  # the last line is 70 % done: kept (and inpainted) by the engine
    _two_channel_sxm(tmp_path / "a.sxm", z)
    assert (
        main(
            ["restore", str(tmp_path / "a.sxm"), "--model", "classical", "-o", str(tmp_path / "o")]
        )
        == 0
    )
    (written,) = (tmp_path / "o").glob("*.sxm")
    scans = {s.channel: s for s in load_all_scans(written)}
    assert {"Z", "Current", "Z_restore_classical"} <= set(scans)
    result = scans["Z_restore_classical"].data
    assert np.isfinite(result[:40]).all() and np.isnan(result[40:]).all()


def test_a_sizeless_sr_result_and_its_input_share_one_frame(tmp_path):
    """A size-less input is read as a k times faster scan by `restore` and by the writer."""
    from stm_zoo.__main__ import main

    np.save(tmp_path / "low.npy", _surface((64, 128)))
    args = ["restore", str(tmp_path / "low.npy"), "--task", "sr2", "--model", "classical"]
    assert main([*args, "--format", "gwy", "-o", str(tmp_path / "o")]) == 0
    (written,) = (tmp_path / "o").glob("*.gwy")
    frames = {s.channel: s.scan_size_m for s in load_all_scans(written)}
    assert len(set(frames.values())) == 1, frames
    width, height = next(iter(frames.values()))
    assert height == pytest.approx(width)  # 64 lines twice as far apart as 128 square pixels

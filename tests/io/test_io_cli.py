"""`python -m stm_zoo info` and `convert` on every fixture."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stm_zoo.__main__ import main
from stm_zoo.io import list_channels, load_scan, scan_info, sxm
from stm_zoo.io.cli_info import format_si

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def all_fixtures(fixtures_dir: Path) -> list[Path]:
    files = sorted(p for p in fixtures_dir.rglob("*") if p.is_file() and p.suffix != ".mtrx")
    assert len(files) == 6, files  # four .sxm, the MATRIX data file, the .gwy
    return files


def test_info_table_and_json_on_every_fixture(all_fixtures, capsys):
    for path in all_fixtures:
        assert main(["info", str(path)]) == 0
        table = capsys.readouterr().out
        info = scan_info(path)
        h, w = info["shape"]
        assert f"{h} lines x {w} px" in table and path.name in table
        assert main(["info", str(path), "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads(json.dumps(info))
        scan = load_scan(path, info["channel"])
        assert printed["shape"] == list(scan.shape)
        assert printed["scan_size_nm"] == pytest.approx([v * 1e9 for v in scan.scan_size_m])
        assert printed["pixel_size_nm"] == pytest.approx([v * 1e9 for v in scan.pixel_size_m])
        assert [c["name"] for c in printed["channels"]] == [c.name for c in list_channels(path)]


def test_info_values_for_known_files(fixtures_dir):
    topo = scan_info(fixtures_dir / "nanonis" / "example_TOPO.sxm")
    assert topo["scan_size_nm"] == [5.0, 5.0] and topo["bias_v"] == -0.02
    assert topo["setpoint_a"] == 5e-11 and topo["directions"] == ["forward", "backward"]
    matrix = scan_info(fixtures_dir / "matrix" / "20201111--4_1.Z_mtrx")
    assert matrix["shape"] == [400, 400] and matrix["scan_size_nm"] == [100.0, 100.0]
    assert matrix["pixel_size_nm"] == [0.25, 0.25] and matrix["valid_lines"] == 400
    assert format_si(matrix["setpoint_a"], "A") == "300 pA"
    assert format_si(-0.02, "V") == "-20 mV" and format_si(None, "V") == "unknown"


def test_info_runs_as_a_module(fixtures_dir):
    path = fixtures_dir / "nanonis" / "Si_7x7_012.sxm"
    done = subprocess.run(
        [sys.executable, "-m", "stm_zoo", "info", str(path), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scan_size_nm"] == [200.0, 200.0]


@pytest.mark.parametrize("suffix", [".sxm", ".gwy", ".png", ".tif", ".npy"])
def test_convert_every_fixture_reloads_identically(
    all_fixtures, tmp_path, same_scan, suffix, capsys
):
    for path in all_fixtures:
        out = tmp_path / f"{path.stem}{suffix}"
        assert main(["convert", str(path), str(out)]) == 0
        assert f"wrote {out}" in capsys.readouterr().out
        if suffix in (".sxm", ".gwy"):  # every channel and direction
            pairs = [(c.name, d) for c in list_channels(path) for d in c.directions]
        else:
            pairs = [("Z", "forward")]
        for channel, direction in pairs:
            original = load_scan(path, channel, direction)
            again = load_scan(out, channel, direction)
            if suffix == ".npy":  # data only
                assert np.array_equal(again.data, original.data, equal_nan=True)
            elif suffix == ".png":
                finite = original.data[np.isfinite(original.data)]
                step = float(np.ptp(finite)) / 65535
                ulp = float(np.spacing(np.abs(finite).max()))  # float32 rounding on top
                same_scan(again, original, atol=0.5 * step + 2 * ulp)
            else:
                same_scan(again, original.replace(channel=again.channel))
                assert again.channel.replace("_", " ") == original.channel.replace("_", " ")


def test_convert_options_and_mistakes(fixtures_dir, tmp_path, capsys):
    source = fixtures_dir / "nanonis" / "example_TOPO.sxm"
    out = tmp_path / "current.gwy"
    assert main(["convert", str(source), str(out), "--channel", "current"]) == 0
    assert [(c.name, c.directions) for c in list_channels(out)] == [
        ("Current", ("forward", "backward"))
    ]
    assert main(["convert", str(source), str(tmp_path / "b.tif"), "--direction", "backward"]) == 0
    assert load_scan(tmp_path / "b.tif").direction == "backward"
    assert main(["convert", str(source), str(tmp_path / "z8.png"), "--bit-depth", "8"]) == 0
    capsys.readouterr()
    assert main(["convert", str(source), str(source)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert main(["convert", str(source), str(tmp_path / "x.jpg")]) == 2
    assert "writes .sxm, .gwy" in capsys.readouterr().err
    assert main(["convert", str(source), str(tmp_path / "x.gwy"), "--channel", "phase"]) == 2
    assert "holds Z: forward, backward" in capsys.readouterr().err
    size_given = tmp_path / "sized.gwy"
    gwy = fixtures_dir / "gwyddion" / "test.gwy"
    assert main(["convert", str(gwy), str(size_given), "--scan-size-nm", "64", "32"]) == 0
    assert load_scan(size_given).scan_size_m == pytest.approx((64e-9, 32e-9))


def test_convert_is_linear_in_the_channel_count(tmp_path, raw_sxm, monkeypatch, capsys):
    """Issue 13 (6c): 10,000 channels once took over a minute (the file was parsed per image)."""
    parses = []
    read_header = sxm.read_header
    monkeypatch.setattr(sxm, "read_header", lambda path: parses.append(path) or read_header(path))

    def convert(n: int) -> tuple[float, int]:
        """Seconds for .sxm -> .gwy -> .sxm with n channels; the size of the .gwy."""
        channels = [(f"Ch{i}", "V", "both") for i in range(n)]
        planes = [np.full((2, 2), i, np.float32) for i in range(2 * n)]
        source = raw_sxm(tmp_path / f"many{n}.sxm", planes, channels=channels)
        best = float("inf")
        for _ in range(2):
            parses.clear()
            start = time.perf_counter()
            assert main(["convert", str(source), str(tmp_path / f"many{n}.gwy")]) == 0
            assert main(["convert", str(tmp_path / f"many{n}.gwy"), str(tmp_path / "b.sxm")]) == 0
            best = min(best, time.perf_counter() - start)
            assert len(parses) == 2  # list_channels, then one read for all the images
        assert "images in all" in capsys.readouterr().out  # the summary line stays short
        again = load_scan(tmp_path / "b.sxm", f"Ch{n - 1}", "backward")
        assert np.array_equal(again.data, planes[-1][:, ::-1])
        return best, (tmp_path / f"many{n}.gwy").stat().st_size

    small_s, small_bytes = convert(500)
    large_s, large_bytes = convert(2500)
    assert large_bytes < 5.5 * small_bytes  # the shared .sxm header is stored once
    assert large_s < 10 * small_s + 0.5  # linear: 5x (quadratic was 25x)
    assert large_s < 10

"""`python -m stm_zoo restore`: result names, mirrored folders, --overwrite, --replace, every
channel kept (checked with nanonispy2), batches that go on past bad files, exit codes."""

from __future__ import annotations

from pathlib import Path

import nanonispy2
import numpy as np
import pytest

from stm_zoo.__main__ import main
from stm_zoo.io import list_channels, load_scan

CLASSICAL = ["--model", "classical", "--device", "cpu"]


@pytest.fixture
def two_channel_sxm(raw_sxm):
    """A 64 x 64 Z + Current .sxm at the models' 0.1953 nm/px (no resampling), both directions."""

    def build(path: Path, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        planes = [rng.normal(scale=1e-10, size=(64, 64)).astype(np.float32) for _ in range(4)]
        path.parent.mkdir(parents=True, exist_ok=True)
        return raw_sxm(
            path,
            planes,
            channels=[("Z", "m", "both"), ("Current", "A", "both")],
            scan_range="1.25E-8 1.25E-8",
        )

    return build


def restore(*args: str | Path) -> int:
    return main(["restore", *map(str, args), *CLASSICAL])


def test_results_mirror_folders_and_keep_every_channel(
    tmp_path, two_channel_sxm, sxm_reference, capsys
):
    a = two_channel_sxm(tmp_path / "in" / "a" / "scan.sxm", seed=1)
    b = two_channel_sxm(tmp_path / "in" / "b" / "deeper" / "scan.sxm", seed=2)
    out = tmp_path / "out"
    assert restore(tmp_path / "in", "-o", out) == 0
    assert "2 done, 0 failed" in capsys.readouterr().err
    results = {
        a: out / "a" / "scan_Z-forward_restore.sxm",
        b: out / "b" / "deeper" / "scan_Z-forward_restore.sxm",
    }
    for source, result in results.items():
        original, written = nanonispy2.read.Scan(str(source)), sxm_reference(result)
        for name, directions in original.signals.items():
            for direction, plane in directions.items():
                assert np.array_equal(written.signals[name][direction], plane), (name, direction)
        assert list(written.signals) == ["Z", "Current", "Z_restore_classical"]
        channels = {c.name: c.directions for c in list_channels(result)}
        assert channels["Z_restore_classical"] == ("forward",)
        restored = load_scan(result, "Z_restore_classical")
        assert restored.shape == (64, 64)
        assert "stm-zoo restore with restore/classical" in restored.history[-1]
        assert "Z_restore_classical forward: stm-zoo restore" in written.header["comment"]


def test_real_scan_keeps_every_channel(fixtures_dir, tmp_path, sxm_reference):
    source = fixtures_dir / "nanonis" / "Si_7x7_012.sxm"
    out = tmp_path / "out"
    assert restore(source, "--direction", "backward", "-o", out) == 0
    written = sxm_reference(out / "Si_7x7_012_Z-backward_restore.sxm")
    for name, directions in nanonispy2.read.Scan(str(source)).signals.items():
        for direction, plane in directions.items():
            assert np.array_equal(written.signals[name][direction], plane, equal_nan=True)
    assert list(written.signals["Z_restore_classical"]) == ["backward"]


def test_replace_puts_the_result_in_place_of_its_channel(tmp_path, two_channel_sxm):
    source = two_channel_sxm(tmp_path / "scan.sxm")
    assert restore(source, "--replace", "-o", tmp_path / "out") == 0
    result = tmp_path / "out" / "scan_Z-forward_restore.sxm"
    original, written = nanonispy2.read.Scan(str(source)), nanonispy2.read.Scan(str(result))
    assert list(written.signals) == ["Z", "Current"]
    assert np.array_equal(written.signals["Z"]["backward"], original.signals["Z"]["backward"])
    assert np.array_equal(
        written.signals["Current"]["forward"], original.signals["Current"]["forward"]
    )
    assert not np.array_equal(written.signals["Z"]["forward"], original.signals["Z"]["forward"])
    assert "restore/classical" in load_scan(result).history[-1]


def test_existing_results_are_kept_unless_overwrite(tmp_path, two_channel_sxm, capsys):
    source = two_channel_sxm(tmp_path / "scan.sxm")
    out = tmp_path / "out"
    assert restore(source, "-o", out) == 0
    result = out / "scan_Z-forward_restore.sxm"
    before = result.read_bytes()
    capsys.readouterr()
    assert restore(source, "-o", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists: pass --overwrite" in err[0]
    assert result.read_bytes() == before
    assert restore(source, "-o", out, "--overwrite") == 0


def test_two_channels_of_one_file_do_not_collide(tmp_path, two_channel_sxm):
    source = two_channel_sxm(tmp_path / "scan.sxm")
    out = tmp_path / "out"
    assert restore(source, "-o", out) == 0
    assert restore(source, "--channel", "current", "-o", out) == 0
    assert restore(source, "--direction", "backward", "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "scan_Current-forward_restore.sxm",
        "scan_Z-backward_restore.sxm",
        "scan_Z-forward_restore.sxm",
    ]
    added = load_scan(out / "scan_Current-forward_restore.sxm", "Current_restore_classical")
    assert added.unit == "A"


def test_equal_names_given_as_files_are_refused_before_any_work(tmp_path, two_channel_sxm, capsys):
    a = two_channel_sxm(tmp_path / "a" / "scan.sxm")
    b = two_channel_sxm(tmp_path / "b" / "scan.sxm")
    assert restore(a, b, "-o", tmp_path / "out") == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_goes_on_past_bad_files_and_ends_with_a_summary(
    tmp_path, two_channel_sxm, capsys, monkeypatch
):
    import stm_zoo.pipeline

    folder = tmp_path / "in"
    two_channel_sxm(folder / "good.sxm")
    two_channel_sxm(folder / "huge.sxm")
    (folder / "broken.sxm").write_text("not a scan")
    engine = stm_zoo.pipeline.restore

    def restore_or_run_out_of_memory(scan, *args, **kwargs):
        if scan.source.name == "huge.sxm":
            raise MemoryError
        return engine(scan, *args, **kwargs)

    monkeypatch.setattr(stm_zoo.pipeline, "restore", restore_or_run_out_of_memory)
    assert restore(folder, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    summary = err[err.index("1 done, 2 failed") :].splitlines()
    assert summary[0] == "1 done, 2 failed"
    assert summary[1].startswith(f"  {folder / 'broken.sxm'}: is not a Nanonis .sxm file")
    assert summary[2].startswith(f"  {folder / 'huge.sxm'}: out of memory")
    assert (tmp_path / "out" / "good_Z-forward_restore.sxm").is_file()


def test_exit_code_2_when_every_file_fails_with_a_user_error(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.sxm").write_text("not a scan")
    (folder / "two.gwy").write_bytes(b"GWYPbroken")
    assert restore(folder, "-o", tmp_path / "out") == 2
    assert "0 done, 2 failed" in capsys.readouterr().err
    assert restore(folder / "one.sxm", "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: one.sxm: is not a Nanonis .sxm file (it does not start with ':NANONIS_VERSION:')."
    ]


@pytest.mark.parametrize(
    "option, message",
    [(["--steps", "0"], "steps"), (["--samples", "0"], "samples"), (["--dtype", "fp8"], "dtype")],
)
def test_bad_options_exit_2_with_one_sentence(tmp_path, two_channel_sxm, capsys, option, message):
    source = two_channel_sxm(tmp_path / "scan.sxm")
    assert restore(source, "-o", tmp_path / "out", *option) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}")


def test_results_inside_an_input_folder_are_not_restored_again(tmp_path):
    """`restore data -o data/out` twice: the second run does not take the first run's results."""
    from stm_zoo.__main__ import main

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "scan.npy", np.random.default_rng(0).normal(size=(64, 64)).astype("f4"))
    out = data / "out"
    for _ in range(2):
        assert (
            main(["restore", str(data), "--model", "classical", "-o", str(out), "--overwrite"]) == 0
        )
    assert sorted(p.name for p in out.rglob("*.npy")) == ["scan_Z-forward_restore.npy"]

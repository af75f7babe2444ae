"""The inference engine end to end: exact tiling, SR shapes, pixel size, uncertainty, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stm_zoo.entry_format import EntryConfig
from stm_zoo.io import Scan, load_scan, save_scan
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.pipeline import restore
from stm_zoo.restore_cli import collect_inputs, output_path
from stm_zoo.zoo import LoadedModel

TINY = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4)


class IdentityNet(nn.Module):
    """Returns the conditioning image: the 'model' of the exactness tests."""

    def forward(self, x: torch.Tensor | None, t: object, cond: torch.Tensor) -> torch.Tensor:
        return cond


def identity_model(task: str = "restore") -> LoadedModel:
    factor = {"restore": 1, "sr2": 2, "sr4": 4}[task]
    config = EntryConfig(task, "ae", "large", UNetConfig.autoencoder(), sr_factor=factor)
    return LoadedModel(config, IdentityNet(), "cpu", "float32", "test")


def tiny_fm(task: str = "restore") -> LoadedModel:
    torch.manual_seed(0)
    net = UNet(TINY).eval()
    for p in net.out_conv.parameters():  # zero-initialised by design: make outputs depend on it
        nn.init.normal_(p, std=0.05)
    factor = {"restore": 1, "sr2": 2, "sr4": 4}[task]
    config = EntryConfig(task, "fm", "small", TINY, sr_factor=factor)
    return LoadedModel(config, net, "cpu", "float32", "test")


def lattice(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (np.sin(2 * np.pi * x / 3.9) * 0.03 + 0.002 * y + rng.normal(0, 0.005, shape)) * 1e-9


def scan_at_model_pitch(data: np.ndarray) -> Scan:
    pitch = 100e-9 / 512
    return Scan(data.astype(np.float32), scan_size_m=(data.shape[1] * pitch, data.shape[0] * pitch))


@pytest.mark.parametrize("shape", [(128, 128), (256, 256), (200, 333), (90, 150)])
def test_identity_model_reproduces_the_scan(shape: tuple[int, int]) -> None:
    scan = scan_at_model_pitch(lattice(shape))
    result = restore(scan, model=identity_model(), steps=1)
    assert result.scan.shape == shape
    np.testing.assert_allclose(result.scan.data, scan.data, rtol=0, atol=1e-6 * np.ptp(scan.data))
    assert result.scan.scan_size_m == scan.scan_size_m
    assert "stm-zoo restore" in result.scan.history[-1]


@pytest.mark.parametrize(("task", "factor"), [("sr2", 2), ("sr4", 4)])
def test_super_resolution_shape_metadata_and_measured_lines(task: str, factor: int) -> None:
    full = lattice((256, 192))
    measured = full[::factor]
    pitch = 100e-9 / 512
    scan = Scan(measured, scan_size_m=(192 * pitch, 256 * pitch), bias_v=-2.0, setpoint_a=3e-11)
    result = restore(scan, task=task, model=tiny_fm(task), steps=1, seed=0, keep_measured=True)
    out = result.scan
    assert out.shape == (256, 192)
    assert out.scan_size_m == scan.scan_size_m and out.bias_v == -2.0 and out.setpoint_a == 3e-11
    np.testing.assert_array_equal(out.data[::factor], scan.data)
    assert "measured lines kept" in out.history[-1]


def test_inputs_at_another_pixel_size_come_back_on_their_grid() -> None:
    data = lattice((160, 160))
    scan = Scan(data, scan_size_m=(160 * 0.1e-9, 160 * 0.1e-9))  # 0.1 nm/px, half the model's
    result = restore(scan, model=identity_model(), steps=1)
    assert result.scan.shape == (160, 160)
    # resampled to the model's pitch and back: smooth content survives
    err = np.abs(result.scan.data - data).mean() / np.ptp(data)
    assert err < 0.05


def test_no_seam_at_tile_borders_on_a_real_scan(fixtures_dir: Path) -> None:
    scan = load_scan(fixtures_dir / "nanonis" / "Si_7x7_012.sxm")
    scan = scan_at_model_pitch(scan.crop_valid().data.astype(np.float64))
    out = restore(scan, model=tiny_fm(), steps=1, seed=0).scan.data.astype(np.float64)
    jumps = np.abs(np.diff(out, axis=0)).mean(axis=1)
    # tile starts for 256 px with tile 128, overlap 32: 0, 64, 128 -> borders at 127/128, 191/192
    border = jumps[[127, 191]].mean()
    assert border < 2.0 * np.median(jumps)


def test_samples_give_an_uncertainty_map() -> None:
    scan = scan_at_model_pitch(lattice((128, 128)))
    result = restore(scan, model=tiny_fm(), steps=1, seed=3, samples=3)
    assert result.std is not None and result.std.shape == scan.shape
    assert (result.std >= 0).all() and result.std.max() > 0
    assert result.samples is not None and result.samples.shape == (3, 128, 128)
    np.testing.assert_allclose(result.scan.data, result.samples.mean(axis=0), rtol=1e-5, atol=1e-15)
    again = restore(scan, model=tiny_fm(), steps=1, seed=3, samples=3)
    np.testing.assert_array_equal(again.scan.data, result.scan.data)


def test_plain_arrays_get_the_paper_pitch() -> None:
    data = lattice((96, 160)).astype(np.float32)
    result = restore(data, model=identity_model(), steps=1)
    assert result.scan.shape == (96, 160)
    assert result.scan.pixel_size_m[0] == pytest.approx(100e-9 / 512)
    assert result.scan.pixel_size_assumed


def test_classical_family_needs_no_weights() -> None:
    scan = scan_at_model_pitch(lattice((128, 150)))
    result = restore(scan, task="sr2", family="classical")
    assert result.scan.shape == (256, 150)


def test_bad_options_are_clear_errors() -> None:
    from stm_zoo.errors import StmZooError

    scan = scan_at_model_pitch(lattice((64, 64)))
    with pytest.raises(StmZooError, match="steps"):
        restore(scan, model=identity_model(), steps=0)
    with pytest.raises(StmZooError, match="task"):
        restore(scan, task="sr3", model=identity_model())
    with pytest.raises(StmZooError, match="for task restore"):
        restore(scan, task="sr2", model=identity_model("restore"))


def test_cli_restores_a_folder_and_reports_failures(tmp_path: Path, capsys) -> None:
    from stm_zoo.__main__ import main

    src = tmp_path / "in"
    src.mkdir()
    save_scan(scan_at_model_pitch(lattice((128, 128))), src / "a.gwy")
    np.save(src / "b.npy", lattice((64, 96)).astype(np.float32))
    (src / "broken.sxm").write_text("not a scan")
    assert sorted(p.name for p in collect_inputs([src])) == ["a.gwy", "b.npy", "broken.sxm"]
    code = main(
        ["restore", str(src), "--model", "classical", "--task", "sr2", "-o", str(tmp_path / "out")]
    )
    assert code == 1  # some files done, one failed
    assert "2 done, 1 failed" in capsys.readouterr().err
    restored = load_scan(tmp_path / "out" / "a_Z-forward_sr2.gwy", "Z_sr2_classical")
    assert restored.shape == (256, 128)
    assert load_scan(tmp_path / "out" / "a_Z-forward_sr2.gwy").shape == (128, 128)  # the input
    assert load_scan(tmp_path / "out" / "b_Z-forward_sr2.npy").shape == (128, 96)
    mtrx = output_path(Path("x.Z_mtrx"), tmp_path, "Z", "forward", "restore", None)
    assert mtrx.name == "x_Z-forward_restore.gwy"

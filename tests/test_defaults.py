"""The default model is the best measured entry that beats classical; the UI warns otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from stm_zoo.entry_format import EntryConfig, write_entry
from stm_zoo.nn import UNetConfig
from stm_zoo.zoo import default_model, real_scan_verdict, synthetic_score
from webapp import models as app_models
from webapp.status import model_status

# A tiny 2-level network.
NET = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), norm_groups=4, time_scale=1.0)


def entry(
    root: Path,
    task: str,
    family: str,
    size: str,
    psnr: float,
    ssim: float,
    classical: tuple[float, float] | None = (23.0, 0.5),
    reference: dict | None = None,
) -> None:
    from stm_zoo.nn import UNet

    test = {
        "psnr_2steps": psnr - 1,
        "ssim_2steps": ssim - 0.1,
        "psnr_5steps": psnr,
        "ssim_5steps": ssim,
        "input_psnr": 21.0,
        "input_ssim": 0.47,
    }
    if classical is not None:
        test.update({"classical_psnr": classical[0], "classical_ssim": classical[1]})
    config = EntryConfig(
        task,
        family,
        size,
        NET,
        metrics={"test": test, **({"reference": reference} if reference else {})},
        sr_factor={"restore": 1, "sr2": 2, "sr4": 4}[task],
    )
    net = UNet(NET)
    write_entry(root / task / f"{family}-{size}", config, net.state_dict(), "card", "float32")


def test_score_takes_the_best_step_count(tmp_path: Path) -> None:
    entry(tmp_path, "restore", "fm", "small", 26.0, 0.7)
    config = EntryConfig.from_file(tmp_path / "restore/fm-small/config.json")
    score = synthetic_score(config)
    assert (score.psnr, score.ssim, score.label) == (26.0, 0.7, "5steps")
    assert score.beats_classical


def test_default_is_the_best_entry_that_beats_classical(tmp_path: Path) -> None:
    entry(tmp_path, "restore", "fm", "small", 26.0, 0.7)
    entry(tmp_path, "restore", "ddim", "small", 27.0, 0.72)
    entry(tmp_path, "restore", "fm", "large", 30.0, 0.45)  # best PSNR, but SSIM below classical
    entry(tmp_path, "sr2", "fm", "small", 22.0, 0.6)  # below classical
    entry(tmp_path, "sr4", "fm", "small", 40.0, 0.9, classical=None)  # never compared
    assert default_model("restore", tmp_path) == ("ddim", "small")
    assert default_model("sr2", tmp_path) == ("classical", "small")
    assert default_model("sr4", tmp_path) == ("classical", "small")


def test_default_ignores_cards_without_weights(tmp_path: Path) -> None:
    entry(tmp_path, "restore", "fm", "small", 26.0, 0.7)
    (tmp_path / "restore/fm-small/model.safetensors").unlink()
    assert default_model("restore", tmp_path) == ("classical", "small")


def test_ui_says_when_an_entry_does_not_beat_classical(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path))
    entry(tmp_path, "sr2", "fm", "small", 22.0, 0.6)
    entry(tmp_path, "restore", "fm", "small", 26.0, 0.7)
    assert "does **not** beat the classical baseline" in model_status("sr2", "fm", "small")
    good = model_status("restore", "fm", "small")
    assert "not" not in good and "classical 23.0 dB" in good
    assert app_models.default_model("restore") == ("fm", "small")


def test_default_is_never_worse_than_classical_on_the_real_scan(tmp_path: Path) -> None:
    """The real-scan check of the card rules an entry out: an SR entry below classical on the
    real every-k-th-line input, a restore entry that fails do-no-harm."""
    real_loss = {"psnr_db_2steps": 32.4, "psnr_db_5steps": 32.0, "classical_psnr_db": 35.6}
    real_win = {"psnr_db_2steps": 31.9, "classical_psnr_db": 29.2}
    entry(tmp_path, "sr2", "ddim", "small", 27.0, 0.72, reference=real_loss)
    entry(tmp_path, "sr4", "ddim", "small", 27.0, 0.72, reference=real_win)
    entry(tmp_path, "restore", "fm", "small", 30.0, 0.8, reference={"passed": False})
    entry(tmp_path, "restore", "ddim", "small", 27.0, 0.72, reference={"passed": True})
    assert default_model("sr2", tmp_path) == ("classical", "small")
    assert default_model("sr4", tmp_path) == ("ddim", "small")
    assert default_model("restore", tmp_path) == ("ddim", "small")
    config = EntryConfig.from_file(tmp_path / "sr2/ddim-small/config.json")
    assert real_scan_verdict(config) == "is below classical on a real scan (32.4 vs 35.6 dB)"


def test_ui_says_when_an_entry_loses_to_classical_on_the_real_scan(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path))
    real_loss = {"psnr_db_2steps": 32.4, "classical_psnr_db": 35.6}
    entry(tmp_path, "sr2", "ddim", "small", 27.0, 0.72, reference=real_loss)
    entry(tmp_path, "sr4", "ddim", "small", 27.0, 0.72)
    assert "it is below classical on a real scan (32.4 vs 35.6 dB), so" in model_status(
        "sr2", "ddim", "small"
    )
    assert "real scan" not in model_status("sr4", "ddim", "small")


@pytest.mark.parametrize("task", ["restore", "sr2", "sr4"])
def test_bundled_zoo_defaults_beat_classical_or_are_classical(task: str) -> None:
    family, size = default_model(task)
    if family != "classical":
        config = EntryConfig.from_file(Path("zoo") / task / f"{family}-{size}" / "config.json")
        assert synthetic_score(config).beats_classical
        assert real_scan_verdict(config) is None


def test_cli_without_model_uses_the_default(tmp_path: Path, monkeypatch, capsys) -> None:
    """No --model: the best measured entry; here no entry beats classical, so classical runs."""
    import numpy as np

    from stm_zoo.__main__ import main

    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path / "zoo"))
    entry(tmp_path / "zoo", "restore", "fm", "small", 22.0, 0.45)  # worse than classical
    np.save(tmp_path / "scan.npy", np.random.default_rng(0).normal(size=(64, 64)).astype("f4"))
    assert main(["restore", str(tmp_path / "scan.npy"), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "restore/classical" in captured.out + captured.err

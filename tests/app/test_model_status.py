"""What the app says under the model picker before a run (issue 15): measured quality as a gain
over the degraded input, training domain and training budget, all from the entry's card."""

from __future__ import annotations

from pathlib import Path

import pytest

from stm_zoo.entry_format import EntryConfig, write_entry
from stm_zoo.nn import UNetConfig
from stm_zoo.zoo import REPO_ZOO_DIR
from webapp.status import model_status

# A tiny 2-level network.
NET = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), norm_groups=4, time_scale=1.0)
TRAINING = {
    "steps": 3304,
    "batch": 32,
    "samples_seen": 105728,
    "wall_time_h": 1.007,
    "device": "cuda (NVIDIA H100) x 1",
    "data": {"samples": {"train": 20000}, "scans": {"train": 36}},
}


def entry(root: Path, task: str, psnr: float, ssim: float, training: dict | None = None) -> None:
    from stm_zoo.nn import UNet

    test = {
        "psnr_2steps": psnr,
        "ssim_2steps": ssim,
        "input_psnr": 20.8,
        "input_ssim": 0.48,
        "classical_psnr": 23.6,
        "classical_ssim": 0.513,
        "images": 100,
    }
    config = EntryConfig(
        task,
        "fm",
        "small",
        NET,
        training=TRAINING if training is None else training,
        metrics={"test": test},
        sr_factor={"restore": 1, "sr2": 2, "sr4": 4}[task],
    )
    net = UNet(NET)
    write_entry(root / task / "fm-small", config, net.state_dict(), "card", "float32")


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path))
    return tmp_path


def test_the_picker_states_gain_domain_and_budget(zoo: Path) -> None:
    entry(zoo, "restore", 24.5, 0.53)
    status = model_status("restore", "fm", "small")
    assert status.startswith("✅ `restore/fm-small` is available (local zoo).")
    assert (
        "Expected quality on the synthetic test set (100 images, 2 steps): **+3.7 dB PSNR, "
        "+0.050 SSIM over the degraded input** (PSNR 24.5 dB, SSIM 0.530; classical 23.6 dB, "
        "0.513)." in status
    )
    assert "Below classical" not in status
    assert (
        "Trained on: simulated Si(001):H (dimer rows 0.77 nm apart) at 0.1953 nm/px, 128 × 128 px "
        "tiles (25 nm), 20,000 training pairs from 36 scans." in status
    )
    assert (
        "Training budget: 3,304 steps (batch 32), 105,728 samples seen, 1.01 h on cuda (NVIDIA "
        "H100) x 1." in status
    )


def test_the_picker_says_below_classical(zoo: Path) -> None:
    entry(zoo, "sr2", 23.4, 0.496)
    status = model_status("sr2", "fm", "small")
    assert "**+2.6 dB PSNR, +0.016 SSIM over the degraded input**" in status
    assert "⚠️ **Below classical**: it does **not** beat the classical baseline" in status
    assert "1 in 2 lines measured" in status


def test_a_card_without_a_budget_says_so(zoo: Path) -> None:
    entry(zoo, "restore", 24.5, 0.53, training={})
    assert "Training budget: unrecorded on its card." in model_status("restore", "fm", "small")


@pytest.mark.parametrize("task", ["restore", "sr2", "sr4"])
def test_bundled_entries_show_their_card_facts(task: str, monkeypatch) -> None:
    monkeypatch.setenv("STM_ZOO_DIR", str(REPO_ZOO_DIR))
    if not (REPO_ZOO_DIR / task / "fm-small" / "config.json").is_file():
        pytest.skip(f"{task}/fm-small is not in the bundled zoo")
    status = model_status(task, "fm", "small")
    assert "SSIM over the degraded input" in status
    assert "Trained on: simulated Si(001):H" in status and "Training budget: " in status

"""`python -m evaluation synthetic|experimental|timing` on a tiny random-init zoo and tiny data:
tables, CSV, JSON, plots, the degraded and classical rows, model cards, KID with real weights."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from evaluation.__main__ import main as evaluation_main
from stm_zoo.cards import entry_card
from stm_zoo.entry_format import CARD_NAME, CONFIG_NAME, EntryConfig, write_entry
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.registry import SR_FACTOR
from training.datasets import ShardDataset
from training.shards import build_dataset
from training.sources import PristineSource

TINY = {
    "channels": (8, 16, 16),
    "blocks_per_level": (1, 1, 1),
    "middle_blocks": 1,
    "norm_groups": 8,
}
ENTRIES = {
    # (family, size): the tiny network standing in for the preset
    ("fm", "small"): UNetConfig(**TINY, time_scale=1000.0),
    ("ae", "large"): UNetConfig(
        **TINY, in_channels=1, time_conditioning=False, attention=True, attention_heads=2
    ),
    ("ddim", "small"): UNetConfig(**TINY, time_scale=1.0),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_zoo(root: Path, task: str, families: list[tuple[str, str]]) -> Path:
    """Random-init entries; the output layer is re-drawn so outputs depend on the input."""
    for k, (family, size) in enumerate(families):
        torch.manual_seed(k)
        network = UNet(ENTRIES[family, size])
        torch.nn.init.normal_(network.out_conv.weight, std=0.05)
        config = EntryConfig(
            task=task,
            family=family,
            size=size,
            network=network.config,
            sr_factor=SR_FACTOR[task],
            training={"steps": 0, "note": "random initialisation for tests"},
            metrics={"val": {"psnr_2steps": 1.0}},
        )
        card = entry_card(config) + "\n## Validation during training\n\nkept section\n"
        write_entry(root / task / f"{family}-{size}", config, network.state_dict(), card)
    return root


def _surface(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Dimer-row-like stripes, bumps and noise (nm): a cheap stand-in for a pristine scan."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    rows = 0.02 * np.cos(2 * np.pi * x / 3.94) + 0.01 * np.cos(2 * np.pi * y / 1.97)
    bumps = np.zeros(shape, np.float32)
    for cy, cx in rng.uniform(0, shape, size=(12, 2)):
        bumps += 0.15 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 18)
    return (rows + bumps + 0.005 * rng.standard_normal(shape)).astype(np.float32)


def _dataset(root: Path, task: str, n_test: int, targeted: bool) -> Path:
    rng = np.random.default_rng(3)
    sources = [
        PristineSource(f"s{k}.npy", _surface(rng, (160, 160)), (0.195, 0.195)) for k in range(3)
    ]
    build_dataset(
        sources, task, root, n_train=0, n_val=0, n_test=n_test, seed=1, workers=1,
        targeted=targeted, n_targeted=3,
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def restore_setup(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("restore")
    zoo = _tiny_zoo(base / "zoo", "restore", [("fm", "small"), ("ae", "large")])
    return zoo, _dataset(base / "data", "restore", n_test=6, targeted=True)


def _synthetic(zoo: Path, data: Path, out: Path, task: str, *extra: str) -> dict:
    argv = ["synthetic", "--zoo", str(zoo), "--data", str(data), "--task", task]
    argv += ["--steps", "1", "2", "--out", str(out), "--batch", "4", "--device", "cpu", *extra]
    assert evaluation_main(argv) == 0
    return json.loads((out / f"synthetic_{task}.json").read_text())


def _row(rows: list[dict], family: str, steps: int | None = None) -> dict:
    return next(r for r in rows if r["family"] == family and steps in (None, r["steps"]))


def test_synthetic_restore_writes_every_table_and_raw_numbers(restore_setup, tmp_path, capsys):
    zoo, data = restore_setup
    out = tmp_path / "out"
    raw = _synthetic(zoo, data, out, "restore")
    printed = capsys.readouterr().out

    for name in ("table_IX_restore", "table_III_restore", "table_II_restore"):
        assert (out / f"{name}.csv").is_file(), name
        assert f"Table {name.split('_')[1]} (restore)" in printed
    for picture in ("violin_restore.png", "examples_restore.png"):
        assert (out / picture).stat().st_size > 1000
    markdown = (out / "synthetic_restore.md").read_text()
    assert "paper PSNR" in markdown and "Re-run: `python -m evaluation synthetic" in markdown

    rows = raw["test"]["rows"]
    families = {(r["family"], r["steps"]) for r in rows}
    assert families == {("input", 0), ("classical", 0), ("fm", 1), ("fm", 2), ("ae", 1)}
    for row in rows:
        assert len(row["psnr"]) == len(row["ssim"]) == 6
        assert all(math.isfinite(v) for v in row["psnr"] + row["ssim"])
        assert row["psnr_mean"] == pytest.approx(np.mean(row["psnr"]))

    # The degraded row is the input scored directly against the clean tiles.
    test = ShardDataset(data, "test")
    clean = np.stack([test[i][0][0].numpy() for i in range(6)]).astype(np.float64)
    degraded = np.stack([test[i][1][0].numpy() for i in range(6)]).astype(np.float64)
    direct_psnr = [
        peak_signal_noise_ratio(c, d, data_range=2) for c, d in zip(clean, degraded, strict=True)
    ]
    direct_ssim = [
        structural_similarity(d, c, data_range=2) for c, d in zip(clean, degraded, strict=True)
    ]
    np.testing.assert_allclose(_row(rows, "input")["psnr"], direct_psnr, rtol=1e-12)
    np.testing.assert_allclose(_row(rows, "input")["ssim"], direct_ssim, rtol=1e-12)

    # The CSV holds the same numbers at full precision; the paper's numbers sit beside ours.
    with open(out / "table_IX_restore.csv") as f:
        table = list(csv.DictReader(f))
    by_model = {(r["Model"], r["Steps"]): r for r in table}
    assert float(by_model["Degraded input", ""]["PSNR (dB)"]) == pytest.approx(
        np.mean(direct_psnr), rel=1e-12
    )
    assert by_model["Degraded input", ""]["paper PSNR"] == "20.0"
    assert by_model["Autoencoder", "1"]["paper SSIM"] == "0.787"
    assert by_model["FM Small", "2"]["paper PSNR"] == "29.9"
    assert by_model["FM Small", "1"]["paper PSNR"] == ""  # the paper has no 1-step row
    assert ("Classical (row alignment + scars)", "") in by_model

    # Targeted sets: five single-degradation sets for restoration, three images each.
    assert set(raw["targeted"]) == {
        "multi_tip", "misalignment", "tip_change", "blunt_tip", "scan_lines",
    }  # fmt: skip
    with open(out / "table_II_restore.csv") as f:
        targeted = {r["Degradation"]: r for r in csv.DictReader(f)}
    assert targeted["Multi-tip"]["paper PSNR"] == "27.18"
    assert math.isfinite(float(targeted["Multi-tip"]["PSNR generative mean"]))


def test_update_cards_then_a_second_run_reproduces_the_card_numbers(restore_setup, tmp_path):
    zoo, data = restore_setup
    first = _synthetic(zoo, data, tmp_path / "first", "restore", "--update-cards", "--limit", "4")
    entry = zoo / "restore" / "fm-small"
    config = EntryConfig.from_file(entry / CONFIG_NAME)
    test_metrics = config.metrics["test"]
    assert config.metrics["val"] == {"psnr_2steps": 1.0}  # other metrics kept
    assert test_metrics["images"] == 4 and test_metrics["seed"] == 0
    card = (entry / CARD_NAME).read_text()
    assert "kept section" in card  # the previous card's extra section survives
    assert "model-index" in card
    # Issue 17: the affine-invariant metrics ride along for the model, input and classical.
    for key in ("apsnr_2steps", "assim_2steps", "input_apsnr", "input_assim", "classical_assim"):
        assert key in test_metrics
    assert "type: psnr-affine" in card and "type: ssim-affine" in card

    second = _synthetic(zoo, data, tmp_path / "second", "restore", "--limit", "4", "--no-targeted")
    for raw in (first, second):
        fm2 = _row(raw["test"]["rows"], "fm", 2)
        assert fm2["psnr_mean"] == pytest.approx(test_metrics["psnr_2steps"], abs=1e-6)
        assert fm2["ssim_mean"] == pytest.approx(test_metrics["ssim_2steps"], abs=1e-6)
        assert _row(raw["test"]["rows"], "input")["psnr_mean"] == pytest.approx(
            test_metrics["input_psnr"], abs=1e-6
        )
        # The classical baseline's numbers on the same images: what the default rule compares.
        assert _row(raw["test"]["rows"], "classical")["psnr_mean"] == pytest.approx(
            test_metrics["classical_psnr"], abs=1e-6
        )
    # The card shows the numbers to 4 significant digits, exactly those of the second run.
    fm2 = _row(second["test"]["rows"], "fm", 2)
    shown = dict(re.findall(r"\| (test/\w+) \| ([-\d.e+]+) \|", card))
    assert shown["test/psnr_2steps"] == f"{fm2['psnr_mean']:.4g}"
    assert shown["test/ssim_1steps"] == f"{_row(second['test']['rows'], 'fm', 1)['ssim_mean']:.4g}"
    ae = EntryConfig.from_file(zoo / "restore" / "ae-large" / CONFIG_NAME).metrics["test"]
    assert ae["psnr_direct"] == pytest.approx(_row(second["test"]["rows"], "ae")["psnr_mean"])


def test_synthetic_super_resolution_reports_ssim_tables(tmp_path):
    zoo = _tiny_zoo(tmp_path / "zoo", "sr2", [("ddim", "small")])
    data = _dataset(tmp_path / "data", "sr2", n_test=3, targeted=False)
    raw = _synthetic(zoo, data, tmp_path / "out", "sr2")
    with open(tmp_path / "out" / "table_XI_sr2.csv") as f:
        table = {(r["Model"], r["Steps"]): r for r in csv.DictReader(f)}
    assert table["Low-resolution input", ""]["paper SSIM (x2)"] == "0.493"
    assert math.isfinite(float(table["DDIM Small", "2"]["SSIM (x2)"]))
    assert math.isfinite(float(table["Classical (row alignment + scars)", ""]["PSNR (dB)"]))
    assert (tmp_path / "out" / "table_VI_sr2.csv").is_file()
    assert raw["targeted"] == {}


def test_synthetic_rejects_a_dataset_of_another_task(restore_setup, tmp_path, capsys):
    zoo, data = restore_setup
    argv = ["synthetic", "--zoo", str(zoo), "--data", str(data), "--task", "sr4"]
    assert evaluation_main([*argv, "--out", str(tmp_path)]) == 2
    assert "is for task restore, not sr4" in capsys.readouterr().err


def _save_scans(folder: Path, shape: tuple[int, int], count: int, seed: int, blur: bool) -> Path:
    from scipy.ndimage import gaussian_filter

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        image = _surface(rng, shape)
        if blur:  # a blunt tip: blurred, with a scan-line glitch
            image = gaussian_filter(image, 2.0)
            image[10] += 0.2
        np.save(folder / f"scan{k}.npy", image * 1e-9)
    return folder


def test_experimental_kid_with_real_inception_and_cmmd_not_computed(restore_setup, tmp_path):
    from evaluation.features import WeightsUnavailable
    from evaluation.inception import find_inception_weights

    try:
        find_inception_weights()
    except WeightsUnavailable as error:
        pytest.skip(str(error))
    import shutil

    zoo = shutil.copytree(restore_setup[0], tmp_path / "zoo")  # --update-cards writes into it
    pristine = _save_scans(tmp_path / "pristine", (256, 256), 2, 0, blur=False)
    degraded = _save_scans(tmp_path / "degraded", (128, 256), 2, 1, blur=True)
    out = tmp_path / "out"
    argv = ["experimental", "--degraded", str(degraded), "--pristine", str(pristine)]
    argv += ["--task", "restore", "--zoo", str(zoo), "--out", str(out), "--steps", "1"]
    argv += ["--models", "fm-small", "--clip", str(tmp_path / "no-clip"), "--kid-subsets", "5"]
    assert evaluation_main([*argv, "--update-cards"]) == 0
    card = json.loads((zoo / "restore/fm-small/config.json").read_text())["metrics"]["experimental"]
    assert set(card) == {"kid_1steps", "input_kid", "classical_kid", "tiles", "data"}
    assert (
        card["tiles"] == 4
        and "experimental/kid_1steps" in (zoo / "restore/fm-small/README.md").read_text()
    )

    raw = json.loads((out / "experimental_restore.json").read_text())
    rows = {r["family"]: r for r in raw["rows"]}
    assert set(rows) == {"input", "classical", "fm", "pristine"}
    assert rows["input"]["n"] == 4 and rows["pristine"]["n"] == 4  # halves of 8 pristine tiles
    assert all(math.isfinite(r["kid"]) for r in raw["rows"])
    assert all(r["cmmd"] is None for r in raw["rows"])
    assert raw["cmmd_not_computed"].startswith(
        "not computed (CLIP ViT-L/14-336 weights unavailable"
    )
    with open(out / "table_X_restore.csv") as f:
        table = {r["Model"]: r for r in csv.DictReader(f)}
    assert table["FM Small"]["CMMD"] == "not computed (CLIP ViT-L/14-336 weights unavailable)"
    assert table["Pristine (lower bound)"]["paper KID"] == "0.0194"
    assert table["Degraded input (upper bound)"]["paper CMMD"] == "0.446"
    # Blurred, glitched scans are further from the pristine ones than pristine halves are.
    assert rows["input"]["kid"] > rows["pristine"]["kid"]
    assert (out / "table_IV_restore.csv").is_file()
    assert (out / "experimental_examples_restore.png").is_file()


def test_timing_tables_beside_the_paper(monkeypatch, tmp_path):
    from stm_zoo.bench import measure
    from stm_zoo.zoo import LoadedModel

    def tiny(task, family, size, device="cpu", dtype="float32", channels_last=False, seed=0):
        stand_in = {"fm": ("fm", "small"), "ae": ("ae", "large")}.get(family, ("ddim", "small"))
        network = UNet(ENTRIES[stand_in]).eval()
        config = EntryConfig(task=task, family=family, size=size, network=network.config)
        return LoadedModel(config, network.to(getattr(torch, dtype)), device, dtype, "random")

    monkeypatch.setattr(measure, "random_model", tiny)
    out = tmp_path / "timing"
    assert evaluation_main(["timing", "--out", str(out), "--repeats", "1", "--device", "cpu"]) == 0
    with open(out / "table_VIII_timing.csv") as f:
        table = {r["Model"]: r for r in csv.DictReader(f)}
    assert set(table) == {"Autoencoder", "DDIM Small", "DDIM Large", "FM Small", "FM Large"}
    assert table["FM Small"]["paper CPU (s)"] == "0.21" and table["FM Small"]["evals/step"] == "2"
    assert float(table["DDIM Small"]["CPU (s)"]) > 0
    with open(out / "table_XIV_timing.csv") as f:
        rows = {(r["Model"], r["Steps"]): r for r in csv.DictReader(f)}
    assert float(rows["FM Small", "10"]["CPU (s)"]) == pytest.approx(
        10 * float(table["FM Small"]["CPU (s)"])
    )
    raw = json.loads((out / "timing.json").read_text())
    assert len(raw["steps"]) == 5 and raw["command"].startswith("python -m evaluation timing")


def test_harshness_report_scores_every_set_and_its_invariants(restore_setup, tmp_path, capsys):
    _, data = restore_setup
    out = tmp_path / "harsh"
    assert (
        evaluation_main(["harshness", "--data", str(data), "--limit", "6", "--out", str(out)]) == 0
    )
    result = json.loads(out.with_suffix(".json").read_text())
    names = [r["set"] for r in result["sets"]]
    assert names[0] == "full pipeline" and "tip_change" in names and "scan_lines" in names
    full = result["sets"][0]
    assert full["paper"]["ssim"] == pytest.approx(0.68)  # the paper's degraded input
    for r in result["sets"]:
        # the identity is one of the affine maps: the affine score can only be higher
        assert r["affine_psnr"] >= r["psnr"] - 1e-9
    for o in result["oracle"]:
        assert o["affine"] >= o["calibrated"] - 1e-9
    sharper = [o["calibrated"] for o in result["oracle"]]
    assert sharper == sorted(sharper, reverse=True)  # more blur, lower PSNR
    assert set(result["tiles"]) >= {"our clean tiles", "our degraded tiles"}
    assert 0 < result["tiles"]["our clean tiles"]["central_fill"] <= 1
    assert "| full pipeline |" in out.with_suffix(".md").read_text()
    assert "own min/max (paper)" in capsys.readouterr().out

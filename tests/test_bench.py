"""`python -m stm_zoo bench` and its building blocks, on tiny networks and inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stm_zoo.__main__ import main as stm_zoo_main
from stm_zoo.bench import measure, report, suite
from stm_zoo.entry_format import EntryConfig
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.zoo import LoadedModel

TINY = {
    "channels": (8, 16, 16),
    "blocks_per_level": (1, 1, 1),
    "middle_blocks": 1,
    "norm_groups": 8,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(
    task: str,
    family: str,
    size: str,
    device: str = "cpu",
    dtype: str = "float32",
    channels_last: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """`measure.random_model` with a tiny network instead of the preset."""
    ae = family == "ae"
    config = UNetConfig(
        **TINY,
        in_channels=1 if ae else 2,
        time_conditioning=not ae,
        time_scale=1000.0 if family == "fm" else 1.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = UNet(config)
        network.out_conv.reset_parameters()
    network.eval().to(dtype=getattr(torch, dtype))
    if channels_last:
        network.to(memory_format=torch.channels_last)
    entry = EntryConfig(task=task, family=family, size=size, network=config)
    return LoadedModel(entry, network, device, dtype, "random-init")


def test_random_model_has_the_zoo_architecture_and_a_live_output_layer():
    model = measure.random_model("restore", "fm", "small", "cpu")
    assert model.config.network == UNetConfig.small(time_scale=1000.0)
    assert model.network.out_conv.weight.abs().sum() > 0  # not the zero init: outputs vary
    again = measure.random_model("restore", "fm", "small", "cpu")
    for a, b in zip(model.network.parameters(), again.network.parameters(), strict=True):
        assert torch.equal(a, b)  # seeded, and the global RNG is left alone
    assert measure.random_model("sr4", "ae", "large").config.sr_factor == 4


def test_step_timing_counts_repeats_and_reports_the_load():
    model = tiny_model("restore", "fm", "small")
    timing = measure.step_timing(model, steps=1, size=32, repeats=3, warmup=1)
    assert len(timing.seconds) == 3 and 0 < timing.min <= timing.median
    assert math.isnan(timing.load) or timing.load >= 0


def test_naive_baseline_matches_restore():
    model = tiny_model("restore", "fm", "small")
    image = measure.synthetic_scan(160)
    _, naive = measure.timed_output(measure.naive_fn(model, image, steps=1))
    _, engine = measure.timed_output(measure.restore_fn(model, image, steps=1, batch_size=3))
    assert measure.psnr_vs(engine, naive) > 60


def test_timed_restore_returns_the_restored_image():
    model = tiny_model("restore", "ddim", "small")
    image = measure.synthetic_scan(160)
    timing, out = measure.timed_output(measure.restore_fn(model, image, steps=1, batch_size=2))
    assert out.shape == image.shape and np.isfinite(out).all()
    assert len(timing.seconds) == 1
    assert measure.psnr_vs(out, out) == math.inf
    assert 0 < measure.psnr_vs(out + 0.01 * out.std(), out) < math.inf


def test_run_bench_tables_put_ours_beside_the_paper():
    variants = (suite.VARIANTS[0], suite.VARIANTS[2], suite.VARIANTS[-1])
    measured = suite.run_bench(
        devices=["cpu"],
        repeats=1,
        models=(("fm", "small"), ("ae", "large")),
        modes=suite.MODES[:2],
        e2e_variants=variants,
        e2e_size=160,
        e2e_steps=1,
        factory=tiny_model,
    )
    text = report.markdown(measured)
    assert "| FM Small | cpu |" in text and "| Autoencoder | cpu |" in text
    assert "| 210 |" in text  # the paper's FM small CPU time per step, in ms
    assert "| FM Small | 2 | cpu |" in text and "| 0.41 |" in text  # Table XIV row
    rows = measured.end_to_end
    assert [r.variant for r in rows] == list(variants)
    assert rows[0].tiles == 4 and rows[-1].tiles == 1  # 160 px: 2x2 tiles, or the whole image
    assert "| reference |" in text and "x |" in text
    assert math.isinf(rows[0].psnr_vs_reference)
    # The naive path and restore() do the same work: same noise, same tiles, same blending.
    assert rows[1].psnr_vs_reference > 60


def test_bench_cli_prints_and_writes_markdown(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(measure, "random_model", tiny_model)
    out = tmp_path / "bench.md"
    argv = ["bench", "--device", "cpu", "--repeats", "1", "--models", "ddim-small"]
    argv += ["--variants", "naive", "bf16", "--size", "128", "--steps", "1"]
    assert stm_zoo_main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "## Per-step latency at 128x128" in printed and "| DDIM Small | cpu |" in printed
    assert "| naive: fp32 NCHW, tile by tile (batch 1) | cpu | 1 |" in printed
    assert "| restore(), bf16, batch 8 | cpu | 1 |" in printed
    assert "## End-to-end restore" in printed and "Re-run: `python -m stm_zoo bench`" in printed
    assert out.read_text() in printed + "\n"


@pytest.mark.parametrize(
    "bad", [["--repeats", "0"], ["--size", "130"], ["--models", "fm"], ["--variants", "fast"]]
)
def test_bench_cli_rejects_bad_options(bad, capsys):
    assert stm_zoo_main(["bench", *bad]) == 2
    assert capsys.readouterr().err.startswith("error: ")

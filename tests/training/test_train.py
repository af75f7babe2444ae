"""Training loop: schedule, EMA, presets, CLI, zoo round trip, exact resume, and real learning."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import shlex
import signal
from pathlib import Path

import pytest
import torch

from stm_zoo.entry_format import WEIGHTS_NAME, registry
from stm_zoo.errors import StmZooError
from stm_zoo.zoo import load_entry
from training import checkpoint, cli_train, network, optim, precision, run_log, validation
from training import train as tr
from training.__main__ import main as training_main
from training.configs import CPU_SUFFIX, ZOO_CONFIGS, TrainConfig
from training.ema import EMA, ema_decay_at
from training.shards import build_dataset
from training.sources import simulate_sources

# A network small enough for a 2-core CI machine: 8/16/32 channels, one block per level.
TINY_NET = {"channels": (8, 16, 32), "blocks_per_level": (1, 1, 1), "norm_groups": 8}


def tiny_config(**overrides) -> TrainConfig:
    base = TrainConfig(
        task="restore",
        family="fm",
        size="small",
        steps=20,
        batch=4,
        lr=1e-3,
        warmup_steps=4,
        ema_decay=0.9,
        val_every=0,
        val_samples=2,
        val_steps=(1,),
        checkpoint_every=10,
        log_every=5,
        num_workers=0,
        **TINY_NET,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the tiny networks gain nothing from two, and on a CPU shared with other
    jobs two spinning OpenMP threads per process run ten times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A small restoration dataset over simulated pristine scans (24 train / 4 val samples)."""
    out = tmp_path_factory.mktemp("train-data") / "restore"
    sources = simulate_sources(3, seed=3, size_px=192, workers=1)
    build_dataset(sources, "restore", out, n_train=24, n_val=4, n_test=0, seed=3, workers=1)
    return out


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory):
    """An uninterrupted 20-step run: the reference for the round-trip and resume tests."""
    root = tmp_path_factory.mktemp("straight")
    result = tr.train(
        tiny_config(), data_dir, root / "zoo", run_dir=root / "run", progress=False, device="cpu"
    )
    return result, root


def _checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / checkpoint.CHECKPOINT_NAME, map_location="cpu", weights_only=True)


def _log_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ---------------------------------------------------------------------------------------------
# Pieces


def test_lr_schedule_warms_up_then_follows_the_cosine_to_the_final_ratio():
    config = tiny_config(steps=100, warmup_steps=10, final_lr_ratio=0.1)
    factors = [optim.lr_factor(s, config) for s in range(100)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert optim.lr_factor(100, config) == pytest.approx(0.1)
    mid = 10 + 45
    assert factors[mid] == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-12)


def test_ema_warms_up_and_averages_towards_the_weights():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.999) == 0.999
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.5)
    start = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model, step=10**6)  # decay 0.5: halfway to the new weights
    for name, value in ema.state_dict().items():
        assert torch.allclose(value, start[name] + 0.5)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_presets_cover_every_zoo_entry_with_the_paper_networks():
    keys = {k.subdir for k in registry()}
    full = {name for name in ZOO_CONFIGS if not name.endswith(CPU_SUFFIX)}
    cpu = {name.removesuffix(CPU_SUFFIX) for name in ZOO_CONFIGS if name.endswith(CPU_SUFFIX)}
    assert full == keys and len(full) == 18
    # The CPU presets: the small nets, and the autoencoder baseline (the paper's only AE is large).
    assert cpu == {k.subdir for k in registry() if k.size == "small" or k.family == "ae"}
    for name in ZOO_CONFIGS:  # CPU entries are published in bf16, as the bundled ones are
        if name.endswith(CPU_SUFFIX):
            assert ZOO_CONFIGS[name].weights_dtype == "bfloat16", name
    for name, config in ZOO_CONFIGS.items():
        assert config.key.subdir == name.removesuffix(CPU_SUFFIX)
        net = network.network_config(config)
        assert net.channels == ((32, 64, 128) if config.size == "small" else (64, 128, 256))
        assert net.attention == (config.size == "large")
        assert net.time_conditioning == (config.family != "ae")
        assert config.steps * config.batch >= 20_000  # at least one pass over the paper's set


def test_config_validation_and_dict_round_trip():
    config = tiny_config()
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(StmZooError, match="large only"):
        TrainConfig(family="ddim-fft", size="small")
    with pytest.raises(StmZooError, match="--lr"):
        tiny_config(lr=0.0)
    with pytest.raises(StmZooError, match="--precision"):
        tiny_config(precision="fp16")
    with pytest.raises(StmZooError, match="invalid U-Net"):
        network.network_config(tiny_config(norm_groups=5))


def test_autocast_choice():
    cpu = torch.device("cpu")
    native = torch.bfloat16 if precision.cpu_has_native_bf16() else None
    assert precision.autocast_dtype("auto", cpu) is native
    assert precision.autocast_dtype("fp32", cpu) is None
    assert precision.autocast_dtype("bf16", cpu) is torch.bfloat16


def test_network_initialisation_is_seeded_and_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    a, b = network.build_network(tiny_config()), network.build_network(tiny_config())
    c = network.build_network(tiny_config(seed=1))
    assert torch.equal(torch.get_rng_state(), before)
    _assert_same_tensors(a.state_dict(), b.state_dict())
    assert not torch.equal(a.stem.weight, c.stem.weight)


def test_cli_options_are_generated_from_the_config_fields(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    cli_train.configure_parser(parser)
    args = parser.parse_args(
        shlex.split(
            "--task sr2 --model ddim --size small --data d --out z --preset cpu --steps 7 "
            "--val-steps 2 5 --channels-last"
        )
    )
    config = cli_train.resolve_config(args)
    expected = dataclasses.replace(
        ZOO_CONFIGS["sr2/ddim-small" + CPU_SUFFIX], steps=7, val_steps=(2, 5), channels_last=True
    )
    assert config == expected
    for bad, message in (
        (["--task", "restore", "--model", "ddim-fft", "--size", "large", "--preset", "cpu"], "cpu"),
        (["--task", "restore", "--model", "fm"], "--size"),
        (["--preset", "restore/fm-small", "--task", "sr4"], "contradicts"),
    ):
        args = parser.parse_args(["--data", "d", "--out", "z", *bad])
        with pytest.raises(StmZooError, match=message):
            cli_train.resolve_config(args)


# ---------------------------------------------------------------------------------------------
# End to end


def test_zoo_entry_round_trip_gives_identical_outputs(straight_run):
    result, root = straight_run
    assert result.completed and result.step == 20 and result.samples_seen == 80
    loaded = load_entry(result.entry_dir, device="cpu")
    assert loaded.config.key == tiny_config().key
    _assert_same_tensors(loaded.network.state_dict(), result.network.state_dict())
    generator = torch.Generator().manual_seed(0)
    x, cond = (torch.randn(2, 1, 128, 128, generator=generator) for _ in range(2))
    t = torch.tensor([0.25, 0.75])
    # load_entry picks channels_last for inference speed: compare in one layout (the kernels of
    # the two layouts round differently), where the outputs must then be bit-identical.
    trained = copy.deepcopy(result.network).to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(loaded.network(x, t, cond), trained(x, t, cond))

    config = json.loads((result.entry_dir / "config.json").read_text())
    training = config["training"]
    assert training["steps"] == 20 and training["batch"] == 4 and training["samples_seen"] == 80
    assert training["complete"] and training["device"].startswith("cpu")
    assert training["wall_time_s"] > 0 and training["data"]["samples"]["train"] == 24
    assert config["sr_factor"] == 1 and config["network"]["channels"] == [8, 16, 32]
    assert set(config["metrics"]["val"]) >= {"psnr_1steps", "ssim_1steps", "input_psnr", "loss"}
    # Validation shows both metrics: the paper's and after the best affine map (issue 17).
    affine = {"apsnr_1steps", "assim_1steps", "apsnr_input", "assim_input"}
    assert set(config["metrics"]["val"]) >= affine
    assert config["metrics"]["val"]["apsnr_input"] >= config["metrics"]["val"]["input_psnr"]
    card = (result.entry_dir / "README.md").read_text()
    assert card.startswith("---\n") and "pipeline_tag: image-to-image" in card
    assert "model-index:" in card and "val/psnr_1steps" in card
    rows = _log_rows(result.entry_dir / run_log.LOG_NAME)
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    validated = [r for r in rows if r["psnr_1steps"]]
    assert validated and all(r["apsnr_1steps"] and r["assim_input"] for r in validated)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert (result.run_dir / validation.GRID_DIR / "step_0000020.png").is_file()
    assert (result.entry_dir / WEIGHTS_NAME).is_file()


def test_resume_after_interruption_reaches_the_same_weights(straight_run, data_dir, tmp_path):
    reference, _ = straight_run
    run_dir = tmp_path / "run"
    first = tr.train(
        tiny_config(),
        data_dir,
        tmp_path / "zoo",
        run_dir=run_dir,
        progress=False,
        device="cpu",
        stop_at=10,
    )
    assert first.step == 10 and not first.completed
    assert json.loads((first.entry_dir / "config.json").read_text())["training"]["steps"] == 10
    second = tr.train(
        tiny_config(), data_dir, tmp_path / "zoo", run_dir=run_dir, progress=False, device="cpu"
    )
    assert second.step == 20 and second.completed
    resumed, straight = _checkpoint(run_dir), _checkpoint(reference.run_dir)
    _assert_same_tensors(resumed["model"], straight["model"])
    _assert_same_tensors(resumed["ema"], straight["ema"])
    assert resumed["scheduler"] == straight["scheduler"]
    log_a = _log_rows(run_dir / run_log.LOG_NAME)
    log_b = _log_rows(reference.run_dir / run_log.LOG_NAME)
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]

    with pytest.raises(StmZooError, match="lr"):
        tr.train(
            tiny_config(lr=5e-4),
            data_dir,
            tmp_path / "zoo",
            run_dir=run_dir,
            progress=False,
            device="cpu",
        )


def test_a_signal_stops_at_a_step_boundary_and_the_run_resumes_exactly(
    straight_run, data_dir, tmp_path, monkeypatch
):
    reference, _ = straight_run
    real_step = tr.train_step

    def step_then_signal(net, state, *args):
        out = real_step(net, state, *args)
        if state.step == 7:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(tr, "train_step", step_then_signal)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        tr.train(
            tiny_config(), data_dir, tmp_path / "zoo", run_dir=run_dir, progress=False, device="cpu"
        )
    assert _checkpoint(run_dir)["step"] == 7
    monkeypatch.setattr(tr, "train_step", real_step)
    tr.train(
        tiny_config(), data_dir, tmp_path / "zoo", run_dir=run_dir, progress=False, device="cpu"
    )
    _assert_same_tensors(_checkpoint(run_dir)["ema"], _checkpoint(reference.run_dir)["ema"])


def test_cli_trains_an_entry(data_dir, tmp_path, capsys, monkeypatch):
    options = shlex.split(
        "--task restore --model ddim --size small --steps 3 --batch 4 --val-samples 2 "
        "--val-steps 1 --num-workers 0 --channels 8 16 32 --blocks-per-level 1 1 1 "
        "--norm-groups 8 --device cpu"
    )
    monkeypatch.setenv("STM_ZOO_RUNS", str(tmp_path / "runs"))
    folders = ["--data", str(data_dir), "--out", str(tmp_path / "zoo")]
    umask = os.umask(0o077)  # a private umask must not make the published files private
    try:
        code = training_main(["train", *options, *folders])
    finally:
        os.umask(umask)
    assert code == 0
    assert "restore/ddim-small: 3 steps (complete)" in capsys.readouterr().out
    entry = tmp_path / "zoo" / "restore" / "ddim-small"
    assert load_entry(entry, device="cpu").network
    published = {"config.json", "model.safetensors", "README.md", run_log.LOG_NAME}
    assert {p.name for p in entry.iterdir()} == published
    assert {p.stat().st_mode & 0o777 for p in entry.iterdir()} == {0o644}
    # The run state goes to the runs folder (default: the user cache), never beside the entry.
    run = tmp_path / "runs" / "restore" / "ddim-small"
    assert (run / checkpoint.CHECKPOINT_NAME).is_file() and (run / validation.GRID_DIR).is_dir()


def test_wrong_dataset_task_is_a_clear_error(data_dir, tmp_path):
    with pytest.raises(StmZooError, match="task 'restore', not 'sr2'"):
        tr.train(
            tiny_config(task="sr2"),
            data_dir,
            tmp_path / "zoo",
            run_dir=tmp_path / "r",
            progress=False,
            device="cpu",
        )
    with pytest.raises(StmZooError, match="fewer than one batch"):
        tr.train(
            tiny_config(batch=32),
            data_dir,
            tmp_path / "zoo",
            run_dir=tmp_path / "r",
            progress=False,
            device="cpu",
        )


# ---------------------------------------------------------------------------------------------
# Real learning (slow): a reduced-width small network on a small scan-line-noise set.
#
# The set keeps one artefact of the paper's pipeline, sinusoidal scan-line segments (step 8):
# its tiles keep the clean tile's normalisation, so a network can beat the input within a few
# hundred steps. The full pipeline also changes each tile's global contrast (bright streaks,
# tip changes), which takes far longer to learn than a test can train.
LEARN_NET = {"channels": (16, 16, 32, 64), "blocks_per_level": (1, 1, 1, 1), "norm_groups": 4}


@pytest.fixture(scope="module")
def line_noise_data(tmp_path_factory) -> Path:
    from training.degradations import DegradationConfig

    base = DegradationConfig().only("scan_lines")
    lines = dataclasses.replace(
        base.scan_lines,
        kind_probabilities=(0.0, 0.0, 1.0),
        sine_amplitude_range=(0.1, 0.3),
        segment_length_range_px=(64, 128),
    )
    out = tmp_path_factory.mktemp("learn-data") / "restore"
    sources = simulate_sources(18, seed=2, size_px=256, workers=1)
    build_dataset(
        sources,
        "restore",
        out,
        n_train=1024,
        n_val=32,
        n_test=0,
        seed=2,
        workers=1,
        config=dataclasses.replace(base, scan_lines=lines),
    )
    return out


def _learn(family: str, steps: int, data: Path, root: Path) -> tr.TrainResult:
    config = TrainConfig(
        task="restore",
        family=family,
        size="small",
        steps=steps,
        batch=8,
        lr=2e-3,
        warmup_steps=steps // 10,
        ema_decay=0.99,
        val_every=0,
        val_samples=32,
        val_steps=(2, 10),
        log_every=50,
        checkpoint_every=10**6,
        num_workers=0,
        **LEARN_NET,
    )
    return tr.train(config, data, root / "zoo", run_dir=root / "run", progress=False, device="cpu")


@pytest.mark.slow
def test_flow_matching_learns_to_restore(line_noise_data, tmp_path):
    result = _learn("fm", 400, line_noise_data, tmp_path)
    metrics = result.metrics
    best = max(metrics["psnr_2steps"], metrics["psnr_10steps"])
    assert best >= metrics["input_psnr"] + 3.0, metrics
    assert max(metrics["ssim_2steps"], metrics["ssim_10steps"]) > metrics["input_ssim"], metrics


@pytest.mark.slow
def test_ddim_learns_to_restore(line_noise_data, tmp_path):
    """DDIM's eps-network learns the restoration: its x0 estimate halfway through the noise
    schedule (t = 500, where the 2-step sampler starts) beats the degraded input by 3 dB.

    Its few-step *samples* need a far longer training than a test affords (the eps-prediction
    must reproduce x_t almost exactly at high noise, where x0_hat = (x_t - sqrt(1 - a) eps) /
    sqrt(a) magnifies every error), so they are not asserted here; the zoo cards report them.
    """
    from stm_zoo.methods import ddim
    from training.datasets import ShardDataset

    result = _learn("ddim", 400, line_noise_data, tmp_path)
    val = validation.validation_set(ShardDataset(line_noise_data, "val"), 32, seed=0)
    t = 500
    alpha = float(ddim.COSINE.alphas_cumprod[t])
    eps = torch.randn(val.clean.shape, generator=torch.Generator().manual_seed(1))
    x_t = alpha**0.5 * val.clean + (1 - alpha) ** 0.5 * eps
    with torch.no_grad():
        eps_hat = result.network(x_t, torch.full((len(x_t),), float(t)), val.degraded)
    x0_hat = ((x_t - (1 - alpha) ** 0.5 * eps_hat) / alpha**0.5).clamp(-1, 1)
    noisy_only = (x_t / alpha**0.5).clamp(-1, 1)
    clean = val.clean[:, 0].numpy()
    learned = validation.mean_psnr(x0_hat[:, 0].numpy(), clean)
    assert learned >= val.input_psnr + 3.0, (learned, val.input_psnr)
    assert learned >= validation.mean_psnr(noisy_only[:, 0].numpy(), clean) + 3.0
    rows = _log_rows(result.run_dir / run_log.LOG_NAME)
    assert float(rows[-1]["loss"]) < 0.2 * float(rows[0]["loss"])


def test_time_lr_factor_lays_warm_up_and_cosine_over_the_budget():
    config = tiny_config(steps=100, warmup_steps=10, time_budget_min=1.0, final_lr_ratio=0.1)
    assert optim.time_lr_factor(3.0, config) == pytest.approx(0.5)  # 10 % of 60 s is warm-up
    assert optim.time_lr_factor(6.0, config) == pytest.approx(1.0)
    assert optim.time_lr_factor(33.0, config) == pytest.approx(0.55)
    assert optim.time_lr_factor(60.0, config) == pytest.approx(0.1)
    assert optim.time_lr_factor(600.0, config) == pytest.approx(0.1)


def test_recipe_run_with_a_time_budget_writes_an_x0_entry(data_dir, tmp_path):
    """x0 output, grid times, crops, global context and a wall-clock budget, end to end: the run
    stops when the budget is spent, marks itself complete and its entry restores with x0."""
    config = tiny_config(
        steps=10_000,
        prediction="x0",
        time_sampling="grid",
        crop_px=32,
        global_context=True,
        output_range="minmax",
        time_budget_min=0.05,
    )
    result = tr.train(config, data_dir, tmp_path / "zoo", tmp_path / "run", progress=False)
    assert 0 < result.step < 10_000 and result.completed is True
    entry = load_entry(result.entry_dir, device="cpu")
    assert entry.config.prediction == "x0" and entry.config.output_range == "minmax"
    assert entry.config.training["complete"] is True
    assert entry.network.config.residual and entry.network.config.global_context
    assert "clean image" in entry.config.training["loss"]
    # The log records the learning rate the steps used: the time schedule's, not the step one's
    # (which would still be in its 1000-step warm-up here, below 1 % of the peak).
    rows = list(csv.DictReader((tmp_path / "run" / "training_log.csv").open()))
    logged = [float(row["lr"]) for row in rows if row["lr"]]
    assert logged and max(logged) > 0.05 * config.lr
    # Resuming with the budget spent trains nothing more and rewrites the same entry.
    again = tr.train(config, data_dir, tmp_path / "zoo", tmp_path / "run", progress=False)
    assert again.step == result.step


def test_a_resumed_warm_start_still_names_its_parent(straight_run, data_dir, tmp_path):
    """The resume command need not repeat --init-from: the card keeps the provenance."""
    reference, _ = straight_run
    parent = str(reference.entry_dir)
    run_dir = tmp_path / "run"
    kwargs = dict(run_dir=run_dir, progress=False, device="cpu")
    tr.train(tiny_config(init_from=parent), data_dir, tmp_path / "zoo", stop_at=5, **kwargs)
    second = tr.train(tiny_config(), data_dir, tmp_path / "zoo", **kwargs)
    training = json.loads((second.entry_dir / "config.json").read_text())["training"]
    assert training["config"]["init_from"] == parent
    assert f"warm-started from {parent}" in training["loss"]

"""scripts/train_large_gpu.py: the plan (which entries, in which waves, which warm starts, which
budgets), the command lines it hands to `python -m training train`, the bundle that crosses the
device machine's 16 MiB-per-file limit, and one tiny real run of one entry on the CPU."""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import json
import math
import sys
import tarfile
from pathlib import Path

import pytest

from stm_zoo.errors import StmZooError
from training import cli_train
from training.shards import build_dataset
from training.sources import simulate_sources

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "train_large_gpu", REPO / "scripts/train_large_gpu.py"
)
large = sys.modules["train_large_gpu"] = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(large)

FAMILIES = ("ae", "fm", "ddim", "ddim-fft")


def entries_of(wave) -> list[str]:
    return [r.entry for r in wave.runs]


def test_default_plan_restore_first_then_sr2_and_sr4_warm_started():
    waves = large.plan(large.parse_entries(None), minutes=7.0, processes=4)
    assert [entries_of(w) for w in waves] == [
        [f"{task}/{f}-large" for f in FAMILIES] for task in ("restore", "sr2", "sr4")
    ]
    assert entries_of(waves[0])[0] == "restore/ae-large"  # the cheap autoencoder first
    assert all(r.init_from is None for r in waves[0].runs)
    for wave in waves[1:]:
        for run in wave.runs:
            assert run.init_from == "restore/" + run.entry.split("/")[1]
    # From scratch weighs 1.5 warm starts; the budgets fill the minutes, wave after wave.
    unit = 7.0 / (1.5 + 1 + 1)
    assert [w.budget_min for w in waves] == pytest.approx([1.5 * unit, unit, unit], abs=1e-3)
    assert [w.start_min for w in waves] == pytest.approx([0, 1.5 * unit, 2.5 * unit], abs=1e-3)
    assert all(r.budget_min == w.budget_min for w in waves for r in w.runs)


@pytest.mark.parametrize(
    ("processes", "sizes"),
    [(1, [1] * 12), (2, [2, 2, 2, 2, 2, 2]), (3, [2, 2, 3, 3, 2]), (8, [4, 8]), (16, [4, 8])],
)
def test_waves_never_exceed_the_processes_and_keep_dependencies(processes, sizes):
    waves = large.plan(large.parse_entries(None), minutes=10.0, processes=processes)
    assert [len(w.runs) for w in waves] == sizes
    assert sum(w.budget_min for w in waves) == pytest.approx(10.0, abs=1e-3)
    trained: set[str] = set()
    for wave in waves:
        assert all(r.init_from is None or r.init_from in trained for r in wave.runs)
        trained |= set(entries_of(wave))
    assert trained == set(large.ALL_ENTRIES)


def test_sequential_plan_is_the_canonical_order():
    waves = large.plan(large.parse_entries(None), minutes=14.0, processes=1)
    assert [entries_of(w)[0] for w in waves] == list(large.ALL_ENTRIES)
    assert [w.budget_min for w in waves] == pytest.approx([1.5] * 4 + [1.0] * 8, abs=1e-3)


def test_entries_already_trained_are_kept_and_warm_start_the_rest():
    done = frozenset(f"restore/{f}-large" for f in FAMILIES)
    waves = large.plan(large.parse_entries(None), minutes=4.0, processes=4, done=done)
    assert [entries_of(w) for w in waves] == [
        [f"{task}/{f}-large" for f in FAMILIES] for task in ("sr2", "sr4")
    ]
    assert all(r.init_from == "restore/" + r.entry.split("/")[1] for w in waves for r in w.runs)
    assert [w.budget_min for w in waves] == pytest.approx([2.0, 2.0])
    assert large.plan(list(done), 4.0, 4, done=done) == []


def test_an_sr_entry_without_its_restore_entry_starts_from_scratch():
    (wave,) = large.plan(large.parse_entries("sr2/fm-large, sr4/ae-large"), 3.0, 4)
    assert [(r.entry, r.init_from, r.budget_min) for r in wave.runs] == [
        ("sr2/fm-large", None, 3.0),
        ("sr4/ae-large", None, 3.0),
    ]


def test_bad_options_are_one_sentence_errors():
    with pytest.raises(StmZooError, match="Unknown large entry restore/fm-small"):
        large.parse_entries("restore/fm-small")
    with pytest.raises(StmZooError, match="--processes"):
        large.plan(["restore/fm-large"], 1.0, 0)
    with pytest.raises(StmZooError, match="--minutes"):
        large.plan(["restore/fm-large"], 0.0, 1)


def test_recipe_identity_start_and_bf16_weights():
    fm = large.recipe("sr4/fm-large", 2.5, "cuda")
    assert (fm.task, fm.family, fm.size) == ("sr4", "fm", "large")
    assert (fm.prediction, fm.time_sampling, fm.global_context) == ("x0", "grid", True)
    assert (fm.time_budget_min, fm.weights_dtype, fm.channels_last) == (2.5, "bfloat16", True)
    ae = large.recipe("restore/ae-large", 2.5, "cpu")
    assert (ae.prediction, ae.time_sampling, ae.global_context) == ("x0", "uniform", False)
    assert not ae.channels_last
    for entry in large.ALL_ENTRIES:  # every entry's recipe is a valid TrainConfig
        assert large.recipe(entry, 1.0, "cuda").key.subdir == entry


def test_command_line_gives_the_training_cli_the_planned_config(tmp_path):
    run = large.PlannedRun("sr2/ddim-fft-large", "restore/ddim-fft-large", 1.25)
    res = large.Resources(threads=2, workers=2)
    command = large.train_command(
        run, "cuda", tmp_path / "data", tmp_path / "out", tmp_path / "runs", res, True, []
    )
    assert command[1:4] == ["-m", "training", "train"]
    parser = argparse.ArgumentParser()
    cli_train.configure_parser(parser)
    args = parser.parse_args(command[4:])
    assert args.data == tmp_path / "data" / "sr2"
    assert args.run_dir == tmp_path / "runs" / "sr2" / "ddim-fft-large"
    assert (args.device, args.threads, args.resume) == ("cuda", 2, False)
    config = cli_train.resolve_config(args)
    expected = large.recipe("sr2/ddim-fft-large", 1.25, "cuda")
    assert config == large.dataclasses.replace(
        expected, num_workers=2, compile=True, init_from="restore/ddim-fft-large"
    )
    # Options given through --train-args come last, so they win.
    tiny = large.train_command(
        run, "cpu", tmp_path, tmp_path, tmp_path, res, False, ["--batch", "4"]
    )
    assert cli_train.resolve_config(parser.parse_args(tiny[4:])).batch == 4


def test_resources_split_the_cpus():
    assert large.resources(4, 16, "cuda") == large.Resources(threads=2, workers=2)
    assert large.resources(8, 16, "cuda") == large.Resources(threads=1, workers=1)
    assert large.resources(1, 2, "cpu") == large.Resources(threads=2, workers=1)


def test_bundle_splits_weights_into_parts_that_put_back_together(tmp_path):
    out = tmp_path / "out"
    for entry, size in (("restore/fm-large", 5000), ("sr2/ae-large", 3000)):
        (out / entry).mkdir(parents=True)
        (out / entry / "model.safetensors").write_bytes(bytes(range(256)) * (size // 256))
        (out / entry / "config.json").write_text(json.dumps({"entry": entry}))
    (out / "summary.md").write_text("| entry |\n")
    files = large.bundle(out, tmp_path / "bundle", part_bytes=1000)
    names = [p.name for p in files]
    assert names[0] == "meta.tar" and names[-1] == "SHA256SUMS"
    parts = files[1:-1]
    assert all(p.stat().st_size <= 1000 for p in parts)
    assert [p.name for p in parts] == [f"weights.tar.gz.{i:02d}" for i in range(len(parts))]
    packed = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(packed))) as tar:
        weights = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert weights == {
        "restore/fm-large/model.safetensors": (
            out / "restore/fm-large/model.safetensors"
        ).read_bytes(),
        "sr2/ae-large/model.safetensors": (out / "sr2/ae-large/model.safetensors").read_bytes(),
    }
    with tarfile.open(tmp_path / "bundle" / "meta.tar") as tar:
        assert sorted(tar.getnames()) == [
            "restore/fm-large/config.json",
            "sr2/ae-large/config.json",
            "summary.md",
        ]
    sums = (tmp_path / "bundle" / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 1 + len(parts)
    assert math.ceil(len(packed) / 1000) == len(parts)


def test_one_tiny_entry_end_to_end_on_the_cpu(tmp_path, capsys):
    """The whole script on one entry: a tiny network for a few seconds, then the summary."""
    data = tmp_path / "data"
    sources = simulate_sources(3, seed=3, size_px=192, workers=1)
    build_dataset(sources, "restore", data / "restore", n_train=24, n_val=4, n_test=0, workers=1)
    tiny = (
        "--batch 4 --val-samples 4 --val-every 2 --log-every 1 --channels 8 16 32 --norm-groups 8"
    )
    argv = ["--data-root", str(data), "--out", str(tmp_path / "out"), "--runs", str(tmp_path)]
    argv += ["--device", "cpu", "--minutes", "0.05", "--entries", "restore/ae-large"]
    assert large.main([*argv, "--train-args", tiny]) == 0
    entry = tmp_path / "out" / "restore" / "ae-large"
    assert {p.name for p in entry.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "README.md",
        "training_log.csv",
    }
    config = json.loads((entry / "config.json").read_text())
    assert config["weights_dtype"] == "bfloat16"
    assert config["training"]["time_budget_min"] == pytest.approx(0.05)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| restore/ae-large | trained | - | 0.05 |" in summary
    assert (tmp_path / "out" / "curves.png").is_file()
    # A second run keeps the entry instead of training it again.
    assert large.main([*argv, "--train-args", tiny]) == 0
    assert "| restore/ae-large | kept |" in capsys.readouterr().out


def test_summary_reports_the_first_sampler_setting(tmp_path):
    entry = tmp_path / "sr2" / "fm-large"
    entry.mkdir(parents=True)
    config = {
        "training": {
            "config": {"val_steps": [2, 10], "init_from": "restore/fm-large"},
            "time_budget_min": 1.5,
            "steps": 300,
            "samples_seen": 19200,
            "wall_time_s": 96.0,
        },
        "metrics": {
            "val": {
                "input_psnr": 20.0,
                "input_ssim": 0.4,
                "psnr_10steps": 21.0,
                "psnr_2steps": 22.5,
                "ssim_10steps": 0.45,
                "ssim_2steps": 0.5,
            }
        },
    }
    (entry / "config.json").write_text(json.dumps(config, sort_keys=True))
    row = large.summary_row(tmp_path, large.Outcome("sr2/fm-large", "trained", 120.0))
    assert (row["label"], row["psnr"], row["ssim"], row["samples_per_s"]) == (
        "2steps",
        22.5,
        0.5,
        200.0,
    )
    missing = large.summary_row(tmp_path, large.Outcome("sr4/fm-large", "failed (rc 1)"))
    table = large.summary_markdown([row, missing], "# t")
    assert (
        "| sr2/fm-large | trained | restore/fm-large | 1.50 | 300 | 19200 | 200 | 1.60 | 2.00 | "
        "22.50 (2steps) | 20.00 | 0.500 | 0.400 |" in table
    )
    assert "| sr4/fm-large | failed (rc 1) |" in table

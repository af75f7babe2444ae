"""Synthetic datasets: splits, reproducibility, shards, readers, targeted sets, bad input, CLI."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from stm_zoo.errors import StmZooError
from training.__main__ import main as training_main
from training.datasets import OnTheFlyDataset, ShardDataset
from training.degradations import TARGETED, apply_pipeline
from training.shards import FORMAT_VERSION, _compact, build_dataset, read_manifest, replay_params
from training.sources import (
    SPLITS,
    PristineSource,
    assign_splits,
    load_pristine_folder,
    split_counts,
)

COUNTS = {"n_train": 40, "n_val": 10, "n_test": 10}


def _surface(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A cheap stand-in for a pristine scan: dimer-row-like stripes, bumps and noise, in nm."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    rows = 0.02 * np.cos(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / 3.94)
    bumps = np.zeros(shape, np.float32)
    for cy, cx in rng.uniform(0, shape, size=(20, 2)):
        bumps += 0.15 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 18)
    return (rows + bumps + 0.005 * rng.standard_normal(shape)).astype(np.float32)


@pytest.fixture(scope="module")
def sources() -> list[PristineSource]:
    rng = np.random.default_rng(7)
    shapes = [(160, 200), (200, 160), (144, 144), (180, 220), (150, 170)]
    return [
        PristineSource(f"s{k}.npy", _surface(rng, shape), (0.195, 0.195), {"k": k})
        for k, shape in enumerate(shapes)
    ]


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory) -> Path:
    """A restoration dataset with targeted sets, written with one worker."""
    out = tmp_path_factory.mktemp("built") / "data"
    build_dataset(
        sources,
        "restore",
        out,
        **COUNTS,
        seed=5,
        workers=1,
        targeted=True,
        n_targeted=6,
        shard_size=16,
    )
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_split_counts_follow_the_paper():
    assert split_counts(54) == {"train": 36, "val": 12, "test": 6}
    assert split_counts(36) == {"train": 24, "val": 8, "test": 4}
    assert split_counts(3) == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(StmZooError, match="at least 3"):
        split_counts(2)


@pytest.mark.parametrize("n", range(3, 40))
def test_assign_splits_is_a_partition(n):
    splits = assign_splits(n, seed=11)
    flat = [j for split in SPLITS for j in splits[split]]
    assert sorted(flat) == list(range(n))
    assert all(len(splits[s]) >= 1 for s in SPLITS)
    assert splits == assign_splits(n, seed=11)


def test_same_seed_gives_identical_bytes_with_any_worker_count(sources, built, tmp_path):
    again = tmp_path / "again"
    build_dataset(
        sources,
        "restore",
        again,
        **COUNTS,
        seed=5,
        workers=2,
        targeted=True,
        n_targeted=6,
        shard_size=16,
    )
    first, second = _files(built), _files(again)
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first), "datasets differ"

    other = tmp_path / "other"
    build_dataset(sources, "restore", other, **COUNTS, seed=6, workers=1, shard_size=16)
    assert _files(other)["train-00000.npy"] != first["train-00000.npy"]


def test_manifest_counts_shapes_and_records(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["task"] == "restore" and manifest["seed"] == 5
    assert isinstance(manifest["degradation_config"], dict) and manifest["degradation_config"]
    for split, key in zip(SPLITS, COUNTS, strict=True):
        entry = manifest["splits"][split]
        assert entry["count"] == COUNTS[key] == len(entry["sample_source"])
        arrays = [np.load(built / shard["file"], mmap_mode="r") for shard in entry["shards"]]
        assert [a.shape for a in arrays] == [(s["count"], 2, 128, 128) for s in entry["shards"]]
        assert sum(len(a) for a in arrays) == entry["count"]
        assert all(a.dtype == np.float16 for a in arrays)
        values = np.concatenate(arrays).astype(np.float32)
        assert values.min() >= -1 and values.max() <= 1
        # Each channel is normalised on its own to span [-1, 1].
        assert np.allclose(values.min(axis=(2, 3)), -1, atol=1e-3)
        assert np.allclose(values.max(axis=(2, 3)), 1, atol=1e-3)
        lines = (built / entry["records"]).read_text().splitlines()
        assert [json.loads(line)["index"] for line in lines] == list(range(entry["count"]))
        assert [json.loads(line)["source"] for line in lines] == entry["sample_source"]
    assert len(manifest["splits"]["train"]["shards"]) == 3  # 40 samples in shards of 16


def test_splits_never_share_a_source_scan(built, sources):
    manifest = json.loads((built / "manifest.json").read_text())
    pools = {split: set(manifest["splits"][split]["sources"]) for split in SPLITS}
    assert pools["train"].isdisjoint(pools["val"]) and pools["train"].isdisjoint(pools["test"])
    assert pools["val"].isdisjoint(pools["test"])
    assert set().union(*pools.values()) == set(range(len(sources)))
    for split in SPLITS:
        used = set(manifest["splits"][split]["sample_source"])
        assert used <= pools[split]
        assert {manifest["sources"][j]["split"] for j in used} == {split}
    for folder in manifest["targeted"].values():
        sub = json.loads((built / folder / "manifest.json").read_text())
        assert set(sub["splits"]["test"]["sample_source"]) <= pools["test"]


def test_shard_dataset_reads_what_was_written(built):
    dataset = ShardDataset(built, "train")
    assert len(dataset) == COUNTS["n_train"]
    raw = np.concatenate([np.load(built / f"train-{k:05d}.npy") for k in range(3)])
    for i in (0, 15, 16, 39, -1):
        clean, degraded = dataset[i]
        assert clean.shape == degraded.shape == (1, 128, 128)
        assert clean.dtype == degraded.dtype == torch.float32
        assert torch.equal(clean[0], torch.from_numpy(raw[i, 0].astype(np.float32)))
        assert torch.equal(degraded[0], torch.from_numpy(raw[i, 1].astype(np.float32)))
    with pytest.raises(IndexError):
        dataset[COUNTS["n_train"]]
    revived = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(revived[3][1], dataset[3][1])
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))
    assert batch[0].shape == (8, 1, 128, 128)
    with pytest.raises(StmZooError, match="no 'nope' split"):
        ShardDataset(built, "nope")
    with pytest.raises(StmZooError, match="manifest"):
        ShardDataset(built / "targeted", "test")


def test_on_the_fly_is_deterministic_per_index_and_epoch(built, sources):
    train = assign_splits(len(sources), seed=5)["train"]
    arrays = [sources[j].heights_nm for j in train]
    on_the_fly = OnTheFlyDataset(arrays, "restore", length=COUNTS["n_train"], seed=5)
    written = ShardDataset(built, "train")
    for i in (0, 7, 39):
        a, b = on_the_fly[i], on_the_fly[i]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        # Epoch 0 is the written dataset, up to float16 rounding.
        for fresh, stored in zip(a, written[i], strict=True):
            assert torch.allclose(fresh, stored, atol=1e-3)
    epoch0 = on_the_fly[3]
    on_the_fly.set_epoch(1)
    epoch1 = on_the_fly[3]
    assert not torch.equal(epoch0[0], epoch1[0])
    assert torch.equal(epoch1[1], on_the_fly[3][1])
    with pytest.raises(IndexError):
        on_the_fly[COUNTS["n_train"]]


def _fired(step: dict) -> str:
    return step["step"]


def test_targeted_sets_fire_only_their_degradation(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert set(manifest["targeted"]) == set(TARGETED) - {"low_res"}
    for name, folder in manifest["targeted"].items():
        dataset = ShardDataset(built / folder, "test")
        assert len(dataset) == 6
        sub = json.loads((built / folder / "manifest.json").read_text())
        assert sub["only"] == name
        for line in (built / folder / "test-records.jsonl").read_text().splitlines():
            fired = {_fired(step) for step in json.loads(line)["steps"]}
            assert fired & set(TARGETED) == {name}, (name, fired)


def test_records_are_compact_and_replay_gives_the_exact_parameters(built, sources):
    lines = (built / "train-records.jsonl").read_text().splitlines()
    assert max(len(line) for line in lines) < 4000
    written = ShardDataset(built, "train")
    for index in (0, 21, 39):
        params = replay_params(built, "train", index)
        stored = json.loads(lines[index])
        assert [_compact(step) for step in params.records()] == stored["steps"]
        clean, degraded = apply_pipeline(sources[stored["source"]].heights_nm, params)
        assert np.allclose(clean, written[index][0][0].numpy(), atol=1e-3)
        assert np.allclose(degraded, written[index][1][0].numpy(), atol=1e-3)
    for name, folder in json.loads((built / "manifest.json").read_text())["targeted"].items():
        params = replay_params(built / folder, "test", 2)
        assert getattr(params, name) is not None
    with pytest.raises(StmZooError, match="out of range"):
        replay_params(built, "val", COUNTS["n_val"])


def test_sr_targeted_sets_include_low_res(sources, tmp_path):
    result = build_dataset(
        sources,
        "sr4",
        tmp_path / "sr4",
        n_train=3,
        n_val=2,
        n_test=2,
        seed=1,
        workers=1,
        targeted=True,
        n_targeted=3,
    )
    assert set(result.counts) == {"train", "val", "test"} | {f"targeted/{t}" for t in TARGETED}
    records = (tmp_path / "sr4/targeted/low_res/test-records.jsonl").read_text().splitlines()
    for line in records:
        assert {_fired(step) for step in json.loads(line)["steps"]} & set(TARGETED) == {"low_res"}


def test_build_refuses_bad_arguments(sources, built, tmp_path):
    with pytest.raises(StmZooError, match="not empty"):
        build_dataset(sources, "restore", built, **COUNTS)
    with pytest.raises(StmZooError, match="Unknown task"):
        build_dataset(sources, "sr3", tmp_path / "x", **COUNTS)
    with pytest.raises(StmZooError, match="at least 3"):
        build_dataset(sources[:2], "restore", tmp_path / "y", **COUNTS)
    small = PristineSource("tiny", np.zeros((100, 300), np.float32), (0.2, 0.2))
    with pytest.raises(StmZooError, match="tiny"):
        build_dataset([*sources, small], "restore", tmp_path / "z", **COUNTS)


# ---------------------------------------------------------------------------------------------
# Pristine folders
# ---------------------------------------------------------------------------------------------


def _write_npy_scans(folder: Path, arrays: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, array in enumerate(arrays):
        np.save(folder / f"scan{k}.npy", array)


def test_pristine_folder_skips_unreadable_files_and_crops_nan_rows(sources, tmp_path, caplog):
    folder = tmp_path / "pristine"
    heights_m = [s.heights_nm * 1e-9 for s in sources[:3]]
    heights_m[0][:10] = np.nan  # an aborted first lines
    _write_npy_scans(folder, heights_m)
    (folder / "notes.sxm").write_bytes(b"not a scan at all")
    (folder / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(folder / "flat.npy", np.zeros((200, 200), np.float32))
    (folder / "scan1_copy.npy").write_bytes((folder / "scan1.npy").read_bytes())
    with caplog.at_level(logging.WARNING, logger="training.sources"):
        loaded = load_pristine_folder(folder)
    assert [s.name for s in loaded] == ["scan0.npy", "scan1.npy", "scan2.npy"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    for name in ("notes.sxm", "broken.npy", "flat.npy", "scan1_copy.npy"):
        assert sum(name in w for w in warnings) == 1, (name, warnings)
    assert loaded[0].heights_nm.shape[0] == sources[0].heights_nm.shape[0] - 10
    assert all(np.isfinite(s.heights_nm).all() for s in loaded)


def test_pristine_folder_reads_instrument_files(shared_data, tmp_path, caplog):
    folder = tmp_path / "instrument"
    folder.mkdir()
    for pattern in ("matrix/*", "nanonis/Si_7x7_028.sxm"):
        for path in (shared_data / "spm-fixtures").glob(pattern):
            (folder / path.name).write_bytes(path.read_bytes())
    with caplog.at_level(logging.WARNING, logger="training.sources"):
        loaded = load_pristine_folder(folder)
    # The MATRIX parameter file is read through its data file, without a warning of its own.
    assert [s.name for s in loaded] == ["20201111--4_1.Z_mtrx", "Si_7x7_028.sxm"]
    assert not any(".mtrx" in r.getMessage() for r in caplog.records)
    assert loaded[1].pixel_size_nm == pytest.approx((0.1953125, 0.1953125))
    assert all(np.isfinite(s.heights_nm).all() and np.ptp(s.heights_nm) > 0 for s in loaded)


def test_pristine_folder_with_nothing_usable_fails(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.sxm").write_bytes(b"junk")
    with pytest.raises(StmZooError, match="No usable pristine scan"):
        load_pristine_folder(folder)
    with pytest.raises(StmZooError, match="does not exist"):
        load_pristine_folder(tmp_path / "missing")


def test_pristine_scan_smaller_than_the_crop_fails(tmp_path):
    folder = tmp_path / "small"
    _write_npy_scans(folder, [np.random.default_rng(0).random((100, 300)) * 1e-9])
    with pytest.raises(StmZooError, match="scan0.npy"):
        load_pristine_folder(folder)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_builds_from_simulated_scans(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["data", "--task", "sr2", "--simulate", "3", "--size-px", "160", "--out", str(out)]
    code = training_main([*args, "--train", "6", "--val", "2", "--test", "2", "--workers", "1"])
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(out)
    assert manifest["task"] == "sr2"
    assert [manifest["splits"][s]["count"] for s in SPLITS] == [6, 2, 2]
    assert [s["name"] for s in manifest["sources"]] == ["sim-0000", "sim-0001", "sim-0002"]
    assert len(ShardDataset(out, "val")) == 2
    assert "samples/s" in capsys.readouterr().out


def test_cli_builds_from_a_pristine_folder_and_reports_errors(sources, tmp_path, capsys):
    folder = tmp_path / "pristine"
    _write_npy_scans(folder, [s.heights_nm * 1e-9 for s in sources])
    out = tmp_path / "data"
    base = ["data", "--task", "restore", "--pristine", str(folder)]
    code = training_main([*base, "--out", str(out), "--train", "4", "--val", "2", "--test", "2"])
    assert code == 0
    assert len(ShardDataset(out, "train")) == 4
    shared = tmp_path / "shared"
    sizes = ["--train", "4", "--val", "2", "--test", "2", "--target-scale", "degraded"]
    assert training_main([*base, "--out", str(shared), *sizes]) == 0
    assert read_manifest(shared)["degradation_config"]["target_scale"] == "degraded"
    own, same_map = ShardDataset(out, "train")[0], ShardDataset(shared, "train")[0]
    assert torch.equal(own[1], same_map[1])  # the degraded image is the same either way
    capsys.readouterr()
    assert training_main([*base, "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = training_main(["data", "--task", "restore", "--pristine", str(empty), "--out", "x"])
    assert code == 2
    assert "No usable pristine scan" in capsys.readouterr().err

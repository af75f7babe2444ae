"""`python -m evaluation experimental`: models run on whole scans through `stm_zoo.pipeline.restore`
and the features see tiles cut the same way from inputs, outputs and pristine scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import evaluation.cli_experimental as experimental
from evaluation.cli_experimental import FeatureSpace, evaluate_experimental
from evaluation.real_tiles import scan_tiles
from stm_zoo.io import load_scan
from stm_zoo.pipeline import RestoreOptions, restore

NM = 1e-9


def surface(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Dimer-row-like stripes with line offsets and noise, in metres."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    z = 0.03 * np.cos(2 * np.pi * x / 3.94) + 0.02 * rng.standard_normal((shape[0], 1))
    return ((z + 0.01 * rng.standard_normal(shape)) * NM).astype(np.float32)


def folder(path: Path, shape: tuple[int, int], count: int, seed: int) -> Path:
    path.mkdir()
    for i in range(count):
        np.save(path / f"scan{i}.npy", surface(shape, seed + i))
    return path


def summary_features(tiles: np.ndarray) -> np.ndarray:
    """A cheap stand-in feature extractor: per-tile moments and a coarse spectrum."""
    spectrum = np.abs(np.fft.rfft2(tiles))[:, :8, :8].reshape(len(tiles), -1)
    return np.concatenate([tiles.reshape(len(tiles), -1).std(1, keepdims=True), spectrum], 1)


@pytest.mark.parametrize("task, lines", [("restore", 256), ("sr2", 128)])
def test_rows_come_from_the_restore_pipeline(tmp_path, monkeypatch, task, lines) -> None:
    spaces = (FeatureSpace("KID", summary_features), FeatureSpace("CMMD", None, "no CLIP", "n/a"))
    monkeypatch.setattr(experimental, "feature_spaces", lambda *args: spaces)
    degraded = folder(tmp_path / "degraded", (lines, 256), 2, seed=0)
    pristine = folder(tmp_path / "pristine", (256, 256), 2, seed=10)
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    result = evaluate_experimental(
        zoo, degraded, pristine, task, kid_subsets=5, kid_subset_size=4, examples=2
    )
    names = [row.spec.family for row in result.rows]
    assert names == ["input", "classical", "pristine"]
    _, classical, _ = result.rows
    assert classical.n == 8 and classical.kid is not None and classical.cmmd is None
    # The classical row's first tiles are those of the first scan restored by `restore`.
    scan = load_scan(degraded / "scan0.npy")
    restored = restore(scan, RestoreOptions(task=task, family="classical"))
    expected = scan_tiles(restored.scan, 100 / 512)
    np.testing.assert_allclose(result.outputs[0].images, expected[:2], atol=1e-6)

"""Fixtures for the expert-evaluation tests: a tiny random-init zoo, small scans, one study.

The study compares three configurations on four 64x64 scans: the classical baseline and two tiny
random-init networks registered as fm-small and ddim-small, so preparing it takes about a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from expert_eval.records import Score, Submission
from expert_eval.study import Study, StudyInput, StudyOutput, Trial, prepare

MODELS = ["classical", "fm-small-2", "ddim-small-3"]
N_INPUTS = 4


def write_tiny_zoo(root: Path, tasks: tuple[str, ...] = ("restore",)) -> Path:
    """<task>/fm-small and <task>/ddim-small as 2-level, 8/16-channel random-init U-Nets."""
    import torch

    from stm_zoo.entry_format import EntryConfig, write_entry
    from stm_zoo.methods import get_method
    from stm_zoo.nn import UNet, UNetConfig
    from stm_zoo.registry import SR_FACTOR

    for k, (task, family) in enumerate((t, f) for t in tasks for f in ("fm", "ddim")):
        method = get_method(family)
        config = UNetConfig(
            channels=(8, 16),
            blocks_per_level=(1, 1),
            middle_blocks=1,
            norm_groups=8,
            time_scale=method.time_scale,
        )
        torch.manual_seed(k)
        net = UNet(config)
        entry = EntryConfig(task, family, "small", config, tile_size=64, sr_factor=SR_FACTOR[task])
        write_entry(root / task / f"{family}-small", entry, net.state_dict(), "# tiny\n")
    return root


def write_scans(folder: Path, n: int = N_INPUTS, size: int = 64) -> Path:
    """n synthetic 'row-artefacted lattice' scans as .npy (heights in metres)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        lattice = np.sin(xx * (0.7 + 0.05 * i)) * np.cos(yy * 0.9) * 1e-10
        rows = rng.normal(0, 5e-11, size=(size, 1))  # row-offset artefacts
        noise = rng.normal(0, 2e-11, size=(size, size))
        np.save(folder / f"scan_{i}.npy", (lattice + rows + noise).astype(np.float32))
    return folder


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    return write_tiny_zoo(tmp_path_factory.mktemp("zoo"), ("restore", "sr4"))


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine more make tiny convolutions 10-100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def prepared_study(tmp_path_factory, tiny_zoo) -> Study:
    """A real study prepared once per session (treat as read-only)."""
    import torch

    root = tmp_path_factory.mktemp("study")
    inputs = write_scans(root / "inputs")
    # One thread: on a shared 2-core machine more threads make tiny convolutions 10-100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return prepare(
            inputs, "restore", MODELS, root / "study", seed=3, device="cpu", zoo_path=tiny_zoo
        )
    finally:
        torch.set_num_threads(threads)


def synthetic_study(
    directory: Path,
    n_trials: int,
    n_outputs: int = 3,
    task: str = "restore",
    models: list[str] | None = None,
    study_id: str | None = None,
) -> Study:
    """A study object (manifest only, no data files) for store-level tests."""
    models = models or MODELS[:n_outputs]
    sid = study_id or f"s{task}{n_trials}"
    trials = [
        Trial(
            f"{sid}-t{i:04d}",
            f"{sid}-i{i:04d}",
            [StudyOutput(f"{sid}-t{i:04d}-o{j}", m, 0, 0.0) for j, m in enumerate(models)],
        )
        for i in range(n_trials)
    ]
    inputs = [StudyInput(t.input_id, f"{t.input_id}.npy", (64, 64), (1e-8, 1e-8)) for t in trials]
    return Study(directory, sid, sid, task, models, inputs, trials, "00" * 32, "2025-01-01")


def full_answer(
    study: Study, trial_index: int, rater: str, ratings=None, ranks=None, comment: str = ""
) -> Submission:
    """A complete, valid answer (ratings 3.., ranks 1..n unless given)."""
    trial = study.trials[trial_index]
    n = len(trial.outputs)
    ratings = ratings or [3] * n
    ranks = ranks or list(range(1, n + 1))
    scores = tuple(
        Score(o.output_id, "ABCDEFGH"[j], ratings[j], ranks[j]) for j, o in enumerate(trial.outputs)
    )
    return Submission(rater, trial.trial_id, scores, comment)


@pytest.fixture
def make_study():
    """`synthetic_study` (test modules cannot import conftest under --import-mode=importlib)."""
    return synthetic_study


@pytest.fixture
def make_answer():
    """`full_answer`."""
    return full_answer


@pytest.fixture(autouse=True)
def private_temp_dirs(tmp_path, monkeypatch) -> None:
    """Rendered previews and Gradio's file cache go under tmp_path, not the system temp dir."""
    monkeypatch.setenv("STM_ZOO_APP_TMP", str(tmp_path / "app_tmp"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))

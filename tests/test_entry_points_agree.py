"""The CLI, the app and the Python API give the same result file for the same input and options.

Issue 14's consistency check: restore and x2 super-resolution, on a size-less 16-bit PNG (where
the SR line-pitch rule decides the frame) and on an .sxm, with the classical baseline and with
the bundled restore/sr2 fm-small entries (seed 0, 1 step). Each result is read back and compared:
data, frame size, unit and channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stm_zoo.__main__ import main
from stm_zoo.io import Scan, load_all_scans, load_scan, save_scan
from stm_zoo.io.results import result_label, save_result
from stm_zoo.pipeline import RestoreOptions, restore
from webapp.limits import AppLimits
from webapp.models import ModelCache
from webapp.restoring import RestoreRequest, restore_upload

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NM = 1e-9


def surface(shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """Dimer-row-like stripes with a bump and noise, in metres."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    rng = np.random.default_rng(0)
    z = 0.03 * np.cos(2 * np.pi * x / 3.94) + 0.2 * np.exp(-((y - 30) ** 2 + (x - 20) ** 2) / 40)
    return ((z + 0.01 * rng.standard_normal(shape)) * NM).astype(np.float32)


def write_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    png = folder / "sizeless.png"
    save_scan(Scan(surface(), scan_size_m=(0.0, 0.0)), png)  # no physical size in the file
    sxm = folder / "sized.sxm"
    save_scan(Scan(surface(), channel="Z", scan_size_m=(12.5 * NM, 12.5 * NM)), sxm)
    return {"png": png, "sxm": sxm}


def by_cli(source: Path, task: str, family: str, out: Path) -> Path:
    args = ["restore", str(source), "--task", task, "--model", family, "--steps", "1"]
    assert main([*args, "--seed", "0", "-o", str(out)]) == 0
    (written,) = [p for p in out.iterdir() if p.suffix == source.suffix]
    return written


def by_app(source: Path, task: str, family: str, out: Path) -> Path:
    options = RestoreOptions(task=task, family=family, size="small", steps=1, device="cpu", seed=0)
    outcome = restore_upload([str(source)], RestoreRequest(options), ModelCache(), AppLimits())
    return next(p for p in outcome.files if p.suffix == source.suffix)


def by_api(source: Path, task: str, family: str, out: Path) -> Path:
    options = RestoreOptions(task=task, family=family, steps=1, seed=0, device="cpu")
    result = restore(load_scan(source), options)
    out.mkdir()
    path = out / f"result{source.suffix}"
    return save_result(result.scan, path, label=result_label(task, family, "small"))[0]


def restored_image(path: Path, task: str, family: str) -> Scan:
    """The restored image of a result file: the added channel of an .sxm, the image of a PNG."""
    if path.suffix != ".sxm":
        return load_scan(path)
    name = f"Z_{result_label(task, family, 'small')}"
    return next(s for s in load_all_scans(path) if s.channel == name)


@pytest.mark.parametrize("task", ["restore", "sr2"])
@pytest.mark.parametrize("family", ["classical", "fm"])
@pytest.mark.parametrize("kind", ["png", "sxm"])
def test_cli_app_and_api_write_the_same_result(tmp_path, monkeypatch, kind, family, task) -> None:
    monkeypatch.chdir(tmp_path)
    source = write_inputs(tmp_path / "in")[kind]
    results = {
        name: restored_image(run(source, task, family, tmp_path / name), task, family)
        for name, run in (("cli", by_cli), ("app", by_app), ("api", by_api))
    }
    reference = results["api"]
    factor = 2 if task == "sr2" else 1
    assert reference.shape == (64 * factor, 64)
    if kind == "png":
        # Size-less: square pixels of the paper's pitch, lines `factor` times further apart.
        pitch = 100 * NM / 512
        assert reference.scan_size_m == pytest.approx((64 * pitch, 64 * pitch * factor))
    else:
        assert reference.scan_size_m == pytest.approx((12.5 * NM, 12.5 * NM))
    for name in ("cli", "app"):
        other = results[name]
        assert other.shape == reference.shape, name
        assert other.scan_size_m == pytest.approx(reference.scan_size_m, rel=1e-6), name
        assert (other.unit, other.channel) == (reference.unit, reference.channel), name
        np.testing.assert_allclose(other.data, reference.data, rtol=0, atol=1e-6 * NM, err_msg=name)

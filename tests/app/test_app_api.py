"""The launched app driven through its named API endpoints with gradio_client.

One app per module, served on a free local port, with a tiny random-init flow-matching entry in a
temporary zoo (STM_ZOO_DIR), so no trained weights and no network are needed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stm_zoo.io import Scan, load_all_scans, load_scan, save_scan
from webapp.zoo_table import ZOO_COLUMNS

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
REPO_ROOT = Path(__file__).resolve().parents[2]
CLASSICAL = {"family": "classical", "size": "small"}


def load_app_module(name: str = "stm_zoo_app_under_test") -> Any:
    """app.py as a module (it lives at the repository root, outside any package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "app.py")
    # Registered first, as importlib's recipe does: dataclasses look their module up there.
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tiny_entry(zoo: Path, task: str = "restore", family: str = "fm") -> None:
    """A random-init one-level U-Net as the zoo entry <task>/<family>-small."""
    import torch

    from stm_zoo.entry_format import EntryConfig, write_entry
    from stm_zoo.methods import get_method
    from stm_zoo.nn import UNet, UNetConfig

    torch.manual_seed(0)
    config = UNetConfig(
        channels=(8,),
        blocks_per_level=(1,),
        middle_blocks=1,
        norm_groups=8,
        time_scale=get_method(family).time_scale,
    )
    entry = EntryConfig(
        task=task,
        family=family,
        size="small",
        network=config,
        training={"steps": 3, "samples_seen": 24, "device": "cpu (test)"},
        metrics={"val": {"psnr_2steps": 12.5}},
    )
    write_entry(zoo / entry.key.subdir, entry, UNet(config).state_dict(), "A test entry.")


def app_environment(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Everything the app and gradio write goes under `root`; nothing reaches the network."""
    mp.setenv("STM_ZOO_DIR", str(root / "zoo"))
    mp.setenv("STM_ZOO_APP_TMP", str(root / "requests"))
    mp.setenv("STM_ZOO_APP_EXAMPLES", str(root / "examples"))
    mp.setenv("GRADIO_TEMP_DIR", str(root / "gradio"))
    mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    mp.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """(client, work folder) of the app launched in this process."""
    from gradio_client import Client

    root = tmp_path_factory.mktemp("app_api")
    write_tiny_entry(root / "zoo")
    with pytest.MonkeyPatch.context() as mp:
        app_environment(mp, root)
        app = load_app_module()
        demo = app.build_app()
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **app.launch_options())
        try:
            yield Client(url, download_files=str(root / "client"), verbose=False), root
        finally:
            demo.close()


def restore(client: Any, files: list[Path], **options: Any) -> list[Any]:
    """Call /restore with the page's defaults overridden by `options`."""
    from gradio_client import handle_file

    values = {
        "channel": "Z",
        "direction": "forward",
        "scan_width": None,
        "task": "restore",
        "family": "fm",
        "size": "small",
        "steps": 1,
        "device": "cpu",
        "seed": 0,
        "samples": 1,
        "keep": False,
        "no_resample": False,
        "colour": "gold",
    }
    values.update(options)
    return client.predict(
        [handle_file(str(f)) for f in files], *values.values(), api_name="/restore"
    )


def small_npy(path: Path, shape: tuple[int, int] = (128, 128)) -> Path:
    rng = np.random.default_rng(1)
    np.save(path, np.cumsum(rng.standard_normal(shape), axis=1).astype(np.float32) * 1e-11)
    return path


def test_restore_a_real_sxm_and_reload_the_download(served, fixtures_dir: Path):
    client, _ = served
    source = fixtures_dir / "nanonis" / "Si_7x7_028.sxm"
    original = load_scan(source)
    slider, before, after, uncertainty, summary, files = restore(client, [source], **CLASSICAL)
    assert [Path(f).suffix for f in files] == [".sxm", ".gwy", ".png", ".npy"]
    for path in files[:3]:
        back = load_scan(path)
        assert back.shape == original.shape
        assert back.scan_size_m == pytest.approx(original.scan_size_m, rel=1e-6)
    assert np.load(files[3]).shape == original.shape
    assert "restore/classical" in summary
    assert all(Path(p).suffix == ".png" for p in (*slider, before, after))
    assert uncertainty["value"] is None and uncertainty["visible"] is False


def test_restore_a_matrix_pair_comes_back_as_gwy(served, fixtures_dir: Path):
    client, _ = served
    folder = fixtures_dir / "matrix"
    pair = [folder / "20201111--4_1.Z_mtrx", folder / "20201111_0001.mtrx"]
    *_, summary, files = restore(client, pair, direction="backward", **CLASSICAL)
    assert [Path(f).suffix for f in files] == [".gwy", ".png", ".npy"]
    back = load_scan(files[0], "Z_restore_classical", "backward")
    assert back.shape == (400, 400) and back.direction == "backward"
    assert len(load_all_scans(files[0])) == len(load_all_scans(pair[0])) + 1
    assert back.scan_size_m == pytest.approx((100e-9, 100e-9))


def test_restore_with_a_zoo_model_and_two_samples_shows_the_uncertainty(served):
    client, root = served
    source = small_npy(root / "flat.npy")
    *_, uncertainty, summary, files = restore(client, [source], scan_width=25.0, samples=2)
    assert "restore/fm-small (1 steps)" in summary and "uncertainty" in summary
    assert uncertainty["visible"] is True and Path(uncertainty["value"]).suffix == ".png"
    std = np.load(next(f for f in files if f.endswith("_std.npy")))
    assert std.shape == (128, 128) and float(std.max()) > 0.0
    restored = load_scan(next(f for f in files if f.endswith(".gwy")))
    assert restored.scan_size_m == pytest.approx((25e-9, 25e-9))


def test_a_frame_far_from_the_model_scale_needs_its_own_pixels(served):
    """400 nm over 128 px would be resampled 16x up: refused, unless the user ticks the box."""
    from gradio_client.exceptions import AppError

    client, root = served
    source = small_npy(root / "coarse.npy")
    with pytest.raises(AppError, match="own pixels"):
        restore(client, [source], scan_width=400.0, **CLASSICAL)
    *_, summary, files = restore(client, [source], scan_width=400.0, no_resample=True, **CLASSICAL)
    assert np.load(next(f for f in files if f.endswith(".npy"))).shape == (128, 128)
    assert load_scan(next(f for f in files if f.endswith(".gwy"))).scan_size_m == pytest.approx(
        (400e-9, 400e-9)
    )


def test_inspect_fills_the_channel_and_direction_pickers(served, fixtures_dir: Path):
    from gradio_client import handle_file

    client, _ = served
    source = fixtures_dir / "nanonis" / "example_LineProfile2.sxm"
    info, channel, direction, preview, *_ = client.predict(
        [handle_file(str(source))], None, "restore", "grey", api_name="/inspect"
    )
    assert "20 × 20 nm" in info
    assert [c[0] for c in channel["choices"]][:3] == ["Z", "Bias", "Current"]
    assert channel["value"] == "Z" and direction["value"] == "forward"
    assert Path(preview).suffix == ".png"


def corrupt_inputs(root: Path) -> dict[str, tuple[list[Path], dict[str, Any], str]]:
    """name -> (uploaded files, restore options, expected message)."""
    text = root / "notes.txt"
    text.write_text("not a scan")
    broken = root / "broken.SXM"
    broken.write_bytes(np.random.default_rng(0).bytes(4096))
    lonely = root / "20201111--4_1.Z_mtrx"
    lonely.write_bytes(b"ONTMATRX0101" + b"\0" * 128)
    huge = root / "huge.npy"
    with open(huge, "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (40000, 40000)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    huge_sxm = root / "huge.sxm"
    scan = Scan(np.zeros((8, 8)), scan_size_m=(5e-9, 5e-9))
    save_scan(scan, huge_sxm)
    raw = huge_sxm.read_bytes().replace(b"         8         8", b"     40000     40000", 1)
    huge_sxm.write_bytes(raw)
    valid = small_npy(root / "valid.npy", (64, 64))
    return {
        "unsupported": ([text], CLASSICAL, "notes.txt: files of type '.txt' are not supported"),
        "corrupt": ([broken], CLASSICAL, "broken.SXM: is not a Nanonis .sxm file"),
        "matrix without parameters": ([lonely], CLASSICAL, "20201111_0001.mtrx was not uploaded"),
        "model not in zoo": ([valid], {"family": "ddim", "size": "large"}, "not in the local zoo"),
        "huge npy": ([huge], CLASSICAL, "announces 40,000 x 40,000 px"),
        "huge sxm": ([huge_sxm], CLASSICAL, "announces 40,000 x 40,000 px"),
        "several files": ([valid, valid], CLASSICAL, "upload one scan at a time"),
    }


def test_bad_input_is_a_visible_error_and_the_app_keeps_serving(served):
    from gradio_client.exceptions import AppError

    client, root = served
    for name, (files, options, message) in corrupt_inputs(root).items():
        with pytest.raises(AppError) as raised:
            restore(client, files, **options)
        assert message in str(raised.value), name
    *_, summary, files = restore(client, [small_npy(root / "after.npy", (64, 64))], **CLASSICAL)
    assert "classical" in summary and len(files) == 3  # .npy, .gwy, .png


def test_zoo_endpoint_lists_the_local_entry_and_the_baseline(served):
    client, _ = served
    table = client.predict(api_name="/zoo")
    assert table["headers"] == ZOO_COLUMNS
    rows = {tuple(row[:3]): row for row in table["data"]}
    assert rows[("restore", "Flow matching", "small")][3] == "✅ local"
    assert rows[("restore", "Flow matching", "small")][4].startswith("3 steps, 24 samples")
    assert rows[("sr2", "Classical (no network)", "")][3] == "✅ built in"
    assert rows[("sr4", "Autoencoder", "large")][3] == "missing"
    assert "--preset sr4/ae-large" in rows[("sr4", "Autoencoder", "large")][-1]


def test_degrade_endpoint_applies_the_pipeline(served):
    from training.explorer import ExplorerSettings

    client, _ = served
    d = ExplorerSettings()  # the page's controls, in the dataclass's field order
    values = [getattr(d, name) for name in d.__dataclass_fields__]
    values[-2] = list(d.segment_kinds)
    clean, degraded, gallery, record = client.predict(*values, "grey", api_name="/degrade")
    assert Path(clean).suffix == Path(degraded).suffix == ".png"
    assert [item["caption"] for item in gallery] == [
        "Multi-tip (ghost images)",
        "Blunt tip (blur)",
        "Tip change",
        "Scan-line noise",
    ]
    assert [step["step"] for step in record][:2] == ["rotation", "multi_tip"]

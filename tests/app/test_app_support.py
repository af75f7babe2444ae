"""The web app's logic without a server: uploads, limits, previews, downloads, models, explorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stm_zoo.errors import ModelNotFoundError, StmZooError
from stm_zoo.io import Scan, list_channels, load_scan, save_scan
from stm_zoo.pipeline import RestoreOptions
from training import explorer as synthetic
from webapp import previews
from webapp.limits import AppLimits, announced_shape
from webapp.models import ModelCache, device_choices, gpu_seconds, zero_gpu
from webapp.restoring import (
    RestoreRequest,
    describe_result,
    describe_scan,
    inspect_upload,
    read_scan,
    restore_upload,
    safe_stem,
)
from webapp.uploads import check_file_type, resolve_upload
from webapp.zoo_table import ZOO_COLUMNS, train_command, zoo_rows


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Request folders, examples and the zoo inside tmp_path; never the Hub."""
    monkeypatch.setenv("STM_ZOO_APP_TMP", str(tmp_path / "app"))
    monkeypatch.setenv("STM_ZOO_APP_EXAMPLES", str(tmp_path / "examples"))
    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def surface(shape: tuple[int, int] = (96, 128), seed: int = 0) -> np.ndarray:
    """A smooth random height field in metres (~0.3 nm) with a tilt."""
    rng = np.random.default_rng(seed)
    field = np.cumsum(np.cumsum(rng.standard_normal(shape), 0), 1)
    field = (field - field.mean()) / field.std() * 0.1e-9
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return field + 1e-12 * (3 * xx + 2 * yy)


def write_npy(path: Path, shape: tuple[int, int] = (96, 128)) -> Path:
    np.save(path, surface(shape).astype(np.float32))
    return path


def npy_header_claiming(path: Path, shape: tuple[int, int]) -> Path:
    """A .npy whose header announces `shape` float32 but holds almost no data."""
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    return path


# --- colour maps and previews ---------------------------------------------------------------


def test_colour_tables_end_at_their_stops():
    grey, gold = previews.colour_table("grey"), previews.colour_table("gold")
    assert grey.shape == gold.shape == (256, 3) and grey.dtype == np.uint8
    assert grey[0].tolist() == [0, 0, 0] and grey[-1].tolist() == [255, 255, 255]
    # Gwyddion's Gold runs from black to a pale yellow (0.988, 0.988, 0.502).
    assert gold[0].tolist() == [0, 0, 0] and gold[-1].tolist() == [252, 252, 128]
    luminance = gold.astype(float) @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(luminance) >= 0)
    with pytest.raises(StmZooError, match="colour map"):
        previews.colour_table("jet")


@pytest.mark.parametrize(("target", "nice"), [(9.9, 5.0), (20.0, 20.0), (0.37, 0.2), (150, 100)])
def test_nice_length(target: float, nice: float):
    assert previews.nice_length(target) == pytest.approx(nice)


def test_remove_plane_levels_a_tilt_and_ignores_nan():
    yy, xx = np.mgrid[0:20, 0:30].astype(float)
    data = 2.0 + 0.5 * yy - 0.25 * xx
    data[3] = np.nan
    levelled = previews.remove_plane(data)
    assert np.nanmax(np.abs(levelled)) < 1e-9
    assert np.isnan(levelled[3]).all()


def test_render_uses_the_physical_aspect_and_burns_in_a_scale_bar():
    # 64 lines over 50 nm by 256 px over 50 nm: a square frame with rectangular pixels.
    data = np.zeros((64, 256))
    rgb = previews.render(data, (50e-9, 50e-9), "grey", value_range=(0.0, 1.0), level=False)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    h, w = rgb.shape[:2]
    assert rgb[h // 2 :, : w // 2].max() == 255  # the white bar and label, bottom left
    assert rgb[: h // 2].max() == 0 and rgb[:, w // 2 :].max() == 0  # nothing anywhere else
    plain = previews.render(data, (50e-9, 50e-9), "grey", value_range=(0, 1), scale_bar=False)
    assert plain.max() == 0


def test_render_draws_nan_rows_black_and_maps_the_robust_range():
    data = surface((64, 64))
    data[10:12] = np.nan
    rgb = previews.render(data, (20e-9, 20e-9), "grey", size=(64, 64), scale_bar=False)
    assert (rgb[10:12] == 0).all()
    assert rgb.min() == 0 and rgb.max() == 255


def test_render_views_share_one_size_for_the_slider():
    scan = Scan(surface((32, 64)), scan_size_m=(20e-9, 20e-9))
    result = scan.replace(data=np.repeat(scan.data, 2, axis=0))
    views = previews.render_views(scan, result, np.abs(result.data), "gold")
    assert views.before.shape == views.after.shape
    assert views.before.shape[:2] == views.uncertainty.shape[:2]
    # 512 x 512 px of image, then the colour bar's strip on the right.
    assert views.before.shape[0] == 512 and views.before.shape[1] > 512
    assert previews.render_views(scan).after is None


# --- uploads and limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["SCAN.SXM", "a.Gwy", "b.TIFF", "c.npy", "d--1_1.Z_MTRX", "e.MTRX"]
)
def test_file_types_are_checked_case_insensitively(name: str):
    check_file_type(Path(name))


@pytest.mark.parametrize("name", ["photo.jpg", "notes.txt", "noext"])
def test_unsupported_file_types_are_refused_with_the_accepted_list(name: str):
    with pytest.raises(StmZooError, match=r"not supported; upload \.sxm"):
        check_file_type(Path(name))


def test_resolve_upload_refuses_nothing_several_files_and_a_lonely_matrix_file(tmp_path: Path):
    with pytest.raises(StmZooError, match="Upload a scan file first"):
        resolve_upload(None, tmp_path)
    a, b = write_npy(tmp_path / "a.npy"), write_npy(tmp_path / "b.npy")
    with pytest.raises(StmZooError, match="one scan at a time"):
        resolve_upload([str(a), str(b)], tmp_path)
    assert resolve_upload([str(a)], tmp_path) == a
    data = tmp_path / "20201111--4_1.Z_mtrx"
    data.write_bytes(b"ONTMATRX0101" + b"\0" * 64)
    with pytest.raises(StmZooError, match="20201111_0001.mtrx was not uploaded"):
        resolve_upload([str(data)], tmp_path / "work")


def test_matrix_pair_from_separate_upload_folders_is_joined(fixtures_dir: Path, tmp_path: Path):
    uploads = []
    for i, name in enumerate(["20201111--4_1.Z_mtrx", "20201111_0001.mtrx"]):
        folder = tmp_path / f"upload{i}"
        folder.mkdir()
        target = folder / name
        target.write_bytes((fixtures_dir / "matrix" / name).read_bytes())
        uploads.append(str(target))
    path = resolve_upload(uploads, tmp_path / "work")
    assert path.parent == tmp_path / "work" / "matrix"
    assert read_scan(path, AppLimits()).shape == (400, 400)


def test_announced_shape_reads_headers_without_data(tmp_path: Path, fixtures_dir: Path):
    assert announced_shape(write_npy(tmp_path / "a.npy", (40, 50))) == (40, 50)
    huge = npy_header_claiming(tmp_path / "huge.npy", (40000, 40000))
    assert announced_shape(huge) == (40000, 40000)
    sxm = fixtures_dir / "nanonis" / "Si_7x7_012.sxm"
    assert announced_shape(sxm) == (256, 256)
    png = tmp_path / "a.png"
    save_scan(Scan(surface((30, 40))), png)
    assert announced_shape(png) == (30, 40)


def test_an_absurd_pixel_claim_is_refused_before_reading(tmp_path: Path):
    huge = npy_header_claiming(tmp_path / "huge.npy", (40000, 40000))
    with pytest.raises(StmZooError, match=r"announces 40,000 x 40,000 px .* crop or bin it"):
        read_scan(huge, AppLimits())


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("STM_ZOO_APP_MAX_PIXELS", "1000")
    monkeypatch.setenv("STM_ZOO_APP_CONCURRENCY", "3")
    limits = AppLimits.from_env()
    assert (limits.max_pixels, limits.concurrency) == (1000, 3)
    with pytest.raises(StmZooError, match="more than the 1,000 px"):
        read_scan(write_npy(tmp_path / "a.npy", (40, 50)), limits)
    monkeypatch.setenv("STM_ZOO_APP_MAX_PIXELS", "lots")
    with pytest.raises(StmZooError, match="STM_ZOO_APP_MAX_PIXELS"):
        AppLimits.from_env()


def test_options_are_checked():
    limits = AppLimits()
    with pytest.raises(StmZooError, match="Steps must be between 1 and 50"):
        RestoreRequest(RestoreOptions(steps=51)).check(limits)
    with pytest.raises(StmZooError, match="Samples"):
        RestoreRequest(RestoreOptions(samples=99)).check(limits)
    with pytest.raises(StmZooError, match="scan width"):
        RestoreRequest(scan_size_nm=-3.0).check(limits)
    with pytest.raises(StmZooError, match="size large only"):
        RestoreOptions(family="ae", size="small")  # the pipeline's own check, when made


# --- models -----------------------------------------------------------------------------------


def test_model_cache_reuses_and_evicts():
    cache = ModelCache(capacity=2)
    first = cache.get("restore", "classical", "small", "cpu")
    assert cache.get("restore", "classical", "large", "cpu") is first  # size means nothing here
    cache.get("sr2", "classical", "small", "cpu")
    cache.get("sr4", "classical", "small", "cpu")
    assert len(cache) == 2
    assert cache.get("restore", "classical", "small", "cpu") is not first
    with pytest.raises(ModelNotFoundError, match="not in the local zoo"):
        cache.get("restore", "ddim", "large", "cpu")


def test_device_choices_list_only_what_exists():
    import torch

    choices = device_choices()
    assert choices[:2] == ["auto", "cpu"]
    assert ("cuda" in choices) == torch.cuda.is_available()


def test_zero_gpu_is_a_no_op_without_spaces():
    def fn(x: int) -> int:
        return x + 1

    try:
        import spaces  # noqa: F401
    except ImportError:
        assert zero_gpu(fn, duration=10) is fn
    else:
        pytest.skip("the spaces package is installed")
    assert 30 <= gpu_seconds((512, 512), 2, 1) <= gpu_seconds((2048, 2048), 50, 8)


def tiny_entry(zoo: Path, task: str, family: str, *, weights: bool = True, **card) -> None:
    """A random-init one-level U-Net as <task>/<family>-small with the given card fields."""
    from stm_zoo.entry_format import WEIGHTS_NAME, EntryConfig, write_entry
    from stm_zoo.methods import get_method
    from stm_zoo.nn import UNet, UNetConfig
    from stm_zoo.registry import SR_FACTOR

    config = UNetConfig(
        channels=(8,),
        blocks_per_level=(1,),
        middle_blocks=1,
        norm_groups=8,
        time_scale=get_method(family).time_scale,
    )
    entry = EntryConfig(task, family, "small", config, sr_factor=SR_FACTOR[task], **card)
    folder = write_entry(zoo / entry.key.subdir, entry, UNet(config).state_dict(), "card")
    if not weights:
        (folder / WEIGHTS_NAME).unlink()


def test_zoo_rows_read_like_the_papers_table(tmp_path: Path):
    zoo = tmp_path / "zoo"
    test = {
        "input_psnr": 20.0,
        "input_ssim": 0.48,
        "classical_psnr": 23.5,
        "classical_ssim": 0.51,
        **{f"psnr_{n}steps": 24.0 - n / 10 for n in (2, 5, 10)},
        **{f"ssim_{n}steps": 0.5 for n in (2, 5, 10)},
    }
    budget = {"steps": 1438, "samples_seen": 46016, "wall_time_h": 0.42, "device": "cpu x 1"}
    tiny_entry(
        zoo, "restore", "ddim", training={**budget, "complete": True}, metrics={"test": test}
    )
    tiny_entry(zoo, "sr2", "fm", training={"steps": 5, "complete": False})
    tiny_entry(zoo, "sr4", "fm", weights=False)
    rows = zoo_rows()
    assert all(len(r) == len(ZOO_COLUMNS) for r in rows)
    column = {name: i for i, name in enumerate(ZOO_COLUMNS)}

    # Grouped by task, each group the input, classical, then every registry entry.
    assert [r[0] for r in rows] == [t for t in ("restore", "sr2", "sr4") for _ in range(8)]
    by_row = {(r[0], r[1], r[2]): r for r in rows}
    restore = [r for r in rows if r[0] == "restore"]
    assert restore[0][1] == "Degraded input" and restore[1][1] == "Classical (no network)"
    assert restore[0][column["PSNR gain (dB) at 2 / 5 / 10 steps"]] == "0 (20.00 dB)"
    assert restore[0][column["Paper SSIM"]] == "0.680"  # the paper's Table III input row

    # The classical row per task, from the card's test metrics: a gain over the input.
    classical = restore[1]
    assert classical[column["Status"]] == "✅ built in"
    assert classical[column["PSNR gain (dB) at 2 / 5 / 10 steps"]] == "+3.50"
    assert classical[column["SSIM at 2 / 5 / 10 steps"]] == "0.510"

    ddim = by_row[("restore", "DDIM", "small")]
    assert ddim[column["Status"]] == "✅ local"  # a zoo folder other than the bundled one
    assert ddim[column["Training budget"]] == "1,438 steps, 46,016 samples, 0.42 h on cpu x 1"
    assert ddim[column["PSNR gain (dB) at 2 / 5 / 10 steps"]] == "+3.80 / +3.50 / +3.00"
    assert ddim[column["Paper PSNR gain"]] == "– / +6.44 / +6.59"  # Table IX: 26.44, 26.59 dB
    assert ddim[column["SSIM at 2 / 5 / 10 steps"]] == "0.500 / 0.500 / 0.500"
    assert ddim[column["Paper SSIM"]] == "– / 0.886 / 0.890"
    assert ddim[column["KID at 2 / 5 / 10 steps"]] == "–"  # the card has none
    assert ddim[column["How to get it"]] == ""

    assert by_row[("sr2", "Flow matching", "small")][column["Status"]].startswith("🔶 preview")
    assert by_row[("sr2", "Flow matching", "small")][column["Paper PSNR gain"]] == "–"
    card_only = by_row[("sr4", "Flow matching", "small")]
    assert card_only[column["Status"]] == "⚠️ card only, no weights"
    missing = by_row[("sr4", "Autoencoder", "large")]
    assert missing[column["Status"]] == "missing"
    command = "python -m training train --preset sr4/ae-large --data data/sr4 --out zoo"
    assert missing[column["How to get it"]] == f"`{command}`"
    assert command == train_command("sr4", "ae-large")
    # Without any card the baselines still show, with no numbers of ours.
    assert by_row[("sr2", "Classical (no network)", "")][column["SSIM at 2 / 5 / 10 steps"]] == "–"


def test_train_command_names_a_real_preset():
    from training.configs import preset

    for task, entry in (("restore", "fm-large"), ("sr4", "ae-large")):
        name = train_command(task, entry).split("--preset ")[1].split()[0]
        assert preset(name).task == task


# --- restoring and downloads ------------------------------------------------------------------


def test_restore_upload_writes_every_download_with_the_input_geometry(tmp_path: Path):
    source = tmp_path / "scan.sxm"
    save_scan(Scan(surface((64, 96)), scan_size_m=(30e-9, 20e-9)), source)
    request = RestoreRequest(RestoreOptions(family="classical", device="cpu"))
    outcome = restore_upload([str(source)], request, ModelCache(), AppLimits())
    assert [p.suffix for p in outcome.files] == [".sxm", ".gwy", ".png", ".npy"]
    for path in outcome.files[:3]:
        back = load_scan(path)
        assert back.shape == (64, 96)
        assert back.scan_size_m == pytest.approx((30e-9, 20e-9))
    assert np.load(outcome.files[3]).shape == (64, 96)
    assert "classical" in describe_result(outcome)
    for path in outcome.files[:2]:  # .sxm and .gwy keep the input beside the result
        assert [c.name for c in list_channels(path)] == ["Z", "Z_restore_classical"]
        assert np.array_equal(load_scan(path).data, load_scan(source).data)
        restored = load_scan(path, "Z_restore_classical")
        assert np.array_equal(restored.data, outcome.result.scan.data)


def test_restore_upload_super_resolves_a_npy_with_its_scan_width(tmp_path: Path):
    source = write_npy(tmp_path / "lines.npy", (32, 64))
    request = RestoreRequest(RestoreOptions(task="sr2", family="classical"), scan_size_nm=12.5)
    outcome = restore_upload([str(source)], request, ModelCache(), AppLimits())
    assert outcome.result.scan.shape == (64, 64)
    assert outcome.files[0].suffix == ".npy"
    gwy = load_scan(next(p for p in outcome.files if p.suffix == ".gwy"), "Z_sr2_classical")
    assert gwy.scan_size_m == pytest.approx((12.5e-9, 12.5e-9))  # lines 2x sparser


def test_model_grid_limit_names_the_model_pixel_size(tmp_path: Path):
    source = write_npy(tmp_path / "coarse.npy", (64, 64))
    request = RestoreRequest(RestoreOptions(family="classical"), scan_size_nm=1000.0)  # 15.6 nm/px
    limits = AppLimits(max_model_pixels=1_000_000)
    with pytest.raises(StmZooError, match=r"at the model's 0.1953 nm/px"):
        restore_upload([str(source)], request, ModelCache(), limits)


def test_inspect_upload_lists_channels_and_directions(fixtures_dir: Path):
    found = inspect_upload([str(fixtures_dir / "nanonis" / "Si_7x7_012.sxm")], AppLimits())
    assert found.channels == ["Z", "Current"] and found.directions == ["forward", "backward"]
    assert found.scan.channel == "Z"
    assert "200 × 200 nm" in describe_scan(found.path, found.scan)


def test_safe_stem():
    assert safe_stem(Path("20201111--4_1.Z_mtrx")) == "20201111--4_1"
    assert safe_stem(Path("my scan (1).sxm")) == "my_scan_1_"


# --- synthetic examples and the degradation explorer ------------------------------------------


def test_example_scans_are_made_once(tmp_path: Path):
    examples = synthetic.example_scans(tmp_path / "ex")
    assert [e.task for e in examples] == ["restore", "sr2"]
    restore_example, sr_example = (load_scan(e.path) for e in examples)
    assert restore_example.shape == (256, 256) and sr_example.shape == (128, 256)
    assert sr_example.scan_size_m == pytest.approx((50e-9, 50e-9))
    stamps = [e.path.stat().st_mtime_ns for e in examples]
    synthetic.example_scans(tmp_path / "ex")
    assert [e.path.stat().st_mtime_ns for e in examples] == stamps


def test_explorer_is_deterministic_and_shows_each_artefact_alone():
    settings = synthetic.ExplorerSettings(misalignment=True)
    a, b = synthetic.explore(settings), synthetic.explore(settings)
    assert np.array_equal(a.degraded, b.degraded)
    labels = [label for label, _ in a.singles]
    assert labels == [synthetic.ARTEFACT_LABELS[n] for n in synthetic.ARTEFACTS]
    assert a.clean.shape == a.degraded.shape == (128, 128)
    tip_change = next(r for r in a.record if r["step"] == "tip_change")
    assert tip_change == {"step": "tip_change", "line": 77, "blur_sigma_px": 1.5, "offset": 0.15}
    shifts = next(r for r in a.record if r["step"] == "misalignment")["shifts_px"]
    assert shifts[-1] == "... 128 in all"


def test_explorer_without_artefacts_returns_the_clean_crop():
    settings = synthetic.ExplorerSettings(
        multi_tip=False, blunt_tip=False, tip_change=False, scan_lines=False
    )
    result = synthetic.explore(settings)
    assert np.array_equal(result.clean, result.degraded)
    assert result.singles == []
    sr = synthetic.explore(settings.__class__(task="sr2", multi_tip=False, scan_lines=False))
    assert synthetic.ARTEFACT_LABELS["low_res"] in [label for label, _ in sr.singles]


def test_explorer_refuses_bad_settings():
    with pytest.raises(StmZooError, match="segment kind"):
        synthetic.explore(synthetic.ExplorerSettings(segment_kinds=("square",)))
    with pytest.raises(StmZooError, match="crop"):
        synthetic.explore(synthetic.ExplorerSettings(crop_px=1024))

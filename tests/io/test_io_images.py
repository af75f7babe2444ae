"""PNG, TIFF and .npy: assumed sizes, embedded metadata, bit depths, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stm_zoo.io import DEFAULT_PIXEL_SIZE_NM, Scan, STMFileError, load_scan, save_scan


def heights(seed: int = 0, shape: tuple[int, int] = (20, 30), nan_rows: int = 0) -> Scan:
    rng = np.random.default_rng(seed)
    data = rng.normal(scale=2e-10, size=shape).astype(np.float32)
    data[:nan_rows] = np.nan
    return Scan(
        data,
        scan_size_m=(30e-9, 20e-9),
        bias_v=-1.2,
        setpoint_a=5e-11,
        history=["level: plane"],
        scan_dir="down",
        metadata={"format": "sxm", "header": {"BIAS": "-1.2"}},
    )


@pytest.mark.parametrize(("name", "bits"), [("h.png", None), ("h.png", 8), ("h.tif", 16)])
def test_integer_images_round_trip_within_half_a_code(tmp_path, same_scan, name, bits):
    scan = heights(nan_rows=3)
    out = save_scan(scan, tmp_path / name, bit_depth=bits)
    with Image.open(out) as image:
        assert image.mode == ("L" if bits == 8 else "I;16")
    again = load_scan(out)
    finite = scan.data[np.isfinite(scan.data)]
    step = float(finite.max() - finite.min()) / (2 ** (bits or 16) - 2)
    ulp = float(np.spacing(np.abs(finite).max()))  # float32 rounding on top
    same_scan(again, scan, atol=0.5 * step + 2 * ulp)
    assert again.history == scan.history
    assert again.metadata["header"]["source_metadata"] == scan.metadata


def test_float_tiff_and_npy_are_exact(tmp_path, same_scan):
    scan = heights(nan_rows=2)
    same_scan(load_scan(save_scan(scan, tmp_path / "h.tiff")), scan)
    with Image.open(tmp_path / "h.tiff") as image:
        assert image.mode == "F"
    npy = load_scan(save_scan(scan, tmp_path / "h.npy"))
    assert np.array_equal(npy.data, scan.data, equal_nan=True)
    assert npy.pixel_size_assumed  # .npy carries no metadata
    assert npy.pixel_size_m == pytest.approx((DEFAULT_PIXEL_SIZE_NM * 1e-9,) * 2)


def test_foreign_images_get_the_default_or_given_size(tmp_path):
    codes = (np.arange(64 * 128) % 251).reshape(64, 128).astype(np.uint8)
    Image.fromarray(codes).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([codes] * 3, axis=-1)).save(tmp_path / "rgb.png")
    grey = load_scan(tmp_path / "grey.png")
    assert np.array_equal(grey.data, codes.astype(np.float32))
    assert grey.unit == "" and grey.pixel_size_assumed
    assert grey.scan_size_m == pytest.approx((25e-9, 12.5e-9))  # 100 nm per 512 px
    assert any("assumed 0.1953125 nm/px" in note for note in grey.metadata["notes"])
    assert np.array_equal(load_scan(tmp_path / "rgb.png").data, grey.data)
    given = load_scan(tmp_path / "grey.png", scan_size_nm=50)
    assert given.scan_size_m == pytest.approx((50e-9, 25e-9)) and given.pixel_size_assumed
    # slow-axis super-resolution inputs have non-square pixels: 512 x 256 px over 100 x 100 nm
    pair = load_scan(tmp_path / "grey.png", scan_size_nm=(100, 100))
    assert pair.pixel_size_m == pytest.approx((100e-9 / 128, 100e-9 / 64))


def test_reference_si001h_array_loads_at_the_paper_sampling(shared_data):
    path = shared_data / "si001h-reference" / "brockley_23_2_forward.npy"
    scan = load_scan(path)
    assert scan.shape == (512, 512)
    assert scan.scan_size_m == pytest.approx((100e-9, 100e-9))
    assert np.array_equal(scan.data, np.load(path).astype(np.float32))


def test_npy_shapes_and_dtypes(tmp_path):
    np.save(tmp_path / "stack.npy", np.ones((1, 8, 9)))
    assert load_scan(tmp_path / "stack.npy").shape == (8, 9)
    np.save(tmp_path / "line.npy", np.ones(9))
    with pytest.raises(STMFileError, match=r"shape \(9,\), not a 2-D image"):
        load_scan(tmp_path / "line.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    with pytest.raises(STMFileError, match="not numbers"):
        load_scan(tmp_path / "text.npy")
    np.save(tmp_path / "objects.npy", np.array([[{}, None]], dtype=object), allow_pickle=True)
    with pytest.raises(STMFileError, match="objects.npy"):
        load_scan(tmp_path / "objects.npy")


def test_save_scan_refuses_what_a_format_cannot_hold(tmp_path):
    scan = heights()
    with pytest.raises(STMFileError, match="holds one image"):
        save_scan([scan, scan.replace(direction="backward")], tmp_path / "two.png")
    with pytest.raises(STMFileError, match="8 or 16 bits"):
        save_scan(scan, tmp_path / "x.png", bit_depth=32)
    with pytest.raises(STMFileError, match="float32 \\(32\\) or 16-bit"):
        save_scan(scan, tmp_path / "x.tif", bit_depth=8)
    with pytest.raises(STMFileError, match="writes .sxm, .gwy, .png, .tif, .tiff, .npy"):
        save_scan(scan, tmp_path / "x.jpg")
    with pytest.raises(STMFileError, match="writes"):
        save_scan(scan, tmp_path / "x--1_1.Z_mtrx")
    with pytest.raises(STMFileError, match="does not exist"):
        save_scan(scan, tmp_path / "missing" / "x.png")
    with pytest.raises(STMFileError, match="empty image"):
        save_scan(Scan(np.zeros((0, 4), np.float32)), tmp_path / "x.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == []

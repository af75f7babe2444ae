"""PNG, TIFF and .npy: assumed sizes, embedded metadata, bit depths, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from stm_zoo.io import DEFAULT_PIXEL_SIZE_NM, Scan, STMFileError, load_scan, save_scan, scan_info


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


@pytest.mark.parametrize("interlaced", [False, True])
def test_16bit_colour_and_grey_alpha_pngs_keep_16_bits(tmp_path, png16, interlaced):
    """Issue 13 (7): Pillow cuts these to 8 bits; every bit must survive."""
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 65536, (11, 13)).astype(np.uint16)
    # grey stored as RGB: luminance is exactly the grey level
    rgb = png16(tmp_path / "rgb.png", np.stack([grey] * 3, -1), 2, interlaced=interlaced)
    scan = load_scan(rgb)
    assert np.array_equal(scan.data, grey.astype(np.float32))
    assert any("converted to luminance" in note for note in scan.metadata["notes"])
    # colour with alpha: ITU-R 601 luminance at 16 bits, alpha ignored and said so
    colour = rng.integers(0, 65536, (11, 13, 4)).astype(np.uint16)
    scan = load_scan(png16(tmp_path / "rgba.png", colour, 6, interlaced=interlaced))
    expected = (299.0 * colour[..., 0] + 587.0 * colour[..., 1] + 114.0 * colour[..., 2]) / 1000
    assert np.allclose(scan.data, expected, rtol=1e-7, atol=0)
    assert any("alpha" in note and "ignored" in note for note in scan.metadata["notes"])
    # grey + alpha: the grey channel, all 16 bits
    grey_alpha = np.stack([grey, 65535 - grey], -1)
    scan = load_scan(png16(tmp_path / "la.png", grey_alpha, 4, interlaced=interlaced))
    assert np.array_equal(scan.data, grey.astype(np.float32))
    assert any("alpha" in note and "ignored" in note for note in scan.metadata["notes"])
    assert scan.metadata["header"]["mode"] == "LA;16"


def gwyddion_png(path, codes: np.ndarray, **chunks: str):
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(f"Gwy::{key}", value)
    Image.fromarray(codes).save(path, pnginfo=info)
    return path


def test_gwyddion_png_text_chunks_give_size_units_and_heights(tmp_path):
    """Issue 13 (8): a Gwyddion 16-bit PNG export is read at its size, in its units."""
    codes = (np.arange(12 * 16).reshape(12, 16) * 300).astype(np.uint16)
    path = gwyddion_png(
        tmp_path / "export.png",
        codes,
        XReal="1e-07",
        YReal="7.5e-08",
        XOffset="2e-08",
        YOffset="0",
        XYUnit="m",
        ZUnit="m",
        ZMin="-2e-10",
        ZMax="1.3e-09",
        Title="Topography (Backward)",
    )
    scan = load_scan(path)
    assert scan.scan_size_m == pytest.approx((100e-9, 75e-9))
    assert not scan.pixel_size_assumed
    assert scan.unit == "m"
    assert (scan.channel, scan.direction) == ("Topography", "backward")
    heights = -2e-10 + codes.astype(np.float64) * (1.5e-9 / 65535)
    assert np.allclose(scan.data, heights, rtol=1e-6, atol=1e-20)
    assert scan.metadata["header"]["Gwy::XOffset"] == "2e-08"
    assert scan_info(path)["scan_size_nm"] == [100.0, 75.0]
    # prefixed units scale; 8-bit codes map onto 0..255; no ZMin/ZMax: codes in arbitrary units
    small = gwyddion_png(
        tmp_path / "um.png",
        codes.astype(np.uint8),
        XReal="0.05",
        YReal="0.0375",
        XYUnit="µm",
        ZUnit="nm",
        ZMin="0",
        ZMax="2.55",
    )
    scan = load_scan(small)
    assert scan.scan_size_m == pytest.approx((50e-9, 37.5e-9))
    assert np.allclose(scan.data, codes.astype(np.uint8) * 1e-11, rtol=1e-6)
    bare = load_scan(gwyddion_png(tmp_path / "bare.png", codes, XReal="1e-07", YReal="1e-07"))
    assert bare.pixel_size_assumed and bare.unit == ""  # XYUnit missing: not a length
    assert any("not used as the scan size" in note for note in bare.metadata["notes"])


def test_our_png_carries_gwyddion_chunks_that_alone_give_size_and_heights(tmp_path, same_scan):
    """Issue 13 (8): what we write, Gwyddion (or our reader without our own chunk) reads back."""
    scan = heights(nan_rows=0).replace(channel="Current", unit="A", direction="backward")
    out = save_scan(scan, tmp_path / "ours.png")
    with Image.open(out) as image:
        chunks = {k: v for k, v in image.text.items() if k.startswith("Gwy::")}
        codes = np.asarray(image)
    assert chunks["Gwy::XReal"] == repr(30e-9) and chunks["Gwy::XYUnit"] == "m"
    assert chunks["Gwy::ZUnit"] == "A" and chunks["Gwy::Title"] == "Current (Backward)"
    foreign = gwyddion_png(tmp_path / "foreign.png", codes, **{k[5:]: v for k, v in chunks.items()})
    again = load_scan(foreign)
    step = float(np.ptp(scan.data)) / 65535
    same_scan(again, scan.replace(bias_v=None, setpoint_a=None, scan_dir=None), atol=step)

"""Tiling is exact for an identity function and seamless for smooth functions."""

from __future__ import annotations

import numpy as np
import pytest

from stm_zoo.tiling import blend_window, count_tiles, tile_starts, tiled_map


def _identity(tiles: np.ndarray, _field: np.ndarray | None) -> np.ndarray:
    return tiles


@pytest.mark.parametrize("shape", [(128, 128), (512, 512), (300, 421), (77, 200), (40, 33)])
def test_identity_model_reproduces_input(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = tiled_map(_identity, image, tile=128, overlap=32, batch_size=5)
    assert out.shape == shape
    np.testing.assert_allclose(out, image, rtol=0, atol=1e-5)


def test_tiles_cover_image_with_requested_overlap() -> None:
    for length in (128, 129, 256, 300, 512, 1000):
        starts = tile_starts(length, 128, 32)
        assert starts[0] == 0 and starts[-1] + 128 == max(length, 128)
        gaps = np.diff(starts)
        assert (gaps <= 128 - 32).all()


def test_window_is_positive_and_symmetric() -> None:
    window = blend_window(128)
    assert (window > 0).all()
    np.testing.assert_allclose(window, window[::-1, ::-1])


def test_field_tiles_match_image_tiles() -> None:
    """The shared noise field is cut at exactly the tile positions of the image."""
    image = np.arange(300 * 260, dtype=np.float32).reshape(300, 260)
    out = tiled_map(lambda tiles, field: field, image, field=image.copy())
    np.testing.assert_allclose(out, image, rtol=1e-6)


def test_no_seam_for_a_tile_dependent_offset() -> None:
    """A function that shifts each tile by a different constant still blends smoothly."""
    rng = np.random.default_rng(1)
    image = np.zeros((384, 384), dtype=np.float32)

    def shifted(tiles: np.ndarray, _field: np.ndarray | None) -> np.ndarray:
        return tiles + rng.uniform(-1, 1, size=(len(tiles), 1, 1)).astype(np.float32)

    out = tiled_map(shifted, image, tile=128, overlap=48)
    # the largest jump between neighbouring pixels stays small: no hard tile border
    assert np.abs(np.diff(out, axis=0)).max() < 0.2
    assert np.abs(np.diff(out, axis=1)).max() < 0.2


def test_count_tiles() -> None:
    assert count_tiles((128, 128)) == 1
    assert count_tiles((512, 512)) == 25
    assert count_tiles((64, 64)) == 1

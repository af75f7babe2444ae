"""`python -m training gallery`: the paper's Fig. 1 for our data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.__main__ import main
from training.degradations import TARGETED
from training.gallery import (
    GALLERY_ROWS,
    describe,
    gallery_samples,
    load_pristine,
    visible_change,
)


def pristine_heights(shape=(180, 200)) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[: shape[0], : shape[1]]
    return 0.05 * np.sin(2 * np.pi * x / 3.9) + 0.01 * rng.standard_normal(shape) + 0.002 * y


def test_gallery_cli_writes_a_png_with_one_row_per_degradation(tmp_path, capsys):
    source = tmp_path / "pristine.npy"
    np.save(source, pristine_heights())
    out = tmp_path / "figs" / "gallery.png"
    code = main(["gallery", "--out", str(out), "--pristine", str(source), "--candidates", "1"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    with Image.open(out) as image:
        width, height = image.size
    # Seven rows of two panels: a tall figure.
    assert height > 2.5 * width > 1000


def test_every_row_shows_exactly_its_degradation():
    samples = gallery_samples(pristine_heights(), seed=1, candidates=2)
    assert [row for row, _ in samples] == list(GALLERY_ROWS)
    for row, sample in samples:
        fired = {r.step for r in sample.record} & set(TARGETED)
        assert row.only in fired and fired <= {row.only, "low_res"}
        assert describe(sample.record, row.only)
        assert not np.array_equal(sample.clean, sample.degraded)
    assert {row.only for row in GALLERY_ROWS} == set(TARGETED)
    assert [row.task for row in GALLERY_ROWS[-2:]] == ["sr2", "sr4"]


def test_candidates_pick_the_most_visible_draw():
    # Draw 0 of every row is the same in both calls, so the best of five is at least as visible.
    first = gallery_samples(pristine_heights(), seed=2, candidates=1)
    best = gallery_samples(pristine_heights(), seed=2, candidates=5)
    gains = [
        visible_change(b) - visible_change(a) for (_, a), (_, b) in zip(first, best, strict=True)
    ]
    assert min(gains) >= 0 and max(gains) > 0


def test_load_pristine_drops_nan_rows(tmp_path):
    heights = pristine_heights()
    heights[150:] = np.nan
    path = tmp_path / "aborted.npy"
    np.save(path, heights)
    loaded = load_pristine(path)
    assert loaded.shape == (150, 200) and np.isfinite(loaded).all()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (np.zeros((64, 64)) + np.arange(64), "smaller than")],
)
def test_unusable_pristine_files_give_one_line_errors(tmp_path, capsys, content, message):
    path = tmp_path / "small.npy"
    if content is not None:
        np.save(path, content)
    code = main(["gallery", "--out", str(tmp_path / "g.png"), "--pristine", str(path)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


def test_gallery_of_the_real_reference_scan(shared_data, tmp_path):
    out = tmp_path / "reference.png"
    reference = shared_data / "si001h-reference" / "brockley_23_2_forward.npy"
    assert main(["gallery", "--out", str(out), "--pristine", str(reference)]) == 0
    assert out.stat().st_size > 50_000


def test_gallery_of_a_simulated_scan(tmp_path):
    out = tmp_path / "simulated.png"
    assert main(["gallery", "--out", str(out), "--seed", "3", "--candidates", "2"]) == 0
    assert out.stat().st_size > 50_000

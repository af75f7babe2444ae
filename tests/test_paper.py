"""`stm_zoo.paper`: the numbers read from its one JSON file are the paper's (spot checks copied
from the paper's text), and the evaluation tables print the same ones."""

from __future__ import annotations

import pytest

from stm_zoo import paper


@pytest.mark.parametrize(
    ("table", "task", "row", "metric", "value"),
    [
        ("synthetic", "restore", ("input", "", 0), "psnr", 20.00),  # Table III
        ("synthetic", "restore", ("input", "", 0), "ssim", 0.680),
        ("synthetic", "restore", ("ae", "large", 1), "ssim", 0.787),  # Table IX
        ("synthetic", "restore", ("fm", "small", 10), "psnr", 29.36),
        ("synthetic", "restore", ("fm", "large", 10), "psnr", 31.57),
        ("synthetic", "restore", ("ddim-fft", "large", 10), "psnr", 28.86),
        ("synthetic", "sr2", ("fm", "large", 2), "ssim", 0.778),  # Table XI
        ("synthetic", "sr4", ("input", "", 0), "ssim", 0.396),
        ("experimental", "restore", ("input", "", 0), "cmmd", 0.446),  # Table X
        ("experimental", "restore", ("pristine", "", 0), "kid", 0.0194),
        ("experimental", "sr2", ("fm", "small", 2), "kid", 0.0977),  # Table XII
        ("experimental", "sr4", ("ddim-fft", "large", 10), "cmmd", 0.362),  # Table XIII
    ],
)
def test_scores_are_the_papers(table, task, row, metric, value):
    assert paper.scores(table, task)[row][metric] == value


def test_score_tables_have_every_row_of_the_paper():
    for task in ("restore", "sr2", "sr4"):
        synthetic = paper.scores("synthetic", task)
        experimental = paper.scores("experimental", task)
        assert len(synthetic) == 14 and len(experimental) == 15  # + the pristine row
        assert set(experimental) - set(synthetic) == {("pristine", "", 0)}
    assert "psnr" not in paper.scores("synthetic", "sr2")[("fm", "small", 2)]  # SSIM only for SR
    assert paper.scores("synthetic", "sr8") == {}
    with pytest.raises(ValueError, match="unknown paper table"):
        paper.scores("targeted", "restore")


def test_targeted_sets_are_tables_ii_and_v():
    assert paper.targeted("restore")["multi_tip"] == {"psnr": 27.18, "ssim": 0.870}
    assert paper.targeted("restore")["blunt_tip"]["psnr"] == 32.40
    assert paper.targeted("sr2")["low_res"] == {"ssim": 0.750}
    assert paper.targeted("sr4")["tip_change"] == {"ssim": 0.723}


def test_timing_is_tables_viii_and_xiv_and_the_abstract():
    fm_small = paper.step_seconds()["fm", "small"]
    assert (fm_small.cpu, fm_small.gpu, fm_small.speedup) == (0.21, 0.02, 10.30)
    assert paper.step_seconds()["ae", "large"].speedup == 13.50
    assert len(paper.step_seconds()) == 5
    assert paper.image_seconds()["ddim", "small", 5] == (0.50, 0.05)
    assert paper.image_seconds()["fm", "large", 10] == (22.98, 1.61)
    assert len(paper.image_seconds()) == 11
    assert paper.restore_512px_cpu_seconds() == 11.0


def test_callers_get_copies():
    paper.scores("synthetic", "restore")[("fm", "small", 10)]["psnr"] = 0.0
    paper.targeted("restore")["multi_tip"]["psnr"] = 0.0
    assert paper.scores("synthetic", "restore")[("fm", "small", 10)]["psnr"] == 29.36
    assert paper.targeted("restore")["multi_tip"]["psnr"] == 27.18


def test_evaluation_tables_read_the_same_numbers():
    from evaluation.rows import (
        PAPER_EXPERIMENTAL,
        PAPER_SYNTHETIC,
        PAPER_TARGETED,
        RowSpec,
        paper_value,
    )

    assert paper_value(PAPER_SYNTHETIC, "restore", RowSpec("fm", "large", 10), "psnr") == 31.57
    assert paper_value(PAPER_EXPERIMENTAL, "sr4", RowSpec("pristine"), "kid") == 0.0187
    assert paper_value(PAPER_SYNTHETIC, "sr2", RowSpec("classical"), "ssim") is None
    assert PAPER_TARGETED["restore"]["scan_lines"] == {"psnr": 32.38, "ssim": 0.964}

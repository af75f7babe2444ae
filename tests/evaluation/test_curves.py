"""Learning curves read from training logs: validation rows only, cumulative minutes, a PNG."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from evaluation import curves
from stm_zoo.errors import StmZooError

COLUMNS = ["step", "loss", "elapsed_s", "psnr_2steps", "ssim_2steps", "input_psnr", "input_ssim"]


def write_log(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    with open(folder / curves.LOG_NAME, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_curves_keep_the_validation_rows_and_plot_one_panel_per_task(tmp_path) -> None:
    zoo = tmp_path / "zoo"
    write_log(
        zoo / "restore" / "fm-small",
        [
            {"step": 25, "loss": 0.1, "elapsed_s": 30},  # a loss-only row is not a point
            {"step": 50, "elapsed_s": 120, "psnr_2steps": 21.0, "ssim_2steps": 0.40,
             "input_psnr": 20.5, "input_ssim": 0.39},
            {"step": 100, "elapsed_s": 240, "psnr_2steps": 22.0, "ssim_2steps": 0.42,
             "input_psnr": 20.5, "input_ssim": 0.39},
        ],
    )  # fmt: skip
    write_log(
        zoo / "sr2" / "ddim-small",
        [{"step": 9, "elapsed_s": 60, "psnr_2steps": 17.0, "ssim_2steps": 0.1,
          "input_psnr": 19.0, "input_ssim": 0.3}],
    )  # fmt: skip
    found = {c.entry: c for c in curves.zoo_curves(zoo)}
    assert set(found) == {"restore/fm-small", "sr2/ddim-small"}
    restore = found["restore/fm-small"]
    assert restore.minutes == (2.0, 4.0) and restore.psnr == (21.0, 22.0)
    assert restore.input_psnr == 20.5 and restore.task == "restore" and restore.label == "2steps"
    path = curves.plot_curves(list(found.values()), tmp_path / "curves.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_no_logs_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(StmZooError, match="No training log"):
        curves.plot_curves(curves.zoo_curves(tmp_path), tmp_path / "x.png")

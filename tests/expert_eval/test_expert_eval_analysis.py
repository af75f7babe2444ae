"""Summary statistics: Table XV values, bootstrap intervals, Kendall's W, files and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from expert_eval import analysis as an
from expert_eval.__main__ import main
from expert_eval.records import RatingRecord
from expert_eval.store import ExpertStore
from stm_zoo.errors import StmZooError

MODELS = ["fm-large-2", "ddim-fft-large-10", "ddim-small-10"]


def record(task, trial, rater, model, rating, rank, answer, n=3) -> RatingRecord:
    return RatingRecord(
        "s-" + task,
        task,
        trial,
        "in-" + trial,
        rater,
        answer,
        f"{trial}-{model}",
        model,
        "A",
        rating,
        rank,
        n,
        "",
        None,
        "2025-01-01",
    )


def panel(rankings: dict[str, list[list[int]]], task: str = "restore") -> list[RatingRecord]:
    """Records from {rater: [ranks of MODELS per trial]}; rank 1, 2, 3 -> rating 5, 3, 1."""
    out, answer = [], 0
    for rater, trials in rankings.items():
        for t, ranks in enumerate(trials):
            answer += 1
            for model, rank in zip(MODELS, ranks, strict=True):
                out.append(
                    record(
                        task, f"{task}-t{t}", rater, model, 7 - 2 * rank, rank, f"{task}{answer}"
                    )
                )
    return out


def test_kendall_w_on_known_cases():
    assert an.kendall_w([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert an.kendall_w([[1, 2, 3], [3, 2, 1]]) == pytest.approx(0.0)
    # Textbook example: S = 2, n = 2, m = 3 -> W = 12 * 2 / (4 * 24) = 0.25.
    assert an.kendall_w([[1, 2, 3], [2, 3, 1]]) == pytest.approx(0.25)
    # With ties the correction raises W: two raters agreeing up to a tie.
    tied = an.kendall_w([[1, 2.5, 2.5], [1, 2.5, 2.5]])
    assert tied == pytest.approx(1.0)
    assert math.isnan(an.kendall_w([[2, 2, 2], [2, 2, 2]]))
    # Against scipy's Friedman statistic: chi2 = n (m - 1) W.
    from scipy import stats

    rng = np.random.default_rng(0)
    ranks = np.array([rng.permutation(4) + 1 for _ in range(6)], dtype=float)
    chi2 = stats.friedmanchisquare(*ranks.T).statistic
    assert 6 * 3 * an.kendall_w(ranks) == pytest.approx(chi2)


def test_table_values_for_a_unanimous_panel_are_exact():
    records = panel({r: [[1, 2, 3]] * 4 for r in ("a", "b", "c")})
    summary = an.summarise(records, n_boot=500, seed=1)
    rows = {r.model: r for r in summary.models}
    best = rows["fm-large-2"]
    assert best.label == "FM Large (2 steps)" and best.n_ratings == 12 and best.n_raters == 3
    assert (best.mean_rating, best.mean_rank, best.first_pct, best.last_pct) == (5, 1, 100, 0)
    # No variation at all -> degenerate intervals at the estimate.
    assert best.rating_lo == best.rating_hi == 5 and best.first_lo == best.first_hi == 100
    worst = rows["ddim-small-10"]
    assert worst.mean_rank == 3 and worst.last_pct == 100 and worst.mean_rating == 1
    assert [r.model for r in summary.models] == MODELS  # sorted by rating, best first
    agreement = summary.agreement[0]
    assert agreement.trial_w == pytest.approx(1.0) and agreement.n_trials == 4
    assert agreement.model_w == pytest.approx(1.0) and agreement.dof == 2
    assert agreement.p_value < 0.1


def test_intervals_cover_the_estimate_and_the_bootstrap_is_seeded():
    rng = np.random.default_rng(3)
    rankings = {r: [list(rng.permutation(3) + 1) for _ in range(30)] for r in "abcd"}
    records = panel(rankings)
    one = an.summarise(records, n_boot=400, seed=5)
    assert one == an.summarise(records, n_boot=400, seed=5)
    other = an.summarise(records, n_boot=400, seed=6)
    assert [r.rating_lo for r in one.models] != [r.rating_lo for r in other.models]
    frame = an.records_frame(records)
    for row in one.models:
        sub = frame[frame["model"] == row.model]
        assert row.mean_rating == pytest.approx(sub["rating"].mean())
        assert row.first_pct == pytest.approx(100 * (sub["rank"] == 1).mean())
        assert row.rating_lo < row.mean_rating < row.rating_hi
        assert row.rank_lo < row.mean_rank < row.rank_hi
        assert 0 <= row.first_lo < row.first_pct < row.first_hi <= 100
    # Random rankings: little agreement.
    assert abs(one.agreement[0].trial_w) < 0.5


def test_per_task_breakdown_and_output_files(tmp_path):
    records = panel({r: [[1, 2, 3], [2, 1, 3]] for r in "ab"}) + panel(
        {r: [[3, 2, 1]] for r in "ab"}, task="sr2"
    )
    summary = an.summarise(records, n_boot=200)
    assert summary.tasks == ["restore", "sr2", "all"]
    assert {a.task for a in summary.agreement} == {"restore", "sr2", "all"}
    sr2 = {r.model: r for r in summary.models if r.task == "sr2"}
    assert sr2["ddim-small-10"].first_pct == 100
    paths = summary.write(tmp_path)
    assert [p.name for p in paths] == ["summary.md", "summary.csv", "agreement.csv", "summary.png"]
    markdown = paths[0].read_text(encoding="utf-8")
    assert "## Restoration (denoising)" in markdown
    assert "## Slow-axis super-resolution x2" in markdown
    assert "| FM Large (2 steps) (`fm-large-2`) |" in markdown and "Kendall's W" in markdown
    table = pd.read_csv(paths[1])
    assert len(table) == 9 and set(table["task"]) == {"restore", "sr2", "all"}
    assert paths[3].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_without_answers_is_a_clear_error():
    with pytest.raises(StmZooError, match="No answers yet"):
        an.summarise([])


def test_cli_summary_and_export(prepared_study, make_answer, tmp_path, capsys):
    db = tmp_path / "ratings.sqlite3"
    store = ExpertStore(db)
    store.register_study(prepared_study)
    for rater in ("ann", "ben"):
        for i in range(len(prepared_study.trials)):
            store.submit(make_answer(prepared_study, i, rater, ratings=[2, 5, 3], ranks=[3, 1, 2]))
    study_dir = str(prepared_study.directory)
    assert (
        main(
            [
                "summary",
                study_dir,
                "--db",
                str(db),
                "--out",
                str(tmp_path / "sum"),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "FM Small (2 steps) (`fm-small-2`) | 5.00 [5.00, 5.00] | 1.00" in out
    assert (tmp_path / "sum" / "summary.png").is_file()
    assert main(["export", study_dir, "--db", str(db), "--out", str(tmp_path / "r.csv")]) == 0
    table = pd.read_csv(tmp_path / "r.csv")
    assert len(table) == 2 * 4 * 3 and set(table["model"]) == set(prepared_study.models)
    assert "model_label" in table.columns
    assert main(["export", study_dir, "--db", str(db), "--out", str(tmp_path / "r.jsonl")]) == 0
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 8
    assert main(["export", study_dir, "--db", str(db), "--out", str(tmp_path / "r.xls")]) == 2
    assert main(["summary", str(tmp_path), "--db", str(db)]) == 2
    assert "holds no study.json" in capsys.readouterr().err

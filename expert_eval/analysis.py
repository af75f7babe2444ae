"""Summary statistics of an expert study: the paper's Table XV with uncertainty and agreement.

Per task and model: mean rating (1-5, higher is better), mean rank (1 = best), the share of answers
that ranked the model first and last, each with a percentile bootstrap interval. The bootstrap
resamples *trials* (input scans) with replacement, keeping every answer to a trial together,
because the answers of several raters to one scan are not independent; the generator is seeded,
so a summary is reproducible.

Inter-rater agreement, Kendall's W (0: no agreement, 1: identical rankings):
- per trial: W of the raters' rankings of the trial's outputs, for trials answered by at least
  two raters, averaged over trials (with a bootstrap interval over trials);
- per task: W of the raters' overall orderings of the models (each rater's mean rank per model,
  ranked, ties averaged and corrected for), with Friedman's chi-square test (df = models - 1).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from expert_eval.cli import add_db_argument
from expert_eval.configurations import model_label
from expert_eval.records import RatingRecord
from expert_eval.store import open_studies
from stm_zoo.errors import StmZooError

log = logging.getLogger(__name__)

ALL_TASKS = "all"
TASK_TITLES = {
    "restore": "Restoration (denoising)",
    "sr2": "Slow-axis super-resolution x2",
    "sr4": "Slow-axis super-resolution x4",
    ALL_TASKS: "All tasks",
}


@dataclass(frozen=True)
class ModelRow:
    """One model's line of the summary table; `*_lo`/`*_hi` bound the bootstrap interval."""

    task: str
    model: str
    label: str
    n_ratings: int
    n_trials: int
    n_raters: int
    mean_rating: float
    rating_lo: float
    rating_hi: float
    mean_rank: float
    rank_lo: float
    rank_hi: float
    first_pct: float
    first_lo: float
    first_hi: float
    last_pct: float
    last_lo: float
    last_hi: float


@dataclass(frozen=True)
class AgreementRow:
    """Inter-rater agreement for one task (see the module docstring).

    Attributes:
        task: the task, or "all".
        n_trials: trials answered by at least two raters.
        trial_w, trial_w_lo, trial_w_hi: mean per-trial Kendall's W and its interval (NaN when
            no trial has two raters).
        n_raters: raters with answers in the task.
        model_w: W of the raters' overall orderings of the models (NaN with one rater or for
            "all", where the model sets may differ).
        chi2, dof, p_value: Friedman's test of `model_w`.
    """

    task: str
    n_trials: int
    trial_w: float
    trial_w_lo: float
    trial_w_hi: float
    n_raters: int
    model_w: float
    chi2: float
    dof: int
    p_value: float


@dataclass
class Summary:
    """The whole summary: model rows and agreement per task, with the bootstrap settings."""

    models: list[ModelRow]
    agreement: list[AgreementRow]
    n_answers: int
    n_raters: int
    n_trials: int
    n_boot: int
    seed: int
    confidence: float

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(row.task for row in self.models))

    def models_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.models], columns=_names(ModelRow))

    def agreement_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.agreement], columns=_names(AgreementRow))

    def to_markdown(self, heading: int = 1) -> str:
        """Markdown tables in the layout of the paper's Table XV, one per task.

        Args:
            heading: markdown level of the title (task sections are one level below).
        """
        level = f"{self.confidence:.0%}"
        lines = [
            f"{'#' * heading} Expert evaluation",
            "",
            f"{self.n_answers} answers from {self.n_raters} rater(s) on {self.n_trials} "
            f"trial(s). Brackets: {level} bootstrap intervals over trials ({self.n_boot} "
            f"resamples, seed {self.seed}). Ratings 1-5 (higher is better), ranks 1 = best.",
        ]
        for task in self.tasks:
            rows = [r for r in self.models if r.task == task]
            lines += [
                "",
                f"{'#' * (heading + 1)} {TASK_TITLES.get(task, task)}",
                "",
                "| Model | Rating ↑ | Rank ↓ | First rank (%) ↑ | Last rank (%) | Ratings |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {r.label} (`{r.model}`) | {r.mean_rating:.2f} [{r.rating_lo:.2f}, "
                f"{r.rating_hi:.2f}] | {r.mean_rank:.2f} [{r.rank_lo:.2f}, {r.rank_hi:.2f}] | "
                f"{r.first_pct:.1f}% [{r.first_lo:.1f}, {r.first_hi:.1f}] | "
                f"{r.last_pct:.1f}% [{r.last_lo:.1f}, {r.last_hi:.1f}] | {r.n_ratings} |"
                for r in rows
            ]
            agreement = next((a for a in self.agreement if a.task == task), None)
            if agreement is not None:
                lines += ["", _agreement_sentence(agreement)]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path, plot: bool = True) -> list[Path]:
        """Write summary.md, summary.csv, agreement.csv and (with `plot`) summary.png."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "summary.md", out_dir / "summary.csv", out_dir / "agreement.csv"]
        paths[0].write_text(self.to_markdown(), encoding="utf-8")
        self.models_frame().to_csv(paths[1], index=False, float_format="%.4f")
        self.agreement_frame().to_csv(paths[2], index=False, float_format="%.4f")
        if plot:
            paths.append(plot_summary(self, out_dir / "summary.png"))
        return paths


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _agreement_sentence(a: AgreementRow) -> str:
    if a.n_trials:
        text = (
            f"Agreement: Kendall's W per trial {a.trial_w:.2f} [{a.trial_w_lo:.2f}, "
            f"{a.trial_w_hi:.2f}] (mean over {a.n_trials} trial(s) with two or more raters)"
        )
    else:
        text = "Agreement: no trial has two raters yet, so no per-trial Kendall's W"
    if np.isfinite(a.model_w):
        text += (
            f"; W of the {a.n_raters} raters' overall model orderings {a.model_w:.2f} "
            f"(Friedman chi2 = {a.chi2:.2f}, df = {a.dof}, p = {a.p_value:.3g})"
        )
    return text + "."


def records_frame(records: Sequence[RatingRecord]) -> pd.DataFrame:
    """The ratings as a DataFrame with one row per (answer, output)."""
    return pd.DataFrame([asdict(r) for r in records], columns=_names(RatingRecord))


def kendall_w(ranks: np.ndarray) -> float:
    """Kendall's coefficient of concordance with the correction for ties.

    Args:
        ranks: (raters, objects) ranks per rater (ties as average ranks), at least 2 x 2.

    Returns:
        W in [0, 1]; NaN when every rater ties every object.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    n, m = ranks.shape
    totals = ranks.sum(axis=0)
    s = float(((totals - totals.mean()) ** 2).sum())
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    denominator = n**2 * (m**3 - m) - n * ties
    return 12.0 * s / denominator if denominator > 0 else float("nan")


def _interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return lo, hi


def _model_rows(
    frame: pd.DataFrame, task: str, rng: np.random.Generator, n_boot: int, confidence: float
) -> list[ModelRow]:
    """Statistics per model with a trial-cluster bootstrap (see the module docstring)."""
    frame = frame.assign(
        first=(frame["rank"] == 1).astype(float),
        last=(frame["rank"] == frame["n_outputs"]).astype(float),
    )
    trials = sorted(frame["trial_id"].unique())
    models = sorted(frame["model"].unique())
    index = pd.MultiIndex.from_product([models, trials], names=["model", "trial_id"])
    grouped = frame.groupby(["model", "trial_id"])
    sums = grouped[["rating", "rank", "first", "last"]].sum().reindex(index, fill_value=0)
    counts = grouped.size().reindex(index, fill_value=0)
    shape = (len(models), len(trials))
    count = counts.to_numpy(np.float64).reshape(shape)
    # Multinomial weights = how often each trial is drawn in each bootstrap resample.
    weights = rng.multinomial(len(trials), np.full(len(trials), 1.0 / len(trials)), size=n_boot)
    boot_count = weights @ count.T  # (B, M)
    stats = {}
    for column in ("rating", "rank", "first", "last"):
        total = sums[column].to_numpy(np.float64).reshape(shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (weights @ total.T) / boot_count
        stats[column] = (total.sum(axis=1) / count.sum(axis=1), *_interval(boot, confidence))
    rows = []
    for k, model in enumerate(models):
        sub = frame[frame["model"] == model]
        value = {c: tuple(float(v[k]) for v in stats[c]) for c in stats}
        rows.append(
            ModelRow(
                task=task,
                model=model,
                label=model_label(model),
                n_ratings=len(sub),
                n_trials=sub["trial_id"].nunique(),
                n_raters=sub["rater"].nunique(),
                mean_rating=value["rating"][0],
                rating_lo=value["rating"][1],
                rating_hi=value["rating"][2],
                mean_rank=value["rank"][0],
                rank_lo=value["rank"][1],
                rank_hi=value["rank"][2],
                first_pct=100 * value["first"][0],
                first_lo=100 * value["first"][1],
                first_hi=100 * value["first"][2],
                last_pct=100 * value["last"][0],
                last_lo=100 * value["last"][1],
                last_hi=100 * value["last"][2],
            )
        )
    return sorted(rows, key=lambda r: (-r.mean_rating, r.mean_rank, r.model))


def _agreement(
    frame: pd.DataFrame, task: str, rng: np.random.Generator, n_boot: int, confidence: float
) -> AgreementRow:
    from scipy import stats

    per_trial = []
    for _, trial in frame.groupby("trial_id"):
        table = trial.pivot_table(index="rater", columns="output_id", values="rank")
        if len(table) >= 2:
            per_trial.append(kendall_w(table.to_numpy()))
    w = np.asarray(per_trial, dtype=np.float64)
    if w.size:
        draws = rng.integers(0, w.size, size=(n_boot, w.size))
        lo, hi = _interval(w[draws].mean(axis=1), confidence)
        trial_w, trial_lo, trial_hi = float(w.mean()), float(lo), float(hi)
    else:
        trial_w = trial_lo = trial_hi = float("nan")
    n_raters = frame["rater"].nunique()
    model_w = chi2 = p_value = float("nan")
    dof = 0
    if task != ALL_TASKS and n_raters >= 2:
        means = frame.pivot_table(index="rater", columns="model", values="rank").dropna()
        if len(means) >= 2 and means.shape[1] >= 2:
            ranked = np.apply_along_axis(stats.rankdata, 1, means.to_numpy())
            model_w = kendall_w(ranked)
            dof = means.shape[1] - 1
            chi2 = len(means) * dof * model_w
            p_value = float(stats.chi2.sf(chi2, dof))
    return AgreementRow(
        task, int(w.size), trial_w, trial_lo, trial_hi, n_raters, model_w, chi2, dof, p_value
    )


def summarise(
    records: Sequence[RatingRecord], n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Summary:
    """Table XV per task (and over all tasks when there are several) with agreement.

    Args:
        records: the ratings (`ExpertStore.records`).
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap generator.
        confidence: interval coverage, e.g. 0.95.

    Raises:
        StmZooError: no ratings, or bad bootstrap settings.
    """
    if not records:
        raise StmZooError("No answers yet: the summary needs at least one submitted trial.")
    if n_boot < 100 or not 0.5 <= confidence < 1.0:
        raise StmZooError("Use at least 100 bootstrap resamples and a confidence in [0.5, 1).")
    frame = records_frame(records)
    rng = np.random.default_rng(seed)
    tasks = list(dict.fromkeys(frame["task"]))
    groups = [(t, frame[frame["task"] == t]) for t in tasks]
    if len(tasks) > 1:
        groups.append((ALL_TASKS, frame))
    models, agreement = [], []
    for task, sub in groups:
        models += _model_rows(sub, task, rng, n_boot, confidence)
        agreement.append(_agreement(sub, task, rng, n_boot, confidence))
    return Summary(
        models=models,
        agreement=agreement,
        n_answers=frame["answer_id"].nunique(),
        n_raters=frame["rater"].nunique(),
        n_trials=frame["trial_id"].nunique(),
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
    )


def plot_summary(summary: Summary, path: str | Path) -> Path:
    """Bar charts of mean rating, mean rank and % ranked first with their intervals, per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in summary.tasks if t != ALL_TASKS] or summary.tasks
    panels = (
        ("mean_rating", "rating_lo", "rating_hi", "Mean rating (1-5) ↑", (1, 5)),
        ("mean_rank", "rank_lo", "rank_hi", "Mean rank ↓", None),
        ("first_pct", "first_lo", "first_hi", "Ranked first (%) ↑", (0, 100)),
    )
    n_rows = max(len([r for r in summary.models if r.task == t]) for t in tasks)
    fig, axes = plt.subplots(
        len(tasks), 3, figsize=(12, 0.5 + len(tasks) * (0.9 + 0.45 * n_rows)), squeeze=False
    )
    for row_axes, task in zip(axes, tasks, strict=True):
        rows = [r for r in summary.models if r.task == task][::-1]
        y = np.arange(len(rows))
        for ax, (value, lo, hi, title, limits) in zip(row_axes, panels, strict=True):
            values = np.array([getattr(r, value) for r in rows])
            errors = np.array(
                [
                    [v - getattr(r, lo), getattr(r, hi) - v]
                    for r, v in zip(rows, values, strict=True)
                ]
            ).T
            ax.barh(y, values, xerr=errors, color="#c8901a", ecolor="#333333", capsize=3)
            ax.set_yticks(y, [r.label for r in rows] if ax is row_axes[0] else [])
            ax.set_title(f"{TASK_TITLES.get(task, task)}: {title}", fontsize=9)
            if limits:
                ax.set_xlim(*limits)
            ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"Expert evaluation: {summary.n_answers} answers, {summary.n_raters} rater(s); "
        f"{summary.confidence:.0%} bootstrap intervals",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# `python -m expert_eval summary`


def configure_parser(parser: Any) -> None:
    parser.add_argument("studies", nargs="+", type=Path, help="study folders")
    add_db_argument(parser)
    parser.add_argument(
        "--out", type=Path, help="folder for summary.md/.csv/.png (default: STUDY_DIR/summary)"
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    parser.add_argument("--no-plot", action="store_true", help="skip summary.png")


def run(args: Any) -> int:
    studies, store = open_studies(args.studies, args.db)
    summary = summarise(
        store.records([s.study_id for s in studies]), args.bootstrap, args.seed, args.confidence
    )
    out = args.out or studies[0].directory / "summary"
    paths = summary.write(out, plot=not args.no_plot)
    print(summary.to_markdown())
    print("Written: " + ", ".join(str(p) for p in paths))
    return 0

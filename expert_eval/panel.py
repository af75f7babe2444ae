"""The expert-evaluation tab's logic, free of gradio: `ExpertPanel` and the screens it serves.

A rater starts (name -> token, shown once) or resumes (token), and gets `Screen`s: the next
unanswered trial rendered to fresh PNGs (`render_png`: random names, no metadata), its outputs in
this rater's order; `submit` checks an answer (every output rated, ranks a permutation) and stores
it. `admin_view` is the unblinded summary behind `EXPERT_EVAL_ADMIN_TOKEN`. `build_panel` opens
the studies (`EXPERT_EVAL_STUDY`) and the database. `expert_eval.ui` lays the tab out around it.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from expert_eval.analysis import summarise
from expert_eval.blinding import LABELS, presentation_order, rater_key
from expert_eval.blinding import trial_sort_key as _trial_sort_key
from expert_eval.export import write_ratings_csv
from expert_eval.records import InvalidSubmission, Score, Submission
from expert_eval.store import ExpertStore, open_studies
from expert_eval.study import Study, Trial, now_iso
from expert_eval.sync import RatingsSync, start_sync
from stm_zoo.errors import StmZooError

log = logging.getLogger(__name__)

ADMIN_TOKEN_ENV = "EXPERT_EVAL_ADMIN_TOKEN"
STUDY_ENV = "EXPERT_EVAL_STUDY"


@dataclass(frozen=True)
class Screen:
    """One rater-facing screen; holds nothing that identifies a model.

    Attributes:
        progress: markdown line, e.g. "Trial 3 of 12".
        input_image: path of the rendered input PNG (None when finished).
        output_images: paths of the rendered output PNGs in label order (A, B, ...).
        n_ranks: how many outputs the trial has.
        status: a message for the rater.
        token: the rater's token, on the screen that created the rater only (shown once).
    """

    progress: str
    input_image: str | None
    output_images: tuple[str, ...]
    n_ranks: int
    status: str
    token: str | None = None


def render_png(
    data: np.ndarray, scan_size_m: tuple[float, float], size: tuple[int, int], folder: Path
) -> str:
    """Render heights to a PNG with a random name and no metadata chunks.

    Args:
        data: (H, W) heights in metres.
        scan_size_m: (width, height) of the frame in metres (for the scale bar).
        size: (height, width) on screen.
        folder: where to write.

    Returns:
        The file path.
    """
    from PIL import Image

    from webapp.previews import render

    rgb = render(data, scan_size_m, "gold", size)
    path = folder / f"{secrets.token_hex(12)}.png"
    # A fresh image from an array carries no info dict, so PIL writes no text chunks.
    Image.fromarray(rgb).save(path, format="PNG")
    return str(path)


class ExpertPanel:
    """The tab's logic, free of gradio: screens for raters, answers, the admin view.

    Attributes:
        studies: the studies served, in the given order.
        store: the ratings database.
        sync: the Hub sync (None when off).
        n_slots: most outputs of any trial (the number of output columns on screen).
    """

    def __init__(
        self, studies: Sequence[Study], store: ExpertStore, sync: RatingsSync | None = None
    ) -> None:
        self.studies = list(studies)
        self.store = store
        self.sync = sync
        self.sync_message = ""
        self._trials: dict[str, tuple[Study, Trial]] = {
            t.trial_id: (s, t) for s in self.studies for t in s.trials
        }
        self.n_slots = max(len(t.outputs) for _, t in self._trials.values())

    @property
    def n_trials(self) -> int:
        return len(self._trials)

    def trial_order(self, key: str) -> list[str]:
        """Every trial id in the order this rater meets them (fixed per rater)."""
        return sorted(
            self._trials, key=lambda tid: _trial_sort_key(self._trials[tid][0].secret, key, tid)
        )

    def output_order(self, key: str, trial_id: str) -> list[str]:
        """The output ids of a trial in the order of the labels A, B, ... for this rater."""
        study, trial = self._trials[trial_id]
        order = presentation_order(study.secret, key, trial_id, len(trial.outputs))
        return [trial.outputs[i].output_id for i in order]

    def start(self, name: str) -> tuple[Screen, dict[str, Any] | None]:
        """A new rater: their token (in `Screen.token`, its only showing) and first trial.

        Raises:
            NameTaken: the name is taken; the message asks for the token instead.
            StmZooError: a bad name.
        """
        token = self.store.new_rater(name)
        screen, state = self.next_screen(name)
        return replace(screen, token=token), state

    def resume(self, token: str) -> tuple[Screen, dict[str, Any] | None]:
        """The next trial of the rater holding `token`.

        Raises:
            StmZooError: no rater holds this token.
        """
        name = self.store.rater_for_token(token)
        if name is None:
            raise StmZooError(
                "This rater token is not known here: paste all of it (e.g. abcd-efgh-...), or "
                "start as a new rater with your name."
            )
        return self.next_screen(name, f"Welcome back, {_escape(name)}.")

    def next_screen(self, name: str, message: str = "") -> tuple[Screen, dict[str, Any] | None]:
        """The rater's next unanswered trial, rendered; and the server-side state for it.

        Only for a rater who has shown who they are (`start`, `resume`, a stored state): the
        name itself proves nothing.

        Raises:
            StmZooError: a bad rater name.
        """
        key = rater_key(name)
        answered = self.store.answered_trials(name) & self._trials.keys()
        pending = [t for t in self.trial_order(key) if t not in answered]
        if not pending:
            progress = f"**All {self.n_trials} trials answered.** Thank you, {_escape(name)}!"
            return Screen(progress, None, (), 0, message), None
        trial_id = pending[0]
        study, trial = self._trials[trial_id]
        item = study.input_of(trial)
        outputs = [np.load(study.output_path(o)) for o in self.output_order(key, trial_id)]
        from webapp.previews import display_size
        from webapp.uploads import new_work_dir

        size = display_size(item.scan_size_m, outputs[0].shape, min_width=384)
        folder = new_work_dir()
        input_png = render_png(
            np.load(study.input_path(item.input_id)), item.scan_size_m, size, folder
        )
        output_pngs = tuple(render_png(o, item.scan_size_m, size, folder) for o in outputs)
        progress = (
            f"**Trial {len(answered) + 1} of {self.n_trials}** · rater {_escape(name)} · "
            f"{len(answered)} answered"
        )
        state = {"rater": name, "trial_id": trial_id, "shown_at": now_iso()}
        return Screen(progress, input_png, output_pngs, len(trial.outputs), message), state

    def submit(
        self,
        state: dict[str, Any] | None,
        ratings: Sequence[Any],
        ranks: Sequence[Any],
        comment: str | None,
    ) -> tuple[Screen | None, str, dict[str, Any] | None]:
        """Check and store an answer; on success return the next screen.

        Args:
            state: what `next_screen` returned for the trial on screen.
            ratings, ranks: the values of the first n slots (label order); None when unset.
            comment: free text.

        Returns:
            (next screen, message, new state) after a stored or an earlier answer;
            (None, message, the same state) when the answer is incomplete or invalid.
        """
        if not state or state.get("trial_id") not in self._trials:
            return None, "Press **Start** (new rater) or **Resume** (with your token) first.", state
        name, trial_id = state["rater"], state["trial_id"]
        output_ids = self.output_order(rater_key(name), trial_id)
        n = len(output_ids)
        labels = LABELS[:n]
        missing = [labels[i] for i in range(n) if ratings[i] in (None, "")]
        if missing:
            return None, f"Rate every output: {', '.join(missing)} has no rating yet.", state
        missing = [labels[i] for i in range(n) if ranks[i] in (None, "")]
        if missing:
            return None, f"Rank every output: {', '.join(missing)} has no rank yet.", state
        try:
            scores = tuple(
                Score(output_ids[i], labels[i], _as_int(ratings[i]), _as_int(ranks[i]))
                for i in range(n)
            )
        except ValueError:
            return None, "Ratings and ranks must be whole numbers: reload the page.", state
        given = [s.rank for s in scores]
        doubled = sorted({r for r in given if given.count(r) > 1})
        if doubled:
            who = ", ".join(
                f"rank {r} is given to {' and '.join(s.label for s in scores if s.rank == r)}"
                for r in doubled
            )
            return None, f"Each rank may be used once ({who}): 1 = best, {n} = worst.", state
        submission = Submission(name, trial_id, scores, comment or "", state.get("shown_at"))
        try:
            result = self.store.submit(submission)
        except InvalidSubmission as error:
            return None, str(error), state
        if result.stored and self.sync is not None:
            try:
                self.sync.snapshot()
            except OSError as error:  # the answer is safe in SQLite; the next snapshot retries
                log.warning("could not write the sync snapshot: %s", error)
        screen, new_state = self.next_screen(name, result.message)
        return screen, result.message, new_state

    def admin_view(self, token: str | None) -> tuple[str, str | None, list[str]]:
        """The unblinded summary for organisers.

        Returns:
            (markdown, plot PNG path or None, [ratings CSV, summary CSV, summary markdown]);
            only a refusal message when the token is not configured or does not match.
        """
        expected = os.environ.get(ADMIN_TOKEN_ENV, "")
        if not expected:
            return (
                f"The admin view is disabled: set {ADMIN_TOKEN_ENV} on the server to enable it.",
                None,
                [],
            )
        if not hmac.compare_digest((token or "").encode("utf-8"), expected.encode("utf-8")):
            return "Wrong admin token.", None, []
        from webapp.uploads import new_work_dir

        records = self.store.records([s.study_id for s in self.studies])
        counts = _rater_counts(records)
        studies = "; ".join(
            f"{s.name} ({s.task}, {len(s.trials)} trials: {', '.join(s.models)})"
            for s in self.studies
        )
        header = f"**Studies:** {studies}  \n**Database:** `{self.store.path}`"
        if self.sync_message:
            header += f"  \n**Sync:** {self.sync_message}"
        if not records:
            return header + "\n\nNo answers yet.", None, []
        folder = new_work_dir()
        summary = summarise(records)
        paths = summary.write(folder)
        ratings_csv = write_ratings_csv(records, folder / "expert_ratings.csv")
        raters = "\n".join(f"| {_escape(r)} | {n} |" for r, n in counts)
        table = f"| Rater | Answers |\n|---|---|\n{raters}"
        markdown = f"{header}\n\n{table}\n\n{summary.to_markdown(heading=3)}"
        return markdown, str(paths[3]), [str(ratings_csv), str(paths[1]), str(paths[0])]


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not whole")
    return int(value)


def _escape(text: str) -> str:
    """Text safe inside markdown (a rater name is user input)."""
    return "".join(f"\\{c}" if c in "\\`*_{}[]()<>#+-.!|~" else c for c in text)


def _rater_counts(records: Sequence[Any]) -> list[tuple[str, int]]:
    answers: dict[str, set[int]] = {}
    for r in records:
        answers.setdefault(r.rater, set()).add(r.answer_id)
    return sorted(((k, len(v)) for k, v in answers.items()), key=lambda x: (-x[1], x[0]))


def study_dirs_from_env() -> list[Path]:
    """The study folders named by `EXPERT_EVAL_STUDY` (os.pathsep-separated), if any."""
    raw = os.environ.get(STUDY_ENV, "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def build_panel(
    study_dir: str | Path | Sequence[str | Path] | None = None,
    db_path: str | Path | None = None,
    sync: bool = True,
) -> ExpertPanel:
    """Open the studies and the database, and start the Hub sync when configured.

    Raises:
        StmZooError: no study configured, or a study or database that cannot be used.
    """
    if study_dir is None:
        dirs = study_dirs_from_env()
    elif isinstance(study_dir, str | Path):
        dirs = [Path(study_dir)]
    else:
        dirs = [Path(d) for d in study_dir]
    if not dirs:
        raise StmZooError(
            f"No study is configured: prepare one with `python -m expert_eval prepare ...` and "
            f"set {STUDY_ENV} to its folder."
        )
    studies, store = open_studies(dirs, db_path)
    panel = ExpertPanel(studies, store)
    if sync:
        panel.sync, panel.sync_message = start_sync(store)
    return panel

"""The "Expert evaluation" tab: blinded rating and ranking of model outputs, and an admin view.

This module lays the tab out and wires its events; the logic behind it, free of gradio, is
`expert_eval.panel` (`ExpertPanel`).

A new rater types a name, is issued a rater token (shown once, with a resume link
`?rater=<token>`) and gets their first trial: the input scan and every output, labelled A, B, C,
... in an order drawn for this rater and trial (`expert_eval.blinding`). They rate each output 1-5,
rank them (one dropdown per output, checked to be a permutation), may comment and submit; the next
trial follows. To carry on later they paste the token under Resume or open the resume link; a
typed name alone resumes nothing: a name already taken is refused with a request for the token
(`expert_eval.raters`), so a second client typing "alice" never sees Alice's trials or progress.

Blinding: what reaches the browser is text without model information and PNG files rendered for
this request (no text chunks, random file names); output and trial ids, the mapping to models and
the presentation order stay on the server (`gr.State` is server-side). The admin view, behind
`EXPERT_EVAL_ADMIN_TOKEN` (compared with `hmac.compare_digest`), shows the unblinded summary and
exports CSV; with no token configured it is disabled.

Configuration: the study folders come from the `study_dir` argument or `EXPERT_EVAL_STUDY` (one
folder, or several separated by the OS path separator, e.g. a restore, an sr2 and an sr4 study),
the database from `db_path` or `expert_eval.store.default_db_path()`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from expert_eval.blinding import LABELS
from expert_eval.panel import ADMIN_TOKEN_ENV, ExpertPanel, Screen, build_panel
from expert_eval.raters import QUERY_PARAMETER
from stm_zoo.errors import StmZooError

log = logging.getLogger(__name__)

RATING_CHOICES = [1, 2, 3, 4, 5]
INSTRUCTIONS = """\
### Blinded expert evaluation
**New rater:** enter your name or rater id and press **Start**. You get a rater token: keep it,
it is the only way back to your trials. **Returning:** paste your token and press **Resume**, or
open your resume link.

Each trial shows one input scan and several processed versions of it, labelled A, B, C, ... in a
random order that differs between trials and raters. For each version:
- **rate** its quality from 1 (unusable) to 5 (as good as a clean scan of this surface);
- **rank** the versions against each other: 1 = best; every rank is used exactly once.

Judge the atomic structure and whether features look real or invented. You may leave a comment.
Progress is saved after every trial: resume with your token to carry on where you stopped.
"""


def expert_tab(
    study_dir: str | Path | Sequence[str | Path] | None = None,
    db_path: str | Path | None = None,
) -> ExpertPanel | None:
    """Add the "Expert evaluation" tab to the enclosing `gr.Blocks` (inside a `gr.Tabs`).

    Args:
        study_dir: a study folder or several (default: `EXPERT_EVAL_STUDY`).
        db_path: the SQLite file (default: `EXPERT_EVAL_DB`, see `expert_eval.store`).

    Returns:
        The panel behind the tab, or None when no usable study is configured (the tab then
        explains how to set one up instead of failing the whole app).
    """
    with gr.Tab("Expert evaluation", id="expert"):
        try:
            panel = build_panel(study_dir, db_path)
        except StmZooError as error:
            log.warning("expert evaluation tab disabled: %s", error)
            gr.Markdown(f"### Expert evaluation\nThis tab is not set up: {error}")
            return None
        _rater_view(panel)
        _admin_view(panel)
    return panel


def token_note(token: str) -> str:
    """What a new rater is shown once: the token and a resume link relative to this page."""
    return (
        f"**Your rater token: `{token}`**. Copy it now: it is shown only this once, and it is "
        f"the only way back to your trials. Later, paste it under **Resume**, or bookmark "
        f"[this resume link](?{QUERY_PARAMETER}={token})."
    )


def token_from_request(request: gr.Request | None) -> str | None:
    """The token in the page's `?rater=` query parameter, if any."""
    if request is None:
        return None
    params = dict(getattr(request, "query_params", None) or {})
    value = params.get(QUERY_PARAMETER)
    return value if isinstance(value, str) and value.strip() else None


def _rater_view(panel: ExpertPanel) -> None:
    gr.Markdown(INSTRUCTIONS)
    with gr.Row(equal_height=True):
        name = gr.Textbox(
            label="New rater: your name or rater id", max_lines=1, scale=3, elem_id="expert-name"
        )
        start = gr.Button("Start", variant="primary", scale=1, elem_id="expert-start")
        token = gr.Textbox(
            label="Returning: your rater token", max_lines=1, scale=3, elem_id="expert-token"
        )
        resume = gr.Button("Resume", scale=1, elem_id="expert-resume")
    progress = gr.Markdown(elem_id="expert-progress")
    input_image = gr.Image(
        label="Input",
        type="filepath",
        format="png",
        interactive=False,
        buttons=["fullscreen"],
        visible=False,
        elem_id="expert-input",
    )
    images, ratings, ranks = [], [], []
    with gr.Row(equal_height=False):
        for i in range(panel.n_slots):
            label = LABELS[i]
            with gr.Column(min_width=200):
                images.append(
                    gr.Image(
                        label=label,
                        type="filepath",
                        format="png",
                        interactive=False,
                        buttons=["fullscreen"],
                        visible=False,
                        elem_id=f"expert-img-{i}",
                    )
                )
                ratings.append(
                    gr.Radio(
                        RATING_CHOICES,
                        label=f"{label}: quality (1 = unusable, 5 = excellent)",
                        visible=False,
                        elem_id=f"expert-rating-{i}",
                    )
                )
                ranks.append(
                    gr.Dropdown(
                        [],
                        label=f"{label}: rank (1 = best)",
                        visible=False,
                        elem_id=f"expert-rank-{i}",
                    )
                )
    comment = gr.Textbox(
        label="Comment (optional)",
        lines=2,
        max_length=2000,
        visible=False,
        elem_id="expert-comment",
    )
    submit = gr.Button("Submit and next", variant="primary", visible=False, elem_id="expert-submit")
    note = gr.Markdown(elem_id="expert-token-note")
    status = gr.Markdown(elem_id="expert-status")
    state = gr.State(None)
    outputs = [
        progress,
        input_image,
        *images,
        *ratings,
        *ranks,
        comment,
        submit,
        note,
        status,
        state,
    ]

    def unchanged(message: Any, new_state: dict[str, Any] | None) -> tuple[Any, ...]:
        return (*[gr.update()] * (len(outputs) - 2), message, new_state)

    def show(screen: Screen, new_state: dict[str, Any] | None, note_text: Any) -> tuple[Any, ...]:
        n, open_trial = screen.n_ranks, screen.input_image is not None
        choices = [str(k) for k in range(1, n + 1)]
        return (
            screen.progress,
            gr.update(value=screen.input_image, visible=open_trial),
            *[
                gr.update(value=screen.output_images[i] if i < n else None, visible=i < n)
                for i in range(panel.n_slots)
            ],
            *[gr.update(value=None, visible=i < n) for i in range(panel.n_slots)],
            *[gr.update(choices=choices, value=None, visible=i < n) for i in range(panel.n_slots)],
            gr.update(value="", visible=open_trial),
            gr.update(visible=open_trial),
            note_text,
            screen.status,
            new_state,
        )

    # A refused start or resume clears the screen and the state: the page must not go on
    # showing, or answering for, whoever used it before.
    def refuse(message: str) -> tuple[Any, ...]:
        return show(Screen("", None, (), 0, message), None, "")

    def on_start(rater: str):
        try:
            screen, new_state = panel.start(rater or "")
        except StmZooError as error:
            return refuse(str(error))
        return show(screen, new_state, token_note(screen.token))

    def on_resume(given: str):
        try:
            screen, new_state = panel.resume(given or "")
        except StmZooError as error:
            return refuse(str(error))
        return show(screen, new_state, "")

    def on_load(request: gr.Request):
        given = token_from_request(request)
        if given is None:
            return (gr.update(), *unchanged(gr.update(), None))
        return (given.strip(), *on_resume(given))

    def on_submit(current: dict[str, Any] | None, comment_text: str, *values: Any):
        slot_ratings, slot_ranks = values[: panel.n_slots], values[panel.n_slots :]
        screen, message, new_state = panel.submit(current, slot_ratings, slot_ranks, comment_text)
        if screen is None:
            return unchanged(message, new_state)
        return show(screen, new_state, gr.update())

    events = {"concurrency_limit": 8, "concurrency_id": "expert-eval"}
    gr.on([start.click, name.submit], on_start, [name], outputs, api_name="expert_start", **events)
    resumed = [resume.click, token.submit]
    gr.on(resumed, on_resume, [token], outputs, api_name="expert_resume", **events)
    # The resume link: `?rater=<token>` in the page address resumes on load.
    gr.on(None, on_load, None, [token, *outputs], api_visibility="private", **events)
    submit.click(
        on_submit, [state, comment, *ratings, *ranks], outputs, api_name="expert_submit", **events
    )


def _admin_view(panel: ExpertPanel) -> None:
    with gr.Accordion("Study administration (organisers only)", open=False):
        gr.Markdown(
            f"Shows the unblinded results. Needs the token set in {ADMIN_TOKEN_ENV} on the "
            "server; without one this view is disabled."
        )
        with gr.Row(equal_height=True):
            token = gr.Textbox(
                label="Admin token",
                type="password",
                max_lines=1,
                scale=3,
                elem_id="expert-admin-token",
            )
            show = gr.Button("Show results", scale=1, elem_id="expert-admin-show")
        report = gr.Markdown(elem_id="expert-admin-report")
        plot = gr.Image(
            label="Summary", type="filepath", format="png", interactive=False, visible=False
        )
        files = gr.File(
            label="Exports (CSV, markdown)", file_count="multiple", interactive=False, visible=False
        )

    def on_show(given: str):
        markdown, plot_path, exports = panel.admin_view(given)
        return (
            markdown,
            gr.update(value=plot_path, visible=plot_path is not None),
            gr.update(value=exports or None, visible=bool(exports)),
        )

    show.click(
        on_show,
        [token],
        [report, plot, files],
        api_name="expert_admin",
        api_visibility="private",
        concurrency_limit=2,
        concurrency_id="expert-admin",
    )

"""The Restore tab: upload, pick a model, restore; before/after, uncertainty, downloads, line
profiles and power spectra. Its events are the app's /inspect and /restore API."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import gradio as gr

from stm_zoo.errors import StmZooError
from stm_zoo.pipeline import RestoreOptions
from stm_zoo.registry import is_learned
from stm_zoo.zoo import resolve_device
from training import explorer as synthetic
from webapp import plots, previews
from webapp.limits import AppLimits, announced_shape
from webapp.models import (
    FAMILY_LABELS,
    TASK_LABELS,
    ModelCache,
    all_sizes,
    default_model,
    device_choices,
    gpu_seconds,
    sizes_for,
    zero_gpu,
)
from webapp.restoring import (
    RestoreOutcome,
    RestoreRequest,
    describe_result,
    describe_scan,
    inspect_upload,
    restore_upload,
)
from webapp.status import model_status
from webapp.tabs.common import picture, positive_or_none, user_errors
from webapp.uploads import ACCEPTED_TEXT, upload_paths

# One cache per process, shared by every session; module-level so that the ZeroGPU function,
# decorated at import time, sees it too.
MODELS = ModelCache()


def _run_restore(
    files: Any, request: RestoreRequest, limits: AppLimits, progress: Any = None
) -> RestoreOutcome:
    def notify(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, desc=message)

    return restore_upload(files, request, MODELS, limits, notify)


def _gpu_duration(
    files: Any, request: RestoreRequest, limits: AppLimits, progress: Any = None
) -> int:
    shape = None
    with suppress(StmZooError, IndexError, OSError):
        shape = announced_shape(upload_paths(files)[0])
    return gpu_seconds(shape, request.options.steps, request.options.samples)


# Decorated at import time, as ZeroGPU requires; a plain function off Hugging Face Spaces.
_run_restore_on_gpu = zero_gpu(_run_restore, duration=_gpu_duration)


def restore_tab(limits: AppLimits) -> None:
    """Upload, pick a model, restore; before/after, uncertainty and full-precision downloads."""
    examples = synthetic.example_scans()
    task_choices = [(label, key) for key, label in TASK_LABELS.items()]
    family_choices = [(label, key) for key, label in FAMILY_LABELS.items()]
    default_family, default_size = default_model("restore")

    # Rendered further down the column; created first so the examples above it can fill it.
    task = gr.Radio(task_choices, value="restore", label="Task", render=False)
    with gr.Tab("Restore", id="restore"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=340):
                files = gr.File(
                    label="Scan file",
                    file_count="multiple",
                    type="filepath",
                    height=130,
                    elem_id="restore-upload",
                )
                gr.Markdown(
                    f"Accepted: {ACCEPTED_TEXT}; select both MATRIX files together.",
                    elem_classes="stm-note",
                )
                gr.Examples(
                    [[[str(e.path)], e.task] for e in examples],
                    inputs=[files, task],
                    example_labels=[e.label for e in examples],
                    label="No file at hand? Try a simulated Si(001):H scan",
                )
                info = gr.Markdown()
                with gr.Row():
                    channel = gr.Dropdown(
                        ["Z"], value="Z", label="Channel", allow_custom_value=True
                    )
                    direction = gr.Dropdown(
                        ["forward", "backward"],
                        value="forward",
                        label="Direction",
                        allow_custom_value=True,
                    )
                scan_width = gr.Number(
                    label="Scan width in nm (0: from the file; set it for .png/.tif/.npy)",
                    value=None,
                    minimum=0,
                )
                task.render()
                with gr.Row():
                    family = gr.Dropdown(family_choices, value=default_family, label="Model")
                    size = gr.Dropdown(
                        list(all_sizes()),
                        value=default_size,
                        label="Size",
                        interactive=is_learned(default_family),
                    )
                status = gr.Markdown(
                    model_status("restore", default_family, default_size),
                    elem_classes="stm-note",
                )
                steps = gr.Slider(
                    1, limits.max_steps, value=2, step=1, label="Sampler steps (paper: 2-10)"
                )
                with gr.Accordion("More options", open=False):
                    samples = gr.Slider(
                        1,
                        limits.max_samples,
                        value=1,
                        step=1,
                        label="Samples (more than one gives an uncertainty map)",
                    )
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                    device = gr.Dropdown(device_choices(), value="auto", label="Device")
                    keep = gr.Checkbox(
                        value=False, label="Keep the measured lines unchanged (super-resolution)"
                    )
                    no_resample = gr.Checkbox(
                        value=False,
                        label="Use the file's own pixels (no resampling to the model's pixel "
                        "size; for frames far from that scale)",
                    )
                colour = gr.Radio(
                    [("Gold", "gold"), ("Grey", "grey")], value="gold", label="Colour map"
                )
                run = gr.Button("Restore", variant="primary", size="lg", elem_id="restore-button")
            with gr.Column(scale=7):
                slider = gr.ImageSlider(
                    label="Before / after",
                    type="numpy",
                    format="png",
                    buttons=["fullscreen"],
                    max_height=640,
                    interactive=False,
                    elem_id="restore-slider",
                )
                with gr.Row():
                    before = picture("Input")
                    after = picture("Result (same colour scale)", elem_id="restore-result")
                uncertainty = picture(
                    "Uncertainty: per-pixel std across samples (bright = the model guesses)",
                    visible=False,
                )
                summary = gr.Markdown()
                downloads = gr.File(
                    label="Downloads: the input's format, .gwy, 16-bit .png, float32 .npy",
                    file_count="multiple",
                    interactive=False,
                    elem_id="restore-downloads",
                )
                with gr.Row(equal_height=True):
                    profile_axis = gr.Radio(
                        [("Row", "row"), ("Column", "column")],
                        value="row",
                        label="Line profile along a",
                        scale=1,
                        min_width=240,
                    )
                    profile_index = gr.Slider(
                        0,
                        255,
                        value=128,
                        step=1,
                        label="Row (0 = top) or column (0 = left) of the result",
                        scale=3,
                        elem_id="profile-index",
                    )
                profile = picture(
                    "Line profile: input and result", "restore-profile", ["download", "fullscreen"]
                )
                spectra = picture(
                    "Power spectra (FFT): input and result on one scale",
                    "restore-fft",
                    ["download", "fullscreen"],
                )
        shown = gr.State(None)  # the scans behind the previews: re-colouring, profiles, spectra

    def inspect(files: Any, scan_width: float | None, task: str, colour: str):
        # A new file clears the previous result: after, slider, uncertainty, summary, downloads.
        cleared = (None, None, gr.update(value=None, visible=False), "", None)
        if not upload_paths(files):
            return "", gr.update(), gr.update(), None, *cleared, None
        with user_errors():
            found = inspect_upload(files, limits, positive_or_none(scan_width), task)
            views = previews.render_views(found.scan, colour_map=colour)
        return (
            describe_scan(found.path, found.scan),
            gr.update(choices=found.channels, value=found.scan.channel),
            gr.update(choices=found.directions, value=found.directions[0]),
            views.before,
            *cleared,
            {"scan": found.scan, "result": None, "std": None},
        )

    def restore(
        files: Any,
        channel: str,
        direction: str,
        scan_width: float | None,
        task: str,
        family: str,
        size: str,
        steps: float,
        device: str,
        seed: float | None,
        samples: float,
        keep: bool,
        no_resample: bool,
        colour: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio injects the tracker here)
    ):
        with user_errors():
            options = RestoreOptions(
                task=task,
                family=family,
                size=size,
                steps=int(steps),
                samples=int(samples),
                seed=None if seed is None else int(seed),
                device=device or "auto",
                keep_measured=bool(keep),
                no_resample=bool(no_resample),
            )
            request = RestoreRequest(
                options,
                channel=channel or "Z",
                direction=direction or "forward",
                scan_size_nm=positive_or_none(scan_width),
            )
            on_gpu = is_learned(family) and resolve_device(options.device) == "cuda"
            runner = _run_restore_on_gpu if on_gpu else _run_restore
            outcome = runner(files, request, limits, progress)
            views = previews.render_views(
                outcome.scan, outcome.result.scan, outcome.result.std, colour
            )
        return (
            (views.before, views.after),
            views.before,
            views.after,
            gr.update(value=views.uncertainty, visible=views.uncertainty is not None),
            describe_result(outcome),
            [str(p) for p in outcome.files],
            {"scan": outcome.scan, "result": outcome.result.scan, "std": outcome.result.std},
        )

    def recolour(shown: dict | None, colour: str):
        if not shown:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        with user_errors():
            views = previews.render_views(shown["scan"], shown["result"], shown["std"], colour)
        slider_value = None if views.after is None else (views.before, views.after)
        return slider_value, views.before, views.after, views.uncertainty

    def middle_line(shown: dict, axis: str) -> tuple[Any, int]:
        # The slider spans the lines of the shown image: the result, or the input before a run.
        image = shown["result"] if shown["result"] is not None else shown["scan"]
        lines = plots.line_count(image, axis)
        return gr.update(maximum=lines - 1, value=lines // 2), lines // 2

    def analyse(shown: dict | None, axis: str, colour: str):
        # After a new input or result: the middle line's profile and the power spectra.
        if not shown:
            return gr.update(), None, None
        with user_errors():
            index_update, index = middle_line(shown, axis)
            profile_view = plots.render_profile(shown["scan"], shown["result"], axis, index, colour)
            spectra_view = plots.render_spectra(shown["scan"], shown["result"], colour)
        return index_update, profile_view, spectra_view

    def choose_axis(shown: dict | None, axis: str, colour: str):
        if not shown:
            return gr.update(), None
        with user_errors():
            index_update, index = middle_line(shown, axis)
            view = plots.render_profile(shown["scan"], shown["result"], axis, index, colour)
        return index_update, view

    def choose_line(shown: dict | None, axis: str, index: float, colour: str):
        if not shown:
            return None
        with user_errors():
            image = shown["result"] if shown["result"] is not None else shown["scan"]
            index = min(max(int(index), 0), plots.line_count(image, axis) - 1)
            return plots.render_profile(shown["scan"], shown["result"], axis, index, colour)

    def redraw_plots(shown: dict | None, axis: str, index: float, colour: str):
        if not shown:
            return gr.skip(), gr.skip()
        with user_errors():
            spectra_view = plots.render_spectra(shown["scan"], shown["result"], colour)
        return choose_line(shown, axis, index, colour), spectra_view

    def choose_family(task: str, family: str, size: str):
        sizes = list(sizes_for(family))
        size = size if size in sizes else sizes[0]
        return (
            gr.update(choices=sizes, value=size, interactive=is_learned(family)),
            model_status(task, family, size),
        )

    def choose_task(task: str):
        family_value, size_value = default_model(task)
        return (
            gr.update(value=family_value),
            gr.update(
                choices=list(sizes_for(family_value)),
                value=size_value,
                interactive=is_learned(family_value),
            ),
            model_status(task, family_value, size_value),
        )

    # Profiles and spectra follow each new input or result as separate events, so that the
    # /inspect and /restore API answers stay the same.
    plot_listener: dict[str, Any] = {"api_visibility": "private", "trigger_mode": "always_last"}
    files.change(
        inspect,
        [files, scan_width, task, colour],
        [info, channel, direction, before, after, slider, uncertainty, summary, downloads, shown],
        api_name="inspect",
    ).success(
        analyse, [shown, profile_axis, colour], [profile_index, profile, spectra], **plot_listener
    )
    run.click(
        restore,
        [
            files,
            channel,
            direction,
            scan_width,
            task,
            family,
            size,
            steps,
            device,
            seed,
            samples,
            keep,
            no_resample,
            colour,
        ],
        [slider, before, after, uncertainty, summary, downloads, shown],
        api_name="restore",
        concurrency_limit=limits.concurrency,
        concurrency_id="model",
    ).success(
        analyse, [shown, profile_axis, colour], [profile_index, profile, spectra], **plot_listener
    )
    colour.change(
        recolour,
        [shown, colour],
        [slider, before, after, uncertainty],
        api_name="recolour",
        api_visibility="undocumented",
    ).success(
        redraw_plots,
        [shown, profile_axis, profile_index, colour],
        [profile, spectra],
        **plot_listener,
    )
    profile_axis.input(
        choose_axis, [shown, profile_axis, colour], [profile_index, profile], **plot_listener
    )
    profile_index.input(
        choose_line, [shown, profile_axis, profile_index, colour], profile, **plot_listener
    )
    family.change(
        choose_family,
        [task, family, size],
        [size, status],
        api_name="model_sizes",
        api_visibility="undocumented",
    )
    task.change(
        choose_task,
        task,
        [family, size, status],
        api_name="task_default",
        api_visibility="undocumented",
    )
    gr.on(
        [size.change],
        model_status,
        [task, family, size],
        status,
        api_name="model_status",
    )

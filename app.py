"""stm-zoo web app (Gradio 6): restore and super-resolve STM scans in the browser.

Wiring only. The logic lives in the `webapp` package (limits, uploads, models and ZeroGPU,
restoring an upload and its downloads, the model status and zoo table, previews with scale and
colour bars, power spectra and line profiles) and `training.explorer` (example scans, the
degradation explorer).
`build_app()` composes one function per tab; another tab is one more call there.

    python app.py                      # http://127.0.0.1:7860 on the local zoo, no network needed

Environment: STM_ZOO_DIR / STM_ZOO_REPO (where models come from), GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT, and the limits STM_ZOO_APP_MAX_PIXELS, STM_ZOO_APP_MAX_MODEL_PIXELS,
STM_ZOO_APP_MAX_FILE_MB, STM_ZOO_APP_CONCURRENCY, STM_ZOO_APP_QUEUE; the expert-evaluation tab
reads EXPERT_EVAL_STUDY, EXPERT_EVAL_DB, EXPERT_EVAL_ADMIN_TOKEN, STM_ZOO_DATA_DIR,
EXPERT_EVAL_DATASET and HF_TOKEN (see expert_eval.ui).

Scripting (every event has an api_name; see the page's "Use via API" link):

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    slider, before, after, std, summary, files = client.predict(
        [handle_file("scan.sxm")], "Z", "forward", None, "restore", "fm", "small", 2, "auto",
        0, 1, False, "gold", api_name="/restore")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

# Idle OpenMP threads must sleep, not spin: on a small shared CPU spinning threads stall each other
# (measured 20x slower runs). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr  # noqa: E402

from expert_eval.ui import expert_tab
from stm_zoo.errors import StmZooError
from stm_zoo.pipeline import RestoreOptions
from stm_zoo.registry import is_learned
from stm_zoo.zoo import resolve_device, zoo_dir, zoo_repo
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
from webapp.uploads import ACCEPTED_TEXT, upload_paths
from webapp.zoo_table import ZOO_COLUMNS, zoo_rows

log = logging.getLogger("stm_zoo.app")

TITLE = "stm-zoo · STM scan restoration"
CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#stm-header h1 {margin-bottom: 0.1em;}
#stm-header p {margin-top: 0; opacity: 0.8;}
.stm-note {font-size: 0.85em; opacity: 0.8;}
"""


@dataclass
class AppContext:
    """What the tabs share (the loaded models are per process: `MODELS`)."""

    limits: AppLimits = field(default_factory=AppLimits.from_env)


# One cache per process, shared by every session; module-level so that the ZeroGPU function,
# decorated at import time, sees it too.
MODELS = ModelCache()


@contextmanager
def user_errors() -> Iterator[None]:
    """Show project errors as a message in the page; log anything else with its traceback."""
    try:
        yield
    except gr.Error:
        raise
    except StmZooError as error:
        raise gr.Error(str(error), print_exception=False) from None
    except Exception as error:
        log.exception("unexpected error")
        raise gr.Error(
            f"Unexpected error ({type(error).__name__}: {error}); please report it with the file."
        ) from None


def _positive_or_none(value: float | None) -> float | None:
    return float(value) if value else None


# ---------------------------------------------------------------------------------------------
# Restore tab


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


def picture(
    label: str,
    elem_id: str | None = None,
    buttons: list[str] | None = None,
    visible: bool = True,
) -> gr.Image:
    """A server-rendered PNG view: not editable, with a fullscreen button (and others)."""
    return gr.Image(
        label=label,
        type="numpy",
        format="png",
        interactive=False,
        buttons=buttons or ["fullscreen"],
        elem_id=elem_id,
        visible=visible,
    )


def restore_tab(ctx: AppContext) -> None:
    """Upload, pick a model, restore; before/after, uncertainty and full-precision downloads."""
    limits = ctx.limits
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
            found = inspect_upload(files, limits, _positive_or_none(scan_width), task)
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
                scan_size_nm=_positive_or_none(scan_width),
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


# ---------------------------------------------------------------------------------------------
# Model zoo tab


def zoo_tab(demo: gr.Blocks) -> None:
    """Every zoo entry, grouped by task like the paper's tables: status, training budget and the
    synthetic-test scores from its card beside the paper's, the classical baseline per task."""
    with gr.Tab("Model zoo", id="zoo"):
        gr.Markdown(
            f"Local zoo: `{zoo_dir()}` · Hub repo: `{zoo_repo()}`. **bundled** / **Hub**: ready "
            "to run; **preview**: its training has not finished; **missing**: train it with the "
            "command shown (make its data first: `python -m training data --task TASK "
            "--simulate 54 --out data/TASK`) or fetch it from the Hub. Scores come from each "
            "card's synthetic test set (`python -m evaluation synthetic`): PSNR as the gain over "
            "the input, at 2 / 5 / 10 sampler steps (the autoencoder: one pass), beside the "
            "paper's fully trained models (Tables IX and XI; the paper gives no PSNR for "
            "super-resolution). KID is on real scans (paper Tables X and XII). "
            "See docs/results.md for what the numbers mean."
        )
        table = gr.Dataframe(
            headers=ZOO_COLUMNS,
            datatype=["str"] * (len(ZOO_COLUMNS) - 1) + ["markdown"],
            interactive=False,
            wrap=True,
            max_height=4000,  # the whole table, classical rows included: no inner scroll
            buttons=["copy"],
            column_widths=[f"{w}%" for w in (7, 9, 6, 8, 14, 9, 8, 8, 7, 6, 7, 11)],
        )
        refresh = gr.Button("Refresh", size="sm")
    gr.on(
        [demo.load, refresh.click],
        zoo_rows,
        None,
        table,
        api_name="zoo",
    )


# ---------------------------------------------------------------------------------------------
# Degradations tab


def degradations_tab(demo: gr.Blocks) -> None:
    """Apply each artefact of the synthetic pipeline to a simulated crop, parameters exposed."""
    d = synthetic.ExplorerSettings()
    with gr.Tab("Degradations", id="degradations"):
        gr.Markdown(
            "What the models are trained on: a simulated pristine Si(001):H crop (left) and the "
            "same crop after the paper's physics-informed artefacts (right). Heights are in the "
            "pipeline's normalised units; the draw seed decides what the settings leave random."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=340):
                with gr.Row():
                    surface_seed = gr.Number(d.surface_seed, precision=0, label="Surface seed")
                    draw_seed = gr.Number(d.draw_seed, precision=0, label="Draw seed")
                with gr.Row():
                    task = gr.Radio(["restore", "sr2", "sr4"], value=d.task, label="Task")
                    crop = gr.Dropdown([64, 128, 256], value=d.crop_px, label="Crop (px)")
                    turns = gr.Dropdown(
                        [("0°", 0), ("90°", 1), ("180°", 2), ("270°", 3)],
                        value=d.quarter_turns,
                        label="Rotation",
                    )
                with gr.Accordion("Multi-tip (ghost images)", open=True):
                    multi_tip = gr.Checkbox(d.multi_tip, label="Apply")
                    tips = gr.Slider(1, 4, d.tips, step=1, label="Extra tips")
                    tip_offset = gr.Slider(1, 11, d.tip_offset_px, step=0.5, label="Offset (px)")
                    tip_amplitude = gr.Slider(
                        0.2, 3, d.tip_amplitude, step=0.1, label="Amplitude A"
                    )
                    tip_centre = gr.Slider(3, 11, d.tip_centre, step=0.1, label="Sigmoid centre c")
                    tip_steep = gr.Slider(4, 12, d.tip_steepness, step=0.1, label="Sigmoid slope d")
                    tip_kernel = gr.Radio(
                        list(synthetic.KERNEL_KINDS), value=d.tip_kernel, label="Tip kernel"
                    )
                with gr.Accordion("Scan-line misalignment", open=False):
                    misalignment = gr.Checkbox(d.misalignment, label="Apply")
                    shift = gr.Slider(0, 3, d.shift_sigma_px, step=0.1, label="Shift std (px)")
                    fraction = gr.Slider(0, 1, d.line_fraction, step=0.05, label="Lines shifted")
                with gr.Accordion("Blunt tip", open=False):
                    blunt = gr.Checkbox(d.blunt_tip, label="Apply")
                    blunt_sigma = gr.Slider(0.1, 2, d.blunt_sigma_px, step=0.05, label="Blur (px)")
                with gr.Accordion("Tip change", open=False):
                    change = gr.Checkbox(d.tip_change, label="Apply")
                    change_at = gr.Slider(0.05, 0.95, d.change_at, step=0.05, label="At (height)")
                    change_blur = gr.Slider(0.5, 3, d.change_blur_px, step=0.1, label="Blur (px)")
                    change_offset = gr.Slider(
                        -0.4, 0.4, d.change_offset, step=0.01, label="Height step"
                    )
                with gr.Accordion("Scan-line noise", open=False):
                    lines = gr.Checkbox(d.scan_lines, label="Apply")
                    noisy = gr.Slider(0, 80, d.noisy_lines, step=1, label="Noisy lines")
                    segment = gr.Slider(0, 256, d.max_segment_px, step=1, label="Longest (px)")
                    kinds = gr.CheckboxGroup(
                        list(synthetic.SEGMENT_KINDS), value=list(d.segment_kinds), label="Kinds"
                    )
                    offset = gr.Slider(0, 0.8, d.max_offset, step=0.01, label="Largest offset")
                colour = gr.Radio(
                    [("Gold", "gold"), ("Grey", "grey")], value="gold", label="Colour map"
                )
                apply = gr.Button("Apply", variant="primary")
            with gr.Column(scale=6):
                with gr.Row():
                    clean = gr.Image(label="Pristine crop", format="png", interactive=False)
                    degraded = gr.Image(
                        label="Degraded (model input)", format="png", interactive=False
                    )
                singles = gr.Gallery(
                    label="Each artefact alone", format="png", columns=3, height="auto"
                )
                with gr.Accordion("Parameters applied", open=False):
                    record = gr.JSON()

    controls = {
        "surface_seed": surface_seed,
        "draw_seed": draw_seed,
        "task": task,
        "crop_px": crop,
        "quarter_turns": turns,
        "multi_tip": multi_tip,
        "tips": tips,
        "tip_offset_px": tip_offset,
        "tip_amplitude": tip_amplitude,
        "tip_centre": tip_centre,
        "tip_steepness": tip_steep,
        "tip_kernel": tip_kernel,
        "misalignment": misalignment,
        "shift_sigma_px": shift,
        "line_fraction": fraction,
        "blunt_tip": blunt,
        "blunt_sigma_px": blunt_sigma,
        "tip_change": change,
        "change_at": change_at,
        "change_blur_px": change_blur,
        "change_offset": change_offset,
        "scan_lines": lines,
        "noisy_lines": noisy,
        "max_segment_px": segment,
        "segment_kinds": kinds,
        "max_offset": offset,
    }

    def degrade(*values: Any):
        *settings, colour_map = values
        with user_errors():
            chosen = dict(zip(controls, settings, strict=True))
            chosen["segment_kinds"] = tuple(chosen["segment_kinds"] or ())
            result = synthetic.explore(synthetic.ExplorerSettings(**chosen))
            frame_nm = result.clean.shape[0] * result.pixel_size_nm
            images = [result.clean, result.degraded, *(image for _, image in result.singles)]
            shown = [previews.render_normalised(i, frame_nm, colour_map) for i in images]
        gallery = [
            (image, label) for image, (label, _) in zip(shown[2:], result.singles, strict=True)
        ]
        return shown[0], shown[1], gallery, result.record

    gr.on(
        [demo.load, apply.click, *(c.change for c in controls.values()), colour.change],
        degrade,
        [*controls.values(), colour],
        [clean, degraded, singles, record],
        api_name="degrade",
        trigger_mode="always_last",
        concurrency_id="explorer",
        concurrency_limit=2,
    )


# ---------------------------------------------------------------------------------------------
# The app


def build_app(ctx: AppContext | None = None) -> gr.Blocks:
    """The Blocks app with its queue configured; `launch(**launch_options(ctx))` serves it."""
    ctx = ctx or AppContext()
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# stm-zoo\nRestore and super-resolve scanning tunnelling microscopy scans with "
            "flow-matching and diffusion models trained on physics-informed synthetic data.",
            elem_id="stm-header",
        )
        with gr.Tabs():
            restore_tab(ctx)
            zoo_tab(demo)
            degradations_tab(demo)
            expert_tab()
    return demo.queue(
        max_size=ctx.limits.queue_size, default_concurrency_limit=ctx.limits.concurrency
    )


def launch_options(ctx: AppContext | None = None) -> dict[str, Any]:
    """Keyword arguments for `launch()`: theme, css, upload limit (Gradio 6 takes them here)."""
    limits = (ctx or AppContext()).limits
    theme = gr.themes.Soft(primary_hue="amber", secondary_hue="stone", neutral_hue="slate")
    return {
        "theme": theme,
        "css": CSS,
        "max_file_size": f"{limits.max_file_mb}mb",
        "footer_links": ["api", "gradio"],
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio polls itself at start-up
    context = AppContext()
    build_app(context).launch(**launch_options(context))

"""The Degradations tab: the synthetic pipeline's artefacts on a simulated crop, parameters
exposed (`training.explorer`)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from training import explorer as synthetic
from webapp import previews
from webapp.tabs.common import user_errors


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

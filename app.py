"""stm-zoo web app (Gradio): restore and super-resolve uploaded STM scans.

This first version shows what a scan file holds (format, channels, size, bias, setpoint) and a
preview; the restore tabs are wired in once the inference engine lands.
"""

from __future__ import annotations

import json
import os

import gradio as gr
import numpy as np

from stm_zoo.errors import StmZooError


def describe_file(path: str | None) -> tuple[str, np.ndarray | None]:
    """Info JSON and an 8-bit preview of the forward Z channel of an uploaded scan."""
    if not path:
        raise gr.Error("Upload a scan file first (.sxm, .Z_mtrx + .mtrx, .gwy, .png, .tif, .npy).")
    from stm_zoo.io import load_scan, scan_info

    try:
        info = scan_info(path)
        scan = load_scan(path).crop_valid()
    except StmZooError as error:
        raise gr.Error(str(error)) from None
    lo, hi = np.percentile(scan.data, [0.5, 99.5])
    preview = np.clip((scan.data - lo) / max(hi - lo, 1e-30) * 255, 0, 255).astype(np.uint8)
    return json.dumps(info, indent=2), preview


def build_app() -> gr.Blocks:
    with gr.Blocks(title="stm-zoo") as demo:
        gr.Markdown("# stm-zoo\nRestore and super-resolve scanning tunnelling microscopy scans.")
        with gr.Tab("Inspect"):
            upload = gr.File(label="Scan file")
            button = gr.Button("Inspect", variant="primary")
            info = gr.Code(label="Header", language="json")
            preview = gr.Image(label="Z forward", type="numpy")
            button.click(describe_file, upload, [info, preview], api_name="inspect")
    return demo


if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), max_file_size="200mb"
    )

"""stm-zoo web app (Gradio 6): restore and super-resolve STM scans in the browser.

Wiring only. The tabs are `webapp.tabs` (restore, model zoo, degradations) and
`expert_eval.ui`; the logic behind them lives in the `webapp` package (limits, uploads, models and
ZeroGPU, restoring an upload and its downloads, the model status and zoo table, previews with
scale and colour bars, power spectra and line profiles) and `training.explorer` (example scans,
the degradation explorer).
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
from dataclasses import dataclass, field
from typing import Any

# Idle OpenMP threads must sleep, not spin: on a small shared CPU spinning threads stall each other
# (measured 20x slower runs). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr  # noqa: E402

from expert_eval.ui import expert_tab  # noqa: E402
from webapp.limits import AppLimits  # noqa: E402
from webapp.tabs.degradations import degradations_tab  # noqa: E402
from webapp.tabs.restore import restore_tab  # noqa: E402
from webapp.tabs.zoo import zoo_tab  # noqa: E402

TITLE = "stm-zoo · STM scan restoration"
CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#stm-header h1 {margin-bottom: 0.1em;}
#stm-header p {margin-top: 0; opacity: 0.8;}
.stm-note {font-size: 0.85em; opacity: 0.8;}
"""


@dataclass
class AppContext:
    """What the tabs share (the loaded models are per process: `webapp.tabs.restore.MODELS`)."""

    limits: AppLimits = field(default_factory=AppLimits.from_env)


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
            restore_tab(ctx.limits)
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

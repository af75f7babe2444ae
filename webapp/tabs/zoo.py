"""The Model zoo tab: every entry's status, budget and scores beside the paper's."""

from __future__ import annotations

import gradio as gr

from stm_zoo.zoo import zoo_repo, zoo_search_path
from webapp.zoo_table import ZOO_COLUMNS, zoo_rows


def zoo_tab(demo: gr.Blocks) -> None:
    """Every zoo entry, grouped by task like the paper's tables: status, training budget and the
    synthetic-test scores from its card beside the paper's, the classical baseline per task."""
    with gr.Tab("Model zoo", id="zoo"):
        gr.Markdown(
            f"Local zoo: `{zoo_search_path()}` · Hub: `{zoo_repo()}`. **bundled** / **Hub**: ready "
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

"""The app's own gradio tabs, one module each; `app.py` composes them with `expert_eval.ui`.

The only gradio code in `webapp`: each tab lays out its components and wires their events to the
gradio-free logic beside it (`webapp.restoring`, `webapp.previews`, `webapp.plots`, ...).

- `common`: project errors shown in the page (`user_errors`), the PNG picture component.
- `restore`: upload, pick a model, restore; previews, downloads, profiles, spectra.
- `zoo`: the Model zoo table.
- `degradations`: the degradation explorer (`training.explorer`).
"""

"""The web app's logic and its tabs; `app.py` beside it is wiring only.

Plain Python on `Scan`s and numpy arrays, testable without a browser and free of gradio (all but
`tabs`, the gradio layout of the app's own tabs, which calls the modules listed here):
user-fixable problems raise `StmZooError` (`tabs.common.user_errors` shows them with
`gr.Error`). It sits above the `stm_zoo` library, which never imports it.

- `limits`: what one request may ask; header sizes checked before any pixel is read.
- `uploads`: file types, MATRIX pairs, a private folder per request.
- `models`: labels, sizes, the default entry, the loaded-model cache, ZeroGPU.
- `restoring`: read an upload, run the model, write the downloads, describe both.
- `status`: the model picker's status line from the entry's card.
- `zoo_table`: the Model zoo tab's table beside the paper's numbers.
- `previews`: 8-bit previews with scale and colour bars; `plots`: power spectra, line profiles.
- `tabs`: the Restore, Model zoo and Degradations tabs (gradio layout and events).
"""

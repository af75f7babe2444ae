"""What the web app (`app.py`) does besides wiring: uploads, limits, previews, downloads, models.

Everything here is plain Python on `Scan`s and numpy arrays, testable without a browser and free
of gradio: user-fixable problems raise `StmZooError` (app.py shows them with `gr.Error`).

- Uploads: file types are checked case-insensitively by name, a MATRIX data file and its
  parameter file (each in its own upload folder) are copied into one folder, and the image size a
  header announces is checked against the app's pixel limit before any pixel is read.
- Downloads: the result in the input's format plus .gwy, 16-bit .png and float32 .npy; the
  previews (`stm_zoo.app_previews`) are for display only.
- Models: a small thread-safe LRU of loaded zoo entries, so that the second request for a model
  does not load it again.
- ZeroGPU: `zero_gpu` wraps a function with `spaces.GPU` when the `spaces` package is installed
  (Hugging Face Spaces) and returns it unchanged otherwise.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo import limits as engine_limits
from stm_zoo.app_previews import remove_plane, robust_range
from stm_zoo.errors import STMFileError, StmZooError
from stm_zoo.inference import Progress, Result, restore, sr_input_frame
from stm_zoo.io import (
    FORMAT_NAMES,
    detect_format,
    load_scan,
    open_matrix_upload,
    result_label,
    save_result,
)
from stm_zoo.io.cli_info import format_si
from stm_zoo.io.matrix import is_data_file, is_parameter_file
from stm_zoo.io.scan import Scan
from stm_zoo.zoo import (
    SR_FACTOR,
    TASKS,
    EntryConfig,
    LoadedModel,
    load_model,
    registry,
    resolve_device,
    zoo_dir,
)

log = logging.getLogger(__name__)

ACCEPTED_TEXT = (
    ".sxm, .gwy, .png, .tif, .tiff or .npy, or an Omicron MATRIX data file (`*.Z_mtrx`) "
    "together with its parameter file (`*_0001.mtrx`)"
)
_SINGLE_FILE_SUFFIXES = (".sxm", ".gwy", ".png", ".tif", ".tiff", ".npy")
NATIVE_SUFFIX = {"sxm": ".sxm", "gwy": ".gwy", "png": ".png", "tiff": ".tif", "npy": ".npy"}
"""Download format that matches each input format; MATRIX has no writer, so it becomes .gwy."""
EXTRA_SUFFIXES = (".gwy", ".png", ".npy")
TASK_LABELS = {"restore": "Restore", "sr2": "Super-resolve x2", "sr4": "Super-resolve x4"}
FAMILY_LABELS = {
    "fm": "Flow matching",
    "ddim": "DDIM",
    "ddim-fft": "DDIM + FFT loss",
    "ae": "Autoencoder",
    "classical": "Classical (no network)",
}


# ---------------------------------------------------------------------------------------------
# Limits


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StmZooError(f"{name}={raw!r} is not a whole number; unset it or fix it.") from None
    if value < 1:
        raise StmZooError(f"{name}={value} must be at least 1.")
    return value


@dataclass(frozen=True)
class AppLimits:
    """What one request may ask of the app; environment variables override the defaults.

    These caps come on top of the engine's own limits (`stm_zoo.limits`: resampling factor,
    smallest frame, flat channels), which the app applies through `restore` like every interface;
    its grid cap is passed to `restore` as `max_grid_pixels`.

    Attributes:
        max_pixels: largest input image, lines x pixels (STM_ZOO_APP_MAX_PIXELS, default
            2048 x 2048).
        max_model_pixels: largest image a model runs on, after resampling to the model's pixel
            size and the k-fold line up-sampling of SR (STM_ZOO_APP_MAX_MODEL_PIXELS, default
            `stm_zoo.limits.MAX_GRID_PIXELS`, the inference engine's own limit).
        max_file_mb: upload size limit in MB (STM_ZOO_APP_MAX_FILE_MB, default 100).
        max_steps: most sampler steps per request.
        max_samples: most independent samples per request.
        concurrency: model runs at the same time (STM_ZOO_APP_CONCURRENCY, default 1: one run
            uses every CPU core or the whole GPU, and a second one would only slow both down).
        queue_size: requests that may wait in the queue (STM_ZOO_APP_QUEUE, default 64).
    """

    max_pixels: int = 2048 * 2048
    max_model_pixels: int = engine_limits.MAX_GRID_PIXELS
    max_file_mb: int = 100
    max_steps: int = 50
    max_samples: int = 8
    concurrency: int = 1
    queue_size: int = 64

    @classmethod
    def from_env(cls) -> AppLimits:
        """The defaults with the STM_ZOO_APP_* environment variables applied."""
        base = cls()
        return cls(
            max_pixels=_env_int("STM_ZOO_APP_MAX_PIXELS", base.max_pixels),
            max_model_pixels=_env_int("STM_ZOO_APP_MAX_MODEL_PIXELS", base.max_model_pixels),
            max_file_mb=_env_int("STM_ZOO_APP_MAX_FILE_MB", base.max_file_mb),
            concurrency=_env_int("STM_ZOO_APP_CONCURRENCY", base.concurrency),
            queue_size=_env_int("STM_ZOO_APP_QUEUE", base.queue_size),
        )


def check_pixels(name: str, shape: tuple[int, int], limits: AppLimits, what: str = "is") -> None:
    """Refuse an image of `shape` (H, W) above `limits.max_pixels` with a one-sentence message."""
    engine_limits.check_pixels(
        name,
        shape,
        limits.max_pixels,
        what,
        "crop or bin it first (e.g. in Gwyddion), or run `python -m stm_zoo restore` on your own "
        "machine",
    )


# ---------------------------------------------------------------------------------------------
# Uploads


def upload_paths(files: Any) -> list[Path]:
    """The uploaded file paths from what a gradio File component passes (None, str or list)."""
    if files is None:
        return []
    if isinstance(files, str | Path):
        files = [files]
    paths = []
    for item in files:
        # gradio gives str paths with type="filepath"; older clients send {"path": ...} dicts.
        path = item.get("path") if isinstance(item, dict) else getattr(item, "name", item)
        if path:
            paths.append(Path(str(path)))
    return paths


def check_file_type(path: Path) -> None:
    """Refuse any file whose name is not a readable scan type (checked case-insensitively)."""
    name = path.name.lower()
    if is_data_file(name) or is_parameter_file(name):
        return
    if path.suffix.lower() not in _SINGLE_FILE_SUFFIXES:
        kind = f"files of type '{path.suffix}'" if path.suffix else "files without an extension"
        raise STMFileError(f"{path.name}: {kind} are not supported; upload {ACCEPTED_TEXT}.")


def resolve_upload(files: Any, work_dir: Path) -> Path:
    """The one scan file to open from an upload of one file or a MATRIX pair.

    Args:
        files: what the gradio File component passes (see `upload_paths`).
        work_dir: a private folder of this request; MATRIX files are copied into it.

    Raises:
        StmZooError: nothing uploaded, an unsupported type, several unrelated files, or a MATRIX
            data file without its parameter file.
    """
    paths = upload_paths(files)
    if not paths:
        raise StmZooError(f"Upload a scan file first: {ACCEPTED_TEXT}.")
    for path in paths:
        check_file_type(path)
    if any(is_data_file(p) or is_parameter_file(p) for p in paths):
        return open_matrix_upload(paths, work_dir / "matrix")
    if len(paths) > 1:
        names = ", ".join(p.name for p in paths)
        raise StmZooError(
            f"{len(paths)} files were uploaded ({names}): upload one scan at a time (several "
            "files only for an Omicron MATRIX data file with its parameter file)."
        )
    return paths[0]


def announced_shape(path: Path) -> tuple[int, int] | None:
    """(H, W) that a file's header announces, read without touching the pixel data.

    Returns None for formats without a cheap header (.gwy, MATRIX) and for headers that do not
    parse (the reader then reports what is wrong with the file).
    """
    fmt = detect_format(path)
    try:
        if fmt == "sxm":
            with open(path, "rb") as f:
                head = f.read(256 * 1024).decode("latin-1")
            match = re.search(r":SCAN_PIXELS:\s*\n\s*(\d+)\s+(\d+)", head)
            return (int(match[2]), int(match[1])) if match else None
        if fmt == "npy":
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }[version]
                shape = tuple(d for d in read(f)[0] if d != 1)
            return (int(shape[0]), int(shape[1])) if len(shape) == 2 else None
        if fmt in ("png", "tiff"):
            import warnings

            from PIL import Image

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with Image.open(path) as image:
                        return (image.height, image.width)
                except Image.DecompressionBombError as error:
                    found = re.findall(r"(\d+) pixels", str(error))
                    side = math.isqrt(int(found[0])) if found else 1 << 16
                    return (side, side)
    except (OSError, ValueError, KeyError, SyntaxError, IndexError):
        return None
    return None


def new_work_dir(max_age_s: float = 3600.0) -> Path:
    """A fresh private folder for one request; folders older than `max_age_s` are removed.

    The root is STM_ZOO_APP_TMP or `<system temp>/stm_zoo_app/requests`. Gradio copies what a
    request returns into its own cache, so these folders are only needed while it runs.
    """
    root = Path(os.environ.get("STM_ZOO_APP_TMP") or Path(tempfile.gettempdir()) / "stm_zoo_app")
    root = root / "requests"
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        try:
            if old.is_dir() and now - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # another request removed it first
            continue
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    return folder


# ---------------------------------------------------------------------------------------------
# Models


class ModelCache:
    """A small LRU of loaded zoo entries keyed by zoo folder, task, family, size, device, dtype.

    Thread-safe: gradio runs requests in worker threads. Loading holds the lock, so two requests
    for the same model load it once.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._models: OrderedDict[tuple[str, ...], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, task: str, family: str, size: str, device: str = "auto", dtype: str = "float32"
    ) -> LoadedModel:
        """The loaded model, from the cache or `stm_zoo.zoo.load_model`.

        Raises:
            ModelNotFoundError: the entry is in neither the local zoo nor the Hub.
            StmZooError: an unknown name, a size the family does not come in, or no such device.
        """
        check_entry(task, family, size)
        device = resolve_device(device)
        key = (str(zoo_dir()), task, family, "" if family == "classical" else size, device, dtype)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model = load_model(task, family, size, device=device, dtype=dtype)
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model

    def __len__(self) -> int:
        return len(self._models)


def sizes_for(family: str) -> tuple[str, ...]:
    """The sizes a family comes in (paper's Table I); the classical baseline has one."""
    if family == "classical":
        return ("small",)
    sizes = tuple(dict.fromkeys(k.size for k in registry() if k.family == family))
    if not sizes:
        raise StmZooError(
            f"Unknown model family {family!r}: choose one of {', '.join(FAMILY_LABELS)}."
        )
    return sizes


def all_sizes() -> tuple[str, ...]:
    """Every size any family comes in: the size picker's choices when the app starts, so an API
    call may name any entry before the page narrows the picker to one family's sizes."""
    return tuple(dict.fromkeys(size for family in FAMILY_LABELS for size in sizes_for(family)))


def check_entry(task: str, family: str, size: str) -> None:
    """Refuse an unknown task or family and a size the family does not come in."""
    if task not in TASKS:
        raise StmZooError(f"Unknown task {task!r}: choose one of {', '.join(TASKS)}.")
    sizes = sizes_for(family)
    if family != "classical" and size not in sizes:
        raise StmZooError(
            f"The {family} family comes in size {' or '.join(sizes)} only (paper Table I), "
            f"not {size!r}: pick {sizes[0]}."
        )


def device_choices() -> list[str]:
    """The compute devices this machine has: auto and cpu, plus cuda when a GPU is visible."""
    import torch

    return ["auto", "cpu", "cuda"] if torch.cuda.is_available() else ["auto", "cpu"]


def _status(task: str, family: str, size: str):
    from stm_zoo.zoo import EntryKey
    from stm_zoo.zoo_cli import entry_status

    return entry_status(EntryKey(task, family, size))


def default_model(task: str) -> tuple[str, str]:
    """(family, size) offered first for a task: `stm_zoo.zoo.default_model` on the local zoo."""
    from stm_zoo.zoo import default_model as best_entry

    return best_entry(task)


def _quality_note(task: str, family: str, size: str) -> str:
    """What the entry's card says about the result to expect, as markdown lines.

    Measured quality (PSNR / SSIM gain over the degraded input on the synthetic test set, and a
    warning when it does not beat the classical baseline), training domain (surface, pixel size,
    tile size, data) and training budget (steps, samples seen, wall time, device).
    """
    from stm_zoo.zoo import CONFIG_NAME, EntryKey
    from stm_zoo.zoo_cli import cached_config

    key = EntryKey(task, family, size)
    path = zoo_dir() / key.subdir / CONFIG_NAME
    path = path if path.is_file() else cached_config(key)
    try:
        config = EntryConfig.from_file(path) if path is not None else None
    except StmZooError:
        config = None
    if config is None:
        return "  \n⚠️ Its card cannot be read: its quality and training are unknown."
    lines = [_measured_quality(config), _training_domain(config), _training_budget(config)]
    return "".join(f"  \n{line}" for line in lines)


def _measured_quality(config: EntryConfig) -> str:
    """The card's synthetic-test result as a gain over the degraded input, vs classical."""
    from stm_zoo.zoo import synthetic_score

    score = synthetic_score(config)
    if score is None:
        return "⚠️ Its card has no synthetic-test metrics: its quality is unmeasured."
    test = config.metrics.get("test", {})
    images = f"{test['images']} images, " if isinstance(test.get("images"), int) else ""
    steps = score.label.replace("steps", " steps")
    label = f"Expected quality on the synthetic test set ({images}{steps})"
    numbers = f"PSNR {score.psnr:.1f} dB, SSIM {score.ssim:.3f}"
    base_psnr, base_ssim = test.get("input_psnr"), test.get("input_ssim")
    if isinstance(base_psnr, int | float) and isinstance(base_ssim, int | float):
        gain = (
            f"**{score.psnr - base_psnr:+.1f} dB PSNR, {score.ssim - base_ssim:+.3f} SSIM over the "
            f"degraded input** ({numbers}"
        )
    else:
        gain = f"{numbers} (no input baseline on its card"
    if score.classical_psnr is None or score.classical_ssim is None:
        return f"{label}: {gain}). ⚠️ Its card does not compare it with classical."
    classical = f"classical {score.classical_psnr:.1f} dB, {score.classical_ssim:.3f}"
    if not score.beats_classical:
        return (
            f"{label}: {gain}; {classical}). ⚠️ **Below classical**: it does **not** beat the "
            "classical baseline on the synthetic test set: prefer `classical` or a better entry."
        )
    return f"{label}: {gain}; {classical})."


def _training_domain(config: EntryConfig) -> str:
    """Surface, pixel size, tile size and data of the entry's training set."""
    data = config.training.get("data", {}) if isinstance(config.training, dict) else {}
    data = data if isinstance(data, dict) else {}
    tile_nm = config.tile_size * config.pixel_size_nm
    parts = [
        f"simulated Si(001):H (dimer rows 0.77 nm apart) at {config.pixel_size_nm:.4g} nm/px",
        f"{config.tile_size} × {config.tile_size} px tiles ({tile_nm:.3g} nm)",
    ]
    if config.sr_factor > 1:
        parts.append(f"1 in {config.sr_factor} lines measured")
    pairs, scans = data.get("samples", {}), data.get("scans", {})
    if isinstance(pairs, dict) and isinstance(pairs.get("train"), int):
        source = (
            f" from {scans['train']} scans"
            if isinstance(scans, dict) and isinstance(scans.get("train"), int)
            else ""
        )
        parts.append(f"{pairs['train']:,} training pairs{source}")
    return (
        f"Trained on: {', '.join(parts)}. Inputs are resampled to its pixel size; other "
        "surfaces and scales are outside its training domain (a run warns)."
    )


def _training_budget(config: EntryConfig) -> str:
    """Steps, samples seen, wall time and device of the entry's training run."""
    training = config.training if isinstance(config.training, dict) else {}
    parts = []
    if isinstance(training.get("steps"), int):
        batch = training.get("batch")
        parts.append(
            f"{training['steps']:,} steps" + (f" (batch {batch})" if isinstance(batch, int) else "")
        )
    if isinstance(training.get("samples_seen"), int):
        parts.append(f"{training['samples_seen']:,} samples seen")
    hours, device = training.get("wall_time_h"), training.get("device")
    if isinstance(hours, int | float):
        parts.append(f"{hours:.3g} h" + (f" on {device}" if isinstance(device, str) else ""))
    elif isinstance(device, str):
        parts.append(f"on {device}")
    return f"Training budget: {', '.join(parts) if parts else 'unrecorded on its card'}."


def model_status(task: str, family: str, size: str) -> str:
    """Markdown saying whether the chosen entry can run here and what to expect of it: measured
    quality, training domain and training budget, from its card."""
    if family == "classical":
        return "Built-in classical baseline: row alignment and scar removal, no weights needed."
    try:
        check_entry(task, family, size)
    except StmZooError as error:
        return f"⚠️ {error}"
    status = _status(task, family, size)
    if status.available in ("local", "hub-cache"):
        where = "local zoo" if status.available == "local" else "Hub cache"
        note = _quality_note(task, family, size)
        return f"✅ `{status.entry}` is available ({where}).{note}"
    return (
        f"⚠️ `{status.entry}` is not in the local zoo ({status.available}); a run will try the "
        "Hub and otherwise explain how to get it. The classical family always works."
    )


ZOO_COLUMNS = [
    "Task",
    "Family",
    "Size",
    "Status",
    "Training budget",
    "PSNR gain (dB) at 2 / 5 / 10 steps",
    "Paper PSNR gain",
    "SSIM at 2 / 5 / 10 steps",
    "Paper SSIM",
    "KID at 2 / 5 / 10 steps",
    "Paper KID",
    "How to get it",
]
"""The Model zoo table (`zoo_rows`): one row per entry, grouped by task like the paper's tables."""
_STATUS = {
    "local": "✅ bundled",
    "hub-cache": "✅ Hub (downloaded)",
    "builtin": "✅ built in",
    "card-only": "⚠️ card only, no weights",
    "missing": "missing",
    "invalid": "❌ invalid entry",
}
_NO_VALUE = "–"
_STEP_COUNTS = (2, 5, 10)


def train_command(task: str, entry: str) -> str:
    """The command that trains a missing entry with the paper's budget (a GPU preset) on the
    dataset `python -m training data --task <task> --simulate 54 --out data/<task>` writes."""
    return f"python -m training train --preset {task}/{entry} --data data/{task} --out zoo"


def _cells(values: list[float | None], fmt: str) -> str:
    """'+3.71 / +3.45 / +3.01' from one value per step count; '–' where there is none."""
    if all(v is None for v in values):
        return _NO_VALUE
    return " / ".join(_NO_VALUE if v is None else format(v, fmt) for v in values)


def zoo_rows(root: Path | None = None) -> list[list[Any]]:
    """The Model zoo table (`ZOO_COLUMNS`), read like the paper's Tables IX and XI.

    Per task (restore, sr2, sr4): the input row (its own PSNR and SSIM, the reference of the
    gains), the classical baseline (its numbers from the cards' `metrics.test`), then every
    registry entry with its status, training budget and synthetic-test scores at 2 / 5 / 10
    sampler steps (PSNR as the gain over the input, SSIM, KID where the card has it) beside the
    paper's. A missing entry shows the commands that train it.
    """
    from stm_zoo.zoo import REPO_ZOO_DIR
    from stm_zoo.zoo_cli import list_entries

    statuses = [s for s in list_entries(root) if not s.entry.endswith("/classical")]
    bundled = (root or zoo_dir()).resolve() == REPO_ZOO_DIR.resolve()
    rows = []
    for task in TASKS:
        entries = [s for s in statuses if s.entry.startswith(f"{task}/")]
        # Every card of a task scores the input and `classical` on the same test images.
        test = next((t for s in entries if (t := _test_metrics(s))), {})
        rows += _baseline_rows(task, test)
        paper_input_psnr = _paper_input(task).get("psnr")
        rows += [_entry_row(s, test.get("input_psnr"), paper_input_psnr, bundled) for s in entries]
    return rows


def _paper_input(task: str) -> dict[str, float]:
    """The paper's scores of the degraded / low-resolution input (Tables III and VI)."""
    # The paper's numbers live with the benchmarks; the app sits above both packages.
    from evaluation.benchmarks import PAPER_SYNTHETIC, RowSpec

    return PAPER_SYNTHETIC.get(task, {}).get(RowSpec("input"), {})


def _baseline_rows(task: str, test: dict[str, float]) -> list[list[Any]]:
    """The input and classical rows of one task, from a card's `metrics.test`."""
    from evaluation.benchmarks import PAPER_EXPERIMENTAL, RowSpec, paper_value

    input_psnr, classical_psnr = test.get("input_psnr"), test.get("classical_psnr")
    paper = _paper_input(task)

    def absolute(psnr: float | None) -> str:
        return _NO_VALUE if psnr is None else f"0 ({psnr:.2f} dB)"

    classical_gain = (
        None if input_psnr is None or classical_psnr is None else classical_psnr - input_psnr
    )
    budget = [""]  # neither is trained
    return [
        [
            task,
            "Degraded input" if task == "restore" else "Low-resolution input",
            "",
            "reference",
            *budget,
            absolute(input_psnr),
            absolute(paper.get("psnr")),
            _cells([test.get("input_ssim")], ".3f"),
            _cells([paper.get("ssim")], ".3f"),
            _NO_VALUE,
            _cells([paper_value(PAPER_EXPERIMENTAL, task, RowSpec("input"), "kid")], ".4f"),
            "",
        ],
        [
            task,
            FAMILY_LABELS["classical"],
            "",
            _STATUS["builtin"],
            *budget,
            _cells([classical_gain], "+.2f"),
            _NO_VALUE,  # the paper has no classical row
            _cells([test.get("classical_ssim")], ".3f"),
            _NO_VALUE,
            _NO_VALUE,
            _NO_VALUE,
            "",
        ],
    ]


def _test_metrics(status: Any) -> dict[str, float]:
    """The card's synthetic-test numbers ("psnr_2steps": ...) of a `zoo_cli.EntryStatus`."""
    return {
        name.removeprefix("test/"): value
        for name, value in status.metrics.items()
        if name.startswith("test/")
    }


def _entry_row(
    status: Any, input_psnr: float | None, paper_input_psnr: float | None, bundled: bool
) -> list[Any]:
    """One learned entry's row of `zoo_rows`."""
    from evaluation.benchmarks import PAPER_EXPERIMENTAL, PAPER_SYNTHETIC, RowSpec, paper_value

    task, name = status.entry.split("/", 1)
    family, size = name.rsplit("-", 1)
    test = _test_metrics(status)
    # The autoencoder has one pass ("direct"; the paper's 1-step row); the samplers 2 / 5 / 10.
    labels = [("direct", 1)] if family == "ae" else [(f"{n}steps", n) for n in _STEP_COUNTS]
    specs = [RowSpec(family, size, steps) for _, steps in labels]

    def ours(metric: str) -> list[float | None]:
        return [test.get(f"{metric}_{label}") for label, _ in labels]

    def kid() -> list[float | None]:
        found = {
            label: value
            for name, value in status.metrics.items()
            for label, _ in labels
            if name.rsplit("/", 1)[-1] == f"kid_{label}"
        }
        return [found.get(label) for label, _ in labels]

    def paper(table: dict, metric: str) -> list[float | None]:
        return [paper_value(table, task, spec, metric) for spec in specs]

    def gains(values: list[float | None], reference: float | None) -> list[float | None]:
        return [None if v is None or reference is None else v - reference for v in values]

    training = status.training
    available = status.available
    state = _STATUS.get(available, available)
    if available == "local" and not bundled:
        state = "✅ local"
    if available in ("local", "hub-cache") and training.get("complete") is False:
        state = "🔶 preview (training not finished)"
    steps, samples, hours = (training.get(k) for k in ("steps", "samples_seen", "wall_time_h"))
    budget = ", ".join(
        part
        for part in (
            f"{steps:,} steps" if isinstance(steps, int) else "",
            f"{samples:,} samples" if isinstance(samples, int) else "",
            f"{hours:.2f} h" if isinstance(hours, int | float) else "",
        )
        if part
    )
    if budget and training.get("device"):
        budget += f" on {training['device']}"
    return [
        task,
        FAMILY_LABELS.get(family, family),
        size,
        state,
        budget,
        _cells(gains(ours("psnr"), input_psnr), "+.2f"),
        _cells(gains(paper(PAPER_SYNTHETIC, "psnr"), paper_input_psnr), "+.2f"),
        _cells(ours("ssim"), ".3f"),
        _cells(paper(PAPER_SYNTHETIC, "ssim"), ".3f"),
        _cells(kid(), ".4f"),
        _cells(paper(PAPER_EXPERIMENTAL, "kid"), ".4f"),
        f"`{train_command(task, name)}`"
        if available in ("missing", "card-only", "invalid")
        else "",
    ]


def zero_gpu(fn: Callable[..., Any], duration: Callable[..., int] | int = 60) -> Callable[..., Any]:
    """`spaces.GPU(duration=duration)(fn)` on Hugging Face ZeroGPU; `fn` itself elsewhere.

    `duration` may be a function of the same arguments as `fn` returning seconds: shorter
    declared durations get a GPU sooner.
    """
    try:
        import spaces  # only installed on Hugging Face Spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn)


def gpu_seconds(shape: tuple[int, int] | None, steps: int, samples: int) -> int:
    """A generous ZeroGPU duration for restoring an (H, W) scan: 128 px tiles, two network
    evaluations per step, a few ms each on a data-centre GPU, plus model loading."""
    h, w = shape or (1024, 1024)
    tiles = math.ceil(h / 96) * math.ceil(w / 96)
    return int(np.clip(20 + 0.02 * tiles * steps * samples * 2, 30, 300))


# ---------------------------------------------------------------------------------------------
# Restoring an upload


@dataclass(frozen=True)
class RestoreOptions:
    """The choices of one Restore request.

    Attributes:
        task: "restore", "sr2" or "sr4".
        family, size: the zoo entry.
        steps: sampler steps (ignored by ae and classical).
        device: "auto", "cpu" or "cuda".
        seed: seed of the noise field; None draws one.
        samples: independent samples (their mean is the result, their std the uncertainty).
        keep_measured: SR only: copy the measured lines into the result unchanged.
        channel, direction: what to read from the file.
        scan_size_nm: frame width in nm for files without a physical size (png/tif/npy).
        no_resample: run the model on the file's own pixels, not resampled to the model's.
    """

    task: str = "restore"
    family: str = "fm"
    size: str = "small"
    steps: int = 2
    device: str = "auto"
    seed: int | None = 0
    samples: int = 1
    keep_measured: bool = False
    channel: str = "Z"
    direction: str = "forward"
    scan_size_nm: float | None = None
    no_resample: bool = False

    def check(self, limits: AppLimits) -> None:
        """Refuse out-of-range numbers with a one-sentence message."""
        check_entry(self.task, self.family, self.size)
        if not 1 <= self.steps <= limits.max_steps:
            raise StmZooError(f"Steps must be between 1 and {limits.max_steps}, not {self.steps}.")
        if not 1 <= self.samples <= limits.max_samples:
            raise StmZooError(
                f"Samples must be between 1 and {limits.max_samples}, not {self.samples}."
            )
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise StmZooError(f"The seed must be a whole number >= 0, not {self.seed}.")
        if self.scan_size_nm is not None and not (
            math.isfinite(self.scan_size_nm) and 0 < self.scan_size_nm <= 1e6
        ):
            raise StmZooError(
                f"The scan width must be a positive number of nm, not {self.scan_size_nm}."
            )


@dataclass
class RestoreOutcome:
    """What one Restore request produced.

    Attributes:
        source: the file that was opened (for MATRIX, the copied data file).
        source_format: `detect_format` of it.
        scan: the input the model restored (complete lines only, bad pixels inpainted).
        result: the engine's result (restored scan, std, timing, model label, warnings).
        files: downloads, the input's own format first.
        total_seconds: wall time of the whole request (reading, model loading, writing).
    """

    source: Path
    source_format: str
    scan: Scan
    result: Result
    files: list[Path]
    total_seconds: float


def check_announced(path: Path, limits: AppLimits) -> None:
    """Refuse a file whose header announces more pixels than the app processes (no data read)."""
    claimed = announced_shape(path)
    if claimed is not None:
        check_pixels(path.name, claimed, limits, what="announces")


def read_scan(
    path: Path,
    limits: AppLimits,
    channel: str = "Z",
    direction: str = "forward",
    scan_size_nm: float | None = None,
    task: str = "restore",
    repair: bool = True,
) -> Scan:
    """Size-check and read one channel of a resolved upload.

    A file without a physical size gets square pixels `scan_size_nm` / W wide (or the default
    sampling); for a super-resolution task its lines are taken to be k times further apart than
    its pixels (a k times faster scan of a square-pixel frame), so the frame is k times taller.
    With `repair` (the default) incomplete lines are cut and bad pixels inpainted as `restore`
    does (`stm_zoo.limits.repair_input`); without it the scan comes as read, for `restore`.
    """
    check_announced(path, limits)
    scan = load_scan(path, channel or "Z", direction or "forward", scan_size_nm)
    check_pixels(path.name, scan.shape, limits)
    scan = sr_input_frame(scan, SR_FACTOR.get(task, 1))  # as `restore` reads it (idempotent)
    return engine_limits.repair_input(scan).scan if repair else scan


@dataclass
class Inspection:
    """What an uploaded file holds, for the channel and direction pickers.

    Attributes:
        path: the opened file; scan: the default channel and direction (valid lines only);
        channels: channel names; directions: the directions of the shown channel.
    """

    path: Path
    scan: Scan
    channels: list[str]
    directions: list[str]


def inspect_upload(
    files: Any, limits: AppLimits, scan_size_nm: float | None = None, task: str = "restore"
) -> Inspection:
    """Read an upload's channel list and its topography (else first) channel, forward first."""
    from stm_zoo.io import list_channels
    from stm_zoo.io._common import match_channel

    path = resolve_upload(files, new_work_dir())
    check_announced(path, limits)
    channels = list_channels(path)
    names = [c.name for c in channels]
    name = match_channel("Z", names) or names[0]
    directions = list(next(c for c in channels if c.name == name).directions)
    scan = read_scan(path, limits, name, directions[0], scan_size_nm, task)
    return Inspection(path, scan, names, directions)


def restore_upload(
    files: Any,
    options: RestoreOptions,
    models: ModelCache,
    limits: AppLimits,
    progress: Progress | None = None,
) -> RestoreOutcome:
    """Read an upload, run the chosen model on it and write the downloads.

    Raises:
        StmZooError: any user-fixable problem (file, limits, options, missing model).
    """
    started = time.perf_counter()
    notify = progress or (lambda fraction, message: None)
    options.check(limits)
    work_dir = new_work_dir()
    notify(0.0, "reading the scan")
    path = resolve_upload(files, work_dir)
    raw = read_scan(
        path,
        limits,
        options.channel,
        options.direction,
        options.scan_size_nm,
        options.task,
        repair=False,
    )
    notify(0.0, "loading the model")
    model = models.get(options.task, options.family, options.size, options.device)
    result = restore(
        raw,
        task=options.task,
        family=options.family,
        size=options.size,
        steps=options.steps,
        device=options.device,
        seed=options.seed,
        samples=options.samples,
        progress=notify,
        keep_measured=options.keep_measured,
        model=model,
        no_resample=options.no_resample,
        max_grid_pixels=limits.max_model_pixels,
    )
    scan = result.input if result.input is not None else raw
    notify(1.0, "writing the downloads")
    fmt = detect_format(path)
    tag = f"{options.task}-{options.family}" + (
        "" if options.family == "classical" else f"-{options.size}"
    )
    files_out = write_downloads(
        result,
        fmt,
        f"{safe_stem(path)}_{tag}",
        work_dir / "out",
        source=path,
        label=result_label(options.task, options.family, options.size),
        scan_size_nm=options.scan_size_nm,
    )
    total = time.perf_counter() - started
    log.info(
        "%s %s: %s, model %.2f s, request %.2f s",
        path.name,
        scan.shape,
        result.model,
        result.seconds,
        total,
    )
    return RestoreOutcome(path, fmt, scan, result, files_out, total)


def safe_stem(path: Path) -> str:
    """The file's stem with anything but letters, digits, '-', '_' and '.' replaced by '_'."""
    stem = path.name
    for suffix in (".Z_mtrx", ".I_mtrx"):
        stem = stem.removesuffix(suffix)
    stem = Path(stem).stem if "." in stem else stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80] or "scan"


def write_downloads(
    result: Result,
    source_format: str,
    stem: str,
    folder: Path,
    *,
    source: Path | None = None,
    label: str = "restored",
    scan_size_nm: float | None = None,
) -> list[Path]:
    """Write the restored scan in the input's format, plus .gwy, 16-bit .png and float32 .npy.

    The .sxm and .gwy files carry every channel of `source` unchanged, with the result added as
    the channel `<channel>_<label>` (see `stm_zoo.io.results`). With several samples, the
    per-pixel standard deviation is written too (`<stem>_std.npy`, in the scan's unit, and a
    channel of the .sxm/.gwy). MATRIX input has no writer and comes back as .gwy.

    Returns:
        The written files, the input's own format first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = [NATIVE_SUFFIX.get(source_format, ".gwy"), *EXTRA_SUFFIXES]
    written = [
        save_result(
            result.scan,
            folder / f"{stem}{suffix}",
            label=label,
            source=source,
            std=result.std if suffix in (".sxm", ".gwy") else None,
            scan_size_nm=scan_size_nm,
        )[0]
        for suffix in dict.fromkeys(suffixes)
    ]
    if result.std is not None:
        std_path = folder / f"{stem}_std.npy"
        np.save(std_path, result.std.astype(np.float32))
        written.append(std_path)
    return written


# ---------------------------------------------------------------------------------------------
# Text for the page


def describe_scan(path: Path, scan: Scan) -> str:
    """A markdown summary of a scan for the page: format, size, pixel size, bias, setpoint."""
    fmt = FORMAT_NAMES[detect_format(path)]
    h, w = scan.shape
    sx, sy = (s * 1e9 for s in scan.scan_size_m)
    px, py = (p * 1e9 for p in scan.pixel_size_m)
    assumed = " (assumed: the file has none; set the scan width)" if scan.pixel_size_assumed else ""
    lines = [
        f"**{path.name}** · {fmt} · {scan.channel} {scan.direction}",
        f"{h} lines × {w} px · {sx:.4g} × {sy:.4g} nm{assumed} · {px:.4g} × {py:.4g} nm/px",
        f"bias {format_si(scan.bias_v, 'V')} · setpoint {format_si(scan.setpoint_a, 'A')}",
    ]
    return "  \n".join(lines)


def describe_result(outcome: RestoreOutcome) -> str:
    """A markdown summary of a run: model, timing, shapes, height range, uncertainty, warnings."""
    result = outcome.result
    h, w = outcome.scan.shape
    rh, rw = result.scan.shape
    lo, hi = robust_range(remove_plane(result.scan.data))
    lines = [
        f"**{result.model}** · model {result.seconds:.2f} s · "
        f"request {outcome.total_seconds:.2f} s",
        f"{h} × {w} px → {rh} × {rw} px · height range (levelled, 0.5-99.5 %) "
        f"{format_si(hi - lo, result.scan.unit)}",
    ]
    if result.std is not None:
        unit = result.scan.unit
        lines.append(
            f"uncertainty: median std {format_si(float(np.median(result.std)), unit)}, "
            f"99th percentile {format_si(float(np.percentile(result.std, 99)), unit)}"
        )
    lines += [f"⚠️ {warning}" for warning in result.warnings]
    return "  \n".join(lines)

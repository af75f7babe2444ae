"""The models the app offers: their labels and sizes, the loaded-model cache and ZeroGPU.

- `ModelCache`: a small thread-safe LRU of loaded zoo entries, so that the second request for a
  model does not load it again.
- `zero_gpu` wraps a function with `spaces.GPU` when the `spaces` package is installed (Hugging
  Face Spaces) and returns it unchanged otherwise; `gpu_seconds` is the duration it declares.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.pipeline import check_entry
from stm_zoo.registry import CLASSICAL, FAMILIES, FAMILY_SIZES, is_learned
from stm_zoo.zoo import LoadedModel, load_model, resolve_device, zoo_search_path

TASK_LABELS = {"restore": "Restore", "sr2": "Super-resolve x2", "sr4": "Super-resolve x4"}
FAMILY_LABELS = {
    "fm": "Flow matching",
    "ddim": "DDIM",
    "ddim-fft": "DDIM + FFT loss",
    "ae": "Autoencoder",
    CLASSICAL: "Classical (no network)",
}


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
        key = (zoo_search_path(), task, family, size if is_learned(family) else "", device, dtype)
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
    """The sizes a family comes in (paper's Table I); a family without a network has one."""
    if family not in FAMILIES:
        raise StmZooError(
            f"Unknown model family {family!r}: choose one of {', '.join(FAMILY_LABELS)}."
        )
    return FAMILY_SIZES[family] if is_learned(family) else ("small",)


def all_sizes() -> tuple[str, ...]:
    """Every size any family comes in: the size picker's choices when the app starts, so an API
    call may name any entry before the page narrows the picker to one family's sizes."""
    return tuple(dict.fromkeys(size for family in FAMILY_LABELS for size in sizes_for(family)))


def device_choices() -> list[str]:
    """The compute devices this machine has: auto and cpu, plus cuda when a GPU is visible."""
    import torch

    return ["auto", "cpu", "cuda"] if torch.cuda.is_available() else ["auto", "cpu"]


def default_model(task: str) -> tuple[str, str]:
    """(family, size) offered first for a task: `stm_zoo.zoo.default_model` on the local zoo."""
    from stm_zoo.zoo import default_model as best_entry

    return best_entry(task)


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

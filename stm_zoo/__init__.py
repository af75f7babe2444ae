"""stm-zoo: restore and super-resolve scanning tunnelling microscopy scans.

Public API: `load_scan`, `save_scan`, `list_channels`, `Scan`, `restore` with its
`RestoreOptions` and `RestoreResult`, `load_model`.
Names are resolved lazily so that `import stm_zoo.errors` (or `--help`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Scan": "stm_zoo.io",
    "load_scan": "stm_zoo.io",
    "save_scan": "stm_zoo.io",
    "list_channels": "stm_zoo.io",
    "scan_info": "stm_zoo.io",
    "restore": "stm_zoo.pipeline",
    "RestoreOptions": "stm_zoo.pipeline",
    "RestoreResult": "stm_zoo.pipeline",
    "load_model": "stm_zoo.zoo",
    "StmZooError": "stm_zoo.errors",
    "STMFileError": "stm_zoo.errors",
    "ModelNotFoundError": "stm_zoo.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stm_zoo' has no attribute {name!r}")

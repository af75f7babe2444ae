"""Uploads: what a gradio File component passes, turned into the one scan file to open.

File types are checked case-insensitively by name, and a MATRIX data file and its parameter file
(each in its own upload folder) are copied into one private folder of the request
(`new_work_dir`). User-fixable problems raise `StmZooError` (`webapp.tabs.common.user_errors`
shows them with `gr.Error`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from stm_zoo.errors import STMFileError, StmZooError
from stm_zoo.io import open_matrix_upload
from stm_zoo.io.matrix import is_data_file, is_parameter_file

ACCEPTED_TEXT = (
    ".sxm, .gwy, .png, .tif, .tiff or .npy, or an Omicron MATRIX data file (`*.Z_mtrx`) "
    "together with its parameter file (`*_0001.mtrx`)"
)
_SINGLE_FILE_SUFFIXES = (".sxm", ".gwy", ".png", ".tif", ".tiff", ".npy")


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

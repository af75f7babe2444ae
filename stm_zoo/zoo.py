"""The model zoo: where entries are found, which one is offered first, and loading them.

An entry's name, config.json and folder layout are `stm_zoo.entry_format`'s; this module finds
the folder that serves an entry and builds the network from it.

Resolution order for `load_model`: explicit path -> the local zoo folders of `STM_ZOO_DIR` (one
folder or several separated by `os.pathsep`, searched in order; default: the repository's `zoo/`)
-> the Hub repo `STM_ZOO_REPO` through huggingface_hub (cached, honours HF_HUB_OFFLINE). The
first local folder holding an entry's config.json and model.safetensors serves it; a folder with
the config.json (and card) alone is a card-only entry: its weights live elsewhere (the large
entries are too big for git). Only safetensors and validated JSON are ever read: never pickles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stm_zoo import config_checks as checks
from stm_zoo.entry_format import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    EntryConfig,
    EntryKey,
    registry,
)
from stm_zoo.errors import ModelNotFoundError, StmZooError
from stm_zoo.methods import get_baseline
from stm_zoo.registry import CLASSICAL, SR_FACTOR, is_learned

DEFAULT_REPO = "stm-zoo/stm-zoo"
REPO_ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"


@dataclass(frozen=True)
class SyntheticScore:
    """What an entry's card says of it on the synthetic test set (`metrics["test"]`).

    Attributes:
        psnr, ssim: at the entry's best step count (by PSNR; `direct` for the autoencoder).
        label: that step count's label ("2steps", "direct", ...).
        classical_psnr, classical_ssim: the classical baseline on the same images (None when the
            card was written without it).
    """

    psnr: float
    ssim: float
    label: str
    classical_psnr: float | None
    classical_ssim: float | None

    @property
    def beats_classical(self) -> bool:
        """Better than the classical baseline in both PSNR and SSIM (False when unmeasured)."""
        if self.classical_psnr is None or self.classical_ssim is None:
            return False
        return self.psnr > self.classical_psnr and self.ssim > self.classical_ssim


def synthetic_score(config: EntryConfig) -> SyntheticScore | None:
    """The entry's best synthetic-test result from its card, or None if it has none."""
    test = config.metrics.get("test", {})
    if not isinstance(test, dict):
        return None
    labels = [
        k.removeprefix("psnr_")
        for k, v in test.items()
        if k.startswith("psnr_") and isinstance(v, int | float) and f"ssim_{k[5:]}" in test
    ]
    if not labels:
        return None
    best = max(labels, key=lambda label: test[f"psnr_{label}"])

    def number(name: str) -> float | None:
        value = test.get(name)
        return float(value) if isinstance(value, int | float) else None

    return SyntheticScore(
        float(test[f"psnr_{best}"]),
        float(test[f"ssim_{best}"]),
        best,
        number("classical_psnr"),
        number("classical_ssim"),
    )


def real_scan_verdict(config: EntryConfig) -> str | None:
    """Why the card's real-scan check (`metrics["reference"]`, `python -m evaluation reference`)
    rules the entry out as a default, or None when it does not (or the card has no such check).

    Restore must do no harm to the real near-pristine Si(001):H scan (`passed`). A
    super-resolution entry must come closer to the full real scan than `classical` does from the
    same every-k-th-line input, at its best step count (`psnr_db_*` against `classical_psnr_db`).
    """
    reference = config.metrics.get("reference", {})
    if not isinstance(reference, dict) or not reference:
        return None
    if config.task == "restore":
        return (
            None if reference.get("passed", True) else "fails the do-no-harm check on a real scan"
        )
    ours = [
        v for k, v in reference.items() if k.startswith("psnr_db_") and isinstance(v, int | float)
    ]
    classical = reference.get("classical_psnr_db")
    if not ours or not isinstance(classical, int | float) or max(ours) > classical:
        return None
    return f"is below classical on a real scan ({max(ours):.1f} vs {classical:.1f} dB)"


def default_model(task: str, root: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """(family, size) the app and CLI offer first for `task`: the local entry with the best
    synthetic-test PSNR among those that beat the classical baseline on the synthetic test set
    and are not ruled out by their real-scan check (`real_scan_verdict`), else
    (`CLASSICAL`, "small").

    An entry whose card has no test metrics, that does not beat `classical`, or that is worse
    than `classical` on the real scan, is never the default (users may still pick it; the app
    then says so). `root`: a zoo search path (`zoo_dirs`; default STM_ZOO_DIR).
    """
    best: tuple[float, str, str] | None = None
    for key in registry():
        folder = local_entry(key, root) if key.task == task else None
        if folder is None:
            continue
        try:
            config = EntryConfig.from_file(folder / CONFIG_NAME)
        except StmZooError:
            continue
        score = synthetic_score(config)
        if score is None or not score.beats_classical or real_scan_verdict(config) is not None:
            continue
        if best is None or score.psnr > best[0]:
            best = (score.psnr, key.family, key.size)
    return (CLASSICAL, "small") if best is None else (best[1], best[2])


def zoo_dirs(search_path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The local zoo folders, in the order they are searched.

    Args:
        search_path: one folder or several separated by `os.pathsep`
            (`zoo:~/.cache/stm-zoo/large`); default `STM_ZOO_DIR`, else the repository's `zoo/`.
            `~` is expanded and empty parts are skipped.
    """
    text = os.fspath(search_path) if search_path is not None else os.environ.get("STM_ZOO_DIR")
    folders = [Path(part).expanduser() for part in (text or "").split(os.pathsep) if part.strip()]
    return folders or [REPO_ZOO_DIR]


def zoo_search_path(search_path: str | os.PathLike[str] | None = None) -> str:
    """`zoo_dirs(search_path)` joined by `os.pathsep`: what to record or pass on as `--zoo`."""
    return os.pathsep.join(str(folder) for folder in zoo_dirs(search_path))


def add_zoo_argument(parser, entries: str = "") -> None:
    """The `--zoo FOLDERS` option every command that reads the zoo takes (`zoo_dirs` reads it),
    and with `entries` (what the command does with them) the `--entries ENTRY...` filter."""
    parser.add_argument(
        "--zoo",
        default=None,
        metavar="FOLDERS",
        help=f"zoo folders searched in order, separated by {os.pathsep!r} (default STM_ZOO_DIR)",
    )
    if entries:
        parser.add_argument(
            "--entries",
            nargs="+",
            default=[],
            metavar="ENTRY",
            help=f"{entries} only these, e.g. restore/ae-large (default: all)",
        )


def local_entry(key: EntryKey, search_path: str | os.PathLike[str] | None = None) -> Path | None:
    """The entry folder that serves `key` locally: the first of `zoo_dirs(search_path)` holding
    its config.json and model.safetensors (None when no folder does)."""
    for root in zoo_dirs(search_path):
        folder = root / key.subdir
        if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
            return folder
    return None


def card_only_entry(
    key: EntryKey, search_path: str | os.PathLike[str] | None = None
) -> Path | None:
    """The first entry folder of `zoo_dirs(search_path)` holding `key`'s config.json but no
    weights: a card committed to git whose weights live in a published-layout folder or the Hub."""
    for root in zoo_dirs(search_path):
        folder = root / key.subdir
        if (folder / CONFIG_NAME).is_file() and not (folder / WEIGHTS_NAME).is_file():
            return folder
    return None


def card_only_message(key: EntryKey, card_folder: Path, repo_id: str, reason: str = "") -> str:
    """The one sentence that says where the weights of a card-only entry are to be found."""
    try:
        shown = card_folder.resolve().relative_to(REPO_ZOO_DIR.parent)
    except ValueError:
        shown = card_folder
    because = f" ({reason})" if reason else ""
    return (
        f"The weights of {key} are not bundled in git (its card is at {shown}): get them from "
        f"the Hub repo {repo_id}{because} or a published-layout folder "
        "(`<task>/<family>-<size>/model.safetensors`) and add that folder to STM_ZOO_DIR "
        f"(e.g. STM_ZOO_DIR={zoo_search_path()}{os.pathsep}FOLDER)."
    )


def zoo_repo() -> str:
    """The Hub model repo holding the full zoo: `STM_ZOO_REPO` or the project default."""
    return os.environ.get("STM_ZOO_REPO", DEFAULT_REPO)


@dataclass
class LoadedModel:
    """A network ready for inference with everything needed to run its sampler.

    Attributes:
        config: the entry's config.json.
        network: the U-Net in eval mode on `device` (None for a family without one).
        device: torch device the network lives on.
        dtype: compute dtype ("float32" or "bfloat16").
        source: where the weights came from (a folder path or `hub:<repo>`).
    """

    config: EntryConfig
    network: Any
    device: str
    dtype: str
    source: str

    @property
    def key(self) -> EntryKey:
        return self.config.key


def baseline_config(task: str, family: str) -> EntryConfig:
    """The config of a family without a network (`stm_zoo.methods.get_baseline`): nothing to
    download."""
    return EntryConfig(
        task=task,
        family=family,
        size="small",
        network=None,
        sr_factor=SR_FACTOR[task],
        training={"note": f"not trained: {get_baseline(family).description}"},
    )


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when available else 'cpu'; an unavailable explicit device is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StmZooError("Device 'cuda' was requested but no CUDA GPU is available: use cpu.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise StmZooError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    return device


def load_entry(directory: Path, device: str = "auto", dtype: str = "float32") -> LoadedModel:
    """Load one entry folder (config.json + model.safetensors).

    Raises:
        ModelNotFoundError: when the folder or its files are missing.
        StmZooError: when the config is invalid or the weights do not fit the network.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from stm_zoo.nn import UNet

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise ModelNotFoundError(f"{needed} is missing: this is not a complete zoo entry.")
    config = EntryConfig.from_file(config_path)
    device = resolve_device(device)
    if dtype not in ("float32", "bfloat16"):
        raise StmZooError(f"Unknown compute dtype {dtype!r}: use float32 or bfloat16.")
    if config.network is None:
        raise StmZooError(
            f"{config_path} is a {config.family} entry, which has no network to load: use "
            f"load_model(task, {config.family!r})."
        )
    checks.check_weights_size(weights_path, config.network.parameter_count())
    network = UNet(config.network)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise StmZooError(f"{weights_path} is not a valid safetensors file ({error}).") from None
    checks.check_weights(weights_path, state)
    try:
        network.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise StmZooError(f"{weights_path} does not match its config.json ({first}).") from None
    network.eval().requires_grad_(False)
    # channels_last: oneDNN's convolutions and GroupNorm run several times faster in that layout
    # on CPU (docs/benchmarks.md); on CUDA it is neutral to helpful.
    network.to(device=device, dtype=getattr(torch, dtype), memory_format=torch.channels_last)
    return LoadedModel(config, network, device, dtype, str(directory))


def _download_entry(key: EntryKey, repo_id: str) -> Path:
    """Fetch one entry from the Hub (or the local HF cache when offline); return its folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        root = snapshot_download(
            repo_id,
            allow_patterns=[
                f"{key.subdir}/{CONFIG_NAME}",
                f"{key.subdir}/{WEIGHTS_NAME}",
                f"{key.subdir}/{CARD_NAME}",
            ],
            local_files_only=offline,
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        reason = "offline and not in the local Hub cache" if offline else type(error).__name__
        raise ModelNotFoundError(_missing_message(key, repo_id, reason)) from None
    folder = Path(root) / key.subdir
    if not ((folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()):
        where = "the local Hub cache" if offline else "the Hub repo"
        raise ModelNotFoundError(_missing_message(key, repo_id, f"not in {where}"))
    return folder


def _missing_message(
    key: EntryKey, repo_id: str, reason: str, search_path: str | os.PathLike[str] | None = None
) -> str:
    card = card_only_entry(key, search_path)
    if card is not None:
        return card_only_message(key, card, repo_id, reason)
    return (
        f"Model {key} is not in the local zoo ({zoo_search_path(search_path)}) and could not be "
        f"fetched from the Hub repo {repo_id} ({reason}): train it with `python -m training train "
        f"--task {key.task} --model {key.family} --size {key.size} --data DATA --out "
        f"{zoo_dirs(search_path)[0]}` or set STM_ZOO_REPO / STM_ZOO_DIR to where it lives."
    )


def locate(
    key: EntryKey,
    path: Path | None = None,
    allow_hub: bool = True,
    search_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Find the entry folder: explicit path -> local zoo folders -> Hub (see module docstring).

    Args:
        key: the entry.
        path: an entry folder or a zoo root (or several, separated by `os.pathsep`) to use
            instead of the default resolution.
        allow_hub: fall back on the Hub repo (or its local cache).
        search_path: the local zoo folders (`zoo_dirs`; default STM_ZOO_DIR).

    Raises:
        ModelNotFoundError: one sentence saying how to get the entry (for a card-only entry:
            where its weights are published).
    """
    if path is not None:
        for folder in zoo_dirs(path):
            if (folder / CONFIG_NAME).is_file():  # an entry folder itself
                return folder
        if (found := local_entry(key, path)) is not None:
            return found
        if (card := card_only_entry(key, path)) is not None:
            raise ModelNotFoundError(card_only_message(key, card, zoo_repo()))
        raise ModelNotFoundError(f"{path} holds no zoo entry {key} (no {CONFIG_NAME} found).")
    local = local_entry(key, search_path)
    if local is not None:
        return local
    if not allow_hub:
        reason = "Hub lookup disabled"
        raise ModelNotFoundError(_missing_message(key, zoo_repo(), reason, search_path))
    return _download_entry(key, zoo_repo())


def load_model(
    task: str,
    family: str,
    size: str = "small",
    device: str = "auto",
    dtype: str = "float32",
    path: Path | None = None,
) -> LoadedModel:
    """Load a zoo entry by name, resolving explicit path -> STM_ZOO_DIR's folders -> Hub.

    Args:
        task: "restore", "sr2" or "sr4".
        family: one of `stm_zoo.registry.FAMILIES`.
        size: "small" or "large" (ignored for a family without a network).
        device: "auto", "cpu" or "cuda".
        dtype: compute dtype, "float32" or "bfloat16".
        path: an entry folder or a zoo root (or several, separated by `os.pathsep`) to use
            instead of the default resolution.
    """
    key = EntryKey(task, family, size if is_learned(family) else "small")  # checks the names
    if not is_learned(family):
        config = baseline_config(task, family)
        return LoadedModel(config, None, resolve_device(device), dtype, "builtin")
    return load_entry(locate(key, path), device=device, dtype=dtype)

"""`python -m stm_zoo zoo list` and `python -m stm_zoo publish`: inspect and publish the zoo."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stm_zoo.cards import flatten_metrics
from stm_zoo.errors import StmZooError
from stm_zoo.methods import get_baseline
from stm_zoo.registry import FAMILIES, is_learned
from stm_zoo.zoo import (
    CONFIG_NAME,
    TASKS,
    WEIGHTS_NAME,
    EntryConfig,
    EntryKey,
    registry,
    zoo_dir,
    zoo_repo,
)

log = logging.getLogger(__name__)


@dataclass
class EntryStatus:
    """One row of `zoo list`."""

    entry: str
    available: str  # "local", "hub-cache", "card-only", "builtin" or "missing"
    location: str
    training: dict[str, Any]
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def cached_config(key: EntryKey) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(zoo_repo(), f"{key.subdir}/{CONFIG_NAME}")
    return Path(found) if isinstance(found, str) else None


def entry_status(key: EntryKey, root: Path | None = None) -> EntryStatus:
    """Where an entry is available and what its card says."""
    local = (root or zoo_dir()) / key.subdir
    config_path: Path | None = None
    if (local / CONFIG_NAME).is_file():
        config_path = local / CONFIG_NAME
        available = "local" if (local / WEIGHTS_NAME).is_file() else "card-only"
        location = str(local)
    elif (cached := cached_config(key)) is not None:
        config_path, available, location = cached, "hub-cache", f"hub:{zoo_repo()}"
    else:
        available, location = "missing", f"train it, or hub:{zoo_repo()}"
    training: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    if config_path is not None:
        try:
            config = EntryConfig.from_file(config_path)
            training = {k: v for k, v in config.training.items() if not isinstance(v, dict | list)}
            metrics = flatten_metrics(config.metrics)
        except StmZooError as error:
            available, location = "invalid", str(error)
    return EntryStatus(str(key), available, location, training, metrics)


def list_entries(root: Path | None = None) -> list[EntryStatus]:
    """Every registry entry plus the built-in families without a network (the classical
    baseline) for each task."""
    rows = [entry_status(key, root) for key in registry()]
    rows += [
        EntryStatus(f"{task}/{family}", "builtin", get_baseline(family).restore.__module__, {}, {})
        for task in TASKS
        for family in FAMILIES
        if not is_learned(family)
    ]
    return rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list"], help="what to do with the zoo")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--zoo", type=Path, default=None, help="zoo folder (default STM_ZOO_DIR)")


def run(args: argparse.Namespace) -> int:
    rows = list_entries(args.zoo)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    print(f"zoo: {args.zoo or zoo_dir()}   hub: {zoo_repo()}")
    print(f"{'entry':24} {'available':10} {'steps':>7} {'metrics'}")
    for row in rows:
        shown = ", ".join(f"{k}={v:.3g}" for k, v in list(row.metrics.items())[:4])
        print(f"{row.entry:24} {row.available:10} {row.training.get('steps', ''):>7} {shown}")
    return 0

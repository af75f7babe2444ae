"""`python -m stm_zoo zoo list` and `zoo cards`: what the zoo holds, and committing large cards.

`zoo list` gives every registry entry (and the built-in classical baseline) a measured state:
where it is served from, its training budget, and its synthetic-test headline (affine PSNR / SSIM
at its default step count beside the degraded input and classical, with a verdict).
`zoo cards` copies the committed pair of an entry (config.json + README.md card) from a
published-layout folder into the repository's `zoo/`: the large entries' weights stay out of git.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stm_zoo.cards import flatten_metrics
from stm_zoo.entry_format import (
    CARD_NAME,
    CONFIG_NAME,
    PUBLISHED_MODE,
    WEIGHTS_NAME,
    EntryConfig,
    EntryKey,
    registry,
)
from stm_zoo.errors import StmZooError
from stm_zoo.methods import get_baseline
from stm_zoo.registry import CLASSICAL, FAMILIES, TASKS, is_learned, takes_steps
from stm_zoo.zoo import (
    REPO_ZOO_DIR,
    add_zoo_argument,
    card_only_entry,
    card_only_message,
    local_entry,
    synthetic_score,
    zoo_dirs,
    zoo_repo,
)

log = logging.getLogger(__name__)

AVAILABILITY = ("bundled", "local", "hub-cache", "card-only", "untrained", "invalid", "builtin")
"""`EntryStatus.available`: weights in the repository's zoo/ ("bundled"), in another folder of
STM_ZOO_DIR ("local"), in the Hugging Face cache; only the committed card; nothing anywhere; an
entry that fails its checks; a family without weights."""


@dataclass(frozen=True)
class Headline:
    """The synthetic-test numbers `zoo list` shows for an entry (its card's `metrics["test"]`).

    Attributes:
        label: the default step count (`stm_zoo.zoo.synthetic_score`: the card's best by PSNR,
            the one the app's default model is chosen by), e.g. "2steps" or "direct".
        apsnr, assim: the entry's affine PSNR (dB) / SSIM at `label` (after the best affine map
            onto the clean image, so a global height scale or offset does not count).
        input_apsnr, input_assim: the degraded (or low-resolution) input's on the same images.
        classical_apsnr, classical_assim: the classical baseline's on the same images.
    """

    label: str
    apsnr: float | None
    assim: float | None
    input_apsnr: float | None
    input_assim: float | None
    classical_apsnr: float | None
    classical_assim: float | None

    @property
    def verdict(self) -> str:
        """ "beats input" (both scores above the input's), "below input" (both below), "mixed"
        or "" when a number is missing."""
        pairs = [(self.apsnr, self.input_apsnr), (self.assim, self.input_assim)]
        if any(ours is None or theirs is None for ours, theirs in pairs):
            return ""
        above = [ours > theirs for ours, theirs in pairs]
        return "beats input" if all(above) else "below input" if not any(above) else "mixed"

    def text(self) -> str:
        """`aPSNR 28.4 (input 27.7, classical 29.3), aSSIM 0.664 (...) at 2 steps: beats input`."""

        def score(name: str, ours: float | None, fmt: str, *others: float | None) -> str:
            shown = ", ".join(
                f"{who} {value:{fmt}}"
                for who, value in zip(("input", CLASSICAL), others, strict=True)
                if value is not None
            )
            value = "?" if ours is None else format(ours, fmt)
            return f"{name} {value}" + (f" ({shown})" if shown else "")

        steps = "one pass" if self.label == "direct" else self.label.replace("steps", " steps")
        parts = [
            score("aPSNR", self.apsnr, ".1f", self.input_apsnr, self.classical_apsnr),
            score("aSSIM", self.assim, ".3f", self.input_assim, self.classical_assim),
        ]
        return f"{', '.join(parts)} at {steps}" + (f": {self.verdict}" if self.verdict else "")


def headline(config: EntryConfig) -> Headline | None:
    """The entry's `Headline`, or None when its card has no synthetic-test metrics."""
    score = synthetic_score(config)
    if score is None:
        return None
    test = config.metrics["test"]

    def number(name: str) -> float | None:
        value = test.get(name)
        return float(value) if isinstance(value, int | float) else None

    return Headline(
        score.label,
        number(f"apsnr_{score.label}"),
        number(f"assim_{score.label}"),
        number("input_apsnr"),
        number("input_assim"),
        number("classical_apsnr"),
        number("classical_assim"),
    )


@dataclass
class EntryStatus:
    """One row of `zoo list`.

    Attributes:
        entry: `<task>/<family>-<size>` (`<task>/classical` for the built-in baseline).
        available: one of `AVAILABILITY`.
        location: the entry folder, `hub:<repo>`, the card's folder, or the baseline's module.
        training: the card's scalar training fields (steps, samples_seen, wall_time_h, device...).
        metrics: every numeric metric of the card, flattened ("test/apsnr_2steps": ...).
        headline: the synthetic-test headline, None when unmeasured.
        hint: how to get the entry when it cannot run here (empty otherwise).
    """

    entry: str
    available: str
    location: str
    training: dict[str, Any]
    metrics: dict[str, float]
    headline: Headline | None = None
    hint: str = ""

    @property
    def where(self) -> str:
        """The `available` column: "bundled", the published-layout folder serving a "local"
        entry, or the state itself."""
        if self.available == "local":
            return str(Path(self.location).parent.parent)
        return self.available

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        if self.headline is not None:
            row["headline"]["verdict"] = self.headline.verdict
            row["headline"]["text"] = self.headline.text()
        return row


def cached_config(key: EntryKey) -> Path | None:
    """The entry's config.json in the Hugging Face cache when its weights are cached too."""
    from huggingface_hub import try_to_load_from_cache

    found = [
        try_to_load_from_cache(zoo_repo(), f"{key.subdir}/{name}")
        for name in (CONFIG_NAME, WEIGHTS_NAME)
    ]
    return Path(found[0]) if all(isinstance(f, str) for f in found) else None


def train_hint(key: EntryKey) -> str:
    """The commands that train an entry: the GPU script (large) or preset (small), and the
    `@cpu` preset where `training.configs` has one (small entries and the autoencoder)."""
    data = f"data/{key.task}"
    if key.size == "large":
        out = "~/.cache/stm-zoo/large"
        gpu = (
            f"`python scripts/train_large_gpu.py --data-root data --out {out} "
            f"--entries {key} --build-data`"
        )
    else:
        out = "zoo"
        gpu = f"`python -m training train --preset {key} --data {data} --out {out}`"
    hint = f"train it on a GPU: {gpu}"
    if key.size == "small" or not takes_steps(key.family):
        hint += f", or on the CPU: `python -m training train --preset {key}@cpu --data {data} "
        hint += f"--out {out}`"
    return hint + (f" (then add {out} to STM_ZOO_DIR)" if key.size == "large" else "")


def entry_status(key: EntryKey, search_path: str | os.PathLike[str] | None = None) -> EntryStatus:
    """Where an entry is served from (local folders in order, then the Hub cache) and what its
    card says. `search_path`: zoo folders as in `stm_zoo.zoo.zoo_dirs` (default STM_ZOO_DIR)."""
    hint = ""
    if (folder := local_entry(key, search_path)) is not None:
        bundled = folder.resolve().is_relative_to(REPO_ZOO_DIR.resolve())
        config_path, location = folder / CONFIG_NAME, str(folder)
        available = "bundled" if bundled else "local"
    elif (cached := cached_config(key)) is not None:
        config_path, available, location = cached, "hub-cache", f"hub:{zoo_repo()}"
    elif (card := card_only_entry(key, search_path)) is not None:
        config_path, available, location = card / CONFIG_NAME, "card-only", str(card)
        hint = card_only_message(key, card, zoo_repo())
    else:
        config_path, available, location = None, "untrained", ""
        hint = train_hint(key)
    training: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    summary = None
    if config_path is not None:
        try:
            config = EntryConfig.from_file(config_path)
        except StmZooError as error:
            return EntryStatus(str(key), "invalid", str(config_path), {}, {}, None, str(error))
        training = {k: v for k, v in config.training.items() if not isinstance(v, dict | list)}
        metrics = flatten_metrics(config.metrics)
        summary = headline(config)
    return EntryStatus(str(key), available, location, training, metrics, summary, hint)


def list_entries(search_path: str | os.PathLike[str] | None = None) -> list[EntryStatus]:
    """Every registry entry plus the built-in families without a network (the classical
    baseline) for each task."""
    rows = [entry_status(key, search_path) for key in registry()]
    for task in TASKS:
        cards = [row.metrics for row in rows if row.entry.startswith(f"{task}/") and row.metrics]
        for family in FAMILIES:
            if not is_learned(family):
                module = get_baseline(family).restore.__module__
                summary = _builtin_headline(family, cards)
                rows.append(EntryStatus(f"{task}/{family}", "builtin", module, {}, {}, summary))
    return rows


def _builtin_headline(family: str, cards: list[dict[str, float]]) -> Headline | None:
    """A built-in family's headline from the first card of the task that scored it (every
    evaluation scores the input and the built-in baselines on the same test images)."""
    for metrics in cards:
        ours = [metrics.get(f"test/{family}_{name}") for name in ("apsnr", "assim")]
        if all(value is not None for value in ours):
            base = [metrics.get(f"test/input_{name}") for name in ("apsnr", "assim")]
            return Headline("direct", ours[0], ours[1], base[0], base[1], None, None)
    return None


def training_text(training: dict[str, Any]) -> str:
    """`3,304 steps, 105,728 samples, 1.01 h, cpu (...)` from a card's training fields."""
    steps, samples, hours, device = (
        training.get(k) for k in ("steps", "samples_seen", "wall_time_h", "device")
    )
    parts = [
        f"{steps:,} steps" if isinstance(steps, int) else "",
        f"{samples:,} samples" if isinstance(samples, int) else "",
        f"{hours:.2f} h" if isinstance(hours, int | float) else "",
        device if isinstance(device, str) else "",
    ]
    if training.get("complete") is False:
        parts.append("unfinished")
    return ", ".join(part for part in parts if part)


def copy_cards(source: Path, names: list[str], target: Path = REPO_ZOO_DIR) -> list[Path]:
    """Copy the committed pair (config.json + README.md) of entries from a published-layout
    folder into `target` (the repository's zoo/), leaving the weights where they are.

    Args:
        source: a folder laid out like zoo/ holding the complete entries.
        names: entries such as "restore/ae-large"; empty: every complete entry of `source`.
        target: the zoo folder the cards are committed in.

    Returns:
        The entry folders written in `target`.

    Raises:
        StmZooError: an entry incomplete in `source`, or whose weights are bundled in `target`
            (its config must stay the one that describes those weights).
    """
    keys = [EntryKey.parse(name) for name in names] or [
        key for key in registry() if local_entry(key, source) is not None
    ]
    if not keys:
        raise StmZooError(f"{source} holds no complete zoo entry whose card to copy.")
    for key in keys:
        folder = source / key.subdir
        if not all((folder / name).is_file() for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)):
            raise StmZooError(
                f"{folder} is not a complete entry (config.json, model.safetensors, README.md): "
                "its card cannot be committed without the weights it describes."
            )
        EntryConfig.from_file(folder / CONFIG_NAME)  # never commit a config that fails checks
        if (target / key.subdir / WEIGHTS_NAME).is_file():
            raise StmZooError(
                f"{target / key.subdir} holds the weights of {key}: its config.json describes "
                "them, so copy the whole entry instead of its card."
            )
    written = []
    for key in keys:
        destination = target / key.subdir
        destination.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG_NAME, CARD_NAME):
            shutil.copyfile(source / key.subdir / name, destination / name)
            (destination / name).chmod(PUBLISHED_MODE)
        written.append(destination)
    return written


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["list", "cards"],
        help="list: every entry, where it is served from, its training and headline metrics; "
        "cards: copy config.json + README.md of entries from --from into the repository's zoo/",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (list)")
    add_zoo_argument(parser, entries="list or copy")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="published-layout folder (cards)",
    )
    parser.add_argument(
        "--to",
        type=Path,
        default=REPO_ZOO_DIR,
        metavar="FOLDER",
        help="zoo folder the cards go to (cards; default the repository's zoo/)",
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "cards":
        if args.source is None:
            raise StmZooError("zoo cards needs --from FOLDER, the published-layout folder.")
        for folder in copy_cards(args.source, args.entries, args.to):
            print(f"copied {CONFIG_NAME} and {CARD_NAME} to {folder}")
        return 0
    rows = list_entries(args.zoo)
    if args.entries:
        unknown = set(args.entries) - {row.entry for row in rows}
        if unknown:
            raise StmZooError(
                f"No zoo entry named {', '.join(sorted(unknown))}: `python -m stm_zoo zoo list` "
                "shows them all."
            )
        rows = [row for row in rows if row.entry in args.entries]
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    folders = ", ".join(str(folder) for folder in zoo_dirs(args.zoo))
    print(f"zoo folders, searched in order: {folders}   hub: {zoo_repo()}")
    trainings = [training_text(row.training) for row in rows]
    width = max(len(row.where) for row in rows)
    train_width = max(len(text) for text in trainings)
    print(f"{'entry':24} {'available':{width}} {'training':{train_width}} synthetic test (affine)")
    for row, trained in zip(rows, trainings, strict=True):
        shown = row.headline.text() if row.headline is not None else ""
        print(f"{row.entry:24} {row.where:{width}} {trained:{train_width}} {shown}".rstrip())
        if row.hint:
            print(f"{'':24} -> {row.hint}")
    return 0

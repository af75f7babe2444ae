"""Measured metrics into the zoo entries: each entry's config.json and its regenerated card.

`python -m evaluation synthetic --update-cards` writes each entry's test means into its
config.json (`metrics["test"]`) and regenerates its README.md card, which is how the bundled
zoo's cards get their numbers; re-running the same command (same data, --limit and --seed)
reproduces them. `python -m evaluation reference` stores its checks the same way
(`store_metrics`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from evaluation.synthetic import SyntheticResult
from stm_zoo.cards import write_config_and_card
from stm_zoo.entry_format import CONFIG_NAME, EntryConfig, EntryKey
from stm_zoo.registry import CLASSICAL, steps_label
from stm_zoo.zoo import locate


def store_metrics(
    key: EntryKey,
    zoo: str | Path | None,
    name: str,
    group: dict[str, Any],
    merge_if_same: tuple[str, ...] = (),
) -> Path:
    """Set `metrics[name]` of the entry's config.json to `group`, in the first of the zoo
    folders `zoo` that holds the entry's weights (default STM_ZOO_DIR), and regenerate its card
    (keeping the card's extra sections). With `merge_if_same`, a previous group that has the
    same values under those keys (measured the same way) is updated instead of replaced.
    Returns the entry folder."""
    folder = locate(key, allow_hub=False, search_path=zoo)
    config = EntryConfig.from_file(folder / CONFIG_NAME)
    old = config.metrics.get(name)
    same = isinstance(old, dict) and all(old.get(k) == group[k] for k in merge_if_same)
    if merge_if_same and same:
        group = {**old, **group}
    metrics = {**config.metrics, name: group}
    write_config_and_card(folder, replace(config, metrics=metrics))
    return folder


def card_metrics(result: SyntheticResult, key: EntryKey) -> dict[str, Any]:
    """The `metrics["test"]` dict of one entry from a synthetic run.

    Keys follow the training loop's validation metrics: `psnr_<N>steps` / `ssim_<N>steps` per step
    count (`psnr_direct` / `ssim_direct` for the autoencoder), `input_psnr` / `input_ssim`,
    `classical_psnr` / `classical_ssim` (what `stm_zoo.zoo.default_model` compares against), plus
    `images` and `seed` (what reproduces them) and a `data` description (a string, not shown as a
    metric).
    """
    metrics: dict[str, Any] = {}
    for row in result.rows:
        if (row.spec.family, row.spec.size) != (key.family, key.size):
            continue
        label = steps_label(key.family, row.spec.steps)
        metrics[f"psnr_{label}"] = round(row.mean("psnr"), 6)
        metrics[f"ssim_{label}"] = round(row.mean("ssim"), 6)
        metrics[f"apsnr_{label}"] = round(row.mean("apsnr"), 6)
        metrics[f"assim_{label}"] = round(row.mean("assim"), 6)
    for who in ("input", CLASSICAL):
        row = next((r for r in result.rows if r.spec.family == who), None)
        if row is not None:
            metrics[f"{who}_psnr"] = round(row.mean("psnr"), 6)
            metrics[f"{who}_ssim"] = round(row.mean("ssim"), 6)
            metrics[f"{who}_apsnr"] = round(row.mean("apsnr"), 6)
            metrics[f"{who}_assim"] = round(row.mean("assim"), 6)
    metrics["images"] = result.settings["images"]
    metrics["seed"] = result.settings["seed"]
    metrics["data"] = (
        f"test split of {Path(result.settings['data']).name} (dataset seed "
        f"{result.settings['dataset_seed']}), first {result.settings['images']} images, "
        "`python -m evaluation synthetic`"
    )
    return metrics


def update_cards(result: SyntheticResult, zoo: str | Path) -> list[Path]:
    """Write each evaluated entry's test metrics into its config.json and regenerate its card.

    `metrics["test"]` is replaced, or merged when it was measured with the same images, seed and
    data (so runs with different step counts add up). The card is `stm_zoo.cards.entry_card`,
    followed by any extra section of the previous card (e.g. the training loop's validation note).

    Returns:
        The entry folders updated.
    """
    keys = {
        EntryKey(result.task, r.spec.family, r.spec.size) for r in result.rows if r.spec.learned
    }
    same_run = ("images", "seed", "data")
    return [
        store_metrics(key, zoo, "test", card_metrics(result, key), merge_if_same=same_run)
        for key in sorted(keys, key=str)
    ]


def update_experimental_cards(result: Any, zoo: str | Path) -> list[Path]:
    """Write each evaluated entry's KID on the real set into its config.json
    (`metrics["experimental"]`: `kid_<N>steps` / `kid_direct`, beside `input_kid` and
    `classical_kid` on the same tiles, the tile count and the folders) and regenerate its card.

    `result` is an `evaluation.cli_experimental.ExperimentalResult`; a run replaces the entry's
    previous experimental metrics. Returns the entry folders updated.
    """
    rows = [r for r in result.rows if r.kid is not None]
    shared = {
        f"{who}_kid": round(r.kid, 6) for r in rows for who in ("input", CLASSICAL)
        if r.spec.family == who
    }  # fmt: skip
    shared["tiles"] = result.settings["degraded_tiles"]
    shared["data"] = (
        f"real scans: {Path(result.settings['degraded']).name} against "
        f"{Path(result.settings['pristine']).name}, `python -m evaluation experimental`"
    )
    keys = {EntryKey(result.task, r.spec.family, r.spec.size) for r in rows if r.spec.learned}
    updated = []
    for key in sorted(keys, key=str):
        kid = {
            f"kid_{steps_label(key.family, r.spec.steps)}": round(r.kid, 6)
            for r in rows
            if (r.spec.family, r.spec.size) == (key.family, key.size)
        }
        updated.append(store_metrics(key, zoo, "experimental", {**kid, **shared}))
    return updated

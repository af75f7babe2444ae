"""The model picker's status line: whether the chosen entry can run here and what to expect of
it (measured quality, training domain and training budget), from its card.
"""

from __future__ import annotations

from stm_zoo.entry_format import EntryConfig
from stm_zoo.errors import StmZooError
from stm_zoo.pipeline import check_entry
from stm_zoo.registry import is_learned
from stm_zoo.zoo import card_only_entry, local_entry


def _status(task: str, family: str, size: str):
    from stm_zoo.entry_format import EntryKey
    from stm_zoo.zoo_cli import entry_status

    return entry_status(EntryKey(task, family, size))


def _quality_note(task: str, family: str, size: str) -> str:
    """What the entry's card says about the result to expect, as markdown lines.

    Measured quality (PSNR / SSIM gain over the degraded input on the synthetic test set, and a
    warning when it does not beat the classical baseline), training domain (surface, pixel size,
    tile size, data) and training budget (steps, samples seen, wall time, device).
    """
    from stm_zoo.entry_format import CONFIG_NAME, EntryKey
    from stm_zoo.zoo_cli import cached_config

    key = EntryKey(task, family, size)
    folder = local_entry(key) or card_only_entry(key)
    path = folder / CONFIG_NAME if folder is not None else cached_config(key)
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
    from stm_zoo.zoo import real_scan_verdict, synthetic_score

    score = synthetic_score(config)
    verdict = real_scan_verdict(config)
    real = (
        ""
        if verdict is None
        else f" ⚠️ **On a real scan it is worse**: it {verdict}, so it is not the default."
    )
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
            + real
        )
    return f"{label}: {gain}; {classical})." + real


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
    try:
        check_entry(task, family, size)
    except StmZooError as error:
        return f"⚠️ {error}"
    if not is_learned(family):
        return "Built-in classical baseline: row alignment and scar removal, no weights needed."
    status = _status(task, family, size)
    if status.available in ("bundled", "local", "hub-cache"):
        where = "Hub cache" if status.available == "hub-cache" else "local zoo"
        note = _quality_note(task, family, size)
        return f"✅ `{status.entry}` is available ({where}).{note}"
    return (
        f"⚠️ `{status.entry}` is not in the local zoo ({status.available}); a run will try the "
        "Hub and otherwise explain how to get it. The classical family always works."
    )

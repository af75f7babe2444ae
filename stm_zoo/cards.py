"""Model cards: the README.md of each zoo entry and of the Hub repo, with Hub metadata.

A card carries YAML front matter (library, tags, pipeline tag, and a `model-index` built from the
entry's measured metrics, so the Hub shows them) and a human-readable body: what the model does,
its real training budget and its metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from stm_zoo.entry_format import CARD_NAME, CONFIG_NAME, EntryConfig
from stm_zoo.registry import SR_FACTOR, steps_label, takes_steps

TASK_TEXT = {
    "restore": "restores STM scans degraded by tip artefacts (multi-tip, blunt tip, tip changes, "
    "scan-line noise, line misalignment)",
    "sr2": "super-resolves STM scans by x2 along the slow scan axis (half the lines measured)",
    "sr4": "super-resolves STM scans by x4 along the slow scan axis (a quarter of the lines)",
}
FAMILY_TEXT = {
    "fm": "conditional flow matching, RK2 midpoint sampler",
    "ddim": "DDIM (cosine schedule, eps-prediction), deterministic sampler",
    "ddim-fft": "DDIM trained with the auxiliary Fourier loss (Eq. 4 of the paper)",
    "ae": "autoencoder baseline (direct prediction, L1 loss)",
}


METRIC_KINDS = (
    ("psnr", "psnr"),
    ("ssim", "ssim"),
    ("apsnr", "psnr-affine"),  # after the best affine map onto the clean image (issue 17)
    ("assim", "ssim-affine"),
    ("kid", "kid"),
    ("cmmd", "cmmd"),
)
"""Metric-name prefixes shown in the card's model-index, and the metric type each one reports."""


def real_dataset_name(task: str) -> str:
    """What the real-scan check (`metrics["reference"]`) of a `task` entry measures."""
    if task == "restore":
        return "Real near-pristine Si(001):H (output vs input, do no harm)"
    return f"Real Si(001):H, 1 line in {SR_FACTOR[task]} super-resolved (output vs full scan)"


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"val": {"psnr": 1}} -> {"val/psnr": 1.0}; non-numeric leaves are dropped."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


REAL_SPLITS = ("reference", "experimental")
"""The metric groups measured on real scans (`python -m evaluation reference` / `experimental`)."""


def _eval_results(config: EntryConfig) -> list[EvalResult]:
    results = []
    for name, value in flatten_metrics(config.metrics).items():
        metric = name.rsplit("/", 1)[-1].lower()
        kind = next((kind for m, kind in METRIC_KINDS if metric.startswith(m)), None)
        if kind is None or metric.startswith("input"):
            continue
        split = name.split("/", 1)[0] if "/" in name else "validation"
        results.append(
            EvalResult(
                task_type="image-to-image",
                task_name=config.task,
                dataset_type="real-si001h" if split in REAL_SPLITS else "synthetic-si001h",
                dataset_name=(
                    real_dataset_name(config.task)
                    if split == "reference"
                    else "Real Si(001):H scans (KID against real pristine tiles)"
                    if split == "experimental"
                    else f"Synthetic Si(001):H {config.task} ({split})"
                ),
                dataset_split=split,
                metric_type=kind,
                metric_name=name,
                metric_value=round(value, 4),
            )
        )
    return results


def _prediction_text(config: EntryConfig) -> str:
    if config.prediction != "x0":
        return ""
    text = (
        ", which predicts the clean image as its input plus a correction (it starts as the identity"
    )
    if takes_steps(config.family):
        text += "; the sampler derives the velocity or noise from that estimate"
    return text + ")"


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "-"


def paper_comparison(config: EntryConfig) -> str:
    """Markdown rows: the card's synthetic-test PSNR / SSIM beside the paper's for the same
    entry and step count (`stm_zoo.paper`), the degraded input's on both sides; empty when the
    card has no test metrics or the paper no such row."""
    from stm_zoo.paper import INPUT_ROW, scores

    test = config.metrics.get("test", {})
    if not isinstance(test, dict):
        return ""
    paper = scores("synthetic", config.task)
    rows = []
    for (family, size, steps), theirs in paper.items():
        if family == INPUT_ROW:
            ours = {"psnr": test.get("input_psnr"), "ssim": test.get("input_ssim")}
            label = "degraded input"
        elif (family, size) == (config.family, config.size):
            suffix = steps_label(family, steps)
            ours = {"psnr": test.get(f"psnr_{suffix}"), "ssim": test.get(f"ssim_{suffix}")}
            label = f"{steps} steps" if takes_steps(family) else "one pass"
        else:
            continue
        if not isinstance(ours["ssim"], int | float):
            continue
        cells = [f"{_number(ours[m])} / {_number(theirs.get(m))}" for m in ("psnr", "ssim")]
        rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows) if len(rows) > 1 else ""


def entry_card(config: EntryConfig) -> str:
    """The model card (markdown with YAML front matter) of one zoo entry."""
    name = f"stm-zoo {config.task}/{config.family}-{config.size}"
    data = ModelCardData(
        library_name="stm-zoo",
        license="mit",
        pipeline_tag="image-to-image",
        tags=["scanning-tunneling-microscopy", "stm", "flow-matching", "diffusion", config.task],
        model_name=name,
        eval_results=_eval_results(config) or None,
    )
    budget = "\n".join(
        f"| {k} | {v} |"
        for k, v in sorted(config.training.items())
        if not isinstance(v, dict | list)
    )
    metrics = "\n".join(
        f"| {k} | {v:.4g} |" for k, v in sorted(flatten_metrics(config.metrics).items())
    )
    paper_rows = paper_comparison(config)
    comparison = (
        "## Compared with the paper\n\nSynthetic test set, ours / the paper's (PSNR in dB, "
        "SSIM; the paper gives no PSNR for super-resolution). The paper trained on a GPU for "
        "far longer: see the training budget above.\n\n| row | PSNR (ours / paper) | SSIM "
        f"(ours / paper) |\n|---|---|---|\n{paper_rows}\n\n"
        if paper_rows
        else ""
    )
    body = f"""
# {name}

This model {TASK_TEXT[config.task]}. Family: {FAMILY_TEXT.get(config.family, config.family)};
network: U-Net `{config.size}`{_prediction_text(config)}. Trained on 128x128 crops at
{config.pixel_size_nm:.4f} nm/px of simulated pristine Si(001):H scans degraded by the paper's
physics-informed pipeline.

Use it with [stm-zoo](https://github.com/stm-zoo/stm-zoo):

```bash
python -m stm_zoo restore scan.sxm --task {config.task} \\
    --model {config.family} --size {config.size} -o out/
```

## Training budget

| item | value |
|---|---|
{budget or "| (not recorded) | |"}

{comparison}## Metrics

PSNR/SSIM on [-1, 1] images (data_range = 2).

| metric | value |
|---|---|
{metrics or "| (not measured yet) | |"}
"""
    return str(ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body))


def merge_card_sections(new_card: str, old_card: str) -> str:
    """Keep the sections ("## ...") of the old card that the regenerated one does not have."""
    new_headings = {line.strip() for line in new_card.splitlines() if line.startswith("## ")}
    parts = old_card.split("\n## ")
    kept = [
        "## " + part.rstrip("\n")
        for part in parts[1:]
        if "## " + part.splitlines()[0].strip() not in new_headings
    ]
    if not kept:
        return new_card
    return new_card.rstrip("\n") + "\n\n" + "\n\n".join(kept) + "\n"


def write_config_and_card(folder: Path, config: EntryConfig) -> None:
    """Write `config` as the entry folder's config.json and regenerate its card from it
    (`stm_zoo.cards.entry_card`), followed by any extra section of the previous card."""
    (folder / CONFIG_NAME).write_text(config.to_json() + "\n", encoding="utf-8")
    card_path = folder / CARD_NAME
    old_card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
    card_path.write_text(merge_card_sections(entry_card(config), old_card), encoding="utf-8")

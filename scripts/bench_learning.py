"""Learning-efficiency study: which recipe learns restore/fm-small fastest on this CPU.

    python scripts/bench_learning.py --data ~/.cache/stm-zoo/data/restore \
        [--budgets 1.25 2.5 5] [--recipes a b c d e g h] [--task restore] \
        [--init-from zoo/restore/fm-small] [--out docs/learning]

Every recipe trains the small U-Net from the same seed for the same wall-clock budget on this
machine, one recipe after the other in one process (so machine load affects them alike), and is
validated at each budget: the EMA weights sample 64 fixed validation pairs (128x128, the
inference tile) from fixed noise at 2, 5 and 10 sampler steps. Validation time is not counted
as training time. Reported per budget: samples seen, PSNR / SSIM at each step count (paper
metric: the min/max-normalised clean image is the reference), and PSNR after the best affine
map of each output onto its clean image ("affine PSNR": structure only, see docs/results.md).

The learning rate follows the recipe's schedule in optimiser steps, except for recipes with
`time_schedule`, whose warm-up and cosine are laid over the wall-clock budget (a schedule made
for a run of known length). Writes `<out>.json` (all numbers), `<out>.md` (the table) and
`<out>.png` (learning curves: PSNR against minutes and against samples).

Recipes (restore/fm-small unless said otherwise; `recipes()` has the exact settings):
  a   the CPU preset before this study: velocity output, uniform t, 128x128, lr 4e-4, batch 16
  b   a + t drawn from the samplers' own evaluation times (2/5/10-step RK2 grid)
  c   b + 64x64 training crops, renormalised (validated on 128x128)
  d   c + x0 output (clean image = input + correction, identity start; velocity derived),
      Eq. 7's 1/(1-t)^2 weight capped at 16;  d1: the same with the plain x0 error
  d2  b + x0 output, plain x0 error (128 px);  d3: d1 with crops kept in the 128 px scale
  e2  d2 + a short-run schedule: lr 1e-3, batch 32, warm-up and cosine over the budget
      (EMA 0.999, warmed up from the first step)
  g2  e2 + a flow from the degraded image (start = degraded + 0.3 noise; InDI-style)
  h2  e2 + the U-Net's global-context branch (the recipe of the `@cpu` presets)
      e3: h2 with a short-horizon EMA (0.99);  e4: h2 without EMA (raw weights)
  n1  h2 trained on --alt-data: pairs whose clean image is mapped by the degraded image's
      min/max map (`python -m training data --target-scale degraded`, issue 17); validated on
      --data like every row, so its raw PSNR is against the paper's own-range targets
  f0 / f1  (with --task sr2 or sr4) h2 from scratch against h2 warm-started from --init-from
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.metrics import affine_psnr_batch, psnr_batch  # noqa: E402
from stm_zoo.methods import Method, flow_matching  # noqa: E402
from stm_zoo.preprocess import normalise_tiles  # noqa: E402
from training.checkpoint import TrainState  # noqa: E402
from training.configs import preset  # noqa: E402
from training.distributed import Distributed  # noqa: E402
from training.loader import epoch_loader, open_datasets  # noqa: E402
from training.network import config_method  # noqa: E402
from training.optim import time_lr_factor  # noqa: E402
from training.precision import autocast_dtype  # noqa: E402
from training.train import train_step  # noqa: E402
from training.validation import PSNR_CAP_DB, validate, validation_set  # noqa: E402

BASELINE = dict(
    steps=8000,
    batch=16,
    lr=4e-4,
    warmup_steps=200,
    final_lr_ratio=0.05,
    ema_decay=0.999,
    prediction="native",
    time_sampling="uniform",
    crop_px=0,
    global_context=False,
    time_budget_min=0.0,
    num_workers=1,
    precision="bf16",
    channels_last=True,
)
"""Row a: the CPU preset as it was before this study (velocity output, uniform t, 128 px tiles,
batch 16, lr 4e-4, warm-up 200 steps; time-scheduled rows warm up for the same 2.5 % of their
budget)."""
VAL_SAMPLES = 64
EVAL_STEPS = (2, 5, 10)
INDI_SIGMA = 0.3


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One row: TrainConfig overrides plus what the config cannot say."""

    name: str
    label: str
    overrides: dict
    time_schedule: bool = False
    source_sigma: float | None = None
    weight_cap: float | None = None
    alt_data: bool = False  # train on --alt-data (validated on --data like every row)


def recipes(task: str, init_from: str) -> dict[str, Recipe]:
    a: dict = {}
    b = {**a, "time_sampling": "grid"}
    c = {**b, "crop_px": 64}
    d = {**c, "prediction": "x0"}
    e = {**d, "lr": 1e-3, "batch": 32}
    e2 = {**b, "prediction": "x0", "lr": 1e-3, "batch": 32}
    h2 = {**e2, "global_context": True}
    rows = [
        Recipe("a", "today's CPU preset (velocity, uniform t, 128 px)", a),
        Recipe("b", "a + t on the sampler's grid", b),
        Recipe("c", "b + 64 px crops", c),
        Recipe("d", "c + x0 output (identity start), Eq. 7 weight capped at 16", d),
        Recipe("d1", "c + x0 output, plain x0 MSE (weight 1)", d, weight_cap=1.0),
        Recipe(
            "d2", "b + x0 output, plain x0 MSE, 128 px", {**b, "prediction": "x0"}, weight_cap=1.0
        ),
        Recipe(
            "e2",
            "d2 + short-run schedule (lr 1e-3, batch 32, cosine over budget)",
            e2,
            True,
            weight_cap=1.0,
        ),
        Recipe(
            "e3",
            "h2 with a short-horizon EMA (decay 0.99)",
            {**h2, "ema_decay": 0.99},
            True,
            weight_cap=1.0,
        ),
        Recipe(
            "e4", "h2 without EMA (raw weights)", {**h2, "ema_decay": 0.0}, True, weight_cap=1.0
        ),
        Recipe("g2", "e2 + flow from the degraded image (InDI-style)", e2, True, INDI_SIGMA, 1.0),
        Recipe(
            "h2", "e2 + global-context branch", {**e2, "global_context": True}, True, weight_cap=1.0
        ),
        Recipe(
            "d3",
            "d1 with crops kept in the 128 px image's scale",
            {**d, "crop_renormalise": False},
            weight_cap=1.0,
        ),
        Recipe(
            "e",
            "d1 + short-run schedule (lr 1e-3, batch 32, cosine over budget)",
            e,
            True,
            weight_cap=1.0,
        ),
        Recipe("g", "e + flow from the degraded image (InDI-style)", e, True, INDI_SIGMA, 1.0),
        Recipe(
            "h", "e + global-context branch", {**e, "global_context": True}, True, weight_cap=1.0
        ),
        Recipe(
            "n1",
            "h2 trained on pairs sharing the degraded image's map (--alt-data)",
            h2,
            True,
            weight_cap=1.0,
            alt_data=True,
        ),
        Recipe("f0", f"h2 on {task}, from scratch", h2, True, weight_cap=1.0),
        Recipe(
            "f1",
            f"h2 on {task}, warm start from {init_from}",
            {**h2, "init_from": init_from},
            True,
            weight_cap=1.0,
        ),
    ]
    return {r.name: r for r in rows}


def method_for(recipe: Recipe, config) -> Method:
    method = config_method(config)
    if recipe.source_sigma is None and recipe.weight_cap is None:
        return method
    cap = {} if recipe.weight_cap is None else {"weight_cap": recipe.weight_cap}
    return dataclasses.replace(
        method,
        loss=partial(
            flow_matching.loss,
            prediction=config.prediction,
            times=config.time_sampling,
            source_sigma=recipe.source_sigma,
            **cap,
        ),
        sample=partial(
            flow_matching.sample, prediction=config.prediction, source_sigma=recipe.source_sigma
        ),
    )


def affine_psnr(images: np.ndarray, clean: np.ndarray) -> float:
    """Mean PSNR (data range 2) after the least-squares affine map of each image onto its clean."""
    return float(np.minimum(affine_psnr_batch(images, clean), PSNR_CAP_DB).mean())


def evaluate(network, method, data, dtype) -> dict[str, float]:
    metrics, outputs = validate(
        network, method, data, EVAL_STEPS, torch.device("cpu"), dtype, seed=1
    )
    clean = data.clean[:, 0].numpy()
    for label, images in outputs.items():
        metrics[f"affpsnr_{label}"] = affine_psnr(images, clean)
        projected = normalise_tiles(images)[0]
        metrics[f"mmpsnr_{label}"] = float(
            np.minimum(psnr_batch(projected, clean), PSNR_CAP_DB).mean()
        )
    metrics["input_affpsnr"] = affine_psnr(data.degraded[:, 0].numpy(), clean)
    return metrics


def run_recipe(
    recipe: Recipe,
    task: str,
    data_dir: Path,
    budgets_s: list[float],
    alt_dir: Path | None = None,
) -> list[dict]:
    config = dataclasses.replace(preset(f"{task}/fm-small@cpu"), **{**BASELINE, **recipe.overrides})
    if recipe.time_schedule:  # warm-up and cosine laid over the last budget point
        config = dataclasses.replace(config, time_budget_min=budgets_s[-1] / 60.0)
    ranks = Distributed()
    device = torch.device("cpu")
    torch.manual_seed(0)
    state = TrainState.create(config, device, ranks)
    method = method_for(recipe, config)
    dtype = autocast_dtype(config.precision, device)
    train_set, val_set, _ = open_datasets(data_dir, config)
    if recipe.alt_data:
        if alt_dir is None:
            raise SystemExit(f"recipe {recipe.name} trains on --alt-data: give that folder.")
        train_set, _, _ = open_datasets(alt_dir, config)
    data = validation_set(val_set, VAL_SAMPLES, seed=0)
    steps_per_epoch = len(train_set) // config.batch
    rows, trained_s, budget_i = [], 0.0, 0
    state.model.train()
    while budget_i < len(budgets_s):
        epoch, offset = divmod(state.step, steps_per_epoch)
        loader = epoch_loader(train_set, epoch, offset, config.batch, config, ranks, False)
        for clean, degraded in loader:
            start = time.perf_counter()
            if recipe.time_schedule:
                for group in state.optimizer.param_groups:
                    group["lr"] = config.lr * time_lr_factor(trained_s, config)
            clean = clean.to(memory_format=torch.channels_last)
            degraded = degraded.to(memory_format=torch.channels_last)
            train_step(state.model, state, method, clean, degraded, config, dtype)
            trained_s += time.perf_counter() - start
            if trained_s >= budgets_s[budget_i]:
                metrics = evaluate(state.ema.module, method, data, dtype)
                row = {
                    "recipe": recipe.name,
                    "minutes": budgets_s[budget_i] / 60,
                    "steps": state.step,
                    "samples": state.step * config.batch,
                    **metrics,
                }
                rows.append(row)
                print(
                    json.dumps(
                        {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
                    ),
                    flush=True,
                )
                budget_i += 1
                if budget_i == len(budgets_s):
                    break
    return rows, state.ema.module


def table(rows: list[dict], labels: dict[str, str]) -> str:
    lines = [
        "| recipe | min | samples | PSNR 2 / 5 / 10 steps | SSIM 2 / 5 / 10 "
        "| affine PSNR 2 steps | [-1, 1]-projected PSNR 2 steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        psnr = " / ".join(f"{r[f'psnr_{s}steps']:.2f}" for s in EVAL_STEPS)
        ssim = " / ".join(f"{r[f'ssim_{s}steps']:.3f}" for s in EVAL_STEPS)
        projected = f"{r['mmpsnr_2steps']:.2f}" if "mmpsnr_2steps" in r else "not measured"
        lines.append(
            f"| {r['recipe']}: {labels[r['recipe']]} | {r['minutes']:.2f} | {r['samples']:,} | "
            f"{psnr} | {ssim} | {r['affpsnr_2steps']:.2f} | {projected} |"
        )
    r = rows[0]
    lines.append(
        f"| degraded input | | | {r['input_psnr']:.2f} | {r['input_ssim']:.3f} | "
        f"{r['input_affpsnr']:.2f} | {r['input_psnr']:.2f} |"
    )
    return "\n".join(lines)


def plot(rows: list[dict], labels: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 6.5), sharey=True)
    for name in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == name]
        best = [max(r[f"psnr_{s}steps"] for s in EVAL_STEPS) for r in mine]
        axes[0].plot([r["minutes"] for r in mine], best, "o-", label=f"{name}: {labels[name]}")
        axes[1].plot([r["samples"] for r in mine], best, "o-")
    for ax in axes:
        ax.axhline(rows[0]["input_psnr"], color="grey", ls="--", lw=1)
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("training wall-clock (min, 2 CPU cores)")
    axes[1].set_xlabel("samples seen")
    axes[0].set_ylabel("val PSNR, best of 2/5/10 steps (dB)")
    fig.suptitle("Learning efficiency (dashed: degraded input)")
    fig.tight_layout(rect=(0, 0.28, 1, 1))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset folder of --task")
    parser.add_argument("--task", default="restore")
    parser.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[1.25, 2.5, 5.0],
        help="evaluation points in training minutes (the last is the budget)",
    )
    parser.add_argument("--recipes", nargs="*", default=["a", "b", "c", "d", "e", "g", "h"])
    parser.add_argument("--init-from", default="zoo/restore/fm-small")
    parser.add_argument(
        "--alt-data",
        type=Path,
        default=None,
        help="training data of the n rows (e.g. built with --target-scale degraded)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/learning"))
    parser.add_argument(
        "--previous",
        type=Path,
        nargs="*",
        default=[],
        help="logs of earlier runs of this script whose rows to include",
    )
    parser.add_argument(
        "--save-best",
        type=Path,
        default=None,
        help="write the best recipe's EMA weights (model.safetensors) here",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    catalogue = recipes(args.task, args.init_from)
    labels = {name: catalogue[name].label for name in args.recipes}
    budgets_s = [60.0 * b for b in args.budgets]
    rows, best = [], (-1.0, None, None)
    for log_path in args.previous:
        for line in log_path.read_text().splitlines():
            if line.startswith('{"recipe"'):
                rows.append(json.loads(line))
    labels.update({r["recipe"]: catalogue[r["recipe"]].label for r in rows})
    for name in args.recipes:
        recipe_rows, network = run_recipe(
            catalogue[name], args.task, args.data, budgets_s, args.alt_data
        )
        rows += recipe_rows
        score = max(recipe_rows[-1][f"psnr_{s}steps"] for s in EVAL_STEPS)
        if score > best[0]:
            best = (score, name, network)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    text = table(rows, labels)
    args.out.with_suffix(".md").write_text(text + "\n")
    plot(rows, labels, args.out.with_suffix(".png"))
    print(text)
    if best[1] is not None:
        print(f"best of this run: {best[1]} ({best[0]:.2f} dB)")
    if args.save_best is not None and best[2] is not None:
        from safetensors.torch import save_file

        args.save_best.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in best[2].state_dict().items()},
            str(args.save_best / "model.safetensors"),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 17's study: which normalisation of the training pairs can a model follow?

    python scripts/bench_calibration.py --data ~/.cache/stm-zoo/data/restore_shared \
        [--samples 3000 6000 12000] [--rows r-own r-robust r-shared fm-own fm-robust] \
        [--out docs/calibration]

The data must be built with `--target-scale degraded` (clean and degraded share the degraded
image's map, i.e. one physical calibration), so every normalisation can be derived from it on
the fly:
  own      the paper's pairs: degraded and clean each min/max-mapped onto [-1, 1] on their own
  shared   the degraded image min/max-mapped onto [-1, 1], the clean image by the same map
  robust   the degraded image's 0.5 / 99.5 percentiles mapped onto -1 / 1 (`robust_map`), the
           clean image by the same map (values may leave [-1, 1])

Rows ("r-": a regressor, the small x0 U-Net called once with no noise, plain MSE; "fm-": the
`@cpu` flow-matching recipe, 2 sampler steps) train from the same seed, one after another, and
are compared at equal SAMPLES (not time: the machine may be shared while this runs). Each
checkpoint scores 128 fixed validation pairs four ways:
  paper PSNR / SSIM   against the clean image's own [-1, 1] map (the paper's metric); a model
                      trained on shared or robust pairs is min/max-projected onto [-1, 1] first,
                      as the tables do for `classical`
  physical PSNR       against the clean image in the degraded image's min/max units: what a user
                      gets after the inference engine maps the output back with the input's map
  affine PSNR / SSIM  after the best affine map onto the clean image's own [-1, 1] map
                      (structure only; as in docs/results.md)

Writes `<out>.json` (all numbers), `<out>.md` (the table) and `<out>.png` (the curves).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.metrics import (  # noqa: E402
    affine_psnr_batch,
    affine_ssim_batch,
    psnr_batch,
    ssim_batch,
)
from stm_zoo.methods.common import regression_loss  # noqa: E402
from stm_zoo.nn.precision import autocast  # noqa: E402
from stm_zoo.preprocess import normalise_tiles, robust_map  # noqa: E402
from training.checkpoint import TrainState  # noqa: E402
from training.configs import preset  # noqa: E402
from training.distributed import Distributed  # noqa: E402
from training.loader import epoch_loader, open_datasets  # noqa: E402
from training.network import config_method  # noqa: E402
from training.optim import time_lr_factor  # noqa: E402
from training.precision import autocast_dtype  # noqa: E402
from training.train import train_step  # noqa: E402
from training.validation import PSNR_CAP_DB, validation_set  # noqa: E402

VAL_SAMPLES = 128
FM_STEPS = 2
ROWS = {
    "r-own": ("regressor", "own"),
    "r-shared": ("regressor", "shared"),
    "r-robust": ("regressor", "robust"),
    "fm-own": ("fm", "own"),
    "fm-robust": ("fm", "robust"),
}
LABELS = {
    "own": "each image its own min/max map (the paper)",
    "shared": "clean by the degraded image's min/max map",
    "robust": "clean by the degraded image's 0.5/99.5 % percentile map",
}


def pair_in(mode: str, clean: torch.Tensor, degraded: torch.Tensor):
    """(clean, degraded) of a shared-calibration batch, renormalised as `mode` says."""
    if mode == "own":
        return normalise_tiles(clean)[0], degraded
    if mode == "shared":
        return clean, degraded
    low, span = robust_map(degraded)
    safe = span.where(span > 0, span.new_ones(()))
    return (clean - low) / safe * 2 - 1, (degraded - low) / safe * 2 - 1


def to_shared(mode: str, output: np.ndarray, degraded_shared: np.ndarray) -> np.ndarray:
    """A model output in `mode`'s calibration mapped into the degraded image's min/max units
    (what the inference engine's inverse map does with it)."""
    if mode in ("own", "shared"):
        return output
    low, span = robust_map(degraded_shared)
    return (output + 1) / 2 * span + low


def regressor_loss(net, x0, cond, generator=None):
    zeros = torch.zeros(len(cond), device=cond.device)
    return regression_loss(net(torch.zeros_like(cond), zeros, cond), x0.float(), "l2")


@torch.inference_mode()
def regressor_sample(net, cond, steps=None, noise=None):
    zeros = torch.zeros(len(cond), device=cond.device)
    return net(torch.zeros_like(cond), zeros, cond).float()


def score(mode: str, outputs: np.ndarray, clean_s: np.ndarray, degraded_s: np.ndarray) -> dict:
    cap = PSNR_CAP_DB
    clean_own = normalise_tiles(clean_s)[0]
    paper = outputs if mode == "own" else normalise_tiles(outputs)[0]
    physical = to_shared(mode, outputs, degraded_s)
    return {
        "paper_psnr": float(np.minimum(psnr_batch(paper, clean_own), cap).mean()),
        "paper_ssim": float(ssim_batch(paper, clean_own).mean()),
        "physical_psnr": float(np.minimum(psnr_batch(physical, clean_s), cap).mean()),
        "affine_psnr": float(np.minimum(affine_psnr_batch(outputs, clean_own), cap).mean()),
        "affine_ssim": float(affine_ssim_batch(outputs, clean_own).mean()),
    }


def run_row(name: str, data_dir: Path, checkpoints: list[int]) -> list[dict]:
    kind, mode = ROWS[name]
    config = preset("restore/fm-small@cpu")
    config = dataclasses.replace(config, time_budget_min=0.0, num_workers=1, precision="bf16")
    torch.manual_seed(0)
    ranks = Distributed()
    state = TrainState.create(config, torch.device("cpu"), ranks)
    method = config_method(config)
    if kind == "regressor":
        method = dataclasses.replace(
            method, loss=regressor_loss, sample=regressor_sample, uses_noise=False
        )
    dtype = autocast_dtype(config.precision, torch.device("cpu"))
    train_set, val_set, _ = open_datasets(data_dir, config)
    val = validation_set(val_set, VAL_SAMPLES, seed=0)
    clean_s, degraded_s = val.clean[:, 0].numpy(), val.degraded[:, 0].numpy()
    val_clean, val_degraded = pair_in(mode, val.clean, val.degraded)
    steps_total = checkpoints[-1] // config.batch
    rows, k = [], 0
    steps_per_epoch = len(train_set) // config.batch
    state.model.train()
    while k < len(checkpoints):
        epoch, offset = divmod(state.step, steps_per_epoch)
        loader = epoch_loader(train_set, epoch, offset, config.batch, config, ranks, False)
        for clean, degraded in loader:
            # the preset's warm-up and cosine, laid over the samples of the last checkpoint
            factor = time_lr_factor(state.step / steps_total * 60.0, _minute(config))
            for group in state.optimizer.param_groups:
                group["lr"] = config.lr * factor
            clean, degraded = pair_in(mode, clean, degraded)
            train_step(state.model, state, method, clean, degraded, config, dtype)
            if state.step * config.batch >= checkpoints[k]:
                net = state.ema.module.eval()
                with torch.no_grad(), autocast(torch.device("cpu"), dtype):
                    out = method.sample(net, val_degraded, FM_STEPS, val.noise).float()
                net.train()
                row = {
                    "row": name,
                    "samples": state.step * config.batch,
                    **score(mode, out[:, 0].numpy(), clean_s, degraded_s),
                }
                rows.append(row)
                print(json.dumps({k_: _round(v) for k_, v in row.items()}), flush=True)
                k += 1
                if k == len(checkpoints):
                    break
    return rows


def _minute(config):
    """The config with a one-minute budget: the schedule is laid over the samples instead."""
    return dataclasses.replace(config, time_budget_min=1.0)


def _round(v):
    return round(v, 3) if isinstance(v, float) else v


def input_row(data_dir: Path) -> dict:
    config = preset("restore/fm-small@cpu")
    _, val_set, _ = open_datasets(data_dir, config)
    val = validation_set(val_set, VAL_SAMPLES, seed=0)
    clean_s, degraded_s = val.clean[:, 0].numpy(), val.degraded[:, 0].numpy()
    return {"row": "input", "samples": 0, **score("own", degraded_s, clean_s, degraded_s)}


def table(rows: list[dict]) -> str:
    lines = [
        "| row | targets | samples | paper PSNR | paper SSIM | physical PSNR | affine PSNR "
        "| affine SSIM |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        targets = "" if r["row"] == "input" else LABELS[ROWS[r["row"]][1]]
        lines.append(
            f"| {r['row']} | {targets} | {r['samples']:,} | {r['paper_psnr']:.2f} | "
            f"{r['paper_ssim']:.3f} | {r['physical_psnr']:.2f} | {r['affine_psnr']:.2f} | "
            f"{r['affine_ssim']:.3f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("paper_psnr", "paper PSNR (dB)"), ("physical_psnr", "physical PSNR (dB)")]
    keys.append(("affine_psnr", "affine PSNR (dB)"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    base = next(r for r in rows if r["row"] == "input")
    for name in dict.fromkeys(r["row"] for r in rows if r["row"] != "input"):
        mine = [r for r in rows if r["row"] == name]
        for ax, (key, _) in zip(axes, keys, strict=True):
            ax.plot([r["samples"] for r in mine], [r[key] for r in mine], "o-", label=name)
    for ax, (key, label) in zip(axes, keys, strict=True):
        ax.axhline(base[key], color="grey", ls="--", lw=1)
        ax.set_xlabel("training samples")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Normalisation of the training pairs, equal samples (dashed: degraded input)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a --target-scale degraded set")
    parser.add_argument("--samples", type=int, nargs="+", default=[3000, 6000, 12000])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/calibration"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = json.loads((args.data / "manifest.json").read_text())
    if manifest["degradation_config"].get("target_scale") != "degraded":
        raise SystemExit(f"{args.data} was not built with --target-scale degraded.")
    rows = [input_row(args.data)]
    print(json.dumps({k: _round(v) for k, v in rows[0].items()}), flush=True)
    for name in args.rows:
        rows += run_row(name, args.data, sorted(args.samples))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    text = table(rows)
    args.out.with_suffix(".md").write_text(text + "\n")
    plot(rows, args.out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m evaluation experimental`: KID / CMMD on real scans (Tables IV, VII, X, XII, XIII).

Each model's outputs on real degraded scans (restore) or low-resolution scans (SR) are compared
with real pristine (high-resolution) scans through KID (FID InceptionV3 features) and CMMD (CLIP
ViT-L/14-336 embeddings). Missing weights make a metric "not computed (...)", never a number from
another model.

Models run on whole scans, through the one restore path (`stm_zoo.pipeline.restore` with a
`RestoreOptions`, as the CLI and the app run them: limits and repairs, the model grid, the SR line
pitch rule, overlapping normalised tiles, blending, back on the scan's own grid). The features are
computed on 128x128 tiles cut the same way from every set, inputs, outputs and pristine scans
alike (`evaluation.real_tiles`): the 128x128 images the paper compares.

Bounds rows: the pristine scans split into two halves by scan (lower bound) and the degraded input
itself against the pristine tiles (upper bound); for SR the high-resolution and low-resolution
scans.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.benchmarks import Outputs, available_entries, load_entries, models_device, row_specs
from evaluation.real_tiles import cut_scans, halves, load_scan_folder
from evaluation.rows import PAPER_EXPERIMENTAL, RowSpec, in_paper_order, paper_value, row_name
from evaluation.tables import Cell, Table, write_json, write_tables
from stm_zoo.entry_format import EntryKey
from stm_zoo.errors import StmZooError
from stm_zoo.registry import CLASSICAL, SR_FACTOR, TASKS
from stm_zoo.zoo import LoadedModel, add_zoo_argument, zoo_search_path

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Experimental evaluation


def restored_rows(
    scans: Sequence[Any],
    task: str,
    models: dict[EntryKey, LoadedModel],
    specs: dict[EntryKey, list[RowSpec]],
    model_pixel_size_nm: float,
    seed: int,
    batch: int,
    limit: int | None = None,
    bar: Any = None,
) -> Iterator[Outputs]:
    """The classical baseline and every model row on whole scans, one row at a time.

    Each scan goes through `stm_zoo.pipeline.restore` (scan i with the noise seed derived from
    (seed, i)); the restored scans are cut into tiles by `cut_scans`, like the pristine scans.

    Yields:
        One `Outputs` per row, the classical one first, with the model time of its scans.
    """
    from stm_zoo.pipeline import RestoreOptions, restore
    from stm_zoo.zoo import load_model

    runs = [(RowSpec(CLASSICAL), load_model(task, CLASSICAL, device="cpu"))]
    runs += [(spec, models[key]) for key in models for spec in specs[key]]
    seeds = [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(len(scans))]
    for spec, model in runs:
        if bar is not None:
            bar.set_postfix_str(f"{spec.model} {spec.steps_cell}")
        options = RestoreOptions(
            task=task,
            family=model.key.family,
            size=model.key.size,
            steps=spec.steps or 1,
            batch_size=batch,
        )
        restored, seconds = [], 0.0
        for scan, run_seed in zip(scans, seeds, strict=True):
            result = restore(scan, options, model=model, seed=run_seed)
            restored.append(result.scan)
            seconds += result.seconds
            if bar is not None:
                bar.update(1)
        images, _ = cut_scans(restored, model_pixel_size_nm, 1, limit, f"The {spec.model} outputs")
        yield Outputs(spec, images, seconds)


@dataclass
class DistanceRow:
    """KID / CMMD of one row against the pristine tiles.

    Attributes:
        spec: which row.
        kid: mean KID over subsets (None: not computed, see `ExperimentalResult.kid_space`).
        kid_std: its std over subsets.
        cmmd: CMMD (None: not computed, see `ExperimentalResult.cmmd_space`).
        n: images in the compared set.
        seconds_per_image: time to produce the outputs per tile.
    """

    spec: RowSpec
    kid: float | None
    kid_std: float | None
    cmmd: float | None
    n: int
    seconds_per_image: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "model": self.spec.model,
            "kid": self.kid,
            "kid_std": self.kid_std,
            "cmmd": self.cmmd,
            "n": self.n,
            "seconds_per_image": self.seconds_per_image,
        }


@dataclass
class FeatureSpace:
    """One feature extractor (Inception for KID, CLIP for CMMD), or why it is unavailable."""

    name: str
    embed: Callable[[np.ndarray], np.ndarray] | None
    unavailable: str = ""  # the "not computed (...)" message
    short: str = ""  # the table cell, e.g. "not computed (CLIP ViT-L/14-336 weights unavailable)"


def feature_spaces(
    inception: str | None = None, clip: str | None = None, device: str = "cpu"
) -> tuple[FeatureSpace, FeatureSpace]:
    """Load the Inception (KID) and CLIP (CMMD) extractors; missing weights are reported, not
    raised."""
    from evaluation.clip import clip_embeddings, load_clip
    from evaluation.features import WeightsUnavailable
    from evaluation.inception import inception_features, load_inception

    spaces = []
    for name, load, embed in (
        ("KID", lambda: load_inception(inception, device), inception_features),
        ("CMMD", lambda: load_clip(clip, device), clip_embeddings),
    ):
        try:
            model = load()
        except WeightsUnavailable as error:
            short = f"not computed ({error.which} weights unavailable)"
            spaces.append(FeatureSpace(name, None, str(error), short))
            continue
        spaces.append(FeatureSpace(name, lambda x, m=model, e=embed: e(x, m)))  # type: ignore[misc]
    return spaces[0], spaces[1]


@dataclass
class ExperimentalResult:
    """Everything `evaluate_experimental` measured.

    Attributes:
        task: "restore", "sr2" or "sr4".
        rows: input (upper bound), classical, every model x steps, pristine halves (lower bound).
        kid_space, cmmd_space: the feature extractors, or why they were unavailable.
        settings: how the run was made.
        outputs: the first tiles of each row's outputs (for the example grid).
        degraded, pristine: the first input and pristine tiles (same purpose).
    """

    task: str
    rows: list[DistanceRow]
    kid_space: FeatureSpace
    cmmd_space: FeatureSpace
    settings: dict[str, Any]
    outputs: list[Outputs]
    degraded: np.ndarray
    pristine: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "settings": self.settings,
            "kid_not_computed": self.kid_space.unavailable,
            "cmmd_not_computed": self.cmmd_space.unavailable,
            "rows": [r.to_dict() for r in self.rows],
        }


def evaluate_experimental(
    zoo: str | Path,
    degraded_dir: Path,
    pristine_dir: Path,
    task: str,
    steps: Sequence[int] = (2, 5, 10),
    limit: int | None = None,
    batch: int = 16,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    only: Iterable[str] | None = None,
    inception: str | None = None,
    clip: str | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    examples: int = 4,
) -> ExperimentalResult:
    """KID and CMMD of each model's outputs on real degraded scans against real pristine ones.

    Args:
        zoo: the zoo folder, or several separated by `os.pathsep` (as in STM_ZOO_DIR).
        degraded_dir: real degraded scans (restore) or low-resolution scans (SR: lines k times
            sparser than the model's pixel pitch).
        pristine_dir: real pristine (restore) or high-resolution (SR) scans.
        task: "restore", "sr2" or "sr4".
        steps: sampler step counts.
        limit: at most this many tiles per folder (the degraded scans holding them are restored
            whole).
        batch, device, dtype, only: as in `evaluate_synthetic`.
        seed: noise seed (degraded scan i gets the seed derived from (seed, i)) and KID subset
            seed.
        inception: FID Inception weights file (default: the search in `evaluation.inception`).
        clip: CLIP model directory or cached repo id (default: ViT-L/14-336 from the HF cache).
        kid_subsets, kid_subset_size: KID subsets (subset size capped by the smaller set).
        examples: tiles of each set kept for the example grid.

    Returns:
        Rows: the input (upper bound), classical, every model x steps, pristine halves (lower
        bound).
    """
    from tqdm import tqdm

    from evaluation.metrics import cmmd, kid
    from stm_zoo.registry import DEFAULT_PIXEL_SIZE_NM

    factor = SR_FACTOR[task]
    keys = available_entries(task, zoo, only)
    models = load_entries(keys, zoo, device, dtype)
    specs = {key: row_specs(key, steps) for key in keys}
    pixel_nm = next(iter(models.values())).config.pixel_size_nm if models else DEFAULT_PIXEL_SIZE_NM
    scans = load_scan_folder(degraded_dir)
    degraded, used = cut_scans(scans, pixel_nm, factor, limit, str(degraded_dir))
    scans = scans[: int(used.max()) + 1]  # those whose tiles are within the limit
    pristine, owners = cut_scans(load_scan_folder(pristine_dir), pixel_nm, 1, limit)
    kid_space, cmmd_space = feature_spaces(inception, clip, models_device(models, device))
    first, second = halves(owners)
    # Pristine features once: every row is compared with them.
    reference = {s.name: s.embed(pristine) for s in (kid_space, cmmd_space) if s.embed}

    def compare(spec: RowSpec, images: np.ndarray | None, seconds: float = 0.0) -> DistanceRow:
        """`images` against all pristine tiles; None: pristine half against pristine half."""
        values: dict[str, Any] = {"kid": None, "kid_std": None, "cmmd": None}
        for space in (kid_space, cmmd_space):
            if space.embed is None:
                continue
            ref = reference[space.name]
            feats, ref = (ref[first], ref[second]) if images is None else (space.embed(images), ref)
            if space.name == "KID":
                result = kid(feats, ref, kid_subsets, kid_subset_size, seed)
                values["kid"], values["kid_std"] = result.mean, result.std
            else:
                values["cmmd"] = cmmd(feats, ref)
        n = len(first) if images is None else len(images)
        return DistanceRow(spec, values["kid"], values["kid_std"], values["cmmd"], n, seconds)

    rows = [compare(RowSpec("input"), degraded)]
    kept = []
    total = len(scans) * (1 + sum(len(s) for s in specs.values()))
    with tqdm(total=total, desc=f"experimental {task}", unit="scan", disable=None) as bar:
        outputs = restored_rows(scans, task, models, specs, pixel_nm, seed, batch, limit, bar)
        for out in outputs:
            rows.append(compare(out.spec, out.images, out.seconds / len(out.images)))
            kept.append(Outputs(out.spec, out.images[:examples].copy(), out.seconds))
    rows.append(compare(RowSpec("pristine"), None))
    settings = {
        "zoo": str(zoo),
        "degraded": str(degraded_dir),
        "pristine": str(pristine_dir),
        "degraded_tiles": len(degraded),
        "pristine_tiles": len(pristine),
        "pristine_halves": [len(first), len(second)],
        "limit": limit,
        "seed": seed,
        "steps": list(steps),
        "kid_subsets": kid_subsets,
        "kid_subset_size": kid_subset_size,
        "dtype": dtype,
        "entries": {f"{k.family}-{k.size}": models[k].source for k in keys},
    }
    return ExperimentalResult(
        task, rows, kid_space, cmmd_space, settings, kept, degraded[:examples], pristine[:examples]
    )


def experimental_tables(result: ExperimentalResult) -> list[Table]:
    """Table X (restore) / XII + XIII (SR) with every step count, and IV / VII (best by KID)."""
    task = result.task
    restore = task == "restore"
    factor = "" if restore else f" (x{SR_FACTOR[task]})"
    kid_cell_missing = result.kid_space.short
    cmmd_cell_missing = result.cmmd_space.short

    def cells(rows: Sequence[DistanceRow]) -> list[list[Cell]]:
        out = []
        for row in rows:
            out.append(
                [
                    row_name(row.spec, task, experimental=True),
                    row.spec.steps_cell,
                    row.n,
                    row.kid if row.kid is not None else kid_cell_missing,
                    row.kid_std,
                    paper_value(PAPER_EXPERIMENTAL, task, row.spec, "kid"),
                    row.cmmd if row.cmmd is not None else cmmd_cell_missing,
                    paper_value(PAPER_EXPERIMENTAL, task, row.spec, "cmmd"),
                ]
            )
        return out

    columns = ["Model", "Steps", "n", f"KID{factor}", "KID std", "paper KID"]
    columns += [f"CMMD{factor}", "paper CMMD"]
    formats = ["", "", "", ".4f", ".4f", ".4f", ".3f", ".3f"]
    s = result.settings
    notes = [
        f"{s['degraded_tiles']} input tiles and {s['pristine_tiles']} pristine tiles of 128x128 px "
        "(plane-levelled, at the models' pixel size, each normalised to [-1, 1]); every row is "
        "compared with all pristine tiles except the lower bound, which compares the two halves "
        f"({s['pristine_halves'][0]} / {s['pristine_halves'][1]} tiles, split by scan). KID: "
        f"{s['kid_subsets']} subsets of min({s['kid_subset_size']}, set sizes); CMMD x1000, "
        "sigma = 10.",
    ]
    notes += [sp.unavailable for sp in (result.kid_space, result.cmmd_space) if sp.unavailable]
    ordered = in_paper_order(result.rows)
    models = [r for r in ordered if r.spec.learned]
    fixed = [r for r in ordered if not r.spec.learned]
    best: dict[tuple[str, str], DistanceRow] = {}
    for row in models:
        k = (row.spec.family, row.spec.size)
        if row.kid is not None and (k not in best or row.kid < best[k].kid):  # type: ignore[operator]
            best[k] = row
        best.setdefault(k, row)
    summary = in_paper_order(fixed + list(best.values()))
    full_name, best_name = ("X", "IV") if restore else ("XII-XIII", "VII")
    return [
        Table(
            f"table_{full_name}_{task}",
            f"Table {full_name} ({task}): KID and CMMD on the experimental set{factor}",
            columns,
            cells(ordered),
            formats,
            notes,
        ),
        Table(
            f"table_{best_name}_{task}",
            f"Table {best_name} ({task}): each model at its best step count (by KID){factor}",
            columns,
            cells(summary),
            formats,
            notes[:1],
        ),
    ]


# --------------------------------------------------------------------------------------------------
# CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m evaluation experimental`."""
    parser.add_argument(
        "--degraded",
        type=Path,
        required=True,
        help="folder of real degraded scans (SR: low-resolution scans)",
    )
    parser.add_argument(
        "--pristine",
        type=Path,
        required=True,
        help="folder of real pristine scans (SR: high-resolution scans)",
    )
    parser.add_argument("--task", choices=TASKS, required=True)
    add_zoo_argument(parser)
    parser.add_argument(
        "--update-cards",
        action="store_true",
        help="write each entry's KID into its config.json and README.md card",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[2, 5, 10], help="sampler step counts"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most N tiles per folder")
    parser.add_argument("--batch", type=int, default=16, help="tiles per network call")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--seed", type=int, default=0, help="noise and KID subset seed")
    parser.add_argument(
        "--models", nargs="+", default=None, metavar="FAMILY-SIZE",
        help="only these entries, e.g. fm-small ae-large (default: every available one)",
    )  # fmt: skip
    parser.add_argument(
        "--inception", default=None, help="FID InceptionV3 weights file (default: search)"
    )
    parser.add_argument(
        "--clip",
        default=None,
        help="CLIP model directory or cached repo id (default: ViT-L/14-336)",
    )
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID subsets")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size")


def run(args: argparse.Namespace) -> int:
    """Evaluate, write tables, JSON and the example grid; print the tables."""
    from evaluation.plots import example_grid

    for name in ("limit", "batch", "kid_subsets"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise StmZooError(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
    zoo = args.zoo or zoo_search_path()
    result = evaluate_experimental(
        zoo,
        args.degraded,
        args.pristine,
        args.task,
        steps=args.steps,
        limit=args.limit,
        batch=args.batch,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
        only=args.models,
        inception=args.inception,
        clip=args.clip,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
    )
    tables = experimental_tables(result)
    command = (
        f"python -m evaluation experimental --degraded {args.degraded} --pristine {args.pristine} "
        f"--task {args.task} --zoo {zoo} --out {args.out} --steps "
        + " ".join(str(s) for s in args.steps)
        + (f" --limit {args.limit}" if args.limit else "")
    )
    heading = f"Experimental evaluation: {args.task}\n\nRe-run: `{command}`"
    md = write_tables(args.out, f"experimental_{args.task}", heading, tables)
    raw = write_json(
        args.out / f"experimental_{args.task}.json", {**result.to_dict(), "command": command}
    )
    columns = [(row_name(RowSpec("input"), args.task), result.degraded)]
    columns += [(o.spec.model + (f" ({o.spec.steps})" if o.spec.learned else ""), o.images)
                for o in in_paper_order(result.outputs)]  # fmt: skip
    grid = example_grid(args.out / f"experimental_examples_{args.task}.png", columns, 4)
    for table in tables:
        print(table.markdown(), end="\n\n")
    print(f"wrote {md}, {raw.name}, {grid.name} and the CSV tables")
    if args.update_cards:
        from evaluation.card_updates import update_experimental_cards

        for folder in update_experimental_cards(result, zoo):
            print(f"updated {folder / 'config.json'} and README.md")
    return 0

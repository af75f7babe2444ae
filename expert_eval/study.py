"""Expert studies: the study folder, its records, and preparing it.

A study is one task x a set of input scans x a set of model configurations
(`expert_eval.configurations.ModelSpec`, written `fm-small-2`, `ddim-large-10`,
`ddim-fft-large-10`, `ae-large`, `classical`). `prepare` runs every model once on every input and
writes a study folder:

    STUDY_DIR/
      study.json              the manifest: inputs, trials, and the output id -> model mapping
      inputs/<input_id>.npy   (H, W) float32 heights in metres, as the models saw them
      outputs/<output_id>.npy (H*k, W) float32 heights in metres (k: the task's SR factor)

Ids are random hex tokens (`secrets.token_hex`), so neither a file name nor an id says which model
made an output; the mapping lives only in `study.json` and the SQLite store, both server-side.
The folder is never served: raters see freshly rendered PNGs (`expert_eval.panel`).

Blinding: each study holds a secret from which `expert_eval.blinding` draws every rater's order
of the trials and of the outputs within a trial.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from expert_eval.configurations import parse_models
from stm_zoo.errors import StmZooError
from stm_zoo.registry import is_learned

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "study.json"


@dataclass
class StudyInput:
    """One input scan of a study.

    Attributes:
        input_id: random hex id; the data are `inputs/<input_id>.npy`.
        source: the file it was read from (name only; shown to organisers, never to raters).
        shape: (H, W) of the stored input.
        scan_size_m: (width, height) of the frame in metres.
    """

    input_id: str
    source: str
    shape: tuple[int, int]
    scan_size_m: tuple[float, float]


@dataclass
class StudyOutput:
    """One model output of a trial.

    Attributes:
        output_id: random hex id; the data are `outputs/<output_id>.npy`.
        model: the model configuration string (`ModelSpec.name`), the secret of the study.
        seed: the noise seed the output was sampled with.
        seconds: model run time.
    """

    output_id: str
    model: str
    seed: int
    seconds: float


@dataclass
class Trial:
    """One screen for a rater: one input and every model's output of it.

    Attributes:
        trial_id: random hex id.
        input_id: the input scan.
        outputs: one per model configuration of the study, in the study's model order.
    """

    trial_id: str
    input_id: str
    outputs: list[StudyOutput]


@dataclass
class Study:
    """A prepared study folder (see the module docstring for the layout).

    Attributes:
        directory: the study folder.
        study_id: random hex id.
        name: a human name for organisers.
        task: "restore", "sr2" or "sr4".
        models: the model configuration strings, in the order given to `prepare`.
        inputs: the input scans.
        trials: one per input.
        secret: hex key of the HMAC that orders trials and outputs per rater; server-side only.
        created_at: ISO 8601 UTC time of preparation.
        provenance: how the outputs were made (seed, device, channel, zoo sources).
    """

    directory: Path
    study_id: str
    name: str
    task: str
    models: list[str]
    inputs: list[StudyInput]
    trials: list[Trial]
    secret: str
    created_at: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        raw = asdict(self)
        raw.pop("directory")
        return json.dumps({"format_version": FORMAT_VERSION, **raw}, indent=2)

    def save(self) -> Path:
        """Write `study.json` atomically (temporary file, then rename)."""
        path = self.directory / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Study:
        """Read and check a study folder.

        Raises:
            StmZooError: no or a malformed `study.json`, or a data file it names is missing.
        """
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not path.is_file():
            raise StmZooError(
                f"{directory} holds no {MANIFEST_NAME}: create a study with "
                "`python -m expert_eval prepare --inputs DIR --task TASK --models ... --out DIR`."
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
                raise StmZooError(
                    f"{path} uses study format {raw['format_version']}, newer than this "
                    f"stm-zoo understands ({FORMAT_VERSION}): upgrade stm-zoo."
                )
            study = cls(
                directory=directory,
                study_id=str(raw["study_id"]),
                name=str(raw["name"]),
                task=str(raw["task"]),
                models=[str(m) for m in raw["models"]],
                inputs=[
                    StudyInput(
                        str(i["input_id"]),
                        str(i["source"]),
                        (int(i["shape"][0]), int(i["shape"][1])),
                        (float(i["scan_size_m"][0]), float(i["scan_size_m"][1])),
                    )
                    for i in raw["inputs"]
                ],
                trials=[
                    Trial(
                        str(t["trial_id"]),
                        str(t["input_id"]),
                        [
                            StudyOutput(
                                str(o["output_id"]),
                                str(o["model"]),
                                int(o["seed"]),
                                float(o["seconds"]),
                            )
                            for o in t["outputs"]
                        ],
                    )
                    for t in raw["trials"]
                ],
                secret=str(raw["secret"]),
                created_at=str(raw["created_at"]),
                provenance=dict(raw.get("provenance", {})),
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StmZooError(f"{path} is not a readable study manifest ({error}).") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise StmZooError(
                f"{path} is not a valid study manifest ({type(error).__name__}: {error}): "
                "prepare the study again."
            ) from None
        for file in [study.input_path(i.input_id) for i in study.inputs] + [
            study.output_path(o.output_id) for t in study.trials for o in t.outputs
        ]:
            if not file.is_file():
                raise StmZooError(f"{file} is missing: the study folder is incomplete.")
        return study

    def input_path(self, input_id: str) -> Path:
        return self.directory / "inputs" / f"{input_id}.npy"

    def output_path(self, output_id: str) -> Path:
        return self.directory / "outputs" / f"{output_id}.npy"

    def input_of(self, trial: Trial) -> StudyInput:
        return next(i for i in self.inputs if i.input_id == trial.input_id)

    def trial(self, trial_id: str) -> Trial | None:
        return next((t for t in self.trials if t.trial_id == trial_id), None)


def now_iso() -> str:
    """The current UTC time as ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# ---------------------------------------------------------------------------------------------
# Preparing a study

Progress = Callable[[int, int], None]


def _new_id(taken: set[str]) -> str:
    while True:
        token = secrets.token_hex(8)
        if token not in taken:
            taken.add(token)
            return token


def prepare(
    inputs: str | Path | Sequence[str | Path],
    task: str,
    models: Sequence[str],
    out: str | Path,
    *,
    name: str | None = None,
    seed: int = 0,
    device: str = "auto",
    channel: str = "Z",
    direction: str = "forward",
    zoo_path: Path | None = None,
    progress: Progress | None = None,
) -> Study:
    """Run every model once on every input and write a blinded study folder.

    Args:
        inputs: scan files and/or folders of scan files (any format `load_scan` reads).
        task: "restore", "sr2" or "sr4"; for SR the inputs are the low-resolution scans.
        models: model configuration strings, 2 to `MAX_OUTPUTS` (`ModelSpec.parse` and
            `MAX_OUTPUTS` of `expert_eval.configurations`).
        out: the study folder to create; it must not exist or be empty.
        name: a name for organisers (default: the folder name).
        seed: base seed of the samplers' noise; output (i, j) uses a seed derived from
            (seed, input i, model j), recorded in the manifest.
        device: "auto", "cpu" or "cuda".
        channel, direction: which image of each file to read.
        zoo_path: a zoo root to load models from instead of the default resolution.
        progress: called as progress(done, total) after each model run.

    Returns:
        The study, already saved.

    Raises:
        StmZooError: bad options, unreadable inputs, a missing model (ModelNotFoundError) or a
            non-empty `out`; nothing is left behind in `out` when preparation fails.
    """
    from stm_zoo.io import load_scan
    from stm_zoo.pipeline import RestoreOptions, restore
    from stm_zoo.restore_cli import collect_inputs
    from stm_zoo.zoo import load_model

    specs = parse_models(models)
    runs = [
        RestoreOptions(task=task, family=s.family, size=s.size, steps=s.steps, device=device)
        for s in specs
    ]
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StmZooError(f"{out} already exists and is not empty: choose a new study folder.")
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    files = collect_inputs([Path(p) for p in inputs])
    # Load every model before running any, so that a missing one fails fast.
    loaded = [
        load_model(
            o.task,
            o.family,
            o.size,
            device=o.device,
            dtype=o.dtype,
            path=zoo_path if is_learned(o.family) else None,
        )
        for o in runs
    ]
    staging = out.with_name(f".{out.name}.partial-{secrets.token_hex(4)}")
    (staging / "inputs").mkdir(parents=True)
    (staging / "outputs").mkdir()
    taken: set[str] = set()
    study = Study(
        directory=staging,
        study_id=_new_id(taken),
        name=name or out.name,
        task=task,
        models=[s.name for s in specs],
        inputs=[],
        trials=[],
        secret=secrets.token_hex(32),
        created_at=now_iso(),
        provenance={
            "seed": seed,
            "device": loaded[0].device,
            "channel": channel,
            "direction": direction,
            "sources": {s.name: m.source for s, m in zip(specs, loaded, strict=True)},
        },
    )
    total, done = len(files) * len(specs), 0
    try:
        for i, path in enumerate(files):
            scan = load_scan(path, channel=channel, direction=direction).crop_valid()
            item = StudyInput(_new_id(taken), path.name, scan.shape, scan.scan_size_m)
            np.save(study.input_path(item.input_id), scan.data.astype(np.float32))
            outputs = []
            for j, (spec, run, model) in enumerate(zip(specs, runs, loaded, strict=True)):
                run_seed = int(np.random.SeedSequence([seed, i, j]).generate_state(1)[0])
                result = restore(scan, run, model=model, seed=run_seed)
                output = StudyOutput(_new_id(taken), spec.name, run_seed, result.seconds)
                np.save(study.output_path(output.output_id), result.scan.data.astype(np.float32))
                outputs.append(output)
                done += 1
                if progress is not None:
                    progress(done, total)
            study.inputs.append(item)
            study.trials.append(Trial(_new_id(taken), item.input_id, outputs))
        study.save()
        if out.exists():
            out.rmdir()
        staging.replace(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    study.directory = out
    log.info(
        "prepared study %s: %d trials x %d models in %s", study.name, len(files), len(specs), out
    )
    return study


# ---------------------------------------------------------------------------------------------
# `python -m expert_eval prepare`


def configure_parser(parser: Any) -> None:
    from stm_zoo.registry import TASKS

    parser.add_argument(
        "--inputs", nargs="+", type=Path, required=True, help="scan files or folders of them"
    )
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument(
        "--models",
        nargs="+",
        required=True,
        help="model configurations FAMILY-SIZE[-STEPS], e.g. fm-small-2 ddim-large-10 "
        "ddim-fft-large-10 ae-large classical",
    )
    parser.add_argument("--out", type=Path, required=True, help="the new study folder")
    parser.add_argument("--name", help="a name for organisers (default: the folder name)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the samplers")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--channel", default="Z", help="channel to read from each file")
    parser.add_argument("--direction", default="forward", help="forward or backward")
    parser.add_argument("--zoo", type=Path, help="zoo folder to load models from")


def run(args: Any) -> int:
    from tqdm import tqdm

    with tqdm(total=None, unit="run", desc=f"prepare {args.task}") as bar:

        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        study = prepare(
            args.inputs,
            args.task,
            args.models,
            args.out,
            name=args.name,
            seed=args.seed,
            device=args.device,
            channel=args.channel,
            direction=args.direction,
            zoo_path=args.zoo,
            progress=tick,
        )
    print(
        f"Study {study.name!r} ({study.task}): {len(study.trials)} trials x "
        f"{len(study.models)} models written to {study.directory}.\n"
        f"Serve it with EXPERT_EVAL_STUDY={study.directory} python app.py; summarise with "
        f"python -m expert_eval summary {study.directory}"
    )
    return 0

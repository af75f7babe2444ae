"""The unblinded answers as files: CSV for reading, JSON lines for the Hub sync and restores.

- `write_ratings_csv`: one row per rating (answer x output), with the model and its label.
- `write_export` / `read_export`: one answer per line (`ExpertStore.export_answers`, the sync
  format), written atomically; `ExpertStore.import_answers` takes what `read_export` returns.

Both hold the model of each output: keep them private. `python -m expert_eval export` writes
either.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from expert_eval.analysis import records_frame
from expert_eval.cli import add_db_argument
from expert_eval.configurations import model_label
from expert_eval.records import RatingRecord
from expert_eval.store import ExpertStore, open_studies
from stm_zoo.errors import StmZooError


def write_ratings_csv(records: Sequence[RatingRecord], path: str | Path) -> Path:
    """Every rating, unblinded, one row per (answer, output), with the model's label."""
    frame = records_frame(records)
    frame.insert(
        frame.columns.get_loc("model") + 1, "model_label", [model_label(m) for m in frame["model"]]
    )
    path = Path(path)
    frame.to_csv(path, index=False)
    return path


def write_export(
    store: ExpertStore, path: str | Path, study_ids: Iterable[str] | None = None
) -> Path:
    """Write `store.export_answers` as JSON lines, atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for answer in store.export_answers(study_ids):
            f.write(json.dumps(answer, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines export written by `write_export`.

    Raises:
        StmZooError: a line that is not a JSON object.
    """
    answers = []
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise StmZooError(f"{path}, line {number}: not JSON ({error}).") from None
            if not isinstance(item, dict):
                raise StmZooError(f"{path}, line {number}: not a JSON object.")
            answers.append(item)
    return answers


# ---------------------------------------------------------------------------------------------
# `python -m expert_eval export`


def configure_parser(parser: Any) -> None:
    parser.add_argument("studies", nargs="+", type=Path, help="study folders")
    add_db_argument(parser)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="FILE.csv (one row per rating) or FILE.jsonl "
        "(one answer per line, the Hub sync format)",
    )


def run(args: Any) -> int:
    suffix = args.out.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise StmZooError(f"--out {args.out}: write a .csv or a .jsonl file.")
    studies, store = open_studies(args.studies, args.db)
    ids = [s.study_id for s in studies]
    if suffix == ".csv":
        write_ratings_csv(store.records(ids), args.out)
    else:
        write_export(store, args.out, ids)
    n = len(store.export_answers(ids))
    print(f"{n} answer(s) from {store.path} written to {args.out} (unblinded: keep it private).")
    return 0

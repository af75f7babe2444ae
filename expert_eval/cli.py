"""Command-line pieces that need the store: the `--db` option and `python -m expert_eval token`.

They live apart from `expert_eval.raters` (tokens) and `expert_eval.store` (which uses them), so
that neither of those imports the other back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expert_eval.raters import QUERY_PARAMETER
from expert_eval.store import ExpertStore


def add_db_argument(parser: Any) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        help="the ratings database (default: EXPERT_EVAL_DB, else expert_eval.sqlite3 in the "
        "data folder: STM_ZOO_DATA_DIR, /data/stm-zoo on Spaces, ~/.local/share/stm-zoo)",
    )


# ---------------------------------------------------------------------------------------------
# `python -m expert_eval token NAME`


def configure_parser(parser: Any) -> None:
    parser.add_argument("name", help="the rater's name, as shown in the admin view")
    add_db_argument(parser)


def run(args: Any) -> int:
    store = ExpertStore(Path(args.db) if args.db else None)
    token = store.issue_token(args.name)
    print(
        f"New token for {' '.join(args.name.split())}: {token}\n"
        f"Send it to the rater only; their earlier token (if any) no longer works. They paste "
        f"it under Resume, or open the app's address with ?{QUERY_PARAMETER}={token}"
    )
    return 0

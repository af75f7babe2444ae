"""`python -m expert_eval COMMAND ...`: prepare studies, summarise, export, issue rater tokens."""

from __future__ import annotations

import sys

from stm_zoo.cli_common import dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("expert_eval.study", "run the models once and write a blinded study folder"),
    "summary": ("expert_eval.analysis", "Table XV with bootstrap intervals and Kendall's W"),
    "export": ("expert_eval.export", "export the unblinded answers as CSV or JSON lines"),
    "token": ("expert_eval.cli", "issue a new rater token (lost token, or an older store)"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(
        "python -m expert_eval", "Blinded expert evaluation for stm-zoo.", COMMANDS, argv
    )


if __name__ == "__main__":
    sys.exit(main())

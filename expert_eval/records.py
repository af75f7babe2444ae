"""What an answer is, before and after the store: the records that cross module boundaries.

- `Score` and `Submission`: an answer as a rater gives it; `check_submission` holds the checks
  that need no database (one rating 1-5 and one rank per output, the ranks a permutation of
  1..n, distinct labels, a comment of at most `MAX_COMMENT` characters).
- `SubmitResult`: what `ExpertStore.submit` says back.
- `RatingRecord`: one rating, unblinded, as the store reads it back for analysis and export.
- The sync format (`answer_dicts`, `parse_answer`): one JSON-friendly dict per answer, with the
  rater's token hash, as written to JSON lines by `expert_eval.export`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from expert_eval.blinding import rater_key
from stm_zoo.errors import StmZooError

MAX_COMMENT = 2000


class InvalidSubmission(StmZooError):
    """An answer that cannot be stored (bad rating, rank, trial, output or comment)."""


@dataclass(frozen=True)
class Score:
    """What a rater said about one output.

    Attributes:
        output_id: the output.
        label: the letter it was shown under ("A", "B", ...).
        rating: quality 1 (worst) to 5 (best).
        rank: 1 (best) to n within the trial.
    """

    output_id: str
    label: str
    rating: int
    rank: int


@dataclass(frozen=True)
class Submission:
    """One rater's complete answer to one trial.

    Attributes:
        rater: the rater's name (identity: `rater_key`); the caller has checked that whoever
            sends the answer is this rater (`ExpertStore.rater_for_token`).
        trial_id: the trial.
        scores: one per output of the trial.
        comment: free text, at most `MAX_COMMENT` characters.
        shown_at: ISO time the trial was first shown (None when unknown).
    """

    rater: str
    trial_id: str
    scores: tuple[Score, ...]
    comment: str = ""
    shown_at: str | None = None


@dataclass(frozen=True)
class SubmitResult:
    """The outcome of `ExpertStore.submit`.

    Attributes:
        stored: True when this call stored the answer; False when the rater had already
            answered the trial (the first answer stays).
        message: one sentence for the rater.
        answer_id: the stored (or the earlier) answer.
    """

    stored: bool
    message: str
    answer_id: int


@dataclass(frozen=True)
class RatingRecord:
    """One rating, unblinded: the row analysis and the CSV export work on."""

    study_id: str
    task: str
    trial_id: str
    input_id: str
    rater: str
    answer_id: int
    output_id: str
    model: str
    label: str
    rating: int
    rank: int
    n_outputs: int
    comment: str
    shown_at: str | None
    submitted_at: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def check_submission(submission: Submission) -> None:
    """Everything about an answer that can be checked without the database.

    Raises:
        InvalidSubmission: no trial or no ratings, a rating outside 1-5, ranks that are not a
            permutation of 1..n, a missing or repeated label, a repeated output or a too long
            comment.
    """
    scores = submission.scores
    if not isinstance(submission.trial_id, str) or not submission.trial_id:
        raise InvalidSubmission("No trial given: reload the page and start again.")
    if not scores:
        raise InvalidSubmission("This answer holds no ratings: rate and rank every output.")
    for s in scores:
        if not _is_int(s.rating) or not 1 <= s.rating <= 5:
            raise InvalidSubmission(
                f"Output {s.label}: rating {s.rating!r} is not a whole number from 1 to 5."
            )
    ranks = [s.rank for s in scores]
    if not all(_is_int(r) for r in ranks) or sorted(ranks) != list(range(1, len(scores) + 1)):
        raise InvalidSubmission(
            f"Ranks {ranks} are not a ranking: give each of 1 to {len(scores)} to exactly "
            "one output (1 = best)."
        )
    labels = [s.label for s in scores]
    if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise InvalidSubmission("Each output needs its own label: reload the page.")
    if len({s.output_id for s in scores}) != len(scores):
        raise InvalidSubmission("An output appears twice in this answer: reload the page.")
    if not isinstance(submission.comment, str) or len(submission.comment) > MAX_COMMENT:
        raise InvalidSubmission(f"The comment is longer than {MAX_COMMENT} characters.")


def answer_dicts(
    records: Iterable[RatingRecord], token_hashes: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """The sync format: one JSON-friendly dict per answer, in the order of `records`.

    Args:
        records: the ratings, those of one answer together (as `ExpertStore.records` gives them).
        token_hashes: rater key -> token hash (None when no token was issued).
    """
    answers: dict[int, dict[str, Any]] = {}
    for rec in records:
        answer = answers.setdefault(
            rec.answer_id,
            {
                "study_id": rec.study_id,
                "task": rec.task,
                "trial_id": rec.trial_id,
                "input_id": rec.input_id,
                "rater": rec.rater,
                "rater_token_sha256": token_hashes[rater_key(rec.rater)],
                "comment": rec.comment,
                "shown_at": rec.shown_at,
                "submitted_at": rec.submitted_at,
                "ratings": [],
            },
        )
        answer["ratings"].append(
            {
                "output_id": rec.output_id,
                "model": rec.model,
                "label": rec.label,
                "rating": rec.rating,
                "rank": rec.rank,
            }
        )
    return list(answers.values())


def parse_answer(answer: Mapping[str, Any]) -> tuple[Submission, str, str | None]:
    """One answer of the sync format as (submission, submitted_at, rater token hash or None).

    Raises:
        InvalidSubmission: a field is missing or the token hash is malformed.
    """
    try:
        scores = tuple(
            Score(r["output_id"], r["label"], r["rating"], r["rank"]) for r in answer["ratings"]
        )
        submission = Submission(
            answer["rater"],
            answer["trial_id"],
            scores,
            answer.get("comment", ""),
            answer.get("shown_at"),
        )
        submitted_at = str(answer["submitted_at"])
    except (KeyError, TypeError) as error:
        raise InvalidSubmission(
            f"An exported answer lacks the field {error}: the export is damaged."
        ) from None
    # Absent in exports written before tokens: such raters get one from an organiser.
    digest = answer.get("rater_token_sha256")
    if digest is not None and not _is_sha256(digest):
        raise InvalidSubmission(
            f"An exported answer has a malformed rater token hash {digest!r}: the "
            "export is damaged."
        )
    return submission, submitted_at, digest

"""Durable storage of expert ratings: SQLite on the server, optionally synced to the Hub.

Where the database lives (first that applies):
1. `EXPERT_EVAL_DB`: the path of the SQLite file;
2. `<data dir>/expert_eval.sqlite3`, where the data dir is `STM_ZOO_DATA_DIR` when set, else
   `/data/stm-zoo` when `/data` exists and is writable (persistent storage or a mounted bucket
   on Hugging Face Spaces), else `$XDG_DATA_HOME/stm-zoo` (default `~/.local/share/stm-zoo`).

Guarantees:
- WAL journal, `synchronous=FULL`, foreign keys on, a busy timeout; every submission is one
  `BEGIN IMMEDIATE` transaction, so a process killed mid-submission leaves either the whole answer
  or nothing, and concurrent writers wait for each other instead of failing.
- Raters are identified by name (whitespace collapsed, case-folded; unique), and a rater's name is
  claimed once: `new_rater` refuses a taken name and issues a token (`expert_eval.raters`), of
  which only the SHA-256 is kept; `rater_for_token` is the only way back to a rater's trials.
- Older stores open: schema 1 (no tokens) is migrated in place, inside one transaction; its
  raters keep their answers and get a token when an organiser issues one (`expert_eval token`).
- One answer per rater and trial (a UNIQUE constraint): a resubmission keeps the first answer and
  reports "already answered" without error.
- An answer is whole or rejected: one rating 1-5 and one rank per output of the trial, the ranks a
  permutation of 1..n; anything else is refused with a message and nothing is written.

Sync (optional): when `SPACE_ID` and a token (`HF_TOKEN`) are set, `start_sync` restores earlier
answers from a private Hub dataset repo (`EXPERT_EVAL_DATASET`, default `<space>-ratings`) and
pushes a JSON-lines snapshot of every answer there with `huggingface_hub.CommitScheduler`
(with each rater's token hash, so that tokens still work after a restore). Each
process writes its own file (`answers-<time>-<token>.jsonl`), always a full snapshot of the database
rather than an append log, so an answer committed just before a crash is in the next snapshot
and a restarted Space, whose disk may be empty, never overwrites what an earlier one pushed.
The export holds the model of each output: keep the dataset repo private.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from expert_eval.raters import new_token, token_hash
from expert_eval.study import Study, now_iso, rater_key
from stm_zoo.errors import StmZooError

log = logging.getLogger(__name__)

DB_NAME = "expert_eval.sqlite3"
SCHEMA_VERSION = 2
MAX_COMMENT = 2000
SYNC_EVERY_MINUTES = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    task       TEXT NOT NULL,
    models     TEXT NOT NULL,            -- JSON list of model configuration strings
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    trial_id  TEXT PRIMARY KEY,
    study_id  TEXT NOT NULL REFERENCES studies(study_id),
    input_id  TEXT NOT NULL,
    n_outputs INTEGER NOT NULL CHECK (n_outputs >= 2)
);
CREATE TABLE IF NOT EXISTS outputs (
    output_id TEXT PRIMARY KEY,
    trial_id  TEXT NOT NULL REFERENCES trials(trial_id),
    model     TEXT NOT NULL              -- the secret: never sent to a rater
);
CREATE TABLE IF NOT EXISTS raters (
    rater_id     INTEGER PRIMARY KEY,
    rater_key    TEXT NOT NULL UNIQUE,   -- name, whitespace collapsed, case-folded
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    token_sha256 TEXT                    -- NULL: no token issued yet (raters of schema 1)
);
CREATE TABLE IF NOT EXISTS answers (
    answer_id    INTEGER PRIMARY KEY,
    rater_id     INTEGER NOT NULL REFERENCES raters(rater_id),
    trial_id     TEXT NOT NULL REFERENCES trials(trial_id),
    comment      TEXT NOT NULL DEFAULT '',
    shown_at     TEXT,
    submitted_at TEXT NOT NULL,
    UNIQUE (rater_id, trial_id)
);
CREATE TABLE IF NOT EXISTS ratings (
    answer_id INTEGER NOT NULL REFERENCES answers(answer_id),
    output_id TEXT NOT NULL REFERENCES outputs(output_id),
    label     TEXT NOT NULL,             -- the letter the rater saw (position-bias checks)
    rating    INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    rank      INTEGER NOT NULL CHECK (rank >= 1),
    PRIMARY KEY (answer_id, output_id),
    UNIQUE (answer_id, rank),
    UNIQUE (answer_id, label)
);
CREATE INDEX IF NOT EXISTS outputs_by_trial ON outputs(trial_id);
CREATE INDEX IF NOT EXISTS answers_by_trial ON answers(trial_id);
CREATE UNIQUE INDEX IF NOT EXISTS raters_by_token ON raters(token_sha256);
"""
MIGRATIONS = {
    # schema version reached -> statements run on a store of the version before
    2: ("ALTER TABLE raters ADD COLUMN token_sha256 TEXT",),
}


def _statements(script: str) -> list[str]:
    # executescript would commit the open transaction first; the schema has no ';' in comments.
    return [s for s in script.split(";") if s.strip()]


class InvalidSubmission(StmZooError):
    """An answer that cannot be stored (bad rating, rank, trial, output or comment)."""


class NameTaken(StmZooError):
    """A new rater chose a name that another rater (maybe they themselves) already holds."""


def data_dir() -> Path:
    """The folder for the app's persistent data (see the module docstring for the order)."""
    explicit = os.environ.get("STM_ZOO_DATA_DIR")
    if explicit:
        return Path(explicit)
    spaces = Path("/data")
    if spaces.is_dir() and os.access(spaces, os.W_OK):
        return spaces / "stm-zoo"
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "stm-zoo"


def default_db_path() -> Path:
    """`EXPERT_EVAL_DB`, else `<data_dir()>/expert_eval.sqlite3`."""
    explicit = os.environ.get("EXPERT_EVAL_DB")
    return Path(explicit) if explicit else data_dir() / DB_NAME


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


class ExpertStore:
    """The SQLite database of studies, trials, raters and answers.

    Each thread gets its own connection, kept open (closing the last connection to a WAL database
    checkpoints it, which would cost a sync per answer), so one store may be shared by any number
    of threads (the Gradio worker pool) and processes.
    """

    def __init__(self, path: str | Path | None = None, timeout_s: float = 30.0) -> None:
        """Open (and create or migrate) the database.

        Args:
            path: the SQLite file (default `default_db_path()`); its folder is created.
            timeout_s: how long a writer waits for another one before failing.
        """
        self.path = Path(path) if path is not None else default_db_path()
        self.timeout_s = timeout_s
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as conn:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    log.warning("%s: journal mode %s, not WAL", self.path, mode)
                with self._transaction(conn):
                    self._create_or_migrate(conn)
        except sqlite3.DatabaseError as error:
            raise StmZooError(
                f"{self.path} cannot be used as the ratings database ({error}): set "
                "EXPERT_EVAL_DB to a writable file."
            ) from None

    def _create_or_migrate(self, conn: sqlite3.Connection) -> None:
        # The version is read inside the write transaction: two processes opening an old store
        # at once migrate it once.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StmZooError(
                f"{self.path} was written by a newer stm-zoo (schema {version}): "
                "upgrade stm-zoo or use another EXPERT_EVAL_DB."
            )
        if version:  # 0: a new file, which SCHEMA creates at the current version
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                log.info("%s: ratings store migrated from schema %d", self.path, version)
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        # FULL: a commit is on disk before submit returns (NORMAL could lose the last answers
        # on power loss, which a rater would never notice).
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front: two submissions of the same answer cannot
        # both pass the "already answered" check.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # Connections are reused: never leave one inside a failed transaction.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._transaction(conn):
            yield conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._connection().execute(sql, params).fetchall()

    # -- studies -------------------------------------------------------------------------------

    def register_study(self, study: Study) -> None:
        """Record a study's trials and outputs (idempotent).

        Raises:
            StmZooError: the database already holds this study with other trials or outputs
                (the study folder was changed after it was registered).
        """
        mapping = {o.output_id: (t.trial_id, o.model) for t in study.trials for o in t.outputs}
        with self._writing() as conn:
            known = conn.execute(
                "SELECT 1 FROM studies WHERE study_id=?", (study.study_id,)
            ).fetchone()
            if known:
                rows = conn.execute(
                    "SELECT o.output_id, o.trial_id, o.model FROM outputs o "
                    "JOIN trials t USING (trial_id) WHERE t.study_id=?",
                    (study.study_id,),
                ).fetchall()
                if {r[0]: (r[1], r[2]) for r in rows} != mapping:
                    raise StmZooError(
                        f"{study.directory} no longer matches the study {study.study_id} "
                        f"recorded in {self.path}: restore the original study folder or use "
                        "another EXPERT_EVAL_DB."
                    )
                return
            conn.execute(
                "INSERT INTO studies VALUES (?, ?, ?, ?, ?)",
                (
                    study.study_id,
                    study.name,
                    study.task,
                    json.dumps(study.models),
                    study.created_at,
                ),
            )
            for trial in study.trials:
                conn.execute(
                    "INSERT INTO trials VALUES (?, ?, ?, ?)",
                    (trial.trial_id, study.study_id, trial.input_id, len(trial.outputs)),
                )
                conn.executemany(
                    "INSERT INTO outputs VALUES (?, ?, ?)",
                    [(o.output_id, trial.trial_id, o.model) for o in trial.outputs],
                )

    # -- raters --------------------------------------------------------------------------------

    def new_rater(self, name: str) -> str:
        """Create a rater and issue their token: the only time the token exists in clear.

        Returns:
            The token (`expert_eval.raters.new_token`); the store keeps its hash.

        Raises:
            NameTaken: a rater of this name (case and spacing aside) exists already.
            StmZooError: an empty, too long or non-printable name.
        """
        key = rater_key(name)
        token = new_token()
        with self._writing() as conn:
            if conn.execute("SELECT 1 FROM raters WHERE rater_key=?", (key,)).fetchone():
                raise NameTaken(
                    f"A rater named {' '.join(name.split())} has already started: to carry on, "
                    "paste your rater token under Resume (the organisers can issue a new one), "
                    "or start with another name."
                )
            self._rater_id(conn, key, " ".join(name.split()), token_hash(token))
        return token

    def rater_for_token(self, token: str) -> str | None:
        """The name of the rater holding `token` (spacing, case and dashes aside), else None."""
        digest = token_hash(token)
        if digest is None:
            return None
        rows = self._read("SELECT display_name FROM raters WHERE token_sha256=?", (digest,))
        return rows[0][0] if rows else None

    def issue_token(self, name: str) -> str:
        """A new token for an existing rater (lost token, or a rater of schema 1); the earlier
        token stops working.

        Raises:
            StmZooError: no rater of this name.
        """
        key = rater_key(name)
        token = new_token()
        with self._writing() as conn:
            cursor = conn.execute(
                "UPDATE raters SET token_sha256=? WHERE rater_key=?", (token_hash(token), key)
            )
            if cursor.rowcount != 1:
                raise StmZooError(
                    f"{self.path} holds no rater named {' '.join(name.split())}: give the name "
                    "as the admin view lists it."
                )
        return token

    @staticmethod
    def _rater_id(
        conn: sqlite3.Connection, key: str, display_name: str, token_sha256: str | None = None
    ) -> int:
        """The rater's id, created when absent; a token hash is recorded where none was."""
        row = conn.execute("SELECT rater_id FROM raters WHERE rater_key=?", (key,)).fetchone()
        if row:
            if token_sha256 is not None:
                conn.execute(
                    "UPDATE raters SET token_sha256=? WHERE rater_id=? AND token_sha256 IS NULL",
                    (token_sha256, row[0]),
                )
            return int(row[0])
        cursor = conn.execute(
            "INSERT INTO raters (rater_key, display_name, created_at, token_sha256) "
            "VALUES (?, ?, ?, ?)",
            (key, display_name, now_iso(), token_sha256),
        )
        return int(cursor.lastrowid)

    def answered_trials(self, name: str) -> set[str]:
        """The trials a rater has answered (empty for an unknown rater)."""
        rows = self._read(
            "SELECT a.trial_id FROM answers a JOIN raters r USING (rater_id) WHERE r.rater_key=?",
            (rater_key(name),),
        )
        return {r[0] for r in rows}

    # -- answers -------------------------------------------------------------------------------

    def submit(self, submission: Submission, submitted_at: str | None = None) -> SubmitResult:
        """Store one complete answer in one transaction.

        Args:
            submission: the answer.
            submitted_at: ISO time to record (default now; imports keep the original time).

        Returns:
            stored=True with a thank-you, or stored=False with "already answered" when this
            rater has answered the trial before (the earlier answer is kept unchanged).

        Raises:
            InvalidSubmission: unknown trial, outputs that are not exactly the trial's, a rating
                outside 1-5, ranks that are not a permutation of 1..n, a duplicate label or a
                too long comment; nothing is stored.
            StmZooError: a bad rater name.
        """
        return self._store(submission, submitted_at, None)

    def _store(
        self, submission: Submission, submitted_at: str | None, token_sha256: str | None
    ) -> SubmitResult:
        key = rater_key(submission.rater)
        self._check_shape(submission)
        with self._writing() as conn:
            outputs = {
                r[0]
                for r in conn.execute(
                    "SELECT output_id FROM outputs WHERE trial_id=?", (submission.trial_id,)
                )
            }
            if not outputs:
                raise InvalidSubmission(
                    f"Unknown trial {submission.trial_id!r}: reload the page and start again."
                )
            given = {s.output_id for s in submission.scores}
            if given != outputs or len(submission.scores) != len(outputs):
                raise InvalidSubmission(
                    f"This answer covers {len(submission.scores)} output(s) but the trial has "
                    f"{len(outputs)}: rate and rank every output, then submit again."
                )
            rater_id = self._rater_id(conn, key, " ".join(submission.rater.split()), token_sha256)
            earlier = conn.execute(
                "SELECT answer_id FROM answers WHERE rater_id=? AND trial_id=?",
                (rater_id, submission.trial_id),
            ).fetchone()
            if earlier:
                return SubmitResult(
                    False,
                    "You had already answered this trial; your first answer is kept.",
                    int(earlier[0]),
                )
            cursor = conn.execute(
                "INSERT INTO answers (rater_id, trial_id, comment, shown_at, submitted_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    rater_id,
                    submission.trial_id,
                    submission.comment.strip(),
                    submission.shown_at,
                    submitted_at or now_iso(),
                ),
            )
            answer_id = int(cursor.lastrowid)
            conn.executemany(
                "INSERT INTO ratings VALUES (?, ?, ?, ?, ?)",
                [(answer_id, s.output_id, s.label, s.rating, s.rank) for s in submission.scores],
            )
        return SubmitResult(True, "Answer saved, thank you.", answer_id)

    @staticmethod
    def _check_shape(submission: Submission) -> None:
        """Everything that can be checked without the database."""
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

    # -- reading back --------------------------------------------------------------------------

    def records(self, study_ids: Iterable[str] | None = None) -> list[RatingRecord]:
        """Every rating with its model, rater and trial (unblinded), oldest answer first."""
        sql = (
            "SELECT t.study_id, s.task, a.trial_id, t.input_id, r.display_name, a.answer_id, "
            "g.output_id, o.model, g.label, g.rating, g.rank, t.n_outputs, a.comment, "
            "a.shown_at, a.submitted_at FROM ratings g "
            "JOIN answers a USING (answer_id) JOIN raters r USING (rater_id) "
            "JOIN outputs o USING (output_id) JOIN trials t ON t.trial_id = a.trial_id "
            "JOIN studies s ON s.study_id = t.study_id"
        )
        params: list[str] = []
        if study_ids is not None:
            ids = list(study_ids)
            sql += f" WHERE t.study_id IN ({','.join('?' * len(ids))})"
            params = ids
        rows = self._read(sql + " ORDER BY a.answer_id, g.label", params)
        return [RatingRecord(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Row counts per table (for status lines and tests)."""
        tables = ("studies", "trials", "outputs", "raters", "answers", "ratings")
        return {t: self._read(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}

    def check(self) -> list[str]:
        """Problems found: SQLite's integrity and foreign-key checks and incomplete answers.

        Returns:
            An empty list when the database is consistent.
        """
        problems = []
        conn = self._connection()
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems += integrity
        problems += [f"foreign key: {row}" for row in conn.execute("PRAGMA foreign_key_check")]
        incomplete = conn.execute(
            "SELECT a.answer_id, COUNT(g.output_id), t.n_outputs FROM answers a "
            "JOIN trials t USING (trial_id) LEFT JOIN ratings g USING (answer_id) "
            "GROUP BY a.answer_id HAVING COUNT(g.output_id) != t.n_outputs"
        ).fetchall()
        problems += [f"answer {a} has {n} of {m} ratings" for a, n, m in incomplete]
        return problems

    # -- export / import -----------------------------------------------------------------------

    def export_answers(self, study_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """One JSON-friendly dict per answer (the sync format), oldest first.

        Each holds the rater's token hash (None when no token was issued), so that a store
        restored from the export lets raters resume with the tokens they hold.
        """
        tokens = dict(self._read("SELECT rater_key, token_sha256 FROM raters"))
        answers: dict[int, dict[str, Any]] = {}
        for rec in self.records(study_ids):
            answer = answers.setdefault(
                rec.answer_id,
                {
                    "study_id": rec.study_id,
                    "task": rec.task,
                    "trial_id": rec.trial_id,
                    "input_id": rec.input_id,
                    "rater": rec.rater,
                    "rater_token_sha256": tokens[rater_key(rec.rater)],
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

    def write_export(self, path: str | Path, study_ids: Iterable[str] | None = None) -> Path:
        """Write `export_answers` as JSON lines, atomically (temporary file, then rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for answer in self.export_answers(study_ids):
                f.write(json.dumps(answer, ensure_ascii=False) + "\n")
        tmp.replace(path)
        return path

    def import_answers(self, answers: Iterable[Mapping[str, Any]]) -> int:
        """Store exported answers whose trial is known here; skip those already present.

        Returns:
            How many answers were added.

        Raises:
            InvalidSubmission: an answer that would not pass `submit` (nothing of it is stored).
        """
        added = 0
        for answer in answers:
            try:
                scores = tuple(
                    Score(r["output_id"], r["label"], r["rating"], r["rank"])
                    for r in answer["ratings"]
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
            known = self._read("SELECT 1 FROM trials WHERE trial_id=?", (submission.trial_id,))
            if known and self._store(submission, submitted_at, digest).stored:
                added += 1
        return added


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines export written by `ExpertStore.write_export`.

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
# Sync to a Hugging Face dataset repo


@dataclass(frozen=True)
class SyncConfig:
    """Where answers are pushed.

    Attributes:
        repo_id: the dataset repo (`EXPERT_EVAL_DATASET`, default `<SPACE_ID>-ratings`).
        token: the Hub token (`HF_TOKEN`).
        every_minutes: push interval (`EXPERT_EVAL_SYNC_MINUTES`, default 5).
        folder: the local folder the scheduler uploads (`<data_dir()>/expert_eval_sync`).
    """

    repo_id: str
    token: str
    every_minutes: float
    folder: Path

    def __repr__(self) -> str:  # never print the token
        fields = {**asdict(self), "token": "***"}
        return f"SyncConfig({fields})"


def sync_config(env: Mapping[str, str] | None = None) -> tuple[SyncConfig | None, str]:
    """The sync configuration from the environment, or None and the reason it is off."""
    env = os.environ if env is None else env
    space = env.get("SPACE_ID", "").strip()
    token = (env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    if not space:
        return None, "Hub sync off: not running on a Hugging Face Space (SPACE_ID unset)."
    if not token:
        return None, "Hub sync off: no HF_TOKEN secret set on the Space."
    repo_id = env.get("EXPERT_EVAL_DATASET", "").strip() or f"{space}-ratings"
    try:
        minutes = float(env.get("EXPERT_EVAL_SYNC_MINUTES", SYNC_EVERY_MINUTES))
    except ValueError:
        return None, "Hub sync off: EXPERT_EVAL_SYNC_MINUTES is not a number."
    folder = Path(env.get("EXPERT_EVAL_SYNC_DIR", "") or data_dir() / "expert_eval_sync")
    return SyncConfig(repo_id, token, max(minutes, 1.0), folder), f"Hub sync to {repo_id}."


class RatingsSync:
    """Keeps a JSON-lines snapshot of the store in a folder that a CommitScheduler uploads.

    Attributes:
        path: this process's snapshot file.
        lock: held while writing, shared with the scheduler so that it never uploads a half
            written file.
    """

    def __init__(
        self, store: ExpertStore, folder: Path, lock: Any = None, scheduler: Any = None
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.lock = lock if lock is not None else threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.path = folder / f"answers-{stamp}-{secrets.token_hex(4)}.jsonl"

    def snapshot(self) -> Path:
        """Write every answer of the store to `path` (call after each stored answer)."""
        with self.lock:
            return self.store.write_export(self.path)


def start_sync(
    store: ExpertStore, env: Mapping[str, str] | None = None
) -> tuple[RatingsSync | None, str]:
    """Start pushing answers to the Hub when configured (see `sync_config`).

    Earlier snapshots in the repo are imported first, so that a restarted Space with an empty
    disk carries on where it stopped. Returns (None, reason) when sync is off or cannot start.
    """
    config, reason = sync_config(env)
    if config is None:
        log.info(reason)
        return None, reason
    try:
        from huggingface_hub import CommitScheduler, snapshot_download

        restored = 0
        try:
            local = snapshot_download(
                config.repo_id,
                repo_type="dataset",
                allow_patterns=["*.jsonl"],
                token=config.token,
            )
            for file in sorted(Path(local).rglob("*.jsonl")):
                restored += store.import_answers(read_export(file))
        except Exception as error:  # a new (empty or absent) repo is the normal first start
            log.info("nothing restored from %s (%s)", config.repo_id, type(error).__name__)
        scheduler = CommitScheduler(
            repo_id=config.repo_id,
            repo_type="dataset",
            folder_path=config.folder,
            every=config.every_minutes,
            private=True,
            token=config.token,
            allow_patterns=["*.jsonl"],
        )
    except Exception as error:
        message = f"Hub sync off: could not start it for {config.repo_id} ({error})."
        log.warning(message)
        return None, message
    sync = RatingsSync(store, config.folder, scheduler.lock, scheduler)
    sync.snapshot()
    return sync, f"Hub sync to {config.repo_id} every {config.every_minutes:g} min" + (
        f"; {restored} earlier answer(s) restored." if restored else "."
    )


# ---------------------------------------------------------------------------------------------
# Opening studies, `python -m expert_eval export`


def open_studies(
    study_dirs: Sequence[str | Path], db_path: str | Path | None = None
) -> tuple[list[Study], ExpertStore]:
    """Load study folders and register them in the store (idempotent).

    Raises:
        StmZooError: no folder, a folder given twice, or a folder that is not a study.
    """
    if not study_dirs:
        raise StmZooError("Give at least one study folder (written by `expert_eval prepare`).")
    studies = [Study.load(d) for d in study_dirs]
    ids = [s.study_id for s in studies]
    if len(set(ids)) != len(ids):
        raise StmZooError("The same study is given twice: list each study folder once.")
    store = ExpertStore(db_path)
    for study in studies:
        store.register_study(study)
    return studies, store


def add_db_argument(parser: Any) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        help="the ratings database (default: EXPERT_EVAL_DB, else expert_eval.sqlite3 in the "
        "data folder: STM_ZOO_DATA_DIR, /data/stm-zoo on Spaces, ~/.local/share/stm-zoo)",
    )


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
    from expert_eval.analysis import write_ratings_csv

    suffix = args.out.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise StmZooError(f"--out {args.out}: write a .csv or a .jsonl file.")
    studies, store = open_studies(args.studies, args.db)
    ids = [s.study_id for s in studies]
    if suffix == ".csv":
        write_ratings_csv(store.records(ids), args.out)
    else:
        store.write_export(args.out, ids)
    n = len(store.export_answers(ids))
    print(f"{n} answer(s) from {store.path} written to {args.out} (unblinded: keep it private).")
    return 0

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

Answers leave the store as records (`expert_eval.records`), written to files by
`expert_eval.export` and pushed to the Hub by `expert_eval.sync`.

One file because it is one class over one database: the schema, its migration and every query
that writes or reads answers sit together, so each guarantee above can be checked in one place.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from expert_eval.blinding import rater_key
from expert_eval.raters import new_token, token_hash
from expert_eval.records import (
    InvalidSubmission,
    RatingRecord,
    Submission,
    SubmitResult,
    answer_dicts,
    check_submission,
    parse_answer,
)
from expert_eval.study import Study, now_iso
from stm_zoo.errors import StmZooError

log = logging.getLogger(__name__)

DB_NAME = "expert_eval.sqlite3"
SCHEMA_VERSION = 2

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
        check_submission(submission)
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

    # -- the sync format (`expert_eval.records`) -----------------------------------------------

    def export_answers(self, study_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """One JSON-friendly dict per answer (the sync format), oldest first.

        Each holds the rater's token hash (None when no token was issued), so that a store
        restored from the export lets raters resume with the tokens they hold.
        """
        tokens = dict(self._read("SELECT rater_key, token_sha256 FROM raters"))
        return answer_dicts(self.records(study_ids), tokens)

    def import_answers(self, answers: Iterable[Mapping[str, Any]]) -> int:
        """Store exported answers whose trial is known here; skip those already present.

        Returns:
            How many answers were added.

        Raises:
            InvalidSubmission: an answer that would not pass `submit` (nothing of it is stored).
        """
        added = 0
        for answer in answers:
            submission, submitted_at, digest = parse_answer(answer)
            known = self._read("SELECT 1 FROM trials WHERE trial_id=?", (submission.trial_id,))
            if known and self._store(submission, submitted_at, digest).stored:
                added += 1
        return added


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

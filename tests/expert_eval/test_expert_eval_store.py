"""The ratings store: pragmas, transactions, validation, idempotency, concurrency (threads and
processes), crash safety, rater names and tokens, migration of old stores, export and sync."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from expert_eval import records
from expert_eval import store as st
from expert_eval import sync as hub
from expert_eval.__main__ import main
from expert_eval.export import read_export, write_export
from expert_eval.records import InvalidSubmission
from expert_eval.store import ExpertStore, NameTaken
from stm_zoo.errors import StmZooError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path, make_study):
    store = ExpertStore(tmp_path / "ratings.sqlite3")
    study = make_study(tmp_path / "study", n_trials=5)
    store.register_study(study)
    return store, study


TABLES = ("studies", "trials", "outputs", "raters", "answers", "ratings")


def on_disk(path: Path) -> dict[str, int]:
    """Row counts as another connection (another process) sees them: committed rows only."""
    with closing(sqlite3.connect(path)) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def pragmas(conn: sqlite3.Connection) -> dict[str, object]:
    names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names}


def test_the_connections_the_store_writes_with_have_the_intended_pragmas(db):
    store, _ = db
    # WAL; synchronous=FULL (2): a commit is on disk before submit returns; foreign keys on;
    # writers wait 30 s for each other.
    expected = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30000}
    assert pragmas(store._connection()) == expected
    elsewhere: list[dict[str, object]] = []
    worker = threading.Thread(target=lambda: elsewhere.append(pragmas(store._connection())))
    worker.start()
    worker.join()
    assert elsewhere == [expected]  # each thread's own connection too
    assert store._read("PRAGMA user_version")[0][0] == st.SCHEMA_VERSION
    # Foreign keys are enforced on the store's connection: an orphan rating is refused.
    with pytest.raises(sqlite3.IntegrityError):
        store._connection().execute("INSERT INTO ratings VALUES (999, 'nope', 'A', 3, 1)")
    assert store.check() == []


def test_an_answer_and_its_ratings_are_stored_together_or_not_at_all(db, make_answer):
    store, study = db
    conn = store._connection()

    def deny_ratings(action: int, table: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_INSERT and table == "ratings":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    # The rater and the answer row are written, then writing the ratings fails.
    conn.set_authorizer(deny_ratings)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            store.submit(make_answer(study, 0, "alice"))
    finally:
        conn.set_authorizer(None)
    empty = {"raters": 0, "answers": 0, "ratings": 0}
    assert {t: on_disk(store.path)[t] for t in empty} == empty
    assert {t: store.counts()[t] for t in empty} == empty
    assert store.answered_trials("alice") == set()
    assert store.submit(make_answer(study, 0, "alice")).stored  # not "already answered"
    assert on_disk(store.path)["ratings"] == 3 and store.check() == []


def test_a_write_failing_midway_is_rolled_back_whole(db, make_answer, monkeypatch):
    store, study = db
    # Past the checks made in Python, the third rating breaks the table's CHECK: by then the
    # rater, the answer and two ratings are written inside the transaction.
    monkeypatch.setattr(st, "check_submission", lambda submission: None)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        store.submit(make_answer(study, 1, "bob", ratings=[4, 4, 9]))
    assert not store._connection().in_transaction  # the reused connection is left clean
    empty = {"raters": 0, "answers": 0, "ratings": 0}
    assert {t: on_disk(store.path)[t] for t in empty} == empty
    assert {t: store.counts()[t] for t in empty} == empty
    assert store.submit(make_answer(study, 1, "bob")).stored
    assert on_disk(store.path)["ratings"] == 3 and store.check() == []


def test_a_valid_answer_is_stored_whole_with_timestamps(db, make_answer):
    store, study = db
    answer = make_answer(
        study, 0, "Dr. Alice", ratings=[5, 2, 4], ranks=[1, 3, 2], comment="  crisp dimers  "
    )
    result = store.submit(replace(answer, shown_at="2025-01-01T00:00:00+00:00"))
    assert result.stored and "saved" in result.message
    records = store.records()
    assert [(r.model, r.rating, r.rank, r.label) for r in records] == [
        ("classical", 5, 1, "A"),
        ("fm-small-2", 2, 3, "B"),
        ("ddim-small-3", 4, 2, "C"),
    ]
    assert {r.comment for r in records} == {"crisp dimers"}
    assert {r.rater for r in records} == {"Dr. Alice"}
    assert records[0].shown_at.startswith("2025-01-01") and records[0].submitted_at >= "2025"
    assert store.answered_trials("dr.  ALICE") == {study.trials[0].trial_id}


def test_resubmission_keeps_the_first_answer(db, make_answer):
    store, study = db
    first = store.submit(make_answer(study, 1, "bob", ratings=[1, 1, 1]))
    again = store.submit(make_answer(study, 1, "  BOB ", ratings=[5, 5, 5], ranks=[3, 2, 1]))
    assert first.stored and not again.stored
    assert "already answered" in again.message and again.answer_id == first.answer_id
    assert [r.rating for r in store.records()] == [1, 1, 1]
    assert store.counts()["answers"] == 1 and store.counts()["ratings"] == 3


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s[:2], "covers 2 output"),  # partial answer
        (lambda s: (*s[:2], replace(s[2], rank=2)), "not a ranking"),  # ranks 1, 2, 2
        (lambda s: (*s[:2], replace(s[2], rank=4)), "not a ranking"),  # ranks 1, 2, 4
        (lambda s: (replace(s[0], rank=0), s[1], replace(s[2], rank=1)), "not a ranking"),
        (lambda s: (replace(s[0], rating=0), *s[1:]), "from 1 to 5"),
        (lambda s: (replace(s[0], rating=6), *s[1:]), "from 1 to 5"),
        (lambda s: (replace(s[0], rating=3.5), *s[1:]), "from 1 to 5"),
        (lambda s: (replace(s[0], rating=True), *s[1:]), "from 1 to 5"),
        (lambda s: (replace(s[0], rating="4"), *s[1:]), "from 1 to 5"),
        (lambda s: (replace(s[0], output_id="forged"), *s[1:]), "covers 3 output"),
        (lambda s: (s[0], replace(s[1], output_id=s[0].output_id), s[2]), "appears twice"),
        (lambda s: (s[0], replace(s[1], label="A"), s[2]), "own label"),
        (lambda s: (), "no ratings"),
    ],
)
def test_bad_answers_are_rejected_whole(db, change, expected, make_answer):
    store, study = db
    answer = make_answer(study, 2, "carol")
    with pytest.raises(InvalidSubmission, match=expected):
        store.submit(replace(answer, scores=tuple(change(answer.scores))))
    counts = store.counts()
    assert counts["answers"] == 0 and counts["ratings"] == 0
    assert store.answered_trials("carol") == set()


def test_unknown_trial_long_comment_and_bad_names_are_rejected(db, make_answer):
    store, study = db
    answer = make_answer(study, 0, "dave")
    with pytest.raises(InvalidSubmission, match="Unknown trial"):
        store.submit(replace(answer, trial_id="deadbeefdeadbeef"))
    with pytest.raises(InvalidSubmission, match="comment"):
        store.submit(replace(answer, comment="x" * (records.MAX_COMMENT + 1)))
    for name in ("", "   ", "x" * 65, "tab\x07bell"):
        with pytest.raises(StmZooError):
            store.submit(replace(answer, rater=name))
    assert store.counts()["answers"] == 0 and store.counts()["raters"] == 0


def test_twenty_threads_fifty_submissions_each_store_every_rating_exactly_once(
    tmp_path, make_answer, make_study
):
    store = ExpertStore(tmp_path / "ratings.sqlite3")
    study = make_study(tmp_path, n_trials=50)
    store.register_study(study)
    outcomes: list[tuple[int, int, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def rater(t: int) -> None:
        try:
            for i in range(50):
                n = len(study.trials[i].outputs)
                ranks = [(t + i + j) % n + 1 for j in range(n)]
                ratings = [(t * 7 + i + j) % 5 + 1 for j in range(n)]
                result = store.submit(make_answer(study, i, f"rater-{t}", ratings, ranks))
                with lock:
                    outcomes.append((t, i, result.stored))
        except BaseException as error:  # surfaced below: a thread must not fail silently
            errors.append(error)

    threads = [threading.Thread(target=rater, args=(t,)) for t in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(outcomes) == 1000 and all(stored for *_, stored in outcomes)
    records = store.records()
    assert len(records) == 1000 * 3
    keys = [(r.rater, r.trial_id, r.output_id) for r in records]
    assert len(set(keys)) == len(keys)
    for r in records:  # each value is the one that thread sent
        t, i = int(r.rater.split("-")[1]), int(r.trial_id.rsplit("t", 1)[1])
        j = int(r.output_id.rsplit("o", 1)[1])
        assert r.rank == (t + i + j) % 3 + 1 and r.rating == (t * 7 + i + j) % 5 + 1
    assert store.check() == []


def test_racing_duplicates_store_one_answer(db, make_answer):
    store, study = db
    barrier = threading.Barrier(10)
    results = []

    def go(k: int) -> None:
        barrier.wait()
        results.append(store.submit(make_answer(study, 3, "eve", ratings=[k % 5 + 1] * 3)))

    threads = [threading.Thread(target=go, args=(k,)) for k in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.stored for r in results) == [False] * 9 + [True]
    assert len({r.answer_id for r in results}) == 1
    assert store.counts()["ratings"] == 3


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    from conftest import full_answer, synthetic_study
    from expert_eval.store import ExpertStore

    STOP_AT = int(sys.argv[1])  # pause inside this submission (-1: never)
    RATER = sys.argv[2]
    study = synthetic_study(None, n_trials=400)

    class Traced(ExpertStore):
        submitted = 0
        def _connect(self):
            conn = super()._connect()
            def trace(sql):
                if sql.startswith("INSERT INTO ratings") and self.submitted == STOP_AT:
                    print("MID", flush=True)  # the answer row is written, its ratings not yet
                    time.sleep(60)
            conn.set_trace_callback(trace)
            return conn

    store = Traced({db!r})
    print("READY", flush=True)
    for i in range(400):
        store.submit(full_answer(study, i, RATER, ratings=[1 + i % 5] * 3))
        Traced.submitted += 1
        print("OK", flush=True)
    """
)


def _run_child(db_path: Path, rater: str, stop_at: int = -1, kill_after: int = 0) -> None:
    """Run a submitting child and SIGKILL it: paused inside submission `stop_at`, or while it
    runs on freely, right after it reports `kill_after` stored answers."""
    script = CHILD.format(root=str(REPO_ROOT), tests=str(Path(__file__).parent), db=str(db_path))
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(stop_at), rater], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "READY"
        if stop_at >= 0:
            lines = [child.stdout.readline().strip() for _ in range(stop_at + 1)]
            assert lines == ["OK"] * stop_at + ["MID"]
        else:
            for _ in range(kill_after):
                assert child.stdout.readline().strip() == "OK"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL


WRITER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from conftest import full_answer, synthetic_study
    from expert_eval.store import ExpertStore

    PROC = int(sys.argv[1])
    study = synthetic_study(None, n_trials={n})
    store = ExpertStore({db!r})
    print("READY", flush=True)
    sys.stdin.readline()  # every writer starts at once
    stored = 0
    for i in range({n}):
        ranks = [(PROC + i + j) % 3 + 1 for j in range(3)]
        ratings = [(PROC * 7 + i + j) % 5 + 1 for j in range(3)]
        stored += store.submit(full_answer(study, i, f"proc-{{PROC}}", ratings, ranks)).stored
    # The same rater and trial from every process: one answer may win.
    shared = store.submit(full_answer(study, 0, "shared", ratings=[PROC + 1] * 3)).stored
    print("DONE", stored, int(shared), flush=True)
    """
)


def test_four_processes_writing_at_once_store_every_rating_exactly_once(tmp_path, make_study):
    n_procs, n_answers = 4, 25
    db_path = tmp_path / "ratings.sqlite3"
    study = make_study(tmp_path, n_trials=n_answers)
    ExpertStore(db_path).register_study(study)
    script = WRITER.format(
        root=str(REPO_ROOT), tests=str(Path(__file__).parent), db=str(db_path), n=n_answers
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(k)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(n_procs)
    ]
    try:
        assert [c.stdout.readline().strip() for c in children] == ["READY"] * n_procs
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        done = [child.stdout.readline().split() for child in children]
        assert [child.wait(timeout=120) for child in children] == [0] * n_procs
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert [d[:2] for d in done] == [["DONE", str(n_answers)]] * n_procs
    assert sum(int(d[2]) for d in done) == 1  # the shared answer: stored once
    store = ExpertStore(db_path)
    records = [r for r in store.records() if r.rater != "shared"]
    assert len(records) == n_procs * n_answers * 3
    keys = [(r.rater, r.trial_id, r.output_id) for r in records]
    assert len(set(keys)) == len(keys)
    for r in records:  # each value is the one that process sent
        k, i = int(r.rater.split("-")[1]), int(r.trial_id.rsplit("t", 1)[1])
        j = int(r.output_id.rsplit("o", 1)[1])
        assert r.rank == (k + i + j) % 3 + 1 and r.rating == (k * 7 + i + j) % 5 + 1
    counts = on_disk(db_path)
    assert counts["answers"] == n_procs * n_answers + 1 and counts["raters"] == n_procs + 1
    assert counts["ratings"] == (n_procs * n_answers + 1) * 3
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert store.check() == []


def _assert_consistent(store: ExpertStore, study) -> int:
    assert store.check() == []
    answers = store.export_answers()
    for answer in answers:  # complete answers only, each holding what the child sent
        i = int(answer["trial_id"].rsplit("t", 1)[1])
        assert sorted(r["rank"] for r in answer["ratings"]) == [1, 2, 3]
        assert {r["rating"] for r in answer["ratings"]} == {1 + i % 5}
    return len(answers)


def test_a_process_killed_mid_submission_leaves_a_consistent_database(
    tmp_path, make_answer, make_study
):
    db_path = tmp_path / "ratings.sqlite3"
    study = make_study(tmp_path, n_trials=400)
    ExpertStore(db_path).register_study(study)
    _run_child(db_path, "crash-test", stop_at=7)  # killed inside the 8th submission
    store = ExpertStore(db_path)
    assert _assert_consistent(store, study) == 7
    assert study.trials[7].trial_id not in store.answered_trials("crash-test")
    # The lock died with the process: the same answer can now be stored.
    assert store.submit(make_answer(study, 7, "crash-test", ratings=[3] * 3)).stored
    # Killed at arbitrary moments of a free-running submission loop (commits included).
    for k, after in enumerate((3, 17, 41)):
        _run_child(db_path, f"free-{k}", kill_after=after)
        store = ExpertStore(db_path)
        _assert_consistent(store, study)
        # Every answer the child reported stored is there (it may have stored more before the
        # kill landed: how many depends on the scheduler, so only the lower bound is exact).
        assert len(store.answered_trials(f"free-{k}")) >= after


def test_register_study_is_idempotent_and_refuses_a_changed_study(tmp_path, make_study):
    store = ExpertStore(tmp_path / "ratings.sqlite3")
    study = make_study(tmp_path, n_trials=3)
    store.register_study(study)
    store.register_study(study)
    assert store.counts()["trials"] == 3 and store.counts()["outputs"] == 9
    changed = make_study(tmp_path, n_trials=3, models=["classical", "ae-large", "fm-small-2"])
    with pytest.raises(StmZooError, match="no longer matches"):
        store.register_study(changed)


def test_export_is_the_file_the_scheduler_pushes_and_imports_back(db, tmp_path, make_answer):
    store, study = db
    token = store.new_rater("alice")
    store.submit(make_answer(study, 0, "alice", ratings=[5, 4, 3], comment="nice"))
    store.submit(make_answer(study, 1, "bob", ranks=[3, 1, 2]))
    lock = threading.Lock()
    sync = hub.RatingsSync(store, tmp_path / "sync", lock)
    path = sync.snapshot()
    assert path.parent == tmp_path / "sync" and path.name.startswith("answers-")
    assert path.suffix == ".jsonl" and not lock.locked()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [a["rater"] for a in lines] == ["alice", "bob"]
    assert lines[0]["comment"] == "nice" and lines[0]["task"] == "restore"
    assert [r["model"] for r in lines[0]["ratings"]] == study.models
    assert [r["rating"] for r in lines[0]["ratings"]] == [5, 4, 3]
    hashes = dict(store._read("SELECT rater_key, token_sha256 FROM raters"))
    assert lines[0]["rater_token_sha256"] == hashes["alice"] is not None
    assert lines[1]["rater_token_sha256"] is None  # bob has no token
    assert token not in path.read_text(encoding="utf-8")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left

    # A restarted Space starts from an empty disk and restores the answers from the repo.
    fresh = ExpertStore(tmp_path / "fresh.sqlite3")
    fresh.register_study(study)
    assert fresh.import_answers(read_export(path)) == 2
    assert fresh.import_answers(read_export(path)) == 0  # idempotent
    assert fresh.export_answers() == store.export_answers()
    assert fresh.rater_for_token(token) == "alice"  # her token works after a restore

    # An export written before tokens imports too; a damaged token hash is refused.
    older = [{k: v for k, v in a.items() if k != "rater_token_sha256"} for a in lines]
    oldest = ExpertStore(tmp_path / "oldest.sqlite3")
    oldest.register_study(study)
    assert oldest.import_answers(older) == 2 and oldest.rater_for_token(token) is None
    damaged = ExpertStore(tmp_path / "damaged.sqlite3")
    damaged.register_study(study)
    with pytest.raises(InvalidSubmission, match="token hash"):
        damaged.import_answers([{**lines[0], "rater_token_sha256": "not-a-hash"}])


def test_sync_is_off_without_space_or_token(db, monkeypatch):
    store, _ = db
    assert hub.sync_config({})[0] is None
    config, reason = hub.sync_config({"SPACE_ID": "lab/stm"})
    assert config is None and "HF_TOKEN" in reason
    config, reason = hub.sync_config({"HF_TOKEN": "hf_x"})
    assert config is None and "SPACE_ID" in reason
    for name in ("SPACE_ID", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert hub.start_sync(store) == (None, hub.sync_config({})[1])


def test_sync_config_when_configured_hides_the_token(tmp_path):
    env = {"SPACE_ID": "lab/stm", "HF_TOKEN": "hf_secret", "EXPERT_EVAL_SYNC_DIR": str(tmp_path)}
    config, _ = hub.sync_config(env)
    assert config.repo_id == "lab/stm-ratings" and config.folder == tmp_path
    assert config.every_minutes == hub.SYNC_EVERY_MINUTES and "hf_secret" not in repr(config)
    config, _ = hub.sync_config({**env, "EXPERT_EVAL_DATASET": "lab/panel"})
    assert config.repo_id == "lab/panel"


def test_database_location_resolution_order(monkeypatch, tmp_path):
    for name in ("EXPERT_EVAL_DB", "STM_ZOO_DATA_DIR", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if not (Path("/data").is_dir() and os.access("/data", os.W_OK)):
        assert st.default_db_path() == tmp_path / "xdg" / "stm-zoo" / st.DB_NAME
    monkeypatch.setenv("STM_ZOO_DATA_DIR", str(tmp_path / "data"))
    assert st.default_db_path() == tmp_path / "data" / st.DB_NAME
    monkeypatch.setenv("EXPERT_EVAL_DB", str(tmp_path / "explicit.db"))
    assert st.default_db_path() == tmp_path / "explicit.db"
    store = ExpertStore()
    assert store.path == tmp_path / "explicit.db" and store.path.is_file()


def test_an_unusable_database_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "not.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StmZooError, match="EXPERT_EVAL_DB"):
        ExpertStore(bad)


def test_configured_sync_restores_then_pushes_snapshots(db, make_answer, tmp_path, monkeypatch):
    """The Hub side replaced by fakes (tests stay offline): what start_sync asks of it."""
    import huggingface_hub

    store, study = db
    earlier = ExpertStore(tmp_path / "earlier.sqlite3")
    earlier.register_study(study)
    earlier.submit(make_answer(study, 4, "from-last-run", ratings=[2, 2, 2]))
    repo = tmp_path / "repo"
    repo.mkdir()
    write_export(earlier, repo / "answers-old.jsonl")
    created = {}

    class FakeScheduler:
        def __init__(self, **kwargs):
            created.update(kwargs)
            self.lock = threading.Lock()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(repo))
    monkeypatch.setattr(huggingface_hub, "CommitScheduler", FakeScheduler)
    env = {"SPACE_ID": "lab/stm", "HF_TOKEN": "hf_x", "EXPERT_EVAL_SYNC_DIR": str(tmp_path / "s")}
    sync, message = hub.start_sync(store, env)
    assert "1 earlier answer(s) restored" in message and "lab/stm-ratings" in message
    assert created["repo_id"] == "lab/stm-ratings" and created["repo_type"] == "dataset"
    assert created["private"] is True and created["folder_path"] == tmp_path / "s"
    assert store.answered_trials("from-last-run") == {study.trials[4].trial_id}
    assert [a["rater"] for a in read_export(sync.path)] == ["from-last-run"]
    store.submit(make_answer(study, 0, "new"))
    sync.snapshot()
    assert [a["rater"] for a in read_export(sync.path)] == ["from-last-run", "new"]


def test_a_name_is_claimed_once_and_only_its_token_leads_back(db, make_answer):
    store, study = db
    token = store.new_rater("Dr.  Alice")
    assert store.rater_for_token(token) == "Dr. Alice"
    assert store.rater_for_token(f" {token.upper().replace('-', ' ')} ") == "Dr. Alice"
    for taken in ("Dr. Alice", "dr. alice", "  DR.   ALICE "):
        with pytest.raises(NameTaken, match="paste your rater token"):
            store.new_rater(taken)
    for bad in ("", "Dr. Alice", token[:-1], token + "x", None):
        assert store.rater_for_token(bad) is None
    assert store.counts()["raters"] == 1
    # The database holds the token's hash, never the token.
    plain = token.replace("-", "")
    digest = hashlib.sha256(plain.encode("ascii")).hexdigest()
    assert store._read("SELECT token_sha256 FROM raters") == [(digest,)]
    files = [p for p in store.path.parent.iterdir() if p.name.startswith(store.path.name)]
    raw = b"".join(p.read_bytes() for p in files)
    assert digest.encode() in raw and token.encode() not in raw and plain.encode() not in raw
    # A new token (lost, or never issued) replaces the old one.
    new = store.issue_token("DR. ALICE")
    assert store.rater_for_token(token) is None and store.rater_for_token(new) == "Dr. Alice"
    with pytest.raises(StmZooError, match="no rater named"):
        store.issue_token("nobody")
    # Two clients claiming one new name at once: one gets it, the other is refused.
    barrier, outcomes = threading.Barrier(8), []

    def claim() -> None:
        barrier.wait()
        try:
            outcomes.append(store.new_rater("Bob"))
        except NameTaken:
            outcomes.append(None)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [t for t in outcomes if t is not None]
    assert len(outcomes) == 8 and len(winners) == 1
    assert store.rater_for_token(winners[0]) == "Bob"


def test_cli_issues_a_new_token(db, capsys):
    store, _ = db
    old = store.new_rater("Carol")
    assert main(["token", "--db", str(store.path), "carol"]) == 0
    out = capsys.readouterr().out
    new = re.search(r"[a-z2-9]{4}(?:-[a-z2-9]{4}){4}", out).group(0)
    assert f"?rater={new}" in out
    assert store.rater_for_token(new) == "Carol" and store.rater_for_token(old) is None
    assert main(["token", "--db", str(store.path), "nobody"]) == 2
    assert "no rater named nobody" in capsys.readouterr().err


SCHEMA_1 = """
CREATE TABLE studies (study_id TEXT PRIMARY KEY, name TEXT NOT NULL, task TEXT NOT NULL,
    models TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE trials (trial_id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(study_id), input_id TEXT NOT NULL,
    n_outputs INTEGER NOT NULL CHECK (n_outputs >= 2));
CREATE TABLE outputs (output_id TEXT PRIMARY KEY,
    trial_id TEXT NOT NULL REFERENCES trials(trial_id), model TEXT NOT NULL);
CREATE TABLE raters (rater_id INTEGER PRIMARY KEY, rater_key TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE answers (answer_id INTEGER PRIMARY KEY,
    rater_id INTEGER NOT NULL REFERENCES raters(rater_id),
    trial_id TEXT NOT NULL REFERENCES trials(trial_id), comment TEXT NOT NULL DEFAULT '',
    shown_at TEXT, submitted_at TEXT NOT NULL, UNIQUE (rater_id, trial_id));
CREATE TABLE ratings (answer_id INTEGER NOT NULL REFERENCES answers(answer_id),
    output_id TEXT NOT NULL REFERENCES outputs(output_id), label TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5), rank INTEGER NOT NULL CHECK (rank >= 1),
    PRIMARY KEY (answer_id, output_id), UNIQUE (answer_id, rank), UNIQUE (answer_id, label));
CREATE INDEX outputs_by_trial ON outputs(trial_id);
CREATE INDEX answers_by_trial ON answers(trial_id);
PRAGMA user_version=1;
"""


def write_schema_1_store(path: Path, study) -> None:
    """A store as stm-zoo wrote it before rater tokens: Alice has answered the first trial."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA_1)
        conn.execute(
            "INSERT INTO studies VALUES (?, ?, ?, ?, ?)",
            (study.study_id, study.name, study.task, json.dumps(study.models), study.created_at),
        )
        for trial in study.trials:
            conn.execute(
                "INSERT INTO trials VALUES (?, ?, ?, ?)",
                (trial.trial_id, study.study_id, trial.input_id, len(trial.outputs)),
            )
            for o in trial.outputs:
                conn.execute(
                    "INSERT INTO outputs VALUES (?, ?, ?)", (o.output_id, trial.trial_id, o.model)
                )
        conn.execute("INSERT INTO raters VALUES (1, 'alice', 'Alice', '2025-01-01')")
        conn.execute(
            "INSERT INTO answers VALUES (1, 1, ?, 'old', NULL, '2025-01-02')",
            (study.trials[0].trial_id,),
        )
        for j, o in enumerate(study.trials[0].outputs):
            conn.execute(
                "INSERT INTO ratings VALUES (1, ?, ?, ?, ?)", (o.output_id, "ABC"[j], 5 - j, j + 1)
            )
        conn.commit()


def test_a_schema_1_store_opens_migrated_with_every_answer(tmp_path, make_study, make_answer):
    path = tmp_path / "old.sqlite3"
    study = make_study(tmp_path, n_trials=3)
    write_schema_1_store(path, study)
    # Several workers opening the old file at once migrate it once.
    barrier, opened, errors = threading.Barrier(4), [], []

    def open_store() -> None:
        barrier.wait()
        try:
            opened.append(ExpertStore(path))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(opened) == 4
    store = opened[0]
    assert store._read("PRAGMA user_version")[0][0] == st.SCHEMA_VERSION
    assert "token_sha256" in [row[1] for row in store._read("PRAGMA table_info(raters)")]
    store.register_study(study)  # the study recorded by the old version matches
    records = store.records()
    assert [(r.rater, r.rating, r.rank, r.comment) for r in records] == [
        ("Alice", 5, 1, "old"),
        ("Alice", 4, 2, "old"),
        ("Alice", 3, 3, "old"),
    ]
    assert store.check() == []
    # Her name alone resumes nothing; a token from the organisers brings her back.
    with pytest.raises(NameTaken):
        store.new_rater("alice")
    token = store.issue_token("Alice")
    assert store.rater_for_token(token) == "Alice"
    assert store.answered_trials("Alice") == {study.trials[0].trial_id}
    assert store.submit(make_answer(study, 1, "Alice")).stored
    assert ExpertStore(path).counts()["answers"] == 2  # opening again changes nothing

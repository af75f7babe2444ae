"""Hub sync of the ratings: a private dataset repo holds JSON-lines snapshots of the store.

When `SPACE_ID` and a token (`HF_TOKEN`) are set, `start_sync` restores earlier answers from a
private Hub dataset repo (`EXPERT_EVAL_DATASET`, default `<space>-ratings`) and pushes a
JSON-lines snapshot of every answer there with `huggingface_hub.CommitScheduler` (with each
rater's token hash, so that tokens still work after a restore). Each process writes its own file
(`answers-<time>-<token>.jsonl`), always a full snapshot of the database rather than an append
log, so an answer committed just before a crash is in the next snapshot and a restarted Space,
whose disk may be empty, never overwrites what an earlier one pushed. The export holds the model
of each output: keep the dataset repo private.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from expert_eval.export import read_export, write_export
from expert_eval.store import ExpertStore, data_dir

log = logging.getLogger(__name__)

SYNC_EVERY_MINUTES = 5.0


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
            return write_export(self.store, self.path)


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

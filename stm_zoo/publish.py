"""`python -m stm_zoo publish`: upload zoo entries to a Hugging Face Hub model repo.

The entries come from one or several zoo folders (`--zoo`, default STM_ZOO_DIR, searched in order
like `stm_zoo.zoo.zoo_dirs`), e.g. a published-layout folder holding only the large entries whose
weights stay out of git; `--entries` limits the upload to some of them. After publishing large
entries, `python -m stm_zoo zoo cards --from FOLDER ENTRY...` commits their config + card pair.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from stm_zoo.cards import write_config_and_card
from stm_zoo.entry_format import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    EntryConfig,
    EntryKey,
    registry,
)
from stm_zoo.errors import StmZooError
from stm_zoo.zoo import add_zoo_argument, local_entry, zoo_search_path


def publish_plan(
    root: str | os.PathLike[str] | None, repo_id: str, entries: Sequence[str] = ()
) -> list[tuple[Path, str]]:
    """(local file, path in repo) for every complete local entry (or the named ones).

    Args:
        root: zoo folders separated by `os.pathsep` (default STM_ZOO_DIR); each entry comes from
            the first folder holding its config.json and model.safetensors.
        repo_id: the Hub repo (named in errors).
        entries: entry names such as "restore/ae-large"; empty: every complete entry.

    Raises:
        StmZooError: a named entry is not complete in any folder, or there is nothing to publish.
    """
    wanted = [EntryKey.parse(name) for name in entries]
    plan = []
    for key in wanted or registry():
        folder = local_entry(key, root)
        if folder is None:
            if wanted:
                raise StmZooError(
                    f"{key} has no complete entry (config.json + model.safetensors) in "
                    f"{zoo_search_path(root)}: nothing of it can be published to {repo_id}."
                )
            continue
        plan += [(folder / name, f"{key.subdir}/{name}") for name in (CONFIG_NAME, WEIGHTS_NAME)]
        plan.append((folder / CARD_NAME, f"{key.subdir}/{CARD_NAME}"))
    if not plan:
        raise StmZooError(
            f"{zoo_search_path(root)} holds no complete zoo entry to publish: train one first."
        )
    return plan


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, help="Hub model repo, OWNER/NAME")
    add_zoo_argument(parser, entries="publish")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, upload nothing")
    parser.add_argument("--private", action="store_true", help="create the repo as private")


def run(args: argparse.Namespace) -> int:
    plan = publish_plan(args.zoo, args.repo_id, args.entries)
    if not args.dry_run:  # refresh the cards from the configs so the metrics are current
        for config_path in [local for local, _ in plan if local.name == CONFIG_NAME]:
            write_config_and_card(config_path.parent, EntryConfig.from_file(config_path))
    total = sum(local.stat().st_size for local, _ in plan if local.is_file())
    print(
        f"{'would upload' if args.dry_run else 'uploading'} {len(plan)} files "
        f"({total / 1e6:.1f} MB) to {args.repo_id}:"
    )
    for local, remote in plan:
        print(f"  {remote}  <- {local}")
    if args.dry_run:
        return 0
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(args.repo_id, repo_type="model", private=args.private, exist_ok=True)
        operations = [CommitOperationAdd(remote, str(local)) for local, remote in plan]
        api.create_commit(args.repo_id, operations, commit_message="Publish the stm-zoo model zoo")
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise StmZooError(
            f"Publishing to {args.repo_id} failed ({str(error).splitlines()[0]}): check "
            "`huggingface-cli login` / HF_TOKEN and network access."
        ) from None
    print(f"published to https://huggingface.co/{args.repo_id}")
    return 0

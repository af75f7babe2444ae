"""`python -m stm_zoo publish`: upload the local zoo to a Hugging Face Hub model repo."""

from __future__ import annotations

import argparse
from pathlib import Path

from stm_zoo.cards import entry_card
from stm_zoo.errors import StmZooError
from stm_zoo.zoo import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, EntryConfig, registry, zoo_dir


def publish_plan(root: Path, repo_id: str) -> list[tuple[Path, str]]:
    """(local file, path in repo) for every complete local entry, cards regenerated from configs."""
    plan = []
    for key in registry():
        folder = root / key.subdir
        if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
            for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
                plan.append((folder / name, f"{key.subdir}/{name}"))
    if not plan:
        raise StmZooError(f"{root} holds no complete zoo entry to publish: train one first.")
    return plan


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, help="Hub model repo, OWNER/NAME")
    parser.add_argument("--zoo", type=Path, default=None, help="zoo folder (default STM_ZOO_DIR)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, upload nothing")
    parser.add_argument("--private", action="store_true", help="create the repo as private")


def run(args: argparse.Namespace) -> int:
    root = args.zoo or zoo_dir()
    plan = publish_plan(root, args.repo_id)
    for key in registry():  # refresh the cards from the configs so the metrics are current
        config_path = root / key.subdir / CONFIG_NAME
        if any(local == config_path for local, _ in plan):
            card = entry_card(EntryConfig.from_file(config_path))
            (root / key.subdir / CARD_NAME).write_text(card, encoding="utf-8")
    total = sum(local.stat().st_size for local, _ in plan)
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

"""The zoo: entry format, resolution (path, STM_ZOO_DIR, Hub cache offline), list, publish."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from stm_zoo.cards import entry_card
from stm_zoo.entry_format import CONFIG_NAME, EntryConfig, EntryKey, registry, write_entry
from stm_zoo.errors import ModelNotFoundError, StmZooError
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.zoo import REPO_ZOO_DIR, baseline_config, load_entry, load_model

TINY = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4)


def make_entry(root: Path, task: str = "restore", family: str = "fm", size: str = "small") -> Path:
    torch.manual_seed(1)
    net = UNet(TINY)
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    config = EntryConfig(
        task,
        family,
        size,
        TINY,
        sr_factor={"restore": 1}.get(task, 2),
        training={"steps": 20, "batch": 4, "device": "cpu"},
        metrics={"test": {"psnr_2steps": 25.5, "ssim_2steps": 0.81}},
    )
    folder = root / task / f"{family}-{size}"
    return write_entry(folder, config, net.state_dict(), entry_card(config))


def outputs(model) -> torch.Tensor:
    x = torch.linspace(-1, 1, 2 * 32 * 32).reshape(2, 1, 32, 32)
    with torch.inference_mode():
        return model.network(x, torch.tensor([0.3, 0.7]), x.flip(-1)).float()


def test_registry_matches_table_one() -> None:
    keys = {str(k) for k in registry()}
    assert len(keys) == 18
    assert "sr4/ddim-fft-large" in keys and "restore/ae-large" in keys
    assert "restore/ae-small" not in keys


def test_entry_config_is_frozen_and_holds_a_typed_network(tmp_path: Path) -> None:
    config = EntryConfig.from_file(make_entry(tmp_path) / CONFIG_NAME)
    assert isinstance(config.network, UNetConfig) and config.network == TINY
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.weights_dtype = "float16"  # type: ignore[misc]
    classical = baseline_config("sr2", "classical")
    assert classical.network is None and json.loads(classical.to_json())["network"] == {}
    (tmp_path / CONFIG_NAME).write_text(classical.to_json())
    assert EntryConfig.from_file(tmp_path / CONFIG_NAME) == classical
    assert load_model("sr2", "classical").config == classical


@pytest.mark.parametrize(
    "path", sorted(REPO_ZOO_DIR.glob(f"*/*/{CONFIG_NAME}")), ids=lambda p: p.parent.name
)
def test_bundled_configs_round_trip_unchanged(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    config = EntryConfig.from_file(path)
    assert json.loads(config.to_json()) == json.loads(text)
    assert config.to_json() + "\n" == text  # write_entry's exact layout


def test_bundled_zoo_is_present() -> None:
    assert len(list(REPO_ZOO_DIR.glob(f"*/*/{CONFIG_NAME}"))) >= 6


def test_write_and_load_entry_round_trip(tmp_path: Path) -> None:
    folder = make_entry(tmp_path)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o644}  # publishable
    a, b = load_entry(folder, device="cpu"), load_entry(folder, device="cpu")
    torch.testing.assert_close(outputs(a), outputs(b))
    card = (folder / "README.md").read_text()
    assert card.startswith("---") and "model-index" in card and "25.5" in card


def test_half_precision_weights_load(tmp_path: Path) -> None:
    folder = make_entry(tmp_path)
    full = load_entry(folder, device="cpu")
    config = EntryConfig.from_file(folder / "config.json")
    write_entry(folder, config, full.network.state_dict(), "card", weights_dtype="bfloat16")
    half = load_entry(folder, device="cpu")
    assert json.loads((folder / "config.json").read_text())["weights_dtype"] == "bfloat16"
    torch.testing.assert_close(outputs(half), outputs(full), atol=0.05, rtol=0.05)


def test_stm_zoo_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_entry(tmp_path)
    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path))
    model = load_model("restore", "fm", "small", device="cpu")
    assert model.source == str(tmp_path / "restore" / "fm-small")
    assert load_model("restore", "classical").network is None


def test_hub_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder laid out as the Hub repo, in the huggingface_hub cache, loads with no network."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--someone--stm-zoo"
    commit = "0123456789abcdef0123456789abcdef01234567"
    make_entry(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("STM_ZOO_REPO", "someone/stm-zoo")
    model = load_model("restore", "fm", "small", device="cpu")
    assert Path(model.source) == repo / "snapshots" / commit / "restore" / "fm-small"
    with pytest.raises(ModelNotFoundError, match="python -m training train --task sr2"):
        load_model("sr2", "fm", "small", device="cpu")


def test_missing_and_invalid_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError, match="no zoo entry"):
        load_model("restore", "fm", "small", path=tmp_path)
    folder = make_entry(tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(StmZooError, match="not a readable zoo config"):
        load_entry(folder)
    with pytest.raises(StmZooError, match="Unknown task"):
        EntryKey("denoise", "fm", "small")
    if not torch.cuda.is_available():
        with pytest.raises(StmZooError, match="no CUDA GPU"):
            load_entry(make_entry(tmp_path / "b"), device="cuda")


def test_mismatched_weights_are_a_clear_error(tmp_path: Path) -> None:
    folder = make_entry(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["network"]["channels"] = [16, 32]
    config["network"]["norm_groups"] = 8
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(StmZooError, match="does not match its config.json"):
        load_entry(folder)


def test_zoo_list_and_publish_dry_run(tmp_path: Path, capsys, monkeypatch) -> None:
    from stm_zoo.__main__ import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["publish", "--repo-id", "me/zoo", "--zoo", str(tmp_path), "--dry-run"]) == 2
    assert "no complete zoo entry" in capsys.readouterr().err
    make_entry(tmp_path)
    card_only = make_entry(tmp_path, "sr2")
    (card_only / "model.safetensors").unlink()
    assert main(["zoo", "list", "--json", "--zoo", str(tmp_path)]) == 0
    rows = {r["entry"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 21
    assert rows["restore/fm-small"]["available"] == "local"
    assert rows["restore/fm-small"]["metrics"]["test/psnr_2steps"] == 25.5
    assert rows["sr2/fm-small"]["available"] == "card-only"
    assert rows["sr4/fm-large"]["available"] == "untrained"
    assert rows["restore/classical"]["available"] == "builtin"
    card = tmp_path / "restore/fm-small/README.md"
    card.write_text(card.read_text() + "\n## Notes\n\nkept\n")
    before = card.read_text()
    assert main(["publish", "--repo-id", "me/zoo", "--zoo", str(tmp_path), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "would upload 3 files" in plan and "restore/fm-small/model.safetensors" in plan
    assert "sr2/fm-small" not in plan
    assert card.read_text() == before  # a dry run writes nothing


def test_card_refresh_keeps_the_extra_sections(tmp_path: Path) -> None:
    from stm_zoo.cards import write_config_and_card

    folder = make_entry(tmp_path)
    card = folder / "README.md"
    card.write_text(card.read_text() + "\n## Notes\n\nkept\n")
    write_config_and_card(folder, EntryConfig.from_file(folder / "config.json"))
    assert card.read_text().rstrip().endswith("## Notes\n\nkept")


def test_copy_of_entry_loads_identically(tmp_path: Path) -> None:
    folder = make_entry(tmp_path / "a")
    shutil.copytree(folder, tmp_path / "b")
    torch.testing.assert_close(outputs(load_entry(folder)), outputs(load_entry(tmp_path / "b")))


def test_card_compares_with_the_papers_row_of_the_same_entry() -> None:
    from stm_zoo.cards import entry_card, paper_comparison

    config = EntryConfig.from_file(Path("zoo/restore/fm-small/config.json"))
    rows = paper_comparison(config).splitlines()
    test = config.metrics["test"]
    assert rows[0].startswith("| degraded input | ")
    assert rows[1] == (
        f"| 2 steps | {test['psnr_2steps']:.3g} / 29.9 | {test['ssim_2steps']:.3g} / 0.889 |"
    )
    assert "## Compared with the paper" in entry_card(config)
    unmeasured = EntryConfig.from_file(Path("zoo/restore/fm-small/config.json"))
    assert paper_comparison(dataclasses.replace(unmeasured, metrics={})) == ""

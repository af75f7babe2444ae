"""Zoo entries spread over several folders (issue 16): the STM_ZOO_DIR search path, card-only
entries whose weights live outside git, `zoo list`'s measured state, publishing some entries of a
published-layout folder and committing their cards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from stm_zoo.__main__ import main
from stm_zoo.cards import entry_card
from stm_zoo.entry_format import EntryConfig, EntryKey, registry, write_entry
from stm_zoo.errors import ModelNotFoundError, StmZooError
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.zoo import REPO_ZOO_DIR, default_model, load_model, locate, zoo_dirs
from stm_zoo.zoo_cli import entry_status, list_entries, train_hint

TINY = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4)
SEP = os.pathsep
TEST = {  # a card's synthetic test: beats the input (and classical) at 2 steps
    "psnr_2steps": 25.0,
    "ssim_2steps": 0.80,
    "psnr_5steps": 24.0,
    "ssim_5steps": 0.79,
    "apsnr_2steps": 27.44,
    "assim_2steps": 0.701,
    "apsnr_5steps": 26.0,
    "assim_5steps": 0.69,
    "input_apsnr": 26.1,
    "input_assim": 0.62,
    "classical_apsnr": 27.0,
    "classical_assim": 0.65,
    "classical_psnr": 24.0,
    "classical_ssim": 0.70,
}


def entry(root: Path, name: str, test: dict | None = None, weights: bool = True) -> Path:
    """A tiny complete entry `name` ("restore/fm-large") under `root`; without `weights` only
    its config.json and card (a card-only entry, as committed for the large entries)."""
    key = EntryKey.parse(name)
    config = EntryConfig(
        key.task,
        key.family,
        key.size,
        TINY,
        sr_factor={"restore": 1, "sr2": 2, "sr4": 4}[key.task],
        training={"steps": 1200, "samples_seen": 76800, "wall_time_h": 0.25, "device": "cuda"},
        metrics={"test": TEST if test is None else test},
    )
    torch.manual_seed(0)
    folder = write_entry(root / key.subdir, config, UNet(TINY).state_dict(), entry_card(config))
    if not weights:
        (folder / "model.safetensors").unlink()
    return folder


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network and an empty Hugging Face cache: only local folders can serve an entry."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STM_ZOO_REPO", "someone/stm-zoo")


def test_zoo_dirs_split_the_search_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STM_ZOO_DIR", raising=False)
    assert zoo_dirs() == [REPO_ZOO_DIR]
    monkeypatch.setenv("STM_ZOO_DIR", f"zoo{SEP}{SEP}~/large{SEP}")
    assert zoo_dirs() == [Path("zoo"), Path.home() / "large"]
    assert zoo_dirs(f"/a{SEP}/b") == [Path("/a"), Path("/b")]
    monkeypatch.setenv("STM_ZOO_DIR", "")
    assert zoo_dirs() == [REPO_ZOO_DIR]


def test_the_first_folder_with_weights_serves_an_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    """Bundled-like folder A holds the card of restore/fm-large only; the published-layout
    folder B holds its weights; an entry complete in both comes from A."""
    a, b = tmp_path / "a", tmp_path / "b"
    entry(a, "restore/fm-large", weights=False)
    entry(b, "restore/fm-large")
    entry(a, "sr2/fm-small")
    entry(b, "sr2/fm-small")
    monkeypatch.setenv("STM_ZOO_DIR", f"{a}{SEP}{b}")
    model = load_model("restore", "fm", "large", device="cpu")
    assert model.source == str(b / "restore" / "fm-large")
    assert locate(EntryKey("sr2", "fm", "small")) == a / "sr2" / "fm-small"
    assert load_model("restore", "fm", "large", path=f"{a}{SEP}{b}").source == model.source
    # what the app offers: the default model and the picker's status see folder B's entry
    assert default_model("restore") == ("fm", "large")
    assert entry_status(EntryKey("restore", "fm", "large")).available == "local"
    from webapp.status import model_status

    assert model_status("restore", "fm", "large").startswith("✅ `restore/fm-large` is available")
    monkeypatch.setenv("STM_ZOO_DIR", str(a))
    assert default_model("restore") == ("classical", "small")


def test_evaluation_reads_entries_from_every_folder(tmp_path: Path) -> None:
    from evaluation.benchmarks import available_entries, load_entries

    a, b = tmp_path / "a", tmp_path / "b"
    entry(a, "restore/fm-small")
    entry(a, "restore/ddim-large", weights=False)  # a card alone is not evaluated
    entry(b, "restore/fm-large")
    search = f"{a}{SEP}{b}"
    keys = available_entries("restore", search)
    assert [str(k) for k in keys] == ["restore/fm-small", "restore/fm-large"]
    models = load_entries(keys, search, "cpu", "float32")
    assert models[keys[1]].source == str(b / "restore" / "fm-large")
    from evaluation.curves import LOG_NAME, zoo_curves

    header = "step,elapsed_s,psnr_2steps,ssim_2steps,input_psnr,input_ssim\n"
    logs = {
        a / "restore/fm-small": 21.0,
        b / "restore/fm-small": 23.0,
        b / "restore/fm-large": 22.0,
    }
    for folder, psnr in logs.items():  # b's restore/fm-small is shadowed by a's
        folder.mkdir(parents=True, exist_ok=True)
        (folder / LOG_NAME).write_text(f"{header}50,60,{psnr},0.4,20,0.3\n")
    found = {c.entry: c.psnr for c in zoo_curves(search)}
    assert found == {"restore/fm-small": (21.0,), "restore/fm-large": (22.0,)}


def test_a_card_only_entry_says_where_its_weights_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    card = entry(tmp_path / "zoo", "sr4/fm-large", weights=False)
    monkeypatch.setenv("STM_ZOO_DIR", str(tmp_path / "zoo"))
    with pytest.raises(ModelNotFoundError) as error:
        load_model("sr4", "fm", "large", device="cpu")
    message = str(error.value)
    assert message.startswith(
        f"The weights of sr4/fm-large are not bundled in git (its card is at {card}): get them "
        "from the Hub repo someone/stm-zoo"
    )
    assert "a published-layout folder" in message and "add that folder to STM_ZOO_DIR" in message
    assert message.replace("e.g.", "").count(". ") == 0 and message.endswith(".")  # one sentence
    with pytest.raises(ModelNotFoundError, match="not bundled in git"):
        load_model("sr4", "fm", "large", path=tmp_path / "zoo")
    with pytest.raises(ModelNotFoundError, match="not bundled in git"):
        locate(EntryKey("sr4", "fm", "large"), allow_hub=False)
    # an entry with no card anywhere still says how to train it
    with pytest.raises(ModelNotFoundError, match="python -m training train --task sr2"):
        load_model("sr2", "fm", "large", device="cpu")


def test_the_repository_card_path_is_shown_relative() -> None:
    from stm_zoo.zoo import card_only_message

    text = card_only_message(
        EntryKey("restore", "ae", "large"), REPO_ZOO_DIR / "restore/ae-large", "o/r"
    )
    assert "(its card is at zoo/restore/ae-large)" in text and "Hub repo o/r" in text


def test_zoo_list_shows_a_measured_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None, capsys
) -> None:
    zoo, large = tmp_path / "zoo", tmp_path / "large"
    entry(large, "restore/fm-large")
    entry(zoo, "restore/fm-large", weights=False)  # shadowed: the weights are in `large`
    entry(zoo, "sr2/ddim-large", weights=False)
    below = {**TEST, "apsnr_2steps": 25.0, "assim_2steps": 0.5}
    entry(zoo, "sr4/fm-small", test=below)
    monkeypatch.setenv("STM_ZOO_DIR", f"{zoo}{SEP}{large}")
    rows = {row.entry: row for row in list_entries()}
    assert len(rows) == len(registry()) + 3
    served = rows["restore/fm-large"]
    assert (served.available, served.where) == ("local", str(large))
    assert served.headline is not None and served.headline.label == "2steps"  # best plain PSNR
    assert served.headline.text() == (
        "aPSNR 27.4 (input 26.1, classical 27.0), aSSIM 0.701 (input 0.620, classical 0.650) at "
        "2 steps: beats input"
    )
    assert rows["sr4/fm-small"].headline.verdict == "below input"
    assert rows["sr2/ddim-large"].available == "card-only"
    assert "not bundled in git" in rows["sr2/ddim-large"].hint
    untrained = rows["sr4/ae-large"]
    assert untrained.available == "untrained" and untrained.headline is None
    assert "scripts/train_large_gpu.py" in untrained.hint and "sr4/ae-large@cpu" in untrained.hint
    assert rows["restore/classical"].available == "builtin"
    assert rows["restore/classical"].headline.text() == (
        "aPSNR 27.0 (input 26.1), aSSIM 0.650 (input 0.620) at one pass: beats input"
    )
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("restore/fm-large"))
    assert str(large) in line and "1,200 steps, 76,800 samples, 0.25 h, cuda" in line
    assert "aPSNR 27.4 (input 26.1, classical 27.0)" in line and line.endswith("beats input")
    assert "-> train it on a GPU: `python scripts/train_large_gpu.py" in out
    assert main(["zoo", "list", "--json", "--zoo", str(zoo), "--entries", "sr2/ddim-large"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["available"] == "card-only" and row["training"]["steps"] == 1200
    assert row["headline"]["verdict"] == "beats input" and row["metrics"]["test/apsnr_2steps"]
    assert main(["zoo", "list", "--entries", "restore/nothing"]) == 2


def test_bundled_entries_are_listed_as_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STM_ZOO_DIR", raising=False)
    if not (REPO_ZOO_DIR / "restore" / "fm-small" / "model.safetensors").is_file():
        pytest.skip("restore/fm-small is not bundled")
    status = entry_status(EntryKey("restore", "fm", "small"))
    assert status.available == "bundled" and status.where == "bundled"


def test_train_hints_name_existing_presets() -> None:
    """The `@cpu` preset a hint names exists, and every entry with one is offered it."""
    from training.configs import CPU_SUFFIX, ZOO_CONFIGS

    for key in registry():
        hint = train_hint(key)
        assert (f"--preset {key}{CPU_SUFFIX} " in hint) == (f"{key}{CPU_SUFFIX}" in ZOO_CONFIGS)
        gpu = "scripts/train_large_gpu.py" if key.size == "large" else f"--preset {key} "
        assert gpu in hint


def test_publish_some_entries_of_a_large_only_folder(tmp_path: Path, capsys) -> None:
    large = tmp_path / "large"
    for name in ("restore/fm-large", "sr2/fm-large"):
        entry(large, name)
    args = ["publish", "--repo-id", "stm-zoo/stm-zoo", "--zoo", str(large), "--dry-run"]
    assert main(args) == 0
    plan = capsys.readouterr().out
    assert "would upload 6 files" in plan and "sr2/fm-large/model.safetensors" in plan
    assert main([*args, "--entries", "sr2/fm-large"]) == 0
    plan = capsys.readouterr().out
    assert "would upload 3 files" in plan and "restore/fm-large" not in plan
    assert main([*args, "--entries", "sr4/fm-large"]) == 2
    assert "sr4/fm-large has no complete entry" in capsys.readouterr().err
    assert main([*args, "--entries", "sr4-fm"]) == 2
    assert "not an entry name" in capsys.readouterr().err
    both = ["publish", "--repo-id", "o/r", "--zoo", f"{tmp_path / 'none'}{SEP}{large}", "--dry-run"]
    assert main(both) == 0 and "would upload 6 files" in capsys.readouterr().out


def test_zoo_cards_commits_the_config_and_card_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None, capsys
) -> None:
    large, repo_zoo = tmp_path / "large", tmp_path / "repo-zoo"
    source = entry(large, "restore/fm-large")
    entry(large, "sr2/fm-large")
    args = ["zoo", "cards", "--from", str(large), "--to", str(repo_zoo)]
    assert main([*args, "--entries", "restore/fm-large"]) == 0
    copied = repo_zoo / "restore" / "fm-large"
    assert sorted(p.name for p in copied.iterdir()) == ["README.md", "config.json"]
    assert (copied / "config.json").read_bytes() == (source / "config.json").read_bytes()
    assert (copied / "README.md").read_bytes() == (source / "README.md").read_bytes()
    assert not (repo_zoo / "sr2").exists()
    monkeypatch.setenv("STM_ZOO_DIR", str(repo_zoo))
    assert entry_status(EntryKey("restore", "fm", "large")).available == "card-only"
    monkeypatch.setenv("STM_ZOO_DIR", f"{repo_zoo}{SEP}{large}")
    assert entry_status(EntryKey("restore", "fm", "large")).available == "local"
    capsys.readouterr()
    assert main(args) == 0  # no names: every complete entry of --from
    assert (repo_zoo / "sr2" / "fm-large" / "config.json").is_file()
    entry(repo_zoo, "sr4/fm-large")  # weights bundled there: its config must stay
    entry(large, "sr4/fm-large")
    assert main([*args, "--entries", "sr4/fm-large"]) == 2
    assert "holds the weights of sr4/fm-large" in capsys.readouterr().err
    assert main(["zoo", "cards", "--to", str(repo_zoo)]) == 2
    with pytest.raises(StmZooError, match="not a complete entry"):
        from stm_zoo.zoo_cli import copy_cards

        copy_cards(large, ["sr4/ddim-large"], repo_zoo)

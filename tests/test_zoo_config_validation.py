"""Hostile zoo entries (issue 13 item 5): every bad config.json or weights file is one clear
StmZooError naming the file and the field, raised before anything large is allocated."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from stm_zoo.config_checks import MAX_CONFIG_BYTES, MAX_JSON_DEPTH
from stm_zoo.entry_format import EntryConfig, write_entry
from stm_zoo.errors import StmZooError
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.zoo import load_entry

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = UNetConfig(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4)


@pytest.fixture
def entry(tmp_path: Path) -> Path:
    """A tiny valid restore/fm-small entry for the tests to spoil."""
    torch.manual_seed(0)
    config = EntryConfig("restore", "fm", "small", TINY, tile_size=64)
    return write_entry(tmp_path / "restore" / "fm-small", config, UNet(TINY).state_dict(), "card")


def edit(folder: Path, **changes: Any) -> Path:
    """Rewrite the entry's config.json with top-level changes; `net_<field>` edits `network`."""
    path = folder / "config.json"
    raw = json.loads(path.read_text())
    for name, value in changes.items():
        if name.startswith("net_"):
            raw["network"][name[4:]] = value
        else:
            raw[name] = value
    path.write_text(json.dumps(raw))  # NaN and Infinity are written as JSON's extensions
    return path


def refused(folder: Path, match: str) -> str:
    with pytest.raises(StmZooError, match=match) as caught:
        load_entry(folder, device="cpu")
    message = str(caught.value)
    assert str(folder / "config.json") in message or str(folder / "model.safetensors") in message
    assert "\n" not in message and len(message) < 400
    return message


def test_the_valid_entry_and_the_shipped_zoo_load(entry: Path) -> None:
    assert load_entry(entry, device="cpu").network is not None
    for config in (Path(__file__).parent.parent / "zoo").glob("*/*/config.json"):
        EntryConfig.from_file(config)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"net_norm_groups": 0}, "network.norm_groups is 0"),
        ({"net_norm_groups": 3}, "norm_groups=3 must be >= 1 and divide every width"),
        ({"net_norm_groups": "4"}, "network.norm_groups is '4' but must be an integer"),
        ({"net_attention": True, "net_attention_heads": 0}, "network.attention_heads is 0"),
        ({"net_attention": True, "net_attention_heads": 3}, "attention_heads=3 must"),
        ({"net_attention": "yes"}, "attention must be true or false"),
        ({"net_channels": ["8", "16"]}, r"network.channels\[0\] is '8'"),
        ({"net_channels": [8.0, 16]}, r"network.channels\[0\] is 8.0"),
        ({"net_channels": 16}, "network.channels is 16 but must be a list"),
        ({"net_channels": [8] * 9, "net_blocks_per_level": [1] * 9}, "a list of 1 to 8"),
        ({"net_blocks_per_level": [10**6, 1]}, r"network.blocks_per_level\[0\] is 1000000"),
        ({"net_middle_blocks": True}, "network.middle_blocks is True"),
        ({"net_time_scale": "1"}, "network.time_scale is '1'"),
        ({"net_time_scale": math.inf}, "network.time_scale is inf"),
        ({"net_dropout": math.nan}, "network.dropout is nan"),
        ({"net_in_channels": 1}, "this family needs 2"),
        ({"net_out_channels": 2}, "network.out_channels is 2"),
        ({"net_heads": 2}, r"network is invalid .*unknown: \['heads'\]"),
        (
            {"net_channels": [2048] * 4, "net_blocks_per_level": [8] * 4},
            "parameters, more than the 100,000,000",
        ),
        ({"pixel_size_nm": 0}, "pixel_size_nm is 0 but must be a finite number"),
        ({"pixel_size_nm": -0.2}, "pixel_size_nm is -0.2"),
        ({"pixel_size_nm": "0.2"}, "pixel_size_nm is '0.2'"),
        ({"pixel_size_nm": math.nan}, "pixel_size_nm is nan"),
        ({"pixel_size_nm": math.inf}, "pixel_size_nm is inf"),
        ({"pixel_size_nm": 1e-12}, "pixel_size_nm is 1e-12"),
        ({"tile_size": "64"}, "tile_size is '64'"),
        ({"tile_size": True}, "tile_size is True"),
        ({"tile_size": 0}, "tile_size is 0"),
        ({"tile_size": 10**6}, "tile_size is 1000000"),
        ({"tile_size": 63}, "tile_size is 63 but must be a multiple of 2"),
        (
            {"tile_size": 1024, "net_channels": [512], "net_blocks_per_level": [1]},
            "feature maps of 536,870,912 values",
        ),
        (
            {"tile_size": 1024, "net_attention": True, "net_attention_heads": 2},
            "self-attention 262,144 positions",
        ),
        ({"task": "denoise"}, "task is 'denoise' but must be one of restore, sr2, sr4"),
        ({"task": ["restore"]}, r"task is \['restore'\]"),
        ({"family": "gan"}, "family is 'gan'"),
        ({"size": 1}, "size is 1"),
        ({"prediction": "eps"}, "prediction is 'eps'"),
        ({"output_range": None}, "output_range is None"),
        ({"weights_dtype": "float64"}, "weights_dtype is 'float64'"),
        ({"sr_factor": True}, "sr_factor is True"),
        ({"sr_factor": 2}, "sr_factor=2 for task restore"),
        ({"format_version": "1"}, "format_version is '1'"),
        ({"format_version": 99}, "upgrade stm-zoo"),
        ({"metrics": []}, r"metrics is \[\] but must be a JSON object"),
        ({"training": "fast"}, "training is 'fast'"),
        ({"network": [1, 2]}, r"network is \[1, 2\] but must be a JSON object"),
        ({"pixel_size_nm": "x" * 500}, r"pixel_size_nm is 'xxx.*\.\.\. but"),
    ],
)
def test_bad_fields_are_named(entry: Path, changes: dict[str, Any], match: str) -> None:
    edit(entry, **changes)
    refused(entry, match)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"task": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests objects or lists deeper"),
        ('{"metrics": ' + "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5) + "}", "deeper"),
        ('{"tile_size": 1' + "0" * 5000 + "}", "not a readable zoo config.json"),
        ("{not json", "not a readable zoo config.json"),
        ("[]", "must hold a JSON object, not list"),
        ('{"task": "restore"}', "lacks the field"),
        (" " * (MAX_CONFIG_BYTES + 1) + "{}", "bytes, more than the 1,048,576"),
    ],
)
def test_hostile_json_files(entry: Path, text: str, match: str) -> None:
    (entry / "config.json").write_text(text)
    refused(entry, match)


def test_undecodable_config(entry: Path) -> None:
    (entry / "config.json").write_bytes(b'{"task": "\xff\xfe"}')
    refused(entry, "not a readable zoo config.json")


def spoil_weights(folder: Path, change) -> None:
    path = folder / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(entry: Path, value: float) -> None:
    spoil_weights(entry, lambda state: state["stem.weight"].view(-1).__setitem__(3, value))
    message = refused(entry, "tensor 'stem.weight' holds 1 NaN or infinite values")
    assert "download the entry again" in message


def test_wrong_dtype_shape_and_keys_are_refused(entry: Path) -> None:
    weights = entry / "model.safetensors"
    good = weights.read_bytes()
    spoil_weights(entry, lambda s: s.__setitem__("stem.bias", torch.zeros(8, dtype=torch.int64)))
    refused(entry, "tensor 'stem.bias' has dtype torch.int64")
    weights.write_bytes(good)
    spoil_weights(entry, lambda s: s.__setitem__("stem.bias", torch.zeros(9)))
    refused(entry, "does not match its config.json")
    weights.write_bytes(good)
    spoil_weights(entry, lambda s: s.pop("stem.bias"))
    refused(entry, "does not match its config.json")


def test_oversized_weights_file_is_refused_unread(entry: Path) -> None:
    spoil_weights(entry, lambda s: s.__setitem__("extra", torch.zeros(5_000_000)))
    refused(entry, "model.safetensors is .* bytes but its config.json network needs at most")


def test_garbage_weights_file(entry: Path) -> None:
    (entry / "model.safetensors").write_bytes(b"\x00" * 64)
    refused(entry, "not a valid safetensors file")

"""Checks on a zoo entry's files before anything is built from them (issue 13).

A config.json and its model.safetensors come from a folder or the Hub: untrusted input. The
config is read with a size and nesting cap, every field is checked for type and range, and the
network it describes is costed (parameters, feature-map size, attention tokens) before one tensor
is allocated; the weights are checked for dtype and finiteness once loaded. Every failure is one
`StmZooError` sentence naming the file, the field and what to do.

The caps are far above the paper's networks (the large U-Net has 15.5 M parameters, 32x32
attention tokens at 128 px tiles) and far below what would exhaust a workstation.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stm_zoo.errors import StmZooError

if TYPE_CHECKING:
    from stm_zoo.nn import UNetConfig

MAX_CONFIG_BYTES = 1 << 20
"""A zoo config.json is a few kB; anything over 1 MiB is refused unread."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and lists accepted in a config.json (the zoo's own reach 7)."""
MAX_PARAMETERS = 100_000_000
"""Largest network a config may describe: 400 MB of float32 weights, ~6x the paper's large."""
MAX_WIDTH = 2048
MAX_LEVELS = 8
MAX_BLOCKS = 32
"""Residual blocks per level and in the middle."""
MAX_IO_CHANNELS = 8
MAX_PATCH_SIZE = 8
MAX_TILE_SIZE = 1024
MAX_ATTENTION_TOKENS = 64 * 64
"""Positions the self-attention layer may attend over (its memory grows with their square)."""
MAX_FEATURE_ELEMENTS = 1 << 26
"""Elements of one sample's feature map at any level: 256 MiB in float32."""
PIXEL_SIZE_RANGE_NM = (1e-3, 1e4)
"""From 1 pm to 10 um per pixel: beyond, resampling an input to the model's grid explodes."""
WEIGHTS_SLACK_BYTES = 16 << 20
"""What a safetensors file may hold beyond 4 bytes per parameter (its header)."""

_FIX = "correct the field or download the entry again"


def _shown(value: Any) -> str:
    """A hostile value's repr, cut so that the message stays one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(path: Path, name: str, value: Any, expected: str) -> StmZooError:
    return StmZooError(f"{path}: {name} is {_shown(value)} but must be {expected}: {_FIX}.")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (a deep file must not crash the check)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return deepest


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a config.json that must hold a JSON object, within the size and nesting caps.

    Raises:
        StmZooError: unreadable, too large, too deeply nested, not JSON or not an object.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise StmZooError(
                f"{path} is {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} a zoo config.json "
                "may have: replace it with the entry's real config.json."
            )
        raw = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raw = None
        nested = True
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, huge ints
        raise StmZooError(f"{path} is not a readable zoo config.json ({error}).") from None
    else:
        nested = _depth(raw) > MAX_JSON_DEPTH
    if nested:
        raise StmZooError(
            f"{path} nests objects or lists deeper than {MAX_JSON_DEPTH} levels, which no zoo "
            "config.json does: replace it with the entry's real config.json."
        )
    if not isinstance(raw, dict):
        raise StmZooError(f"{path} must hold a JSON object, not {type(raw).__name__}.")
    return raw


def integer(path: Path, name: str, value: Any, low: int, high: int) -> int:
    """`value` as an int in [low, high] (a JSON bool, float or string is refused)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or not low <= value <= high:
        raise _bad(path, name, value, f"an integer from {low} to {high:,}")
    return int(value)


def number(path: Path, name: str, value: Any, low: float, high: float) -> float:
    """`value` as a finite float in [low, high] (a JSON bool or string is refused)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        raise _bad(path, name, value, f"a finite number from {low:g} to {high:g}")
    return float(value)


def choice(path: Path, name: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value` as one of the strings `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise _bad(path, name, value, f"one of {', '.join(choices)}")
    return value


def mapping(path: Path, name: str, value: Any) -> dict[str, Any]:
    """`value` as a JSON object."""
    if not isinstance(value, dict):
        raise _bad(path, name, value, "a JSON object")
    return value


def integer_list(path: Path, name: str, value: Any, low: int, high: int, count: int) -> None:
    """`value` as a list of 1..count integers, each in [low, high]."""
    if not isinstance(value, list) or not 1 <= len(value) <= count:
        raise _bad(path, name, value, f"a list of 1 to {count} integers")
    for i, item in enumerate(value):
        integer(path, f"{name}[{i}]", item, low, high)


def check_network(
    path: Path, network: dict[str, Any], tile_size: int, time_conditioned: bool
) -> UNetConfig:
    """Check the U-Net a config describes and what it would cost, before building it.

    Args:
        path: the config.json (for the messages).
        network: its `network` object.
        tile_size: the entry's (already checked) tile edge in pixels.
        time_conditioned: whether the family feeds the network a time (all but the autoencoder).

    Returns:
        The network's `stm_zoo.nn.UNetConfig` (what `EntryConfig.network` holds).

    Raises:
        StmZooError: a field of the wrong type or out of range, or a network over the caps.
    """
    from stm_zoo.nn import UNetConfig

    limits = {
        "in_channels": MAX_IO_CHANNELS,
        "out_channels": MAX_IO_CHANNELS,
        "middle_blocks": MAX_BLOCKS,
        "attention_heads": MAX_WIDTH,
        "norm_groups": MAX_WIDTH,
        "patch_size": MAX_PATCH_SIZE,
    }
    for name, high in limits.items():
        if name in network:
            integer(path, f"network.{name}", network[name], 1, high)
    for name, high in (("channels", MAX_WIDTH), ("blocks_per_level", MAX_BLOCKS)):
        if name in network:
            integer_list(path, f"network.{name}", network[name], 1, high, MAX_LEVELS)
    if "time_scale" in network:
        number(path, "network.time_scale", network["time_scale"], 1e-6, 1e6)
    if "dropout" in network:
        number(path, "network.dropout", network["dropout"], 0.0, 0.99)
    try:
        config = UNetConfig.from_dict(network)
    except (TypeError, ValueError) as error:
        raise StmZooError(f"{path}: network is invalid ({error}): {_FIX}.") from None

    expected = (2, True) if time_conditioned else (1, False)
    if (config.in_channels, config.time_conditioning) != expected:
        raise StmZooError(
            f"{path}: network has in_channels={config.in_channels} and time_conditioning="
            f"{str(config.time_conditioning).lower()} but this family needs {expected[0]} and "
            f"{str(expected[1]).lower()}: {_FIX}."
        )
    if config.out_channels != 1:
        raise _bad(path, "network.out_channels", config.out_channels, "1 (one predicted image)")
    parameters = config.parameter_count()
    if parameters > MAX_PARAMETERS:
        raise StmZooError(
            f"{path}: network describes {parameters:,} parameters, more than the "
            f"{MAX_PARAMETERS:,} stm-zoo loads: {_FIX}."
        )
    if tile_size % config.size_multiple:
        raise _bad(path, "tile_size", tile_size, f"a multiple of {config.size_multiple}")
    for level, width in enumerate(config.channels):
        side = tile_size // (config.patch_size * 2**level)
        if side * side * width > MAX_FEATURE_ELEMENTS:
            raise StmZooError(
                f"{path}: tile_size {tile_size} with network.channels[{level}]={width} makes "
                f"feature maps of {side * side * width:,} values, more than the "
                f"{MAX_FEATURE_ELEMENTS:,} stm-zoo allows: {_FIX}."
            )
    tokens = (tile_size // config.size_multiple) ** 2
    if config.attention and tokens > MAX_ATTENTION_TOKENS:
        raise StmZooError(
            f"{path}: tile_size {tile_size} gives the self-attention {tokens:,} positions, more "
            f"than the {MAX_ATTENTION_TOKENS:,} stm-zoo allows: {_FIX}."
        )
    return config


def check_weights_size(path: Path, parameters: int) -> None:
    """Refuse, unread, a safetensors file far larger than the network it must fill."""
    size = path.stat().st_size
    most = 4 * parameters + WEIGHTS_SLACK_BYTES
    if size > most:
        raise StmZooError(
            f"{path} is {size:,} bytes but its config.json network needs at most {most:,}: "
            "download the entry again."
        )


def check_weights(path: Path, state: dict[str, Any]) -> None:
    """Every tensor is floating point and finite (NaN weights give an all-NaN restoration).

    Raises:
        StmZooError: naming the file and the first bad tensor.
    """
    import torch

    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise StmZooError(
                f"{path}: tensor {_shown(name)} has dtype {tensor.dtype}, not a floating-point "
                "type: download the entry again."
            )
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise StmZooError(
                f"{path}: tensor {_shown(name)} holds {bad:,} NaN or infinite values, so the "
                "network would output NaN: download the entry again or retrain it."
            )

"""UNetConfig checks its field types and ranges, and counts its parameters without building."""

from __future__ import annotations

import pytest

from stm_zoo.nn import UNet, UNetConfig

TINY = {"channels": (8, 16), "blocks_per_level": (1, 1), "middle_blocks": 1, "norm_groups": 4}


@pytest.mark.parametrize(
    "config",
    [
        UNetConfig.small(),
        UNetConfig.large(),
        UNetConfig.autoencoder(),
        UNetConfig.small(residual=True, global_context=True),
        UNetConfig(**TINY, attention=True, attention_heads=2, patch_size=3),
        UNetConfig(
            channels=(8,),
            blocks_per_level=(3,),
            middle_blocks=2,
            norm_groups=4,
            time_conditioning=False,
            in_channels=1,
            out_channels=2,
        ),
    ],
)
def test_parameter_count_matches_the_built_network(config: UNetConfig) -> None:
    assert config.parameter_count() == sum(p.numel() for p in UNet(config).parameters())


def test_parameter_count_of_a_huge_config_is_instant() -> None:
    config = UNetConfig(channels=(8,), blocks_per_level=(10**6,), norm_groups=4)
    assert config.parameter_count() > 10**9


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"norm_groups": 0}, "norm_groups=0 must be >= 1"),
        ({"attention": True, "attention_heads": 0}, "attention_heads=0 must be >= 1"),
        ({"attention_heads": -1}, "attention_heads=-1 must be >= 1"),
        ({"channels": (8, 0), "norm_groups": 1}, "every width"),
        ({"channels": ("8", "16")}, "channels must be a list of integers, not tuple"),
        ({"channels": (8.0, 16)}, "channels must be a list of integers"),
        ({"norm_groups": True}, "norm_groups must be an integer, not bool"),
        ({"patch_size": 2.0}, "patch_size must be an integer, not float"),
        ({"attention": 1}, "attention must be true or false, not int"),
        ({"time_scale": "1"}, "time_scale must be a number, not str"),
        ({"time_scale": float("inf")}, "time_scale must be positive and finite"),
        ({"time_scale": float("nan")}, "time_scale must be positive and finite"),
        ({"dropout": float("nan")}, "dropout must be in"),
    ],
)
def test_bad_fields_raise_value_error(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UNetConfig(**{**TINY, **overrides})

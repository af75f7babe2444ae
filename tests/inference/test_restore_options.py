"""`RestoreOptions`: every field checked once when made, and `restore(scan, options)` equal to
`restore(scan, **the same fields)`."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

from stm_zoo import RestoreOptions, RestoreResult, restore
from stm_zoo.errors import StmZooError
from stm_zoo.io import Scan

PITCH_M = 100e-9 / 512  # the models' pixel size


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"task": "sr3"}, "task"),
        ({"family": "gan"}, "family"),
        ({"size": "huge"}, "size"),
        ({"family": "ae", "size": "small"}, "size"),  # ae comes in large only
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"samples": 0}, "samples"),
        ({"seed": -1}, "seed"),
        ({"device": "tpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"dtype": "float16"}, "dtype"),
        ({"tile": 4}, "tile"),
        ({"overlap": -1}, "overlap"),
        ({"tile": 64, "overlap": 64}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_grid_pixels": 0}, "max_grid_pixels"),
    ],
)
def test_each_bad_field_is_a_one_sentence_error_naming_it(fields: dict, named: str) -> None:
    with pytest.raises(StmZooError, match=named) as raised:
        RestoreOptions(**fields)
    message = str(raised.value)
    assert message.endswith(".") and "\n" not in message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_good_devices_and_defaults_are_accepted(device: str) -> None:
    options = RestoreOptions(device=device, dtype="bfloat16", seed=0, tile=64, overlap=16)
    assert options.device == device
    defaults = RestoreOptions()
    assert (defaults.task, defaults.family, defaults.size, defaults.steps) == (
        "restore",
        "fm",
        "small",
        2,
    )
    assert (defaults.samples, defaults.seed, defaults.overlap, defaults.batch_size) == (
        1,
        None,
        32,
        8,
    )


def test_options_are_frozen_and_replace_checks_again() -> None:
    options = RestoreOptions()
    with pytest.raises(FrozenInstanceError):
        options.steps = 5  # type: ignore[misc]
    with pytest.raises(StmZooError, match="samples"):
        replace(options, samples=0)


def surface(shape: tuple[int, int] = (64, 80)) -> Scan:
    y, x = np.mgrid[: shape[0], : shape[1]]
    rng = np.random.default_rng(0)
    z = 0.03 * np.cos(2 * np.pi * x / 3.94) + 0.002 * y + 0.01 * rng.standard_normal(shape)
    return Scan((z * 1e-9).astype(np.float32), scan_size_m=(shape[1] * PITCH_M, shape[0] * PITCH_M))


@pytest.mark.parametrize("task", ["restore", "sr2"])
def test_options_and_keywords_give_the_same_result(task: str) -> None:
    scan = surface()
    fields = {"task": task, "family": "classical", "seed": 3, "keep_measured": True}
    by_options = restore(scan, RestoreOptions(**fields))
    by_keywords = restore(scan, **fields)
    assert isinstance(by_options, RestoreResult)
    np.testing.assert_array_equal(by_options.scan.data, by_keywords.scan.data)
    assert by_options.warnings == by_keywords.warnings
    assert by_options.options == by_keywords.options
    assert by_options.options.task == task and by_options.options.keep_measured


def test_keywords_override_the_options_and_the_result_records_what_ran() -> None:
    base = RestoreOptions(family="classical", samples=1)
    result = restore(surface(), base, task="sr2", device="cpu")
    assert result.scan.shape == (128, 80)
    assert result.options == replace(base, task="sr2", device="cpu")
    with pytest.raises(StmZooError, match="steps"):
        restore(surface(), base, steps=0)


def test_a_given_model_decides_family_size_device_and_precision() -> None:
    from stm_zoo.zoo import load_model

    model = load_model("sr2", "classical", device="cpu")
    result = restore(surface(), RestoreOptions(task="sr2", family="fm", size="large"), model=model)
    ran = result.options
    assert (ran.family, ran.size, ran.device, ran.dtype) == ("classical", "small", "cpu", "float32")
    assert result.model == "sr2/classical-small"
    with pytest.raises(StmZooError, match="for task sr2, not restore"):
        restore(surface(), model=model)

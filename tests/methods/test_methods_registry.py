"""The family registry: names, network presets, errors, and the light package import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stm_zoo.errors import StmZooError
from stm_zoo.methods import autoencoder, ddim, get_baseline, get_method
from stm_zoo.methods import flow_matching as fm
from stm_zoo.methods.classical import classical_restore
from stm_zoo.nn import UNetConfig
from stm_zoo.registry import (
    CLASSICAL,
    FAMILIES,
    LEARNED_FAMILIES,
    SAMPLED_FAMILIES,
    is_learned,
    takes_steps,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_family_names():
    assert FAMILIES == ("fm", "ddim", "ddim-fft", "ae", "classical")
    assert FAMILIES[:-1] == LEARNED_FAMILIES
    assert CLASSICAL == "classical"
    assert [f for f in FAMILIES if not is_learned(f)] == [CLASSICAL]
    assert [f for f in FAMILIES if takes_steps(f)] == list(SAMPLED_FAMILIES)


def test_each_family_has_its_objective_and_sampler():
    assert (get_method("fm").loss, get_method("fm").sample) == (fm.loss, fm.sample)
    assert (get_method("ddim").loss, get_method("ddim").sample) == (ddim.loss, ddim.sample)
    assert (get_method("ddim-fft").loss, get_method("ddim-fft").sample) == (
        ddim.loss_fft,
        ddim.sample,
    )
    assert (
        get_method("ae").loss is autoencoder.loss and get_method("ae").sample is autoencoder.sample
    )
    assert [get_method(f).uses_noise for f in LEARNED_FAMILIES] == [True, True, True, False]
    assert all(get_method(f).uses_noise == takes_steps(f) for f in LEARNED_FAMILIES)
    assert all(get_method(f).name == f for f in LEARNED_FAMILIES)


def test_network_presets_per_family_and_size():
    assert get_method("fm").network_config("small") == UNetConfig.small(time_scale=1000.0)
    assert get_method("fm").network_config("large") == UNetConfig.large(time_scale=1000.0)
    assert get_method("ddim").network_config("small") == UNetConfig.small(time_scale=1.0)
    assert get_method("ddim-fft").network_config("large") == UNetConfig.large(time_scale=1.0)
    assert get_method("ae").network_config("large") == UNetConfig.autoencoder()
    for family, size in (("ae", "small"), ("ddim-fft", "small"), ("fm", "huge")):
        with pytest.raises(StmZooError, match="--size"):
            get_method(family).network_config(size)


def test_classical_is_a_baseline_without_a_network():
    baseline = get_baseline("classical")
    assert (baseline.name, baseline.restore) == ("classical", classical_restore)
    image = np.random.default_rng(0).standard_normal((16, 12))
    assert np.array_equal(baseline.restore(image, "sr2"), classical_restore(image, "sr2"))


def test_classical_and_unknown_families_are_clear_errors():
    with pytest.raises(StmZooError, match=r"get_baseline\('classical'\)\.restore"):
        get_method("classical")
    with pytest.raises(StmZooError, match="has a network"):
        get_baseline("fm")
    for lookup in (get_method, get_baseline):
        with pytest.raises(StmZooError, match="choose one of fm, ddim, ddim-fft, ae, classical"):
            lookup("gan")


def test_package_import_is_light():
    code = (
        "import sys, stm_zoo.methods as m; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'stm_zoo.methods.flow_matching' not in sys.modules; print(m.FAMILIES)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_classical_is_named_only_in_the_registry():
    """Callers ask the registry what a family can do (`is_learned`, `takes_steps`) or import
    `CLASSICAL`; the name itself is spelt once, in `stm_zoo/registry.py` (tests aside)."""
    literal = '"' + "classical" + '"'
    found = []
    for path in REPO_ROOT.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).parts
        if parts[0] == "tests" or any(part.startswith(".") for part in parts):
            continue
        if literal in path.read_text(encoding="utf-8"):
            found.append("/".join(parts))
    assert sorted(found) == ["stm_zoo/registry.py"]

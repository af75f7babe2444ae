"""The family registry: names, network presets, errors, and the light package import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stm_zoo.errors import StmZooError
from stm_zoo.methods import FAMILIES, LEARNED_FAMILIES, autoencoder, ddim, get_method
from stm_zoo.methods import flow_matching as fm
from stm_zoo.nn import UNetConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_family_names():
    assert FAMILIES == ("fm", "ddim", "ddim-fft", "ae", "classical")
    assert FAMILIES[:-1] == LEARNED_FAMILIES


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


def test_classical_and_unknown_families_are_clear_errors():
    with pytest.raises(StmZooError, match=r"stm_zoo\.methods\.classical\.classical_restore"):
        get_method("classical")
    with pytest.raises(StmZooError, match="choose one of fm, ddim, ddim-fft, ae, classical"):
        get_method("gan")


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

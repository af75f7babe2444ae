"""The family registry: names, network presets, errors, and the light package import."""

from __future__ import annotations

import re
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
    EVALUATIONS_PER_STEP,
    FAMILIES,
    FAMILY_SIZES,
    FOURIER_LOSS_FAMILIES,
    LEARNED_FAMILIES,
    MODEL_LABELS,
    SAMPLED_FAMILIES,
    SIZES,
    evaluations_per_step,
    has_fourier_loss,
    is_learned,
    model_label,
    takes_steps,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

_FAMILY = r"""['"](?:fm|ddim|ddim-fft|ae)['"]"""
FAMILY_COMPARISON = re.compile(
    "|".join(
        (
            rf"(?:==|!=)\s*{_FAMILY}",
            rf"{_FAMILY}\s*(?:==|!=)",
            rf"\bin\s*[(\[{{][^)\]}}]*{_FAMILY}",
            rf"\bcase\s+{_FAMILY}",
        )
    )
)
"""A learned family's name compared with `==` / `!=`, tested for membership in a literal, or
matched by `case`; dict keys (`"ae": ...`) and calls (`get_method("fm")`) are not comparisons."""


def project_sources() -> dict[str, str]:
    """{path relative to the repository: text} of every Python file but the tests."""
    sources = {}
    for path in REPO_ROOT.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).parts
        if parts[0] == "tests" or any(part.startswith(".") for part in parts):
            continue
        sources["/".join(parts)] = path.read_text(encoding="utf-8")
    return sources


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
    found = [path for path, text in project_sources().items() if literal in text]
    assert sorted(found) == ["stm_zoo/registry.py"]


def test_the_family_comparison_pattern():
    compared = [
        'family == "ae"',
        "spec.family != 'ae'",
        '"ddim-fft" == family',
        'family in ("fm", "ddim", "ddim-fft")',
        'family not in ("ae",)',
        'family in {"input", "ddim"}',
        'case "fm":',
    ]
    not_compared = [
        '{"ae": "Autoencoder", "fm": "FM"}',
        'get_method("fm")',
        "family == CLASSICAL or takes_steps(family)",
        'family in ("input", CLASSICAL)',
        'name = "fm-small"',
    ]
    assert all(FAMILY_COMPARISON.search(line) for line in compared)
    assert not any(FAMILY_COMPARISON.search(line) for line in not_compared)


def test_families_are_compared_only_in_the_registry():
    """What a family can do is asked of the registry (`takes_steps`, `has_fourier_loss`,
    `model_label`, ...), never decided by comparing its name outside `stm_zoo/registry.py`."""
    found = [
        f"{path}:{number}: {line.strip()}"
        for path, text in project_sources().items()
        if path != "stm_zoo/registry.py"
        for number, line in enumerate(text.splitlines(), 1)
        if FAMILY_COMPARISON.search(line)
    ]
    assert found == []


def test_what_tells_the_families_apart():
    assert FOURIER_LOSS_FAMILIES == ("ddim-fft",)
    assert [f for f in FAMILIES if has_fourier_loss(f)] == ["ddim-fft"]
    assert set(FOURIER_LOSS_FAMILIES) <= set(SAMPLED_FAMILIES)
    assert [evaluations_per_step(f) for f in LEARNED_FAMILIES] == [2, 1, 1, 1]
    assert [model_label(f, "large") for f in FAMILIES] == [
        "FM Large",
        "DDIM Large",
        "DDIM Large (FFT)",
        "Autoencoder",
        "Classical (row alignment + scars)",
    ]
    assert (
        model_label("fm", "small") == "FM Small"
        and model_label(CLASSICAL) == MODEL_LABELS[CLASSICAL]
    )


def test_every_table_keyed_by_family_covers_the_registry():
    """Data tables keyed by family live beside their users; each has an entry per family."""
    from evaluation.rows import FAMILY_RANK
    from expert_eval.configurations import _FAMILY_NAMES
    from stm_zoo.bench.measure import BENCH_MODELS
    from stm_zoo.cards import FAMILY_TEXT
    from training.entry import LOSS_TEXT, SAMPLER_TEXT, X0_WEIGHT_TEXT
    from webapp.models import FAMILY_LABELS

    for table in (MODEL_LABELS, FAMILY_LABELS, _FAMILY_NAMES):
        assert tuple(table) == FAMILIES
    for table in (FAMILY_SIZES, EVALUATIONS_PER_STEP, FAMILY_TEXT, SAMPLER_TEXT, LOSS_TEXT):
        assert tuple(table) == LEARNED_FAMILIES
    assert tuple(X0_WEIGHT_TEXT) == SAMPLED_FAMILIES
    assert set(FAMILIES) <= set(FAMILY_RANK)
    assert all(set(sizes) <= set(SIZES) for sizes in FAMILY_SIZES.values())
    assert BENCH_MODELS == (
        ("ae", "large"),
        ("ddim", "small"),
        ("ddim", "large"),
        ("fm", "small"),
        ("fm", "large"),
    )
    assert all(size in FAMILY_SIZES[family] for family, size in BENCH_MODELS)

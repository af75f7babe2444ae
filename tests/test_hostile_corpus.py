"""A fast slice of the hostile-input corpus (scripts/hostile_corpus.py, issue 13): each input
through `info`, `convert` and `restore --model classical` (zoo entries through `zoo list` and
`restore --model fm`) ends in a clean exit code with no traceback."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from stm_zoo.__main__ import main

REPO = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("hostile_corpus", REPO / "scripts/hostile_corpus.py")
hostile = sys.modules["hostile_corpus"] = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(hostile)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCANS = [
    "empty-sxm",
    "empty-npy",
    "empty-png",
    "ext-png-as-sxm",
    "ext-npy-as-png",
    "ext-unknown",
    "png-huge-header",
    "npy-object-pickle",
    "npy-3d",
    "npy-lying-shape",
    "npy-all-nan",
    "sxm-nan-rows",
    "npy-5.8e30-patch",
    "sxm-3e38-everywhere",
    "npy-flat-zero",
    "sxm-flat-1nm",
    "npy-tiny-1x1",
    "sxm-tiny-2x2",
    "sxm-pixels-1e6",
    "sxm-range-nan",
    "name-newline",
    "name-dash",
    "name-long",
]
ENTRIES = [
    "entry-valid",
    "entry-norm-groups-0",
    "entry-pixel-size-string",
    "entry-blocks-1e6",
    "entry-nested-json",
    "entry-weights-nan",
]


def pairs() -> list:
    out = []
    for name in SCANS + ENTRIES:
        commands = hostile.ENTRY_COMMANDS if name.startswith("entry-") else hostile.SCAN_COMMANDS
        for command in commands:
            out.append(pytest.param(name, command, id=f"{command}-{name}"))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The synthetic corpus (no ../shared/data copies), built once for the module."""
    workdir = tmp_path_factory.mktemp("hostile")
    cases = hostile.build_corpus(workdir / "corpus", shared=None)
    (workdir / "empty-zoo").mkdir()
    import numpy as np

    np.save(workdir / "probe.npy", hostile.lattice())
    return {c.name: c for c in cases}, workdir


def test_the_smoke_cases_exist(corpus) -> None:
    cases, _ = corpus
    assert set(SCANS + ENTRIES) <= set(cases)
    assert len(cases) > 100  # the full synthetic corpus the script runs


@pytest.mark.parametrize(("name", "command"), pairs())
def test_clean_exit_without_traceback(corpus, name: str, command: str, monkeypatch) -> None:
    cases, workdir = corpus
    case = cases[name]
    scratch = workdir / "out" / name / command
    scratch.mkdir(parents=True, exist_ok=True)
    zoo = case.path if case.kind == "entry" else workdir / "empty-zoo"
    monkeypatch.setenv("STM_ZOO_DIR", str(zoo))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    argv = hostile.command_line(command, case, scratch, workdir / "probe.npy")
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    assert code in hostile.CLEAN_EXITS[command], f"{command} {name}: exit {code}"
    if name == "entry-valid":
        assert code == 0


def test_the_runner_reports_exit_code_traceback_and_memory(corpus) -> None:
    """One real subprocess through the script's runner (the script's own mechanics)."""
    cases, workdir = corpus
    outcome = hostile.run_case(cases["empty-npy"], "info", workdir, 60, 4 * 2**30)
    assert (outcome.exit_code, outcome.traceback) == (2, False)
    assert "empty" in outcome.last_line and outcome.peak_rss_mb > 10 and outcome.clean
    table = hostile.markdown_table(hostile.SUMMARY_HEADER, hostile.summary_rows([outcome]))
    assert "| info | 1 | 0 | 0 | 1 | 0 | 0 | 0 |" in table

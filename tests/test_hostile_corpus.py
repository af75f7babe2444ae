"""A fast slice of the hostile-input corpus (scripts/hostile_corpus.py, issue 13), built from
synthetic bytes and, when ../shared/data is present, a few truncated or bit-flipped copies of its
real files: each input through `info`, `convert` and `restore --model classical` (zoo entries
through `zoo list` and `restore --model fm`; two same-named files in two folders through `restore`
by name and by folder) ends in a clean exit code with no traceback, and a run that exits 0 leaves
its results where promised, finite where the input was and not constant unless the input was."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
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
REAL = [
    "real-si-7x7-012-sxm-flip-32",
    "real-example-topo-sxm-cut-half",
    "real-test-gwy-flip-header-8",
    "real-20201111--4-1-z-mtrx-flip-32",
    "real-20201111--4-1-z-mtrx-params-cut",
    "real-brockley-23-2-forward-npy-flip-header-8",
]
"""One or two copies per format of ../shared/data (.sxm, .gwy, the MATRIX pair, .npy), chosen
so that some are read and restored (exit 0) and some refused."""
NAMES = ["names-two-scan-sxm"]
ENTRIES = [
    "entry-valid",
    "entry-norm-groups-0",
    "entry-pixel-size-string",
    "entry-blocks-1e6",
    "entry-nested-json",
    "entry-weights-nan",
]


def pairs(names: list[str], kind: str) -> list:
    return [
        pytest.param(name, command, id=f"{command}-{name}")
        for name in names
        for command in hostile.COMMANDS[kind]
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The synthetic corpus and the `REAL` copies of ../shared/data files (when it is present),
    built once for the module."""
    workdir = tmp_path_factory.mktemp("hostile")
    cases = hostile.build_corpus(workdir / "corpus", hostile.SHARED_DATA, real_cases=REAL)
    (workdir / "empty-zoo").mkdir()
    np.save(workdir / "probe.npy", hostile.lattice())
    return {c.name: c for c in cases}, workdir


def run_in_process(corpus, name: str, command: str, scratch: Path, monkeypatch, capsys) -> int:
    """Run `command` on case `name` as the script would, its outputs under `scratch`; assert a
    clean outcome and return the exit code."""
    cases, workdir = corpus
    case = cases[name]
    zoo = case.path if case.kind == "entry" else workdir / "empty-zoo"
    monkeypatch.setenv("STM_ZOO_DIR", str(zoo))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    probe = workdir / "probe.npy"
    capsys.readouterr()
    try:
        code = main(hostile.command_line(command, case, scratch, probe))
    except SystemExit as exit_:  # argparse
        code = exit_.code
    stderr = capsys.readouterr().err
    assert code in hostile.CLEAN_EXITS[command], f"{command} {name}: exit {code}: {stderr}"
    check = hostile.check_run(command, case, scratch, probe, code, stderr)
    assert check.sound, f"{command} {name}: {hostile.verdict(check)}"
    return code


def test_the_smoke_cases_exist(corpus) -> None:
    cases, _ = corpus
    assert set(SCANS + ENTRIES + NAMES) <= set(cases)
    if hostile.SHARED_DATA.is_dir():
        assert set(REAL) <= set(cases)
    assert len(cases) - sum(name.startswith("real-") for name in cases) > 100  # all synthetic


@pytest.mark.parametrize(
    ("name", "command"), pairs(SCANS, "scan") + pairs(ENTRIES, "entry") + pairs(NAMES, "names")
)
def test_clean_exit_without_traceback(corpus, name, command, tmp_path, monkeypatch, capsys) -> None:
    code = run_in_process(corpus, name, command, tmp_path, monkeypatch, capsys)
    if name == "entry-valid":
        assert code == 0


@pytest.mark.parametrize(("name", "command"), pairs(REAL, "scan"))
def test_real_file_copies(
    shared_data, corpus, name, command, tmp_path, monkeypatch, capsys
) -> None:
    run_in_process(corpus, name, command, tmp_path, monkeypatch, capsys)


def test_same_names_given_as_the_folder_are_both_restored(
    corpus, tmp_path, monkeypatch, capsys
) -> None:
    """The folder run writes one result per subfolder, and they differ (two inputs, two results)."""
    scratch = tmp_path
    assert run_in_process(corpus, NAMES[0], "restore-folder", scratch, monkeypatch, capsys) == 0
    written = sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*.sxm"))
    assert written == ["a/scan_Z-forward_restore.sxm", "b/scan_Z-forward_restore.sxm"]
    a, b = (scratch / path for path in written)
    assert a.read_bytes() != b.read_bytes()


def test_the_checks_catch_nan_constant_and_missing_results(corpus, tmp_path) -> None:
    """`check_run` flags an exit-0 result that is NaN where the input was finite, one that is
    constant, and one that is not there."""
    cases, workdir = corpus
    case, probe = cases["sxm-nan-rows"], workdir / "probe.npy"
    source = hostile.load_scan(case.path)
    wrong = {"nonfinite": np.full_like(source.data, np.nan), "constant": 0 * source.data}
    for flag, data in wrong.items():
        scratch = tmp_path / flag
        scratch.mkdir()
        hostile.save_scan(source.replace(data=data), scratch / "converted.png")
        check = hostile.check_run("convert", case, scratch, probe, 0, "")
        assert getattr(check, flag) and not check.sound
    check = hostile.check_run("restore", case, tmp_path, probe, 0, "")
    assert check.problem == "exit 0 but no scan_Z-forward_restore.sxm"


def test_the_runner_reports_exit_code_traceback_and_memory(corpus) -> None:
    """One real subprocess through the script's runner (the script's own mechanics)."""
    cases, workdir = corpus
    outcome = hostile.run_case(cases["empty-npy"], "info", workdir, 60, 4 * 2**30)
    assert (outcome.exit_code, outcome.traceback) == (2, False)
    assert "empty" in outcome.last_line and outcome.peak_rss_mb > 10 and outcome.clean
    table = hostile.markdown_table(hostile.SUMMARY_HEADER, hostile.summary_rows([outcome]))
    assert "| info | 1 | 0 | 0 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1 |" in table

"""Shared pytest fixtures: the reference data beside the checkout; quiet OpenMP threads."""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads must sleep, not spin: on a small shared CPU spinning threads stall each other
# (measured 20x slower runs). Set before any test imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


SHARED_DATA_SKIP = "../shared/data is not present beside the checkout"


def pytest_report_header(config: pytest.Config) -> str:
    """Say up front whether the tests that read real instrument files can run."""
    if SHARED_DATA.is_dir():
        return f"reference data: {SHARED_DATA} (real instrument files)"
    return (
        f"reference data: {SHARED_DATA} not found: tests that read real instrument files "
        "(scans, the Si(001):H reference) skip; CI has it"
    )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Count the tests skipped for want of ../shared/data, so a fresh clone knows why."""
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if SHARED_DATA_SKIP in str(r.longrepr)
    ]
    if skipped:
        n = len(skipped)
        tests = "1 test that needs" if n == 1 else f"{n} tests that need"
        terminalreporter.write_line(
            f"../shared/data not found: {tests} real instrument files skipped (put the reference "
            "data beside the checkout to run them)."
        )


@pytest.fixture(autouse=True)
def private_run_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """No test may write run state into the user's real cache (`~/.cache/stm-zoo/runs`)."""
    monkeypatch.setenv("STM_ZOO_RUNS", str(tmp_path_factory.getbasetemp() / "runs"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real instrument files); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(SHARED_DATA_SKIP)
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir(shared_data: Path) -> Path:
    """../shared/data/spm-fixtures."""
    return shared_data / "spm-fixtures"


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread: tiny tensors gain nothing from a second one, and on a shared 2-core
    machine OpenMP barriers make two-thread runs of them 10-40x slower whenever another process
    holds a core. Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def chromium() -> tuple[str, list[str]]:
    """(executable, arguments) of Debian's headless Chromium for Playwright; skips when absent."""
    executable = Path("/usr/bin/chromium")
    if not executable.is_file():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)")
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    return str(executable), args

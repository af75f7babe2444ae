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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real instrument files); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir(shared_data: Path) -> Path:
    """../shared/data/spm-fixtures."""
    return shared_data / "spm-fixtures"

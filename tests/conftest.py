"""Shared pytest fixtures: the read-only reference data beside the checkout, and quiet torch threads."""

from __future__ import annotations

from pathlib import Path

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

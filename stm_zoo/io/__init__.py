"""Readers and writers for STM scan files; everything comes out as a `Scan` in SI units."""

from __future__ import annotations

from stm_zoo.errors import STMFileError
from stm_zoo.io.scan import Scan

__all__ = ["STMFileError", "Scan"]

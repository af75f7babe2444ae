"""Project exceptions: every error a user can cause is one of these, with a one-sentence message."""

from __future__ import annotations


class StmZooError(Exception):
    """Base class: a problem the user can fix (bad file, missing weights, wrong option)."""


class STMFileError(StmZooError):
    """A scan file cannot be read or written; the message names the file and what to do."""


class ModelNotFoundError(StmZooError):
    """A zoo entry is not available locally or on the Hub; the message says how to get it."""

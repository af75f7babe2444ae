"""Blinding: who a rater is (`rater_key`), and the per-rater orders of trials and outputs.

The order in which a rater meets the trials, and the order of the outputs (labelled A, B, C, ...)
within a trial, are drawn from HMAC-SHA256(study secret, rater, trial). They are fixed for one
rater (a reload shows the same screen) and independent between raters; without the secret, which
never leaves the server, the order cannot be predicted.
"""

from __future__ import annotations

import hashlib
import hmac
import string

import numpy as np

from stm_zoo.errors import StmZooError

LABELS = string.ascii_uppercase
MAX_RATER_NAME = 64


def rater_key(name: str) -> str:
    """The identity of a rater: the name with whitespace collapsed, case-folded.

    Raises:
        StmZooError: an empty name, one longer than 64 characters, or control characters.
    """
    if not isinstance(name, str):
        raise StmZooError("Enter your name or rater id (text) before starting.")
    collapsed = " ".join(name.split())
    if not collapsed:
        raise StmZooError("Enter your name or rater id before starting.")
    if len(collapsed) > MAX_RATER_NAME:
        raise StmZooError(f"Your name or rater id is longer than {MAX_RATER_NAME} characters.")
    if any(not c.isprintable() for c in collapsed):
        raise StmZooError("Your name or rater id holds control characters: use plain text.")
    return collapsed.casefold()


def _digest(secret: str, *parts: str) -> bytes:
    message = "\x1f".join(parts).encode("utf-8")
    return hmac.new(bytes.fromhex(secret), message, hashlib.sha256).digest()


def presentation_order(secret: str, rater: str, trial_id: str, n: int) -> list[int]:
    """The order a rater sees a trial's outputs in: label LABELS[i] shows output order[i].

    Args:
        secret: the study's hex secret.
        rater: `rater_key(name)`.
        trial_id: the trial.
        n: number of outputs.

    Returns:
        A permutation of range(n), fixed for (rater, trial) and unpredictable without `secret`.
    """
    seed = int.from_bytes(_digest(secret, "outputs", rater, trial_id), "big")
    return [int(i) for i in np.random.default_rng(seed).permutation(n)]


def trial_sort_key(secret: str, rater: str, trial_id: str) -> bytes:
    """Sorting trials by this key gives each rater their own random order of the trials."""
    return _digest(secret, "trials", rater, trial_id)

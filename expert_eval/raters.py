"""Rater tokens: the secret that lets a rater, and only that rater, resume their trials.

A name says who a rater claims to be; the token proves it. A new rater types a name and is
issued a random token, shown once (`expert_eval.ui`); to carry on later they paste it, or open
the page with `?rater=<token>`. Typing a name that is already taken resumes nothing: the tab
asks for the token instead. The store keeps only the token's SHA-256 (a 99-bit random token
cannot be guessed from its hash), so a copy of the database or of its Hub export does not hold
working tokens.

`python -m expert_eval token NAME` (`expert_eval.cli`) issues a new token for an existing rater,
for one who lost theirs or whose answers predate tokens (schema 1 stores); their earlier token
stops working.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

TOKEN_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
"""Lower-case letters and digits without the look-alikes i, l, o, 0 and 1."""
TOKEN_GROUPS = 5
GROUP_LENGTH = 4
TOKEN_LENGTH = TOKEN_GROUPS * GROUP_LENGTH
QUERY_PARAMETER = "rater"
"""The page's query parameter that carries a token: `https://host/?rater=<token>`."""


def new_token() -> str:
    """A fresh random token, e.g. `k7vm-3qxa-...` (20 symbols of 31, about 99 bits)."""
    symbols = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
    groups = [symbols[i : i + GROUP_LENGTH] for i in range(0, TOKEN_LENGTH, GROUP_LENGTH)]
    return "-".join(groups)


def normalise_token(text: Any) -> str | None:
    """The token as stored (lower case, no spaces or dashes), or None when `text` is not one."""
    if not isinstance(text, str):
        return None
    plain = "".join(c for c in text.lower() if not c.isspace() and c != "-")
    if len(plain) != TOKEN_LENGTH or any(c not in TOKEN_ALPHABET for c in plain):
        return None
    return plain


def token_hash(text: Any) -> str | None:
    """SHA-256 (hex) of the normalised token, or None when `text` is not a token."""
    plain = normalise_token(text)
    return None if plain is None else hashlib.sha256(plain.encode("ascii")).hexdigest()

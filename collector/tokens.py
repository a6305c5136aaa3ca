"""Enrollment tokens: what IT hands an installer so that a new device may enroll.

A token is `dpt_<id>_<secret>`. The id is a lookup key and may appear in logs; the secret has
256 bits of entropy and is stored only as its SHA-256 (a slow hash adds nothing at that entropy),
so a copy of the database cannot be used to enroll.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from devposture.policy.cli_messages import BadValue

PREFIX = "dpt"
_TOKEN_RE = re.compile(r"^dpt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class TokenFormatError(BadValue):
    """The text is not an enrollment token at all (a typo, a truncated copy, a wrong file): a
    ValueError, worded in the reader's language (the enrollment port sends it worded)."""


@dataclass(frozen=True)
class Token:
    token_id: str
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}_{self.token_id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def new_token() -> Token:
    return Token(token_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def parse_token(text: str) -> Token:
    match = _TOKEN_RE.match(text.strip())
    if match is None:
        raise TokenFormatError(
            "this is not a devposture enrollment token (expected dpt_<16 hex>_<43 characters>)"
        )
    return Token(token_id=match.group(1), secret=match.group(2))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_matches(token: Token, stored_hash: str) -> bool:
    return hmac.compare_digest(token.secret_hash, stored_hash)

"""Admin credentials: what an IT person's tools present to the admin port.

A credential is `dpa_<16 hex id>_<43 characters>`, built exactly like an enrollment token
(`collector.tokens`: 256-bit secret, stored only as its SHA-256) so the two share their code and
their reasoning; only the prefix differs, so neither can be mistaken for the other. The id may
appear in logs and in the audit log; the secret never does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.collector.tokens import Token, new_token, secret_matches
from devposture.policy.cli_messages import BadValue

PREFIX = "dpa"
_CREDENTIAL_RE = re.compile(r"^dpa_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")

VIEWER = "viewer"
# An auditor reads what a viewer reads, plus the audit log and the evidence, and changes nothing.
AUDITOR = "auditor"
ADMIN = "admin"
# A role may do what every lower role may do.
ROLE_RANK = {VIEWER: 1, AUDITOR: 2, ADMIN: 3}
ROLES = tuple(ROLE_RANK)


class CredentialFormatError(BadValue):
    """The text is not an admin credential (a typo, a truncated copy, a token by mistake);
    worded in the reader's language where a person reads it (the command line, the admin
    port's refusal), its English where a log or the audit log keeps it."""


@dataclass(frozen=True)
class Credential(Token):
    """An admin credential: a token with its own prefix. `token_id` is the credential id."""

    def __str__(self) -> str:
        return f"{PREFIX}_{self.token_id}_{self.secret}"

    @property
    def credential_id(self) -> str:
        return self.token_id


def new_credential() -> Credential:
    token = new_token()
    return Credential(token_id=token.token_id, secret=token.secret)


def parse_credential(text: str) -> Credential:
    match = _CREDENTIAL_RE.match(text.strip())
    if match is None:
        if text.strip().startswith("dpt_"):
            raise CredentialFormatError(
                "this is not a devposture admin credential (that is an enrollment token):"
                " expected dpa_<16 hex>_<43 characters>, as printed by `devposture-collector"
                " admin add`"
            )
        raise CredentialFormatError(
            "this is not a devposture admin credential: expected dpa_<16 hex>_<43 characters>,"
            " as printed by `devposture-collector admin add`"
        )
    return Credential(token_id=match.group(1), secret=match.group(2))


def credential_matches(credential: Credential, stored_hash: str) -> bool:
    return secret_matches(credential, stored_hash)

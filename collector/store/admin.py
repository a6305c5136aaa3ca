"""Admin credentials and the audit log (`Store.admin`).

The audit log is append-only like the waiver and device logs: triggers refuse UPDATE and
DELETE, so whoever holds an admin credential cannot rewrite what they did. Credentials are
kept only as the SHA-256 of their secret, so a copy of the database grants nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

from devposture.collector.credentials import ROLES, Credential, credential_matches
from devposture.collector.evidence import chain
from devposture.collector.store.base import Part, from_us, maybe_from_us, text, to_us
from devposture.collector.store.chain import append
from devposture.log_format import redact  # the audit log redacts as the logs do


@dataclass(frozen=True)
class CredentialInfo:
    credential_id: str
    name: str
    role: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class AuditEntry:
    at: dt.datetime
    actor: str
    credential_id: str | None
    role: str
    command: str
    arguments: str
    outcome: str
    message: str
    peer: str


AUDIT_TEXT_LIMIT = 1000


def _short(text: str) -> str:
    """Cap what a caller can make the audit log hold per field (a remote caller chooses it)."""
    return text if len(text) <= AUDIT_TEXT_LIMIT else text[:AUDIT_TEXT_LIMIT] + "…"


class Admin(Part):
    """Admin credentials and the audit log (`Store.admin`)."""

    # --- credentials -----------------------------------------------------------------------

    def add_credential(
        self, credential: Credential, name: str, role: str, now: dt.datetime
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        with self._write() as cur:
            cur.execute(
                "INSERT INTO admin_credentials(credential_id, name, role, secret_hash, created_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (credential.credential_id, name, role, credential.secret_hash, to_us(now)),
            )

    def credentials(self) -> list[CredentialInfo]:
        rows = self._db.execute(
            "SELECT credential_id, name, role, created_us, revoked_us FROM admin_credentials"
            " ORDER BY created_us, credential_id"
        ).fetchall()
        return [CredentialInfo(r[0], r[1], r[2], from_us(r[3]), maybe_from_us(r[4])) for r in rows]

    def authenticate(self, credential: Credential) -> CredentialInfo | None:
        """The credential's record when its secret matches and it is not revoked, else None."""
        row = self._db.execute(
            "SELECT name, role, secret_hash, created_us, revoked_us FROM admin_credentials"
            " WHERE credential_id = ?",
            (credential.credential_id,),
        ).fetchone()
        if row is None or not credential_matches(credential, row[2]) or row[4] is not None:
            return None
        return CredentialInfo(credential.credential_id, row[0], row[1], from_us(row[3]), None)

    def credential_active(self, credential_id: str) -> bool:
        """Whether a credential exists and is not revoked (a dashboard session re-checks)."""
        row = self._db.execute(
            "SELECT revoked_us FROM admin_credentials WHERE credential_id = ?", (credential_id,)
        ).fetchone()
        return row is not None and row[0] is None

    def revoke_credential(self, credential_id: str, now: dt.datetime) -> bool:
        """Revoke a credential not revoked yet; False when there is no such credential."""
        with self._write() as cur:
            cur.execute(
                "UPDATE admin_credentials SET revoked_us = ? WHERE credential_id = ?"
                " AND revoked_us IS NULL",
                (to_us(now), credential_id),
            )
            return cur.rowcount == 1

    # --- audit log -------------------------------------------------------------------------

    def audit(
        self, now: dt.datetime, *, actor: str, credential_id: str | None, role: str,
        command: str, arguments: Mapping[str, str], outcome: str, message: str, peer: str,
    ) -> None:  # fmt: skip
        """Append one entry. Secrets are redacted from the arguments and the message here,
        the one way in, whatever the caller passed."""
        shown = json.dumps(
            {key[:100]: _short(redact(value)) for key, value in sorted(arguments.items())},
            ensure_ascii=False,
        )
        values = (to_us(now), text(redact(actor)), credential_id, role,
                  text(_short(redact(command))), text(shown), outcome,
                  text(_short(redact(message))), text(peer))  # fmt: skip
        with self._write() as cur:
            entry_id = int(cur.execute(
                "INSERT INTO audit_log(at_us, actor, credential_id, role, command, arguments,"
                " outcome, message, peer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING entry_id",
                values,
            ).fetchone()[0])  # fmt: skip
            record = chain.fields(chain.ADMIN_FIELDS, (entry_id, *values))
            append(cur, chain.ADMIN, str(entry_id), record)

    def audit_entries(self) -> list[AuditEntry]:
        rows = self._db.execute(
            "SELECT at_us, actor, credential_id, role, command, arguments, outcome, message,"
            " peer FROM audit_log ORDER BY entry_id"
        ).fetchall()
        return [AuditEntry(from_us(r[0]), *r[1:]) for r in rows]

"""The policy in force, in the database: every collector sharing it judges by the same policy,
and an edit applied on one reaches the others within seconds (they poll the version).

Each policy applied is kept as a version (its text, SHA-256, when and by which collector),
append-only: the history says which policy judged the fleet when.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from devposture.collector.store.base import Part, from_us, to_us


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    text: str
    sha256: str
    applied_at: dt.datetime
    applied_by: str


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Policies(Part):
    """The policy in force and its history (`Store.policies`)."""

    def publish(self, text: str, now: dt.datetime, by: str) -> PolicyVersion:
        """Make `text` the policy in force (a new version, unless it is already the newest);
        that version, as written or found in the same transaction (read after it, another
        collector's edit committed meanwhile was returned as this text's version)."""
        sha = digest(text)
        with self._write() as cur:
            row = cur.execute(
                "SELECT version, text, sha256, applied_us, applied_by FROM policy_versions"
                " ORDER BY version DESC LIMIT 1"
            ).fetchone()
            if row is not None and row[2] == sha:
                return PolicyVersion(int(row[0]), row[1], row[2], from_us(row[3]), row[4])
            version = 1 if row is None else int(row[0]) + 1
            cur.execute(
                "INSERT INTO policy_versions(version, text, sha256, applied_us, applied_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (version, text, sha, to_us(now), by),
            )
        return PolicyVersion(version, text, sha, from_us(to_us(now)), by)

    def latest(self) -> PolicyVersion | None:
        row = self._db.execute(
            "SELECT version, text, sha256, applied_us, applied_by FROM policy_versions"
            " ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return PolicyVersion(int(row[0]), row[1], row[2], from_us(row[3]), row[4])

    def version(self) -> int:
        """The newest version's number (0 before any): a cheap poll for changes."""
        row = self._db.execute("SELECT MAX(version) FROM policy_versions").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

"""Dashboard sessions in the database, so that a person signed in through one collector stays
signed in whichever collector a load balancer sends the next page to.

Only the SHA-256 of a session id is kept (the id is the cookie's secret: a copy of the
database opens no session). Times are wall-clock microseconds, the same on every collector.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from devposture.collector.store.base import Part


@dataclass
class SessionRow:
    credential_id: str
    name: str
    role: str
    csrf: str
    created_us: int
    last_seen_us: int
    lang: str | None


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class DashboardSessions(Part):
    """The dashboard's sessions (`Store.sessions`)."""

    def add(self, session_id: str, row: SessionRow, keep: int) -> None:
        """Keep a new session; beyond `keep` sessions the least recently seen ends."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO dashboard_sessions(session_hash, credential_id, name, role, csrf,"
                " created_us, last_seen_us, lang) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session_hash(session_id), row.credential_id, row.name, row.role, row.csrf,
                 row.created_us, row.last_seen_us, row.lang),
            )  # fmt: skip
            (count,) = cur.execute("SELECT COUNT(*) FROM dashboard_sessions").fetchone()
            if count > keep:
                cur.execute(
                    "DELETE FROM dashboard_sessions WHERE session_hash IN (SELECT session_hash"
                    " FROM dashboard_sessions ORDER BY last_seen_us LIMIT ?)",
                    (count - keep,),
                )

    def find(self, session_id: str) -> SessionRow | None:
        row = self._db.execute(
            "SELECT credential_id, name, role, csrf, created_us, last_seen_us, lang"
            " FROM dashboard_sessions WHERE session_hash = ?",
            (session_hash(session_id),),
        ).fetchone()
        return None if row is None else SessionRow(*row)

    def seen(self, session_id: str, last_seen_us: int, lang: str | None) -> None:
        with self._write() as cur:
            cur.execute(
                "UPDATE dashboard_sessions SET last_seen_us = ?, lang = ? WHERE session_hash = ?",
                (last_seen_us, lang, session_hash(session_id)),
            )

    def end(self, session_id: str) -> None:
        with self._write() as cur:
            cur.execute(
                "DELETE FROM dashboard_sessions WHERE session_hash = ?", (session_hash(session_id),)
            )

    def end_credential(self, credential_id: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM dashboard_sessions WHERE credential_id = ?", (credential_id,))

    def expire(self, idle_before_us: int, created_before_us: int) -> None:
        with self._write() as cur:
            cur.execute(
                "DELETE FROM dashboard_sessions WHERE last_seen_us < ? OR created_us < ?",
                (idle_before_us, created_before_us),
            )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM dashboard_sessions").fetchone()[0])

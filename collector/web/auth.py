"""Dashboard login: an admin credential, checked by the store, in exchange for a session.

The credential (`dpa_…`) is posted once, checked with `Store.authenticate` (its secret against
the stored SHA-256, and not revoked) and then forgotten: neither the cookie nor the session
holds it. The cookie carries only a random opaque session id (256 bits), HttpOnly and
SameSite=Strict (and Secure over TLS); the session itself lives in the database (only the
SHA-256 of its id), with an idle and an absolute expiry, so that every collector sharing the
database knows it. Each request checks again that the session's credential has
not been revoked since, so `admin revoke` ends a dashboard session at its next page.

State-changing requests (login, logout) are POSTs; logout must carry the session's own CSRF
token, and a POST whose Origin is another site is refused.

Guessing is throttled per client address (`collector/throttle.py`, as for enrollments): the
logins of one address are examined one at a time, slowed down after a few failures, and past
a bounded queue turned away with Retry-After, while another address logs in at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from devposture.collector.credentials import AUDITOR, ROLE_RANK, VIEWER
from devposture.collector.store import Store
from devposture.collector.store.sessions import SessionRow

COOKIE = "devposture_session"
LANG_COOKIE = "devposture_lang"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
# The sessions one credential keeps (its least recently seen end first): a person's browsers,
# with room to spare. Without it one credential logging in again and again reached
# MAX_SESSIONS and ended everyone else's sessions (the least recently seen go first).
SESSIONS_PER_CREDENTIAL = 20
# The role a credential needs to see the dashboard (every role ranks at least as viewer).
REQUIRED_RANK = ROLE_RANK[VIEWER]


@dataclass
class Session:
    session_id: str
    credential_id: str
    name: str
    role: str
    csrf: str
    created: float
    last_seen: float
    lang: str | None = None


class MemorySessions:
    """Sessions in this process's memory (a dashboard alone, and the tests)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def add(self, session: Session, keep: int) -> None:
        if len(self._by_id) >= keep:
            oldest = min(self._by_id.values(), key=lambda s: s.last_seen)
            del self._by_id[oldest.session_id]
        self._by_id[session.session_id] = session

    def find(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def seen(self, session: Session) -> None:
        """The session object is the one kept: nothing to write."""

    def end(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def end_credential(self, credential_id: str) -> None:
        for key in [k for k, s in self._by_id.items() if s.credential_id == credential_id]:
            del self._by_id[key]

    def expire(self, idle_before: float, created_before: float) -> None:
        for key in [k for k, s in self._by_id.items()
                    if s.last_seen < idle_before or s.created < created_before]:  # fmt: skip
            del self._by_id[key]

    def count(self) -> int:
        return len(self._by_id)

    def keep_latest(self, credential_id: str, keep: int) -> None:
        mine = sorted((s for s in self._by_id.values() if s.credential_id == credential_id),
                      key=lambda s: s.last_seen, reverse=True)  # fmt: skip
        for session in mine[keep:]:
            del self._by_id[session.session_id]


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


class StoredSessions:
    """Sessions in the database (`Store.sessions`): every collector sharing it knows them, so
    a load balancer may send each page to any of them. Call from the dashboard's database
    thread."""

    def __init__(self, store: Store) -> None:
        self._sessions = store.sessions
        self._store = store

    def add(self, session: Session, keep: int) -> None:
        self._sessions.add(session.session_id, SessionRow(
            session.credential_id, session.name, session.role, session.csrf,
            _us(session.created), _us(session.last_seen), session.lang,
        ), keep)  # fmt: skip

    def find(self, session_id: str) -> Session | None:
        row = self._sessions.find(session_id)
        if row is None:
            return None
        return Session(session_id, row.credential_id, row.name, row.role, row.csrf,
                       row.created_us / 1e6, row.last_seen_us / 1e6, row.lang)  # fmt: skip

    def seen(self, session: Session) -> None:
        self._sessions.seen(session.session_id, _us(session.last_seen), session.lang)

    def end(self, session_id: str) -> None:
        self._sessions.end(session_id)

    def end_credential(self, credential_id: str) -> None:
        self._sessions.end_credential(credential_id)

    def expire(self, idle_before: float, created_before: float) -> None:
        self._sessions.expire(_us(idle_before), _us(created_before))

    def count(self) -> int:
        return self._sessions.count()

    def keep_latest(self, credential_id: str, keep: int) -> None:
        self._store.dashboard.keep_latest_sessions(credential_id, keep)


class SessionBackend(Protocol):
    def add(self, session: Session, keep: int) -> None: ...
    def find(self, session_id: str) -> Session | None: ...
    def seen(self, session: Session) -> None: ...
    def end(self, session_id: str) -> None: ...
    def end_credential(self, credential_id: str) -> None: ...
    def expire(self, idle_before: float, created_before: float) -> None: ...
    def count(self) -> int: ...
    def keep_latest(self, credential_id: str, keep: int) -> None: ...


@dataclass
class Sessions:
    """Sessions by id, with an idle and an absolute expiry. `clock` is wall-clock seconds
    (replaceable in tests): the same on every collector that shares stored sessions."""

    idle_seconds: float = IDLE_SECONDS
    absolute_seconds: float = ABSOLUTE_SECONDS
    clock: Callable[[], float] = time.time
    backend: SessionBackend = field(default_factory=MemorySessions)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, credential_id: str, name: str, role: str, lang: str | None = None) -> Session:
        now = self.clock()
        session = Session(
            session_id=secrets.token_urlsafe(32), credential_id=credential_id, name=name,
            role=role, csrf=secrets.token_urlsafe(32), created=now, last_seen=now, lang=lang,
        )  # fmt: skip
        with self._lock:
            self._expire(now)
            # Room for this one among the credential's own first: the bound on all sessions
            # then never ends another person's for this credential's sake.
            self.backend.keep_latest(credential_id, max(0, SESSIONS_PER_CREDENTIAL - 1))
            self.backend.add(session, MAX_SESSIONS)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session for a cookie's id (touching it), or None."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self.backend.find(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                self.backend.end(session_id)
                return None
            session.last_seen = now
            self.backend.seen(session)
            return session

    def remember(self, session: Session) -> None:
        """Keep what changed in a session (its language)."""
        with self._lock:
            self.backend.seen(session)

    def end(self, session_id: str) -> None:
        with self._lock:
            self.backend.end(session_id)

    def end_credential(self, credential_id: str) -> None:
        """End every session opened with a credential (it was revoked)."""
        with self._lock:
            self.backend.end_credential(credential_id)

    def __len__(self) -> int:
        return self.backend.count()

    def _expired(self, session: Session, now: float) -> bool:
        return (
            now - session.last_seen > self.idle_seconds
            or now - session.created > self.absolute_seconds
        )

    def _expire(self, now: float) -> None:
        self.backend.expire(now - self.idle_seconds, now - self.absolute_seconds)


def may_view(role: str) -> bool:
    return ROLE_RANK.get(role, 0) >= REQUIRED_RANK


def may_read_audit(role: str) -> bool:
    """The audit log's page and download: the auditor and admin roles, as the admin port's
    `audit log`. It names who holds which credential, from which address, and every
    command's arguments; a viewer (a helpdesk screen) needs none of it, and the dashboard
    must not be a way round the admin port's rule."""
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[AUDITOR]


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(session.csrf, presented)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

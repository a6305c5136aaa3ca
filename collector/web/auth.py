"""Dashboard login: an admin credential, checked by the store, in exchange for a session.

The credential (`dpa_…`) is posted once, checked with `Store.authenticate` (its secret against
the stored SHA-256, and not revoked) and then forgotten: neither the cookie nor the session
holds it. The cookie carries only a random opaque session id (256 bits), HttpOnly and
SameSite=Strict (and Secure over TLS); the session itself lives in this process's memory with
an idle and an absolute expiry. Each request checks again that the session's credential has
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

from devposture.collector.admin.credentials import ROLE_RANK, VIEWER

COOKIE = "devposture_session"
LANG_COOKIE = "devposture_lang"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
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


@dataclass
class Sessions:
    """Sessions by id, in memory. `clock` is monotonic seconds (replaceable in tests)."""

    idle_seconds: float = IDLE_SECONDS
    absolute_seconds: float = ABSOLUTE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, credential_id: str, name: str, role: str) -> Session:
        now = self.clock()
        session = Session(
            session_id=secrets.token_urlsafe(32), credential_id=credential_id, name=name,
            role=role, csrf=secrets.token_urlsafe(32), created=now, last_seen=now,
        )  # fmt: skip
        with self._lock:
            self._expire(now)
            if len(self._by_id) >= MAX_SESSIONS:
                oldest = min(self._by_id.values(), key=lambda s: s.last_seen)
                del self._by_id[oldest.session_id]
            self._by_id[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session for a cookie's id (touching it), or None."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                del self._by_id[session_id]
                return None
            session.last_seen = now
            return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def end_credential(self, credential_id: str) -> None:
        """End every session opened with a credential (it was revoked)."""
        with self._lock:
            for key in [k for k, s in self._by_id.items() if s.credential_id == credential_id]:
                del self._by_id[key]

    def __len__(self) -> int:
        return len(self._by_id)

    def _expired(self, session: Session, now: float) -> bool:
        return (
            now - session.last_seen > self.idle_seconds
            or now - session.created > self.absolute_seconds
        )

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._by_id.items() if self._expired(s, now)]:
            del self._by_id[key]


def may_view(role: str) -> bool:
    return ROLE_RANK.get(role, 0) >= REQUIRED_RANK


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(session.csrf, presented)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

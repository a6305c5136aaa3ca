"""The pages of IT's records: waivers, enrollment tokens and the audit log (each also a
download, `downloads`).

They show what `waiver list --all`, `token list` and `audit log` print, in the company's time
zone, with no secret: a token is its id, group, uses and expiry (the store keeps only its
secret's hash). Waivers and tokens are few; the audit log grows with every command and
login, so it is read a page at a time, newest first, by its primary key.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from devposture.collector.clock import utcnow
from devposture.collector.compliance import Waiver
from devposture.collector.store.admin import AuditEntry
from devposture.collector.store.identity import TokenInfo
from devposture.collector.web.views import PAGE_SIZE, Views
from devposture.policy import Policy

ENDED_SHOWN = 100


@dataclass(frozen=True)
class WaiverView:
    waiver: Waiver
    hostname: str
    state: str  # active, pending, expired or revoked

    @property
    def ended_at(self) -> dt.datetime:
        return self.waiver.revoked_at or self.waiver.expires_at


def waiver_state(waiver: Waiver, at: dt.datetime) -> str:
    if waiver.revoked_at is not None and waiver.revoked_at <= at:
        return "revoked"
    if waiver.expires_at <= at:
        return "expired"
    return "active" if waiver.created_at <= at else "pending"


@dataclass(frozen=True)
class WaiversPage:
    at: dt.datetime
    policy: Policy
    in_force: list[WaiverView]  # soonest to expire first
    ended: list[WaiverView]  # the latest ENDED_SHOWN to end, the latest first
    ended_total: int


def waiver_views(views: Views, at: dt.datetime) -> list[WaiverView]:
    """Every waiver with its device's host name and its state at `at`."""
    recorded = views.store.waivers.recorded()
    hosts = views.store.dashboard.hostnames({w.device_id for w in recorded})
    return [WaiverView(w, hosts.get(w.device_id, ""), waiver_state(w, at)) for w in recorded]


def waivers(views: Views) -> WaiversPage:
    policy, at = views.policy(), utcnow()
    every = waiver_views(views, at)
    in_force = sorted((w for w in every if w.state in ("active", "pending")),
                      key=lambda w: (w.waiver.expires_at, w.waiver.waiver_id))  # fmt: skip
    ended = sorted((w for w in every if w.state in ("expired", "revoked")),
                   key=lambda w: (w.ended_at, w.waiver.waiver_id), reverse=True)  # fmt: skip
    return WaiversPage(at, policy, in_force, ended[:ENDED_SHOWN], len(ended))


@dataclass(frozen=True)
class TokenView:
    token: TokenInfo
    enrolled: int  # devices it enrolled
    state: str  # usable, used up, expired or revoked (TokenInfo.status)


@dataclass(frozen=True)
class TokensPage:
    at: dt.datetime
    policy: Policy
    tokens: list[TokenView]  # the newest first


def token_views(views: Views, at: dt.datetime) -> list[TokenView]:
    enrolled = views.store.dashboard.token_enrollments()
    return [
        TokenView(t, enrolled.get(t.token_id, 0), t.status(at))
        for t in reversed(views.store.identity.tokens())
    ]


def tokens(views: Views) -> TokensPage:
    policy, at = views.policy(), utcnow()
    return TokensPage(at, policy, token_views(views, at))


@dataclass(frozen=True)
class AuditPage:
    at: dt.datetime
    policy: Policy
    entries: list[AuditEntry]
    total: int
    page: int
    pages: int


def audit_log(views: Views, page: int) -> AuditPage:
    policy, at = views.policy(), utcnow()
    # A page past any log's end (page=9223372036854775807 overflowed the database's integer)
    # is the last page, read again once the total is known.
    page = min(max(1, page), MAX_PAGE)
    entries, total = views.store.dashboard.audit_page((page - 1) * PAGE_SIZE, PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if page > pages:  # past the end: the last page
        page = pages
        entries, total = views.store.dashboard.audit_page((page - 1) * PAGE_SIZE, PAGE_SIZE)
    return AuditPage(at, policy, entries, total, page, pages)


# More pages than any audit log has (a billion entries at PAGE_SIZE each).
MAX_PAGE = 10**9

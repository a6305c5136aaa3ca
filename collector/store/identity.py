"""Device identity in the store: enrollment tokens, devices' certificates and their lifecycle.

Every certificate the collector signs is recorded with its device and its *generation*
(enrollment is 1, each renewal adds one), the CA that signed it (since schema 28: what `ca
rollover finish` waits by), and the first time it is used. That record is what tells an agent
that lost a renewal answer in a crash (it keeps using the older certificate, and the newer one
was never used: allowed) from a copied state folder on a second computer (an older
certificate used after a newer one was: a clone). Teleport Machine ID locks a bot on the same
evidence.

Revoking or retiring a device only sets its status: its reports and history stay for the
audit, and every later call of the device is refused.
"""

from __future__ import annotations

import datetime as dt
import itertools
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import overload

from devposture.collector.evidence import chain
from devposture.collector.standing_rule import ACTIVE
from devposture.collector.store.base import Part, from_us, maybe_from_us, text, to_us
from devposture.collector.store.chain import append
from devposture.collector.store.engine import Cursor
from devposture.collector.tokens import Token, secret_matches
from devposture.policy.cli_messages import BadValue, said

REVOKED = "revoked"
RETIRED = "retired"

MAX_GROUP_LENGTH = 64
_GROUP_PUNCTUATION = frozenset("-_. ")


class GroupNameError(BadValue):
    """A device group name that is refused; the message says what is allowed (worded in the
    reader's language, `BadValue`)."""


def group_name(text: str) -> str:
    """The group name IT typed, trimmed and in NFC (so that 'é' typed two ways is one group),
    or GroupNameError. Letters and digits of any script (财务部, sales-eu), '-', '_', '.' and
    spaces: what a department or site is called, and nothing that could break a CSV cell, a
    terminal or a log line. Combining marks are part of letters in many scripts (Thai,
    Hindi), so they are allowed after a letter or digit."""
    name = unicodedata.normalize("NFC", text).strip()
    allowed = said("1 to {most} characters: letters or digits (any script: 财务部), '-', '_',"
                   " '.', spaces", most=MAX_GROUP_LENGTH)  # fmt: skip
    if not name:
        raise GroupNameError("a group name must not be empty; it is {allowed}", allowed=allowed)
    if len(name) > MAX_GROUP_LENGTH:
        raise GroupNameError(
            "the group name is {length} characters long; a group name is {allowed}",
            length=len(name),
            allowed=allowed,
        )
    for index, ch in enumerate(name):
        category = unicodedata.category(ch)
        if ch.isalnum() or ch in _GROUP_PUNCTUATION or (category[0] == "M" and index > 0):
            continue
        shown = repr(ch) if ch.isprintable() else said("a control or invisible character")
        raise GroupNameError(
            "the group name {name} has {character} (U+{code}), which is not allowed; a group"
            " name is {allowed}",
            name=repr(name),
            character=shown,
            code=f"{ord(ch):04X}",
            allowed=allowed,
        )
    return name


class TokenRejected(Exception):
    """The enrollment token cannot be used; the message tells the person what to do."""


class EnrollRefused(TokenRejected):
    """The token is good but this key belongs to a device IT revoked or retired."""


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    cert_serial: str
    cert_not_after: dt.datetime
    hostname: str = ""
    os_family: str = ""
    os_name: str = ""
    os_version: str = ""
    agent_version: str = ""
    # The `sha256:` fingerprint of the CA that signed the certificate (None: not told).
    issuer: str | None = None


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    uses_left: int
    revoked: bool
    # The group the devices it enrolls join ('' for none).
    group: str = ""

    def status(self, now: dt.datetime) -> str:
        if self.revoked:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "used up" if self.uses_left <= 0 else "usable"


@dataclass(frozen=True)
class NotRenewed:
    """An active device that may still be using a certificate issued before a moment (a CA
    rollover's stage or activation): it has one that has not expired, and has used none
    issued since."""

    device_id: str
    hostname: str
    # When the last of its certificates issued before the moment expires.
    valid_until: dt.datetime


@dataclass(frozen=True)
class HeldBack:
    """An active device that may still present a certificate another CA than the signing one
    signed, or one whose CA is not recorded: it has such a certificate that has not expired,
    and has used none of a later generation from the signing CA. `ca rollover finish` waits
    for it."""

    device_id: str
    hostname: str
    # When the last of those certificates expires.
    valid_until: dt.datetime
    # The newest of them: its CA's fingerprint (None: not recorded) and when it was issued.
    issuer: str | None
    issued_at: dt.datetime


@dataclass(frozen=True)
class CaHolding:
    """What one collector's `ca/` folder holds, as its `serve` last said (schema 29): which
    CA it signs with, which it trusts and which signed its server certificate, each by its
    `sha256:` fingerprint (None: cannot be told). Each collector signs with the CA of its own
    data folder, so `ca rollover activate` and `finish` ask every collector's."""

    collector: str  # its host and a hash of its data folder: one row per data folder
    host: str
    address: str  # where agents reach it (its report port), to name it to IT
    signing: str | None
    trusted: tuple[str, ...]
    server_issuer: str | None
    seen: dt.datetime


class Verdict(Enum):
    """Whether a call presenting a certificate may go on."""

    ALLOWED = "allowed"
    UNKNOWN_DEVICE = "unknown device"
    UNKNOWN_CERTIFICATE = "unknown certificate"
    REVOKED = "revoked"
    CLONE = "clone"


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    # Generation of the presented certificate and the newest one issued to the device.
    generation: int = 0
    newest_generation: int = 0
    status: str = ACTIVE
    status_reason: str = ""
    status_at: dt.datetime | None = None


@dataclass(frozen=True)
class DeviceInfo:
    """A device's identity and standing, for IT's device list."""

    device_id: str
    hostname: str
    os_family: str
    enrolled_at: dt.datetime
    last_report_at: dt.datetime | None
    status: str
    status_at: dt.datetime | None
    status_reason: str
    generation: int
    certificate_expires_at: dt.datetime | None
    clone_suspected_at: dt.datetime | None
    clone_detail: str
    # Collector clock minus the device's clock at its last report, when it said.
    clock_skew: dt.timedelta | None = None
    # What the device's outbox said in its newest report (counts since install).
    outbox_pending: int = 0
    outbox_coalesced_total: int = 0
    outbox_dropped_total: int = 0
    outbox_corrupt_total: int = 0
    # The device's group ('' for none): from its enrollment token, or set by IT.
    group: str = ""
    # The fingerprint of the CA that signed its newest certificate (None: not recorded, a
    # certificate issued before schema 28 that the device has not presented since).
    issuer: str | None = None


# Identity writes made in this process, through any Store: a number that changes after each
# (`local_changes`), and which device each concerned (`changed_since`). In-memory admission
# answers (collector/service.py) are dropped when it moves, so what this process writes (a
# revocation through the admin service, a certificate's first use, an enrollment) holds for
# the very next call.
_change_numbers = itertools.count(1)
_last_change = 0
# (change number, device id or None for "any device") of the latest changes.
_recent: deque[tuple[int, str | None]] = deque(maxlen=256)


def local_changes() -> int:
    """Changes (to a new, never used number) after every identity write transaction of this
    process ends, committed or not."""
    return _last_change


def changed_since(number: int) -> set[str] | None:
    """The devices whose identity this process changed after change `number`; None when
    that cannot be told (a change not of one device, or too many changes since)."""
    recent = list(_recent)  # one copy, made at once (appends may come from other threads)
    if not recent or recent[0][0] > number + 1:
        return None if _last_change != number else set()
    devices: set[str] = set()
    for change, device_id in recent:
        if change > number:
            if device_id is None:
                return None
            devices.add(device_id)
    return devices


def _changed(device_id: str | None) -> None:
    global _last_change  # noqa: PLW0603
    number = next(_change_numbers)  # unique: a late assignment still reads as a change
    _recent.append((number, device_id))
    _last_change = number


class Identity(Part):
    """Enrollment tokens, devices and their certificates (`Store.identity`)."""

    @contextmanager
    def _write(self, device_id: str | None = None) -> Iterator[Cursor]:
        """A write transaction (see Part), after which `local_changes` has moved: for
        `device_id` alone, or for any device when None."""
        try:
            with super()._write() as cursor:
                yield cursor
        finally:
            _changed(device_id)

    def keep_ca_holding(self, holding: CaHolding) -> None:
        """Say what this collector's `ca/` holds now (its row replaced). Not through
        `_write`: nothing admission keeps in memory depends on it."""
        with Part._write(self) as cur:
            cur.execute(
                "INSERT INTO collector_cas(collector, host, address, signing, trusted,"
                " server_issuer, seen_us) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(collector) DO UPDATE SET host = excluded.host,"
                " address = excluded.address, signing = excluded.signing,"
                " trusted = excluded.trusted, server_issuer = excluded.server_issuer,"
                " seen_us = excluded.seen_us",
                (holding.collector, holding.host, holding.address, holding.signing,
                 " ".join(holding.trusted), holding.server_issuer, to_us(holding.seen)),
            )  # fmt: skip

    def ca_holdings(self, seen_since: dt.datetime) -> list[CaHolding]:
        """What every collector seen since `seen_since` said its `ca/` holds, by host."""
        rows = self._db.execute(
            "SELECT collector, host, address, signing, trusted, server_issuer, seen_us"
            " FROM collector_cas WHERE seen_us >= ? ORDER BY host, address, collector",
            (to_us(seen_since),),
        ).fetchall()
        return [
            CaHolding(str(r[0]), str(r[1]), str(r[2]), r[3], tuple(str(r[4]).split()), r[5],
                      from_us(r[6]))
            for r in rows
        ]  # fmt: skip

    def version(self) -> int:
        """A number that grows with every identity change another process or collector can
        make that matters to admission: every enrollment, renewal, revocation, retirement and
        suspected clone is a device event (`device_events`, append-only, its id grows;
        writers append one at a time, under the store's write lock). One index seek. A
        certificate's first use writes no event: see service.AdmissionCache."""
        row = self._db.execute("SELECT MAX(event_id) FROM device_events").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def changed_since(self, version: int, most: int = 100) -> set[str] | None:
        """The devices of the device events after `version` (a `version()`), or None when
        there are more than `most` of them."""
        rows = self._db.execute(
            "SELECT device_id FROM device_events WHERE event_id > ? ORDER BY event_id LIMIT ?",
            (version, most + 1),
        ).fetchall()
        return None if len(rows) > most else {str(row[0]) for row in rows}

    # --- enrollment tokens ---------------------------------------------------------------

    def add_token(
        self, token: Token, now: dt.datetime, expires_at: dt.datetime, uses: int,
        group: str = "",
    ) -> None:  # fmt: skip
        """Record a token; the devices it enrolls join `group` (a `group_name`, or '')."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO enrollment_tokens(token_id, secret_hash, created_us, expires_us,"
                " uses_left, device_group) VALUES (?, ?, ?, ?, ?, ?)",
                (token.token_id, token.secret_hash, to_us(now), to_us(expires_at), uses, group),
            )

    def tokens(self) -> list[TokenInfo]:
        rows = self._db.execute(
            "SELECT token_id, created_us, expires_us, uses_left, revoked_us, device_group"
            " FROM enrollment_tokens ORDER BY created_us, token_id"
        ).fetchall()
        return [
            TokenInfo(r[0], from_us(r[1]), from_us(r[2]), r[3], r[4] is not None, r[5])
            for r in rows
        ]

    def revoke_token(self, token_id: str, now: dt.datetime) -> bool:
        """Revoke a token that is not revoked yet; False when there is no such token."""
        with self._write() as cur:
            cur.execute(
                "UPDATE enrollment_tokens SET revoked_us = ? WHERE token_id = ?"
                " AND revoked_us IS NULL",
                (to_us(now), token_id),
            )
            return cur.rowcount == 1

    def enroll(self, token: Token, now: dt.datetime, device: DeviceRecord) -> int:
        """Spend one use of `token` and record `device` and its certificate, in one
        transaction, or raise. Returns the certificate's generation."""
        device = DeviceRecord(
            text(device.device_id), text(device.cert_serial), device.cert_not_after,
            text(device.hostname), text(device.os_family), text(device.os_name),
            text(device.os_version), text(device.agent_version), device.issuer,
        )  # fmt: skip
        with self._write(device.device_id) as cur:
            row = cur.execute(
                "SELECT secret_hash, expires_us, uses_left, revoked_us, device_group"
                " FROM enrollment_tokens WHERE token_id = ?",
                (token.token_id,),
            ).fetchone()
            if row is None or not secret_matches(token, row[0]):
                raise TokenRejected(
                    "the enrollment token is not known to this collector: check the token file,"
                    " or create a new token with `devposture-collector token create`"
                )
            if row[3] is not None:
                raise TokenRejected("the enrollment token was revoked: ask IT for a new one")
            if row[1] <= to_us(now):
                expired = from_us(row[1]).isoformat(timespec="seconds")
                raise TokenRejected(
                    f"the enrollment token expired at {expired}: ask IT for a new one"
                    " (`devposture-collector token create`)"
                )
            status = cur.execute(
                "SELECT status, token_id FROM devices WHERE device_id = ?", (device.device_id,)
            ).fetchone()
            # The same key enrolling again with the token that enrolled it: a retry whose
            # answer was lost (its caller's deadline passed while the collector enrolled it).
            # It is answered again without spending another use: the retry of a one-use token
            # was refused as used up, and only that device's key can ask.
            again = status is not None and status[0] == ACTIVE and status[1] == token.token_id
            if row[2] <= 0 and not again:
                raise TokenRejected(
                    "the enrollment token was already used up: ask IT for a new one"
                    " (`devposture-collector token create`)"
                )
            if status is not None and status[0] != ACTIVE:
                raise EnrollRefused(
                    f"this device's key belongs to a device IT {status[0]}: enroll with a new"
                    " key (`devposture-agent enroll --force`)"
                )
            if not again:
                cur.execute(
                    "UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE token_id = ?",
                    (token.token_id,),
                )
            # The token's group, also on re-enrollment; a token without one keeps the group
            # the device already has (IT may have set it).
            cur.execute(
                "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial,"
                " cert_not_after_us, hostname, os_family, os_name, os_version, agent_version,"
                " device_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(device_id) DO UPDATE SET token_id = excluded.token_id,"
                " cert_serial = excluded.cert_serial,"
                " cert_not_after_us = excluded.cert_not_after_us,"
                " device_group = CASE WHEN excluded.device_group = '' THEN devices.device_group"
                " ELSE excluded.device_group END",
                (
                    device.device_id,
                    to_us(now),
                    token.token_id,
                    device.cert_serial,
                    to_us(device.cert_not_after),
                    device.hostname,
                    device.os_family,
                    device.os_name,
                    device.os_version,
                    device.agent_version,
                    row[4],
                ),
            )
            generation = self._add_certificate(
                cur, device.device_id, device.cert_serial, device.cert_not_after, now,
                issuer=device.issuer,
            )  # fmt: skip
            joined = f", group {row[4]}" if row[4] else ""
            detail = f"token {token.token_id}, certificate generation {generation}{joined}"
            self._event(cur, device.device_id, "enrolled", now, detail)
            return generation

    # --- certificates ----------------------------------------------------------------------

    @staticmethod
    def _add_certificate(
        cur: Cursor, device_id: str, serial: str, not_after: dt.datetime,
        now: dt.datetime, *, issuer: str | None,
    ) -> int:  # fmt: skip
        newest = cur.execute(
            "SELECT MAX(generation) FROM device_certificates WHERE device_id = ?", (device_id,)
        ).fetchone()[0]
        generation = (newest or 0) + 1
        cur.execute(
            "INSERT INTO device_certificates(serial, device_id, generation, issued_us,"
            " not_after_us, issuer) VALUES (?, ?, ?, ?, ?, ?)",
            (serial, device_id, generation, to_us(now), to_us(not_after), issuer),
        )
        cur.execute(
            "UPDATE devices SET cert_serial = ?, cert_not_after_us = ? WHERE device_id = ?",
            (serial, to_us(not_after), device_id),
        )
        return generation

    def record_renewal(
        self, device_id: str, serial: str, not_after: dt.datetime, now: dt.datetime,
        *, action: str, issuer: str | None = None,
    ) -> int:  # fmt: skip
        """Record a certificate issued by renewal or reestablishment, signed by the CA with
        fingerprint `issuer`; its generation."""
        with self._write(device_id) as cur:
            generation = self._add_certificate(
                cur, device_id, serial, not_after, now, issuer=issuer
            )
            self._event(cur, device_id, action, now, f"certificate generation {generation}")
            return generation

    def not_renewed_since(self, moment: dt.datetime, now: dt.datetime) -> list[NotRenewed]:
        """The active devices that may still present a certificate issued before `moment`
        (one that has not expired at `now`), latest expiry first.

        A CA rollover asks this before it stops trusting the previous CA (or starts signing
        with the new one): the answer comes from the certificates every collector of the
        site recorded, not from today's `device_certificate_days`, which IT may have
        shortened since those certificates were signed. A device counts as renewed only once
        it has *used* a certificate issued since (`first_used_us`): an agent whose renewal
        answer was lost keeps presenting its older certificate. Revoked and retired devices
        are refused whatever they present, so they hold nothing back."""
        rows = self._db.execute(
            "SELECT d.device_id, d.hostname, MAX(c.not_after_us) FROM devices d"
            " JOIN device_certificates c ON c.device_id = d.device_id"
            " WHERE d.status = ? AND c.issued_us < ? AND c.not_after_us > ?"
            " AND NOT EXISTS (SELECT 1 FROM device_certificates n"
            "  WHERE n.device_id = d.device_id AND n.issued_us >= ?"
            "  AND n.first_used_us IS NOT NULL)"
            " GROUP BY d.device_id, d.hostname"
            " ORDER BY MAX(c.not_after_us) DESC, d.device_id",
            (ACTIVE, to_us(moment), to_us(now), to_us(moment)),
        ).fetchall()
        return [NotRenewed(str(r[0]), str(r[1]), from_us(r[2])) for r in rows]

    def held_by_other_cas(self, signing: str, now: dt.datetime) -> list[HeldBack]:
        """The active devices that may still present a certificate not signed by the CA
        with fingerprint `signing` (one that has not expired at `now`), latest expiry first.

        `ca rollover finish` asks this before it stops trusting the previous CA. It goes by
        the CA each certificate records, not by when it was issued: a collector whose data
        folder still signs with the previous CA after `activate` (several collectors on one
        database, `ca/` not copied yet) issues certificates dated after the activation that
        only the previous CA verifies. A certificate whose CA is not recorded (issued before
        schema 28, not presented since) may be the previous CA's: it holds back too, as
        unknown is not pass. A device is through once it has *used* a certificate of a later
        generation signed by `signing`: from then on it presents no earlier one (that would be
        refused as a clone). Revoked and retired devices hold nothing back."""
        rows = self._db.execute(
            "SELECT d.device_id, d.hostname, c.generation, c.issuer, c.issued_us,"
            " c.not_after_us FROM devices d"
            " JOIN device_certificates c ON c.device_id = d.device_id"
            " WHERE d.status = ? AND c.not_after_us > ?"
            " AND (c.issuer IS NULL OR c.issuer <> ?)"
            " AND NOT EXISTS (SELECT 1 FROM device_certificates n"
            "  WHERE n.device_id = d.device_id AND n.generation > c.generation"
            "  AND n.issuer = ? AND n.first_used_us IS NOT NULL)"
            " ORDER BY d.device_id, c.generation",
            (ACTIVE, to_us(now), signing, signing),
        ).fetchall()
        held: dict[str, HeldBack] = {}
        for device_id, hostname, _, issuer, issued_us, not_after_us in rows:
            before = held.get(device_id)
            until = from_us(not_after_us)
            if before is not None:
                until = max(until, before.valid_until)
            # Rows come by generation: the newest held certificate names the cause.
            held[device_id] = HeldBack(
                str(device_id), str(hostname), until, issuer, from_us(issued_us)
            )
        return sorted(held.values(), key=lambda h: (-to_us(h.valid_until), h.device_id))

    @overload
    def admit(
        self, device_id: str, serial: str, now: dt.datetime, *,
        issuer: Callable[[], str | None] | None = None,
    ) -> Admission: ...  # fmt: skip
    @overload
    def admit(
        self, device_id: str, serial: str, now: dt.datetime, *, read_only: bool,
        issuer: Callable[[], str | None] | None = None,
    ) -> Admission | None: ...  # fmt: skip

    def admit(
        self, device_id: str, serial: str, now: dt.datetime, *, read_only: bool = False,
        issuer: Callable[[], str | None] | None = None,
    ) -> Admission | None:  # fmt: skip
        """Decide whether a call presenting certificate `serial` for `device_id` may go on.

        Writes only the first time a certificate is used, when a clone is detected, and when
        the certificate's CA is not recorded and `issuer` tells it (the fingerprint of the
        CA that verifies the presented certificate, or None: asked only then). With
        `read_only` (a reading connection, off the writer's thread) it returns None instead
        of writing: the caller then asks again on the writing connection."""
        # One query: every Report and Renew asks this, and it runs on the event loop.
        row = self._db.execute(
            "SELECT d.status, d.status_reason, d.status_us, c.generation, c.first_used_us,"
            " (SELECT MAX(u.generation) FROM device_certificates u WHERE u.device_id ="
            "  d.device_id AND u.first_used_us IS NOT NULL), c.issuer"
            " FROM devices d LEFT JOIN device_certificates c"
            " ON c.device_id = d.device_id AND c.serial = ?"
            " WHERE d.device_id = ?",
            (serial, device_id),
        ).fetchone()
        if row is None:
            return Admission(Verdict.UNKNOWN_DEVICE)
        status, reason, status_at = row[0], row[1], maybe_from_us(row[2])
        known_certificate = row[3] is not None
        if status != ACTIVE:
            return Admission(
                Verdict.REVOKED, row[3] if known_certificate else 0, 0, status, reason, status_at
            )
        if not known_certificate:
            return Admission(Verdict.UNKNOWN_CERTIFICATE)
        generation, first_used, newest_used = row[3], row[4], row[5]
        if newest_used is not None and newest_used > generation:
            if read_only:
                return None
            self._flag_clone(device_id, generation, newest_used, now)
            return Admission(Verdict.CLONE, generation, newest_used)
        # A certificate recorded before schema 28: its CA, from the certificate presented.
        told = issuer() if row[6] is None and issuer is not None else None
        if first_used is None or told is not None:
            if read_only:
                return None
            with self._write(device_id) as cur:
                cur.execute(
                    "UPDATE device_certificates SET first_used_us = COALESCE(first_used_us, ?),"
                    " issuer = COALESCE(issuer, ?) WHERE device_id = ? AND serial = ?"
                    " AND (first_used_us IS NULL OR issuer IS NULL)",
                    (to_us(now), told, device_id, serial),
                )
        return Admission(Verdict.ALLOWED, generation, max(generation, newest_used or 0))

    def _flag_clone(
        self, device_id: str, presented: int, newest_used: int, now: dt.datetime
    ) -> None:
        detail = (
            f"a certificate of generation {presented} was presented after generation"
            f" {newest_used} was in use: the agent's state folder is probably running on a"
            " second computer"
        )
        with self._write(device_id) as cur:
            cur.execute(
                "UPDATE devices SET clone_suspected_us = ?, clone_detail = ?"
                " WHERE device_id = ? AND clone_suspected_us IS NULL",
                (to_us(now), detail, device_id),
            )
            if cur.rowcount == 1:
                self._event(cur, device_id, "clone suspected", now, detail)

    def accept_reestablish_signature(self, device_id: str, signed_at: dt.datetime) -> bool:
        """Keep the newest reestablishment signature time; False for one not newer (a replay)."""
        with self._write(device_id) as cur:
            cur.execute(
                "UPDATE devices SET reestablish_signed_us = ? WHERE device_id = ?"
                " AND COALESCE(reestablish_signed_us, 0) < ?",
                (to_us(signed_at), device_id, to_us(signed_at)),
            )
            return cur.rowcount == 1

    # --- status ------------------------------------------------------------------------------

    def set_device_status(self, device_id: str, status: str, now: dt.datetime, reason: str) -> bool:
        """Revoke or retire an active device; False when there is no active device by that id.

        Nothing of the device's history is removed."""
        if status not in (REVOKED, RETIRED):
            raise ValueError(f"unknown device status {status!r}")
        with self._write(device_id) as cur:
            cur.execute(
                "UPDATE devices SET status = ?, status_us = ?, status_reason = ?"
                " WHERE device_id = ? AND status = ?",
                (status, to_us(now), reason, device_id, ACTIVE),
            )
            if cur.rowcount == 0:
                return False
            self._event(cur, device_id, status, now, reason)
            return True

    # --- groups ------------------------------------------------------------------------------

    def set_device_group(self, device_id: str, group: str, now: dt.datetime) -> str | None:
        """Put a device in `group` (a `group_name`), or take it out of any with ''. Returns
        the group it was in before ('' for none), or None when there is no such device. A
        change is kept in the device's log (and so in the evidence chain)."""
        with self._write(device_id) as cur:
            row = cur.execute(
                "SELECT device_group FROM devices WHERE device_id = ?", (device_id,)
            ).fetchone()
            if row is None:
                return None
            before = str(row[0])
            if before != group:
                cur.execute(
                    "UPDATE devices SET device_group = ? WHERE device_id = ?", (group, device_id)
                )
                was = f" (was {before})" if before else ""
                detail = f"group set to {group}{was}" if group else f"group {before} cleared"
                self._event(cur, device_id, "group", now, detail)
            return before

    def device_groups(self) -> dict[str, int]:
        """Each group in use and how many devices it holds, by name."""
        rows = self._db.execute(
            "SELECT device_group, COUNT(*) FROM devices WHERE device_group != ''"
            " GROUP BY device_group ORDER BY device_group"
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def devices(self, only: str | None = None, group: str | None = None) -> list[DeviceInfo]:
        """Every device, or the one `only` names, or those of `group` ('' for no group)."""
        # A plain `column = ?` per filter given (not `? IS NULL OR ...`), so that SQLite can
        # use the primary key or devices_by_group.
        where = [("d.device_id = ?", only), ("d.device_group = ?", group)]
        given = [(clause, value) for clause, value in where if value is not None]
        condition = " AND ".join(clause for clause, _ in given) or "TRUE"
        rows = self._db.execute(
            "SELECT d.device_id, d.hostname, d.os_family, d.enrolled_us, d.last_report_us,"  # noqa: S608 (fixed clauses)
            " d.status, d.status_us, d.status_reason, d.clone_suspected_us, d.clone_detail,"
            " c.generation, c.not_after_us, d.clock_skew_ms, d.outbox_pending,"
            " d.outbox_coalesced_total, d.outbox_dropped_total, d.outbox_corrupt_total,"
            " d.device_group, c.issuer"
            " FROM devices d LEFT JOIN device_certificates c"
            " ON c.device_id = d.device_id AND c.serial = d.cert_serial"
            # Natural host order (PC-2 before PC-10, any case), as the dashboard lists them.
            f" WHERE {condition} ORDER BY d.host_key, d.device_id",
            [value for _, value in given],
        ).fetchall()
        return [
            DeviceInfo(
                device_id=r[0], hostname=r[1], os_family=r[2], enrolled_at=from_us(r[3]),
                last_report_at=maybe_from_us(r[4]), status=r[5], status_at=maybe_from_us(r[6]),
                status_reason=r[7], clone_suspected_at=maybe_from_us(r[8]), clone_detail=r[9],
                generation=r[10] or 0, certificate_expires_at=maybe_from_us(r[11]),
                clock_skew=None if r[12] is None else dt.timedelta(milliseconds=r[12]),
                outbox_pending=r[13], outbox_coalesced_total=r[14], outbox_dropped_total=r[15],
                outbox_corrupt_total=r[16], group=r[17], issuer=r[18],
            )
            for r in rows
        ]  # fmt: skip

    def names(self) -> list[tuple[str, str, str | None]]:
        """(device id, hostname, group) of every device, in the order `devices` lists them:
        what an audit export's context and a command's device ids need of the devices. The
        whole `devices` read each one's certificate too, and was 0.08-0.29 s of an export
        for 10,000 devices, against 0.01-0.02 s."""
        rows = self._db.execute(
            "SELECT device_id, hostname, device_group FROM devices ORDER BY host_key, device_id"
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def device(self, device_id: str) -> DeviceInfo | None:
        found = self.devices(only=device_id)
        return found[0] if found else None

    def device_events(
        self, device_id: str | None = None
    ) -> list[tuple[str, str, dt.datetime, str]]:
        """(device, action, at, detail) of every identity change, oldest first."""
        if device_id is None:
            rows = self._db.execute(
                "SELECT device_id, action, at_us, detail FROM device_events ORDER BY event_id"
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT device_id, action, at_us, detail FROM device_events"
                " WHERE device_id = ? ORDER BY event_id",
                (device_id,),
            ).fetchall()
        return [(r[0], r[1], from_us(r[2]), r[3]) for r in rows]

    @staticmethod
    def _event(cur: Cursor, device_id: str, action: str, now: dt.datetime, detail: str) -> None:
        """Log an identity change. `device show` words "{action}: {detail}" for a person by
        reading it back into a template (`collector/device_history.py`, `_EVENTS`; the clone's
        detail, `_CLONE`): a new action or wording is declared there too, or it shows in English."""
        event_id = int(cur.execute(
            "INSERT INTO device_events(device_id, action, at_us, detail) VALUES (?, ?, ?, ?)"
            " RETURNING event_id",
            (device_id, action, to_us(now), detail),
        ).fetchone()[0])  # fmt: skip
        append(
            cur,
            chain.DEVICE,
            f"{device_id}/{event_id}",
            chain.fields(chain.DEVICE_FIELDS, (event_id, device_id, action, to_us(now), detail)),
        )

"""The one table of admin commands, and the one runner that every admin command goes through.

The local CLI (on the collector machine, with the data folder) and the Admin gRPC service
(from anywhere, with a credential) both call `Runner.run`, so the role check and the audit
entry cannot be forgotten by one of them: what a viewer may do, and what is written down, is
decided here once. Handlers take their arguments as a mapping of texts (what travels in
`AdminCommand.arguments`) and return a `Result`; how a result is printed is `present`, shared
by both paths so that local and remote output are identical.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import json
import math
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from devposture.collector import gc_settle
from devposture.collector.admin.audit_words import actor_cell, message_cell
from devposture.collector.admin.progress_line import ProgressLine
from devposture.collector.admin.worded_cells import in_language
from devposture.collector.clock import utcnow
from devposture.collector.company_time import NotATime, shown, stamp, typed, zone_of
from devposture.collector.compliance import Waiver
from devposture.collector.config import CollectorConfig
from devposture.collector.credentials import (
    ADMIN,
    AUDITOR,
    ROLE_RANK,
    ROLES,
    VIEWER,
    new_credential,
)
from devposture.collector.delivery_health import (
    clock_off,
    describe_outbox,
    describe_skew,
    skew_is_notable,
)
from devposture.collector.device_history import (
    STATUS_WORDS,
    clone_detail,
    device_status,
    history,
    os_cell,
)
from devposture.collector.issuing_ca import ca_generations, certificate_ca
from devposture.collector.policy import policy_in_force
from devposture.collector.policy.in_force import zone_in_force
from devposture.collector.render import Row, code_cell, current_heading, render
from devposture.collector.reports import (
    DEVICE_COLUMNS,
    FAILING_COLUMNS,
    FLEET_COLUMNS,
    HISTORY_COLUMNS,
    device_rows,
    failing_rows,
    fleet_rows,
    history_rows,
)
from devposture.collector.standing_rule import ACTIVE
from devposture.collector.store import Store
from devposture.collector.store.disk_space import StorageFull, is_full, no_space_left
from devposture.collector.store.identity import (
    RETIRED,
    REVOKED,
    DeviceInfo,
    GroupNameError,
    group_name,
)
from devposture.collector.table_fit import display_width, escaped_controls
from devposture.collector.tokens import new_token
from devposture.collector.waiver_log import action_cell, detail_cell, status_cell
from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import BEIJING, EnrollmentValue
from devposture.policy import Policy, PolicyError, cli_messages
from devposture.policy.catalogs import LANGS, Lang
from devposture.policy.cli_messages import (
    Bracketed,
    Said,
    Told,
    Worded,
    bracketed,
    enumeration,
    lines,
    reader_language,
    said,
)

Words = tuple[str, str]
# The trailing metadata that carries a refusal worded (`cli_messages.ERROR_METADATA`, the
# enrollment port's too), named here for the admin service and its client.
ERROR_METADATA = cli_messages.ERROR_METADATA
# Likewise for a result's sentence (`Result.said`, as `Said.data` in JSON): the result's
# message stays its English, for older command lines and scripts.
MESSAGE_METADATA = "devposture-message"
# The file a remote `audit export` writes on the collector, in a temporary folder of its own,
# before it streams it: the reader's summary names their --out instead (admin.client).
EXPORT_FILE = "bundle.zip"


class CommandError(Worded):
    """The command cannot be run as given; the message names the problem and the fix, in the
    reader's language when shown (`Worded`), in English in the audit log."""


class NotFound(CommandError):
    """The command names something (a device, a waiver, a token) that does not exist."""


class Precondition(CommandError):
    """The command names something that exists but is in no state for it (a device that has
    left the fleet): FAILED_PRECONDITION on the admin port, not NOT_FOUND."""


class Denied(CommandError):
    """The caller's role does not allow the command."""


class UnknownCommand(CommandError):
    """No such command in the table."""


class Cancelled(CommandError):
    """The remote caller went away and the command stopped (`evidence.stopping`): audited
    as an error whose message says so, answered CANCELLED to nobody."""


@dataclass(frozen=True)
class Actor:
    """Who runs a command: a credential's holder, or a local user with the data folder."""

    name: str
    role: str
    credential_id: str | None = None

    def label(self) -> str | Said:
        """The name, and the credential's id in the brackets of the reader's language."""
        return Bracketed.of(self.name, self.credential_id) if self.credential_id else self.name


def local_actor() -> Actor:
    """The person at the collector machine: reading the 0700 data folder proves they run as
    the collector's service account (or root), which may do everything."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = f"uid {os.getuid()}"
    return Actor(f"local:{user}", ADMIN)


@dataclass(frozen=True)
class Result:
    # A sentence (or the new secret, for `token create` and `admin add`) for the person, in
    # English (what scripts and an older command line read).
    message: str = ""
    columns: tuple[str, ...] = ()
    rows: list[Row] = field(default_factory=list)
    # What the audit log keeps about the outcome. Never a secret.
    note: str = ""
    # The command ran, and what it checked does not hold (`audit check`): exit 1.
    failed: bool = False
    # The message as its template and parameters, worded in the reader's language when shown
    # (`shown_message`); None for a text shown as it is (a secret, a key, a verdict).
    said: Said | None = None

    def shown_message(self, lang: Lang) -> str:
        return self.said.worded(lang) if self.said is not None else self.message


def told(
    sentence: Said | None,
    columns: tuple[str, ...] = (),
    rows: list[Row] | None = None,
    note: str | None = None,
) -> Result:
    """A result whose message is a sentence (None: no message): English for scripts and
    (unless `note` says otherwise) the audit log, worded for the person."""
    english = "" if sentence is None else str(sentence)
    return Result(english, columns, rows or [], english if note is None else note, said=sentence)


class Arguments:
    """A command's arguments by name, all texts, with conversions that explain bad values."""

    def __init__(
        self, values: Mapping[str, str], progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:  # fmt: skip
        self._values = dict(values)
        # Where a long command reports (done, total) when it runs for a remote caller (the
        # admin port's Export stream); None: on standard error, as on the collector machine.
        self.progress = progress
        # Set when that remote caller has gone: the command stops (`evidence.stopping`).
        self.stop = stop

    def _given(self, name: str) -> str | None:
        """The value as given. A NUL character is no part of any name, date or number, and
        PostgreSQL refuses it in text: refused here, for every option alike."""
        value = self._values.get(name)
        if value is not None and "\x00" in value:
            raise CommandError(
                "--{option} must not hold a NUL character (U+0000)", option=_option(name)
            )
        return value

    def text(self, name: str) -> str | None:
        value = (self._given(name) or "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise CommandError("--{option} is required and must not be empty", option=_option(name))
        return value

    def group(self, name: str, shown: str | None = None) -> str | None:
        """A device group name (`store.identity.group_name`), or None when not given.
        `shown` is what the command line calls it, when not `--NAME` (a positional NAME)."""
        text = self._given(name)
        if text is None:
            return None
        try:
            return group_name(text)
        except GroupNameError as exc:
            raise CommandError(
                "{option}: {problem}", option=shown or "--" + _option(name), problem=exc
            ) from None

    def lang(self) -> Lang:
        """--lang: the language of the reasons' words (Chinese unless told)."""
        value = self.text("lang") or "zh"
        if value not in LANGS:
            raise CommandError(
                "--lang {value}: use zh (Chinese) or en (English)", value=repr(value)
            )
        return value

    def lang_of_reader(self) -> Lang:
        """The language of the sentences for the person running the command (`--lang`
        when given, else the locale's)."""
        return reader_language(self.text("lang"))

    def flag(self, name: str) -> bool:
        return (self._given(name) or "").strip().lower() in ("1", "true", "yes")

    def items(self, name: str) -> list[str]:
        """A repeatable option: its values, joined with newlines on the wire."""
        return [v.strip() for v in (self._given(name) or "").splitlines() if v.strip()]

    def moment(self, name: str, zone: dt.tzinfo, *, end_of_day: bool = False) -> dt.datetime | None:
        """A typed date or time, read in the company's time zone (`company_time.typed`)."""
        text = self.text(name)
        if text is None:
            return None
        try:
            return typed(text, zone, end_of_day=end_of_day)
        except NotATime as exc:
            raise CommandError("{option}: {problem}", option="--" + _option(name),
                               problem=exc) from None  # fmt: skip

    def number(
        self, name: str, default: float, *, whole: bool = False, most: float | None = None
    ) -> float:
        """A positive number (`whole`: an integer), at most `most`: "inf" and "nan" are not
        numbers a person means, and a count or a duration past any use would only overflow
        where it is used."""
        text = self.text(name)
        if text is None:
            return default
        try:
            value = int(text) if whole else float(text)
            if not math.isfinite(value):
                raise ValueError(text)
        except ValueError:
            if whole:
                raise CommandError("--{option} must be a whole number, not {value}",
                                   option=_option(name), value=repr(text)) from None  # fmt: skip
            raise CommandError("--{option} must be a number, not {value}",
                               option=_option(name), value=repr(text)) from None  # fmt: skip
        if value <= 0:
            raise CommandError("--{option} must be greater than zero, not {value}",
                               option=_option(name), value=repr(text))  # fmt: skip
        if most is not None and value > most:
            raise CommandError("--{option} must be at most {maximum}, not {value}",
                               option=_option(name), maximum=f"{most:g}",
                               value=repr(text))  # fmt: skip
        return value


def _option(name: str) -> str:
    return name.replace("_", "-")


def _zone(config: CollectorConfig, store: Store) -> dt.tzinfo:
    return zone_in_force(config, store)


Handler = Callable[[Store, CollectorConfig, Arguments, Actor], Result]


@dataclass(frozen=True)
class Command:
    words: Words
    role: str
    handler: Handler
    # The argument names the command takes; any other is refused (a typo must not be ignored).
    options: frozenset[str]
    summary: str
    # Managed only on the collector machine: a stolen credential must not mint more.
    local_only: bool = False
    # Runs remotely too, but only through the admin port's Export stream (service.py), which
    # chooses where the file goes (a temporary file it streams back), never the caller.
    streamed: bool = False


# --- reports -------------------------------------------------------------------------------


def _policy(config: CollectorConfig, store: Store) -> Policy:
    try:
        return policy_in_force(config, store)
    except PolicyError as exc:
        raise CommandError("the policy file has mistakes; fix them first:\n{problems}",
                           problems=exc) from exc  # fmt: skip


def _report(view: str) -> Handler:
    def handler(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
        policy = _policy(config, store)
        zone = zone_of(policy)
        as_of = args.moment("as_of", zone)
        now = utcnow()
        at = as_of or now
        # A moment still to come is a projection, and says so: what the records say then if
        # nothing more arrives (silent devices turn STALE, graces run out, waivers end).
        ahead = None if at <= now else said(
            "as of {as_of}, still to come: what the records will say then if nothing more"
            " arrives (devices that stay silent turn STALE)", as_of=shown(at, zone),
        )  # fmt: skip
        device_id = args.text("device_id")
        lang = args.lang()
        group = args.group("group") if view in ("fleet", "failing") else None
        message: Said | None = ahead
        # The groups in use and their sizes, in one statement (not the group's devices read
        # whole: 25,000 of them took 0.2 s of the report's half second).
        groups = store.identity.device_groups() if group is not None else {}
        if group is not None and group not in groups:
            message = said(
                "no device is in group {group} (groups: {groups})",
                group=repr(group),
                groups=enumeration(groups) or _NONE_YET,
            )
        if view == "fleet":
            if not store.reports.any_device():
                message = said(
                    "No devices enrolled yet. Create a token with"
                    " `devposture-collector token create`."
                )
            rows = fleet_rows(store, policy, at, current=as_of is None, group=group)
            return told(message, FLEET_COLUMNS, rows, note="")
        if view == "device":
            rows = device_rows(store, policy, at, device_id, lang=lang)
            gone = store.identity.device(device_id) if device_id and not rows else None
            if gone is not None and gone.status_at is not None and gone.status_at <= at:
                # Revoked or retired: out of the fleet since, its record and history kept.
                raise NotFound(
                    "device {device_id} was {status} at {when} and has counted in the fleet no"
                    " more since; its standing before: `devposture-collector report device"
                    " {device_id} --as-of DATE`, its history: `devposture-collector report"
                    " history {device_id}`",
                    device_id=device_id, status=STATUS_WORDS.get(gone.status, gone.status),
                    when=shown(gone.status_at, zone),
                )  # fmt: skip
            if device_id and not rows:
                raise NotFound(
                    "no device {device_id} was enrolled by {at};"
                    " see the ids in `devposture-collector report device`",
                    device_id=device_id, at=shown(at, zone),
                )  # fmt: skip
            return told(ahead, DEVICE_COLUMNS, rows, note="")
        if view == "history":
            if device_id is None:
                raise CommandError("give the device id: `report history DEVICE_ID`")
            rows = history_rows(store, device_id, at, policy, lang=lang)
            if not rows:
                raise NotFound(
                    "no history for device {device_id}: see the ids in"
                    " `devposture-collector report device`",
                    device_id=device_id,
                )
            return told(ahead, HISTORY_COLUMNS, rows, note="")
        rows = failing_rows(store, policy, at, current=as_of is None, group=group, lang=lang)
        return told(message, FAILING_COLUMNS, rows, note="")

    return handler


# --- waivers -------------------------------------------------------------------------------

WAIVER_COLUMNS = (
    "waiver", "device", "check", "owner", "reason", "created", "expires", "status",
)  # fmt: skip
WAIVER_LOG_COLUMNS = ("waiver", "action", "at", "detail")

# A status a listing gives as a code ("active", "expired", an audit entry's "ok"): scripts
# compare it in JSON and CSV, so those keep it, in every language; a person's table words it
# in their language (`worded_cells`), as `device list` words a device's. Each code's words,
# by listing (a waiver in force reads otherwise than a device in use).
_TOKEN_STATUS = {"usable": said("usable"), "used up": said("used up"),
                 "expired": said("expired"), "revoked": said("revoked")}  # fmt: skip
_CREDENTIAL_STATUS = {"active": said("active")}
_OUTCOMES = {"ok": said("ok"), "denied": said("denied"), "error": said("error")}


def _waiver_add(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    policy = _policy(config, store)
    now = utcnow()
    check_id = args.required("check")
    if policy.check(check_id) is None:
        known = enumeration(c.check_id for c in policy.checks)
        raise CommandError("no check {check} in the policy (checks: {known})",
                           check=repr(check_id), known=known)  # fmt: skip
    zone = zone_of(policy)
    expires = args.moment("expires", zone, end_of_day=True)
    if expires is None:
        raise CommandError("--expires is required: a waiver always ends by itself")
    if expires <= now:
        raise CommandError("--expires must be in the future: a waiver always ends by itself")
    if expires > now + MAX_WAIVER:
        raise CommandError(
            "--expires must be within {days} days ({latest} at the latest): a waiver is"
            " reviewed and granted again, not kept for ever",
            days=MAX_WAIVER.days,
            latest=shown(now + MAX_WAIVER, zone),
        )
    owner, reason = args.text("owner"), args.text("reason")
    if owner is None or reason is None:
        raise CommandError("--owner and --reason must not be empty: the audit trail needs both")
    devices = args.items("device")
    if not devices:
        raise CommandError("--device is required (repeat it for a group of devices)")
    seen = {d.device_id: d for d in store.reports.devices_seen()}
    unknown = [d for d in devices if d not in seen]
    if unknown:
        raise NotFound(
            "no enrolled device {devices}: see `devposture-collector report device`",
            devices=enumeration(unknown),
        )
    _refuse_leavers(store, [d for d in dict.fromkeys(devices) if seen[d].left_at is not None],
                    zone)  # fmt: skip
    added = []
    for device_id in dict.fromkeys(devices):
        waiver = Waiver(
            f"w-{secrets.token_hex(4)}", device_id, check_id, owner, reason, now, expires
        )
        store.waivers.add_waiver(waiver, now)
        added.append(said(
            "waiver {waiver_id}: {device_id} exempt from {check} until {until}",
            waiver_id=waiver.waiver_id, device_id=device_id, check=check_id,
            until=shown(expires, zone),
        ))  # fmt: skip
    joined = functools.reduce(lambda before, after: said("{before}; {after}", before=before,
                                                          after=after), added)  # fmt: skip
    return told(lines(*added), note=str(joined))


def _refuse_leavers(store: Store, device_ids: list[str], zone: dt.tzinfo) -> None:
    """Refuse a waiver on devices IT revoked or retired: each is judged no more (out of the
    fleet's figures, `standing_rule.in_fleet`), so the waiver would exempt nothing, and IT
    most likely meant the computer in use, which enrolled again under a new id."""
    refusals: list[Said] = []
    for device_id in device_ids:
        device = store.identity.device(device_id)
        if device is None or device.status == ACTIVE:
            continue
        refusals.append(said(
            "device {device_id} was {status} at {when} and has left the fleet: it is judged no"
            " more, so a waiver on it would exempt nothing. Waive the device in use instead (a"
            " computer enrolled again has a new id: see `devposture-collector device list`)",
            device_id=device_id, status=STATUS_WORDS.get(device.status, device.status),
            when=shown(device.status_at, zone) if device.status_at else said("an unknown date"),
        ))  # fmt: skip
    if refusals:
        joined = functools.reduce(lambda before, after: said("{before}; {after}",
                                                              before=before, after=after),
                                  refusals)  # fmt: skip
        raise Precondition(joined)


def _waiver_list(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    zone = _zone(config, store)
    if args.flag("log"):
        events: list[Row] = [
            {"waiver": w, "action": action_cell(a), "at": stamp(t, zone),
             "detail": detail_cell(a, d, zone)}
            for w, a, t, d in store.waivers.waiver_events()
        ]  # fmt: skip
        return Result("", WAIVER_LOG_COLUMNS, events)
    now = utcnow()
    rows: list[Row] = []
    for w in store.waivers.recorded():
        status = (
            "active" if w.active(now)
            else "revoked" if w.revoked_at is not None and w.revoked_at <= now
            else "expired"
        )  # fmt: skip
        if status == "active" or args.flag("all"):
            rows.append({
                "waiver": w.waiver_id, "device": w.device_id, "check": w.check_id,
                "owner": w.owner, "reason": w.reason, "created": stamp(w.created_at, zone),
                "expires": stamp(w.expires_at, zone),
                "status": status_cell(status),
            })  # fmt: skip
    return Result("", WAIVER_COLUMNS, rows)


def _waiver_revoke(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    waiver_id, reason = args.required("waiver_id"), args.required("reason")
    if not store.waivers.revoke_waiver(waiver_id, utcnow(), reason):
        raise NotFound("no active waiver {waiver_id}: see `devposture-collector waiver list`",
                       waiver_id=waiver_id)  # fmt: skip
    return told(said("waiver {waiver_id} revoked", waiver_id=waiver_id))


# --- devices -------------------------------------------------------------------------------

DEVICE_LIST_COLUMNS = (
    "device", "hostname", "group", "os", "enrolled", "last_report", "status", "status_reason",
    "certificate_generation", "certificate_expires", "certificate_ca", "clone_suspected",
    "clock_off", "reports_lost",
)  # fmt: skip
DEVICE_SHOW_COLUMNS = (*DEVICE_LIST_COLUMNS, "clone_detail", "clock", "outbox", "events")


def _ca_generations(config: CollectorConfig) -> dict[str, int]:
    """Each CA of the data folder by fingerprint, to name a certificate's CA as IT knows it
    ("CA 2"); a CA whose file cannot be read is named by its short fingerprint alone."""
    return ca_generations(config.ca_cert.parent)


def _device_row(device: DeviceInfo, zone: dt.tzinfo, generations: Mapping[str, int], *,
                detailed: bool = False) -> Row:  # fmt: skip
    skew = device.clock_skew
    return {
        "device": device.device_id, "hostname": device.hostname, "group": device.group,
        "os": os_cell(device.os_family),
        "enrolled": stamp(device.enrolled_at, zone),
        "last_report": stamp(device.last_report_at, zone),
        "status": device_status(device.status, stamp(device.status_at, zone)),
        "status_reason": device.status_reason,
        "certificate_generation": device.generation,
        "certificate_expires": stamp(device.certificate_expires_at, zone),
        # The CA that signed it: during a CA rollover, which devices still hold the old one.
        "certificate_ca": certificate_ca(device.issuer, generations, detailed=detailed),
        "clone_suspected": stamp(device.clone_suspected_at, zone) or "",
        "clock_off": clock_off(skew) if skew is not None and skew_is_notable(skew) else "",
        "reports_lost": device.outbox_dropped_total,
    }  # fmt: skip


def _device_list(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    zone = _zone(config, store)
    group = args.group("group")
    generations = _ca_generations(config)
    rows = [_device_row(d, zone, generations) for d in store.identity.devices(group=group)]
    message: Said | None = None
    if group is not None and not rows:
        message = said(
            "no device is in group {group} (groups: {groups}); put one in with"
            " `devposture-collector device group DEVICE_ID NAME`",
            group=repr(group), groups=enumeration(store.identity.device_groups()) or _NONE_YET,
        )  # fmt: skip
    return told(message, DEVICE_LIST_COLUMNS, rows, note="")


def _find_device(store: Store, device_id: str) -> DeviceInfo:
    device = store.identity.device(device_id)
    if device is not None:
        return device
    raise NotFound("no device {device_id}: see the ids in `devposture-collector device list`",
                   device_id=device_id)  # fmt: skip


def _device_show(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    zone = _zone(config, store)
    device = _find_device(store, args.required("device_id"))
    row = _device_row(device, zone, _ca_generations(config), detailed=True) | {
        "clone_detail": clone_detail(device.clone_detail),
        "clock": describe_skew(device.clock_skew),
        "outbox": describe_outbox(device),
        "events": history(store.identity.device_events(device.device_id), zone),
    }
    return Result("", DEVICE_SHOW_COLUMNS, [row])


# No device group exists.
_NONE_YET = said("none yet")


# What the audit log keeps of a device's revocation or retirement (in words when shown).
_STATUS_NOTES: dict[str, Callable[[str, str], Said]] = {
    REVOKED: lambda device_id, reason: said("device {device_id} revoked: {reason}",
                                            device_id=device_id, reason=reason),
    RETIRED: lambda device_id, reason: said("device {device_id} retired: {reason}",
                                            device_id=device_id, reason=reason),
}  # fmt: skip


def _device_status(status: str) -> Handler:
    def handler(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
        device_id, reason = args.required("device_id"), args.required("reason")
        device = _find_device(store, device_id)
        if not store.identity.set_device_status(device_id, status, utcnow(), reason):
            raise CommandError(
                "device {device_id} is already {status}: nothing to do"
                " (see `devposture-collector device show`)",
                device_id=device_id, status=STATUS_WORDS.get(device.status, device.status),
            )  # fmt: skip
        message = said(
            "device {device_id} ({hostname}) {status}. Its next call is refused and its open"
            " connections close within {seconds} seconds; its reports and history stay. To use"
            " the computer again, enroll it with a new key (`devposture-agent enroll --force`).",
            device_id=device_id, hostname=device.hostname or said("no hostname"),
            status=STATUS_WORDS.get(status, status),
            seconds=round(config.max_connection_age_seconds),
        )  # fmt: skip
        return told(message, note=str(_STATUS_NOTES[status](device_id, reason)))

    return handler


def _device_group(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    device_id = args.required("device_id")
    group = args.group("group", shown="NAME")
    clear = args.flag("clear")
    if (group is None) == (not clear):
        raise CommandError(
            "give either the group NAME or --clear: `device group DEVICE_ID NAME`,"
            " `device group DEVICE_ID --clear`"
        )
    before = store.identity.set_device_group(device_id, group or "", utcnow())
    if before is None:
        raise NotFound("no device {device_id}: see the ids in `devposture-collector device list`",
                       device_id=device_id)  # fmt: skip
    if before == (group or ""):
        return told(
            said("device {device_id} is already in group {group}: nothing changed",
                 device_id=device_id, group=group) if group
            else said("device {device_id} is in no group: nothing changed", device_id=device_id)
        )  # fmt: skip
    if not group:
        return told(said("device {device_id} is in no group now (was {before})",
                         device_id=device_id, before=before))  # fmt: skip
    if before:
        return told(said("device {device_id} is now in group {group} (was {before})",
                         device_id=device_id, group=group, before=before))  # fmt: skip
    return told(said("device {device_id} is now in group {group}", device_id=device_id,
                     group=group))  # fmt: skip


# --- enrollment tokens ---------------------------------------------------------------------

TOKEN_COLUMNS = ("token", "group", "created", "expires", "uses_left", "status")
TOKEN_CREATED_COLUMNS = ("token", "group", "uses", "expires")
TOKEN_BUNDLE_COLUMNS = (*TOKEN_CREATED_COLUMNS, "collectors", "ca_fingerprint")
MAX_TOKEN_USES = 10_000
# The longest a waiver may run: a year, then it is reviewed and granted again.
MAX_WAIVER = dt.timedelta(days=366)
# A token is for a rollout, not for ever: a year at most (a longer one only waits to leak).
MAX_TOKEN_TTL_HOURS = 366 * 24
# Where the agent's package looks for the value (devposture.agent.settings).
ENROLLMENT_FILE = "/etc/devposture/enroll.token"


def _bundle_parts(
    config: CollectorConfig, given: list[str]
) -> tuple[tuple[CollectorAddress, ...], str]:  # fmt: skip
    """An enrollment value's addresses and CA pin, each checked."""
    # Imported here: the bundle reads the trust folder (grpc, x509: a twentieth of a second of
    # a command's start), which a plain token and other commands never need.
    from devposture.collector.admin.enrollment_bundle import (  # noqa: PLC0415
        BundleError,
        ca_fingerprint,
        enroll_addresses,
    )

    try:
        return enroll_addresses(config, given), ca_fingerprint(config)
    except BundleError as exc:
        raise CommandError.as_is(exc) from None


def _token_create(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    """A new token; with `bundle`, wrapped in the enrollment value (addresses, CA pin, token),
    whose parts are all checked before the token exists."""
    zone = _zone(config, store)
    uses = int(args.number("uses", 1, whole=True))
    if uses > MAX_TOKEN_USES:
        raise CommandError(
            "--uses must be at most {maximum}: make several tokens for a larger rollout",
            maximum=MAX_TOKEN_USES,
        )
    hours = args.number("ttl", config.token_ttl_hours, most=MAX_TOKEN_TTL_HOURS)
    group = args.group("group") or ""
    bundle, given = args.flag("bundle"), args.items("enroll_address")
    if given and not bundle:
        raise CommandError("--enroll-address goes into an enrollment value: add --bundle")
    addresses, pin = _bundle_parts(config, given) if bundle else ((), "")
    now = utcnow()
    expires = now + dt.timedelta(hours=hours)
    token = new_token()
    store.identity.add_token(token, now, expires, uses=uses, group=group)
    row: Row = {
        "token": token.token_id,
        "group": group,
        "uses": uses,
        "expires": stamp(expires, zone),
    }
    until = shown(expires, zone)
    note = (said("token {token}: {uses} use(s), group {group}, expires {until}",
                 token=token.token_id, uses=uses, group=group, until=until) if group
            else said("token {token}: {uses} use(s), expires {until}", token=token.token_id,
                      uses=uses, until=until))  # fmt: skip
    if not bundle:
        return Result(str(token), TOKEN_CREATED_COLUMNS, [row], note=str(note))
    value = EnrollmentValue(addresses, pin, str(token), expires.astimezone(BEIJING), uses)
    targets = ", ".join(a.target() for a in addresses)
    row |= {"collectors": targets, "ca_fingerprint": pin}
    bundled = said("{note}; as an enrollment value for {targets}", note=note,
                   targets=enumeration(a.target() for a in addresses))
    return Result(value.encode(), TOKEN_BUNDLE_COLUMNS, [row], note=str(bundled))


def _token_list(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    zone = _zone(config, store)
    now = utcnow()
    rows: list[Row] = [
        {"token": t.token_id, "group": t.group, "created": stamp(t.created_at, zone),
         "expires": stamp(t.expires_at, zone), "uses_left": t.uses_left,
         "status": code_cell(t.status(now), _TOKEN_STATUS)}
        for t in store.identity.tokens()
    ]  # fmt: skip
    return Result("", TOKEN_COLUMNS, rows)


def _token_revoke(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    token_id = args.required("token_id")
    if not store.identity.revoke_token(token_id, utcnow()):
        raise NotFound(
            "no token {token_id} that is not revoked already:"
            " see `devposture-collector token list`",
            token_id=token_id,
        )
    return told(said("token {token_id} revoked: it enrolls no more devices", token_id=token_id))


# --- admin credentials and the audit log ---------------------------------------------------

CREDENTIAL_COLUMNS = ("credential", "name", "role", "created", "status")
CREDENTIAL_CREATED_COLUMNS = ("credential", "name", "role")
AUDIT_COLUMNS = (
    "at", "actor", "role", "command", "arguments", "outcome", "message", "peer",
)  # fmt: skip


def _admin_add(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    name = args.required("name")
    if len(name) > 100 or any(not ch.isprintable() for ch in name):
        raise CommandError("NAME must be at most 100 printable characters, e.g. 'Li Wei (IT)'")
    role = args.text("role") or VIEWER
    if role not in ROLES:
        raise CommandError("--role must be one of {roles}, not {role}",
                           roles=enumeration(ROLES), role=repr(role))  # fmt: skip
    credential = new_credential()
    store.admin.add_credential(credential, name, role, utcnow())
    row: Row = {"credential": credential.credential_id, "name": name,
                "role": code_cell(role, _ROLE_NAMES)}
    note = said("credential {credential_id} for {name}, role {role}",
                credential_id=credential.credential_id, name=name, role=role)
    return Result(str(credential), CREDENTIAL_CREATED_COLUMNS, [row], note=str(note))


def _admin_list(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    zone = _zone(config, store)
    rows: list[Row] = [
        {"credential": c.credential_id, "name": c.name, "role": code_cell(c.role, _ROLE_NAMES),
         "created": stamp(c.created_at, zone),
         "status": Told(said("revoked {at}", at=stamp(c.revoked_at, zone))) if c.revoked_at
                   else code_cell("active", _CREDENTIAL_STATUS)}
        for c in store.admin.credentials()
    ]  # fmt: skip
    return Result("", CREDENTIAL_COLUMNS, rows)


def _admin_revoke(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    credential_id = args.required("credential_id")
    if not store.admin.revoke_credential(credential_id, utcnow()):
        raise NotFound(
            "no credential {credential_id} that is not revoked already:"
            " see `devposture-collector admin list`",
            credential_id=credential_id,
        )
    return told(said("credential {credential_id} revoked: its next call is refused",
                     credential_id=credential_id))  # fmt: skip


def _audit_log(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    zone = _zone(config, store)
    rows: list[Row] = [
        {"at": stamp(e.at, zone), "actor": actor_cell(e.actor, e.credential_id),
         "role": code_cell(e.role, _ROLE_NAMES) if e.role else e.role,
         "command": e.command, "arguments": e.arguments,
         "outcome": code_cell(e.outcome, _OUTCOMES),
         "message": message_cell(e.message), "peer": e.peer}
        for e in store.admin.audit_entries()
    ]  # fmt: skip
    return Result("", AUDIT_COLUMNS, rows)


def _audit_export(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    # Imported here: the export imports the policy and signing modules, unused by the others.
    from devposture.collector.evidence.export import export_bundle  # noqa: PLC0415
    from devposture.collector.evidence.stopping import Stopped  # noqa: PLC0415

    policy = _policy(config, store)
    zone = zone_of(policy)
    start, end = args.moment("from", zone), args.moment("to", zone)
    if start is None or end is None:
        raise CommandError("--from and --to are required: the period to export")
    if end <= start:
        raise CommandError("--to ({end}) must be after --from ({start})",
                           end=shown(end, zone), start=shown(start, zone))  # fmt: skip
    now, asked = utcnow(), end
    # A bundle covers what has been written: a period typed past now ("everything": --to
    # 2100-01-01) ends now, and says so, rather than sign a claim for time not yet passed.
    end = min(end, now)
    if end <= start:
        raise CommandError("--from ({start}) is in the future: nothing has been written since",
                           start=shown(start, zone))  # fmt: skip
    out = _bundle_path(args.required("out"))
    show = args.flag("progress") or sys.stderr.isatty()
    line = ProgressLine()

    def progress(done: int, total: int) -> None:
        line.show(said("audit export: {done}/{total} chain entries ({percent}%)", done=done,
                       total=total, percent=100 * done // total).worded(args.lang_of_reader()),
                  last=done == total)  # fmt: skip

    report = args.progress or (progress if show else None)
    try:
        try:
            done = export_bundle(store, policy, config.data_dir, start=start, end=end,
                                 out=out, progress=report, stop=args.stop)  # fmt: skip
        finally:  # an error, or Ctrl-C, on a line of its own
            line.close()
    except Stopped as exc:
        raise Cancelled.as_is(exc) from None
    except (ValueError, FileExistsError) as exc:
        raise CommandError.as_is(exc) from None
    except OSError as exc:
        raise _not_written(out, exc) from None
    total = sum(done.counts.values())
    # An empty period said "0 records (no records)": what the chain holds for it, in words.
    shown_span = (said("chain seq {first}–{last}", first=done.first_seq, last=done.last_seq)
                  if done.first_seq else
                  said("the evidence chain holds no entry for this period"))  # fmt: skip
    message = said(
        "wrote {out}: {total} records ({span}) written {start} – {end}, signed by {key}. Check"
        " it anywhere with `devposture-collector audit verify {name} --public-key KEY.pem`"
        " (`audit public-key` prints the key).",
        out=out, total=total, span=shown_span, start=shown(start, zone), end=shown(end, zone),
        key=done.signing_key, name=out.name,
    )  # fmt: skip
    if asked > end:
        message = said("{above}\n{indent}{line}", above=message, indent="", line=said(
            "(--to {asked} is still to come: the period ends now, at {end}; export the rest"
            " once it has passed)", asked=shown(asked, zone), end=shown(end, zone),
        ))  # fmt: skip
    return told(message, note=str(said("exported {out} ({total} records, {span})", out=out,
                                       total=total, span=shown_span)))  # fmt: skip


def _bundle_path(typed_out: str) -> Path:
    """Where `--out` says to write the bundle, refused before any work when it cannot be: no
    name, standard output (a zip is not for a terminal), or a folder that is missing or not
    writable (the export wrote for minutes, then named a temporary file the user never
    typed)."""
    out = Path(typed_out)
    if str(typed_out).strip() in ("", "-") or out.is_dir():
        raise CommandError("--out needs a file name for the bundle (a zip), such as"
                           " 2026-Q4.zip")  # fmt: skip
    folder = out.parent
    if not folder.is_dir():
        raise CommandError("the folder {folder} does not exist: create it, or give --out a file"
                           " in a folder that exists", folder=folder)  # fmt: skip
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError("cannot write in {folder} (permission denied): give --out a file in"
                           " a folder you can write to", folder=folder)  # fmt: skip
    return out


def _not_written(out: Path, exc: OSError) -> CommandError:
    """Why the bundle could not be written, naming the disk that filled: the bundle's own, or
    the temporary folder where its members wait (about the bundle's size)."""
    if is_full(exc):
        spool = Path(tempfile.gettempdir())
        folder = out.parent if not no_space_left(spool) else spool
        if folder == spool:
            return CommandError(
                "the temporary folder {folder} is full (the export keeps about the bundle's"
                " size there while it writes): free space there, or point TMPDIR at a folder"
                " on a larger disk, and export again", folder=folder,
            )  # fmt: skip
        return CommandError("the disk holding {folder} is full: free space there, or give"
                            " --out a file on another disk, and export again",
                            folder=folder.resolve())  # fmt: skip
    return CommandError("cannot write {path}: {problem}", path=out,
                        problem=exc.strerror or exc)  # fmt: skip


def _audit_check(store: Store, config: CollectorConfig, args: Arguments, actor: Actor) -> Result:
    """Every row of the tables against the evidence chain; each finding printed as found
    (local only, so standard output is the person's), the verdict returned."""
    # Imported here: only this command compares the tables with the chain.
    from devposture.collector.evidence.crosscheck import Findings, TableCheck  # noqa: PLC0415

    show = args.flag("progress") or sys.stderr.isatty()
    line = ProgressLine()
    steps: list[str] = []

    def progress(step: str, done: int, total: int) -> None:
        lang = args.lang_of_reader()
        share = f"/{total}{bracketed(f'{100 * done // total}%', lang)}" if total else ""
        if steps and steps[-1] != step:
            line.close()  # each step on its own line
        if not steps or steps[-1] != step:
            steps.append(step)
        line.show(said("audit check: {step} {done}{share}", step=step, done=done,
                       share=share).worded(lang))  # fmt: skip

    policy = _policy(config, store)
    zone = zone_of(policy)  # each finding's times, as a person reads them
    # Reports still waiting for their seal (store/sealing.py) are chained first: a row the
    # chain does not hold yet is otherwise one added outside the collector.
    store.sealing.seal_all()
    check = TableCheck(store.crosscheck, checks=[c.check_id for c in policy.checks],
                       progress=progress if show else None)  # fmt: skip
    total = 0
    with gc_settle.batch():  # every row of the tables, read in runs of thousands
        try:
            for finding in check.run():
                total += 1
                problem = said("problem: {finding}", finding=finding.text(zone))
                sys.stdout.write(problem.worded(args.lang_of_reader()) + "\n")
                sys.stdout.flush()
        finally:
            line.close()
    findings = Findings([], total + check.unnamed, check.entries)
    note = (
        said("the tables agree with the chain ({entries} entries)", entries=check.entries)
        if findings.ok
        else said("the tables disagree with the chain on {total} row(s)", total=total)
    )  # fmt: skip
    verdict = findings.verdict()
    return Result(verdict, note=str(note), failed=not findings.ok, said=verdict.said)


def _audit_public_key(
    store: Store, config: CollectorConfig, args: Arguments, actor: Actor
) -> Result:
    from devposture.collector.evidence import signing  # noqa: PLC0415

    public = signing.load_or_create(config.data_dir).public_key()
    fingerprint = signing.fingerprint(public)
    row: Row = {"fingerprint": fingerprint}
    return Result(signing.public_pem(public).decode("ascii").rstrip("\n"), ("fingerprint",),
                  [row], note=str(said("public key {fingerprint}",
                                       fingerprint=fingerprint)))  # fmt: skip


_AS_OF = frozenset({"as_of", "lang"})

COMMANDS: dict[Words, Command] = {
    c.words: c
    for c in (
        Command(("report", "fleet"), VIEWER, _report("fleet"), _AS_OF | {"group"},
                "per check: devices passing, in grace, failing, unknown, exempt, stale"),
        Command(("report", "device"), VIEWER, _report("device"), _AS_OF | {"device_id"},
                "each check of a device (or of every device): state, since, why, what to do"),
        Command(("report", "failing"), VIEWER, _report("failing"), _AS_OF | {"group"},
                "devices failing a check, the longest-failing first"),
        Command(("report", "history"), VIEWER, _report("history"), _AS_OF | {"device_id"},
                "every state a device had on each check, from when until when"),
        Command(("waiver", "list"), VIEWER, _waiver_list, frozenset({"all", "log"}),
                "active waivers (--all: every one)"),
        Command(("waiver", "add"), ADMIN, _waiver_add,
                frozenset({"device", "check", "owner", "reason", "expires"}),
                "exempt devices from a check until a date"),
        Command(("waiver", "revoke"), ADMIN, _waiver_revoke, frozenset({"waiver_id", "reason"}),
                "end a waiver now"),
        Command(("device", "list"), VIEWER, _device_list, frozenset({"group"}),
                "every device (or one group's): status, certificate, last report, clone"
                " suspicion"),
        Command(("device", "show"), VIEWER, _device_show, frozenset({"device_id"}),
                "one device and every change of its identity"),
        Command(("device", "revoke"), ADMIN, _device_status(REVOKED),
                frozenset({"device_id", "reason"}),
                "refuse a device from now on (stolen, compromised); its history stays"),
        Command(("device", "retire"), ADMIN, _device_status(RETIRED),
                frozenset({"device_id", "reason"}),
                "take a device out of service (replaced, returned); its history stays"),
        Command(("device", "group"), ADMIN, _device_group,
                frozenset({"device_id", "group", "clear"}),
                "put a device in a group (a department, a site), or take it out (--clear)"),
        Command(("token", "list"), VIEWER, _token_list, frozenset(),
                "enrollment tokens: expiry, uses left, status (never the secret)"),
        Command(("token", "create"), ADMIN, _token_create,
                frozenset({"uses", "ttl", "group", "bundle", "enroll_address"}),
                "print a new enrollment token (N uses, expires, the group its devices join)"
                " on standard output; with --bundle, one enrollment value holding the"
                " collector's address, its CA fingerprint and the token"),
        Command(("token", "revoke"), ADMIN, _token_revoke, frozenset({"token_id"}),
                "make an enrollment token unusable now"),
        Command(("audit", "log"), AUDITOR, _audit_log, frozenset(),
                "every admin command: who, when, what, from where, and the outcome"),
        Command(("audit", "export"), AUDITOR, _audit_export,
                frozenset({"from", "to", "out", "progress"}),
                "write a signed audit bundle (records, chain, HTML report) for a period",
                local_only=True, streamed=True),
        Command(("audit", "check"), AUDITOR, _audit_check, frozenset({"progress"}),
                "compare every row of the tables with the evidence chain; exit 1 naming each"
                " row changed, removed or added outside the collector",
                local_only=True),
        Command(("audit", "public-key"), VIEWER, _audit_public_key, frozenset(),
                "print the public key that checks audit bundles, and its fingerprint"),
        Command(("admin", "add"), ADMIN, _admin_add, frozenset({"name", "role"}),
                "print a new admin credential (shown once) on standard output",
                local_only=True),
        Command(("admin", "list"), ADMIN, _admin_list, frozenset(),
                "admin credentials: name, role, status (never the secret)", local_only=True),
        Command(("admin", "revoke"), ADMIN, _admin_revoke, frozenset({"credential_id"}),
                "make an admin credential unusable now", local_only=True),
    )
}  # fmt: skip


def local_only_refusal(name: str, command: Command) -> Said:
    """Why `name` was refused over the admin port's Run, with the way that works."""
    if command.streamed:
        return said(
            "over the network `{name}` runs only through the streamed export, which writes the"
            " file on your computer: `devposture-collector {name} --collector HOST:PORT ..."
            " --out FILE`",
            name=name,
        )
    why = (
        said("admin credentials are not managed over the network")
        if command.words[0] == "admin"
        else said("it reads the collector's tables whole")
    )
    return said(
        "`{name}` runs only on the collector machine, with the data folder"
        " (`devposture-collector {name} --data ...`): {why}",
        name=name, why=why,
    )  # fmt: skip


# A role's name in a sentence (its id, `--role admin`, stays as it is).
_ROLE_NAMES = {VIEWER: said("viewer"), AUDITOR: said("auditor"), ADMIN: said("admin")}


def role_refusal(name: str, needed: str, actor: Actor) -> Said:
    """Why `actor` may not run `name`, naming the credential to ask for: an auditor's for what
    only reads evidence, an admin's for what changes anything."""
    return said(
        "`{name}` needs the {needed} role; {actor} has the {held} role. Ask the collector's"
        " administrator for a credential of the {needed} role (`devposture-collector admin add"
        " NAME --role {role}`)",
        name=name, needed=_ROLE_NAMES.get(needed, needed), actor=actor.label(),
        held=_ROLE_NAMES.get(actor.role, actor.role or said("no")), role=needed,
    )  # fmt: skip


class Runner:
    """Runs commands of the table for one store: checks the role, then writes the audit entry
    (exactly one per call, whatever happens; when the disk is full and it cannot be written,
    the call fails with StorageFull, so no command succeeds unaudited)."""

    def __init__(self, store: Store, config: CollectorConfig) -> None:
        self._store = store
        self._config = config

    def run(
        self,
        words: Sequence[str],
        arguments: Mapping[str, str],
        actor: Actor,
        *,
        peer: str,
        remote: bool,
        streamed: bool = False,
        progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Result:
        """`streamed`: called through the admin port's Export stream (for a command marked
        so), with `progress` to report to, and `stop`, set once its caller has gone."""
        name = " ".join(words)

        def audit(outcome: str, message: str) -> None:
            self._store.admin.audit(
                utcnow(), actor=actor.name, credential_id=actor.credential_id, role=actor.role,
                command=name, arguments=arguments, outcome=outcome, message=message, peer=peer,
            )  # fmt: skip

        command = COMMANDS.get((words[0], words[1])) if len(words) == 2 else None
        if command is None:
            error: CommandError = UnknownCommand(
                "no admin command {name}; the commands are: {commands}",
                name=repr(name), commands=enumeration(" ".join(w) for w in COMMANDS),
            )  # fmt: skip
            audit("error", str(error))
            raise error
        if command.local_only and remote and not (streamed and command.streamed):
            denied = Denied(local_only_refusal(name, command))
            audit("denied", str(denied))
            raise denied
        if ROLE_RANK.get(actor.role, 0) < ROLE_RANK[command.role]:
            denied = Denied(role_refusal(name, command.role, actor))
            audit("denied", str(denied))
            raise denied
        unknown = sorted(set(arguments) - command.options)
        if unknown:
            accepted = enumeration(sorted(command.options)) or said("none")
            error = CommandError(
                "`{name}` does not take {unknown} (it takes: {accepted})",
                name=name, unknown=enumeration(unknown), accepted=accepted,
            )  # fmt: skip
            audit("error", str(error))
            raise error
        try:
            result = command.handler(
                self._store, self._config, Arguments(arguments, progress, stop), actor
            )
        except CommandError as exc:
            audit("error", str(exc))
            raise
        except StorageFull as exc:  # rolled back; the audit entry most likely cannot be written
            with suppress(StorageFull):
                audit("error", str(exc))
            raise
        except Exception as exc:
            audit("error", str(said("internal error: {kind}", kind=type(exc).__name__)))
            raise
        audit("ok", result.note)
        return result


def present(words: Words, result: Result, fmt: str, lang: Lang = "en") -> tuple[str, str]:
    """What to print for a result: (standard output, standard error), the sentences in
    `lang`. The same for a local run and a remote one, so a script cannot tell them apart."""
    message = result.shown_message(lang)
    if words == ("audit", "public-key"):
        row = result.rows[0] if result.rows else {}
        return message + "\n", said(
            "evidence signing key {fingerprint}: give the PEM above to the auditor and confirm"
            " this fingerprint with them by another channel",
            fingerprint=row.get("fingerprint"),
        ).worded(lang) + "\n"
    if words in (("token", "create"), ("admin", "add")):
        # Standard output holds the secret alone, so `> file` captures exactly it.
        row = result.rows[0] if result.rows else {}
        if words == ("token", "create"):
            info = _token_info(row).worded(lang)
        else:
            info = said(
                "admin credential {credential} for {name} (role {role}). It is shown only this"
                " once: store it in a file only you can read (`chmod 600 FILE`) and give it with"
                " --credential-file FILE",
                credential=row.get("credential"),
                name=row.get("name"),
                role=row.get("role"),
            ).worded(lang)
        return message + "\n", info + "\n"
    if not result.columns:
        return (message + "\n" if message else ""), ""
    if (words == ("report", "fleet") and message and fmt == "table"
            and not any(row.get("devices") for row in result.rows)):  # fmt: skip
        # Nothing to count (no device enrolled, no device in the group): the sentence alone.
        # A projection's note (`--as-of` still to come) goes with its table, below it.
        return message + "\n", ""
    if words == ("device", "show") and fmt == "table":
        return _vertical(result, lang), ""
    # A table is a person's: its worded cells (a device's clock) in their language. JSON and
    # CSV are for scripts: their English, whoever runs the command.
    rows = in_language(result.rows, lang) if fmt == "table" else result.rows
    out = render(rows, result.columns, fmt)
    err = message + "\n" if message else ""
    if words == ("device", "list") and fmt == "table":
        err += "".join(line.worded(lang) + "\n" for line in _device_notes(result.rows))
    return out, err


def _device_notes(rows: list[Row]) -> list[Said]:
    """What `device list` says below its table about the devices that need a look."""
    notes = []
    clones = sum(1 for r in rows if r.get("clone_suspected"))
    if clones:
        notes.append(
            said(
                "{count} device(s) suspected of being cloned: see"
                " `devposture-collector device show ID`",
                count=clones,
            )
        )
    clocks = sum(1 for r in rows if r.get("clock_off"))
    if clocks:
        notes.append(
            said(
                "{count} device(s) with a clock off by 5 minutes or more: see"
                " `devposture-collector device show ID`",
                count=clocks,
            )
        )
    lost = sum(1 for r in rows if r.get("reports_lost"))
    if lost:
        notes.append(
            said(
                "{count} device(s) that lost reports to a full outbox while offline:"
                " see `devposture-collector device show ID`",
                count=lost,
            )
        )
    return notes


def _token_info(row: Row) -> Said:
    """What `token create` says on standard error about the token (or the value) it printed."""
    uses = row.get("uses")
    group = row.get("group")
    if group:
        what = (
            said("one device into group {group}", group=group)
            if uses == 1
            else said("{uses} devices into group {group}", uses=uses, group=group)
        )
    else:
        what = said("one device") if uses == 1 else said("{uses} devices", uses=uses)
    # The row's time is local with its offset (`stamp`): shown in that same zone.
    expires = dt.datetime.fromisoformat(str(row.get("expires")))
    until = shown(expires, expires.tzinfo or dt.UTC)
    if "collectors" not in row:
        return said(
            "token {token}: enrolls {what}, expires {until}",
            token=row.get("token"),
            what=what,
            until=until,
        )
    return said(
        "enrollment value for token {token}: enrolls {what}; expires {until}\n"
        "collector {collectors}, CA {fingerprint}\n"
        "Put it on each computer as {file} (owner root, mode 0600): the agent enrolls with it at"
        " its first start, then deletes it. It holds the secret: keep it out of command lines,"
        " tickets and chats.",
        token=row.get("token"),
        what=what,
        until=until,
        collectors=row.get("collectors"),
        fingerprint=row.get("ca_fingerprint"),
        file=ENROLLMENT_FILE,
    )


def _vertical(result: Result, lang: Lang) -> str:
    """One record as `name: value` lines: a device's many fields do not fit a table row.
    Each name is its column's heading in the reader's language (`render.headed`), as a
    table's would be: `device show` in Chinese was headed in English column names; each
    worded value (the clock, the outbox) is in `lang`, as a table's cells are."""
    lines = []
    # English keeps the names as they were (lower case), not a table's capitals.
    names = {c: c if current_heading(c) == c.upper() else current_heading(c)
             for c in result.columns}  # fmt: skip
    width = max((display_width(n) for n in names.values()), default=0)
    colon = "：" if lang == "zh" else ":"  # before a field's lines (`events`)
    for row in in_language(result.rows, lang):
        for column in result.columns:
            value = row.get(column)
            text = "" if value is None else escaped_controls(str(value))
            name = names[column]
            if "\n" in text or column == "events":
                lines.append(f"{name}{colon}")
                lines.extend(f"  {line}" for line in text.splitlines())
            else:
                lines.append(f"{name}{' ' * (width - display_width(name))}  {text}")
    return "\n".join(lines) + "\n"


def result_rows_json(result: Result) -> str:
    return json.dumps(result.rows, ensure_ascii=False)

"""Limits on what a posture report may hold, checked before anything of it is stored.

A report comes from a device we enrolled, but a device can be buggy, have a skewed clock or be
in someone's hands who wants to fill our database. So every report is walked field by field
through its protobuf descriptor, not by a hand-written list: a field added to the proto later
is covered by the defaults the day it appears, and only a field that needs more than the
defaults needs an entry here.

What is checked, and why:

* **repeated fields**: at most `DEFAULT_MAX_ITEMS` items, or the override in `MAX_ITEMS`
  (the agent keeps up to 500 Wi-Fi sessions, so that field may hold 500);
* **strings**: at most `DEFAULT_MAX_CHARS` characters, or the override in `MAX_CHARS`;
  **bytes**: at most `DEFAULT_MAX_BYTES`, or the override in `MAX_BYTES`;
* **`report_id`** must be a canonical lowercase UUID (the store's key for idempotence);
* **every `google.protobuf.Timestamp`** must be well-formed (nanos in 0..999,999,999), not
  before `EARLIEST` (1990-01-01: an unset clock or a zero from a parser, not a fact) and not
  more than `FUTURE_TOLERANCE` (24 h) after the collector's clock. Agents' clocks may be hours
  off and their reports must still be delivered, so the tolerance is generous; a day is not a
  skew, it is a broken clock;
* **`collected_at`** is required and must be at most `MAX_REPORT_AGE` (400 days) old: a report
  that old judged today would say nothing true about the device;
* **enums**: proto3 keeps an unknown number instead of refusing it, and a check comparing
  against known values would then quietly read it as "something else"; it is refused;
* **unknown fields** (field numbers this collector's proto does not know) are accepted and
  kept in the stored report: the contract only ever adds fields (DESIGN principle 6), so an
  agent upgraded before its collector must still deliver, and a later collector can read
  them. They are bounded by the message size like everything else.

`device_id` is not checked here: it must equal the identity of the client certificate, which
the service checks (PERMISSION_DENIED, not INVALID_ARGUMENT).

The first problem found is raised as `ReportInvalid`; its message names the field's path and
the limit, for IT reading the agent's log and for developers: "antivirus.products: 300 items,
at most 64".
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.v1 import devposture_pb2 as pb

DEFAULT_MAX_ITEMS = 64
DEFAULT_MAX_CHARS = 1024
DEFAULT_MAX_BYTES = 4096

# Per-field overrides, by the field's full proto name (the same message type may appear at
# several paths; its limits go with the type). Keys are checked against the descriptors at
# import, so a renamed field cannot silently lose its override.
MAX_ITEMS: Mapping[str, int] = {
    # agent/sessions.py keeps up to MAX_SESSIONS = 500 sessions and sends them all.
    "devposture.v1.WifiFact.sessions": 500,
    # One error per probe and source: a few dozen at most on any real machine.
    "devposture.v1.PostureReport.errors": 64,
    # Servers and developer machines can have many volumes and VPN-ish interfaces.
    "devposture.v1.DiskEncryptionFact.volumes": 256,
    "devposture.v1.VpnFact.interfaces": 256,
    "devposture.v1.ChatBackupFact.backups": 256,
}
MAX_CHARS: Mapping[str, int] = {
    "devposture.v1.PostureReport.report_id": 36,
    "devposture.v1.PostureReport.agent_version": 64,
    "devposture.v1.HostInfo.hostname": 255,
    # Probe errors quote a command and its stderr's first line.
    "devposture.v1.ProbeError.message": 4096,
    # Paths may be as long as the OS allows (PATH_MAX is 4096 on Linux).
    "devposture.v1.ChatBackup.location": 4096,
    "devposture.v1.ChatBackup.encryption_evidence": 4096,
}
MAX_BYTES: Mapping[str, int] = {}

FUTURE_TOLERANCE = dt.timedelta(hours=24)
EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
MAX_REPORT_AGE = dt.timedelta(days=400)

_MAX_NANOS = 999_999_999


class ReportInvalid(ValueError):
    """The report breaks a limit; the message names the field path and the limit."""


def validate_report(report: pb.PostureReport, now: dt.datetime) -> None:
    """Raise ReportInvalid unless `report` is within every limit, judged at `now` (the
    collector's clock, timezone-aware)."""
    if not report.HasField("collected_at"):
        raise ReportInvalid("collected_at is missing: every report must say when it was taken")
    if not _is_canonical_uuid(report.report_id):
        raise ReportInvalid(
            f"report_id: {_quote(report.report_id)} is not a lowercase UUID"
            " (like 0f8fad5b-d9cb-469f-a165-70867728950e)"
        )
    bounds = _Bounds(now)
    _walk(report, "", bounds)
    collected = report.collected_at.seconds
    if collected < bounds.oldest_report:
        raise ReportInvalid(
            f"collected_at: {_show(collected)} is more than {MAX_REPORT_AGE.days} days before"
            f" the collector's clock ({_show(bounds.now)})"
        )


class _Bounds:
    """The instants every timestamp is compared with, in whole seconds since the epoch."""

    def __init__(self, now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = int(now.timestamp())
        self.earliest = int(EARLIEST.timestamp())
        self.latest = int((now + FUTURE_TOLERANCE).timestamp())
        self.oldest_report = int((now - MAX_REPORT_AGE).timestamp())


def _walk(message: Message, path: str, bounds: _Bounds) -> None:
    if isinstance(message, Timestamp):
        _check_timestamp(message, path, bounds)
        return
    for field, value in message.ListFields():
        where = f"{path}.{field.name}" if path else field.name
        if not field.is_repeated:
            _check_value(field, value, where, bounds)
            continue
        limit = MAX_ITEMS.get(field.full_name, DEFAULT_MAX_ITEMS)
        if len(value) > limit:
            raise ReportInvalid(f"{where}: {len(value)} items, at most {limit}")
        if _is_map(field):
            assert field.message_type is not None
            entry = field.message_type.fields_by_name
            for key, item in value.items():
                _check_value(entry["key"], key, f"{where}[{key!r:.40}]", bounds)
                _check_value(entry["value"], item, f"{where}[{key!r:.40}]", bounds)
            continue
        for index, item in enumerate(value):
            _check_value(field, item, f"{where}[{index}]", bounds)


def _check_value(field: FieldDescriptor, value: object, where: str, bounds: _Bounds) -> None:
    if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        assert isinstance(value, Message)
        _walk(value, where, bounds)
    elif field.type == FieldDescriptor.TYPE_STRING:
        assert isinstance(value, str)
        limit = MAX_CHARS.get(field.full_name, DEFAULT_MAX_CHARS)
        if len(value) > limit:
            raise ReportInvalid(f"{where}: {len(value)} characters, at most {limit}")
    elif field.type == FieldDescriptor.TYPE_BYTES:
        assert isinstance(value, bytes)
        limit = MAX_BYTES.get(field.full_name, DEFAULT_MAX_BYTES)
        if len(value) > limit:
            raise ReportInvalid(f"{where}: {len(value)} bytes, at most {limit}")
    elif field.type == FieldDescriptor.TYPE_ENUM:
        assert isinstance(value, int)
        enum = field.enum_type
        assert enum is not None
        if value not in enum.values_by_number:
            raise ReportInvalid(f"{where}: {value} is not a value of {enum.full_name}")


def _check_timestamp(message: Timestamp, where: str, bounds: _Bounds) -> None:
    seconds, nanos = message.seconds, message.nanos
    if not 0 <= nanos <= _MAX_NANOS:
        raise ReportInvalid(f"{where}: nanos {nanos} is not between 0 and {_MAX_NANOS}")
    if seconds < bounds.earliest:
        raise ReportInvalid(
            f"{where}: {_show(seconds)} is before {EARLIEST:%Y-%m-%d}: the clock or the source"
            " was not set"
        )
    if seconds > bounds.latest:
        hours = int(FUTURE_TOLERANCE.total_seconds() // 3600)
        raise ReportInvalid(
            f"{where}: {_show(seconds)} is more than {hours} h after the collector's clock"
            f" ({_show(bounds.now)}): check the device's clock"
        )


def _is_map(field: FieldDescriptor) -> bool:
    message_type = field.message_type
    return message_type is not None and message_type.GetOptions().map_entry


def _is_canonical_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _quote(text: str) -> str:
    return repr(text[:64] + ("…" if len(text) > 64 else ""))


def _show(seconds: int) -> str:
    """An instant for a message; one outside datetime's range is shown as seconds."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} s since 1970"


def _check_overrides() -> None:
    """Every override names a real field of the right kind (a rename must not drop one)."""
    kinds = (
        (MAX_ITEMS, None),
        (MAX_CHARS, FieldDescriptor.TYPE_STRING),
        (MAX_BYTES, FieldDescriptor.TYPE_BYTES),
    )
    for table, kind in kinds:
        for name in table:
            message_name, _, field_name = name.rpartition(".")
            message = pb.DESCRIPTOR.pool.FindMessageTypeByName(message_name)
            field = message.fields_by_name.get(field_name)
            if field is None or (kind is not None and field.type != kind):
                raise LookupError(f"validation override {name} names no such field")
            if kind is None and not field.is_repeated:
                raise LookupError(f"validation override {name} is not a repeated field")


_check_overrides()

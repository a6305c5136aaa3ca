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
  more than `FUTURE_TOLERANCE` (24 h) after the report arrived (on the agent's clock where
  its skew is known, `intake.agent_now`). Agents' clocks may be hours
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
import functools
import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
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


def validate_report(report: pb.PostureReport, now: dt.datetime, facts: bytes | None = None) -> None:
    """Raise ReportInvalid unless `report` is within every limit, judged at `now`: when the
    report arrived, on the agent's clock where its skew is known (`intake.agent_now`), else on
    the collector's (timezone-aware). The messages call it the arrival: it is the collector's
    clock only when the agent's skew is not known. `facts`: the report's bytes less its id and
    collection time (`intake.facts_key`), by which a report like one seen is answered from
    memory (`_within`)."""
    if not report.HasField("collected_at"):
        raise ReportInvalid("collected_at is missing: every report must say when it was taken")
    if not _is_canonical_uuid(report.report_id):
        raise ReportInvalid(
            f"report_id: {_quote(report.report_id)} is not a lowercase UUID"
            " (like 0f8fad5b-d9cb-469f-a165-70867728950e)"
        )
    bounds = _Bounds(now)
    # The compiled check answers "within every limit?" for the common case; the walk below
    # finds the first problem and words it, and is the authority whenever the answer is no.
    if not _within(report, bounds, facts):
        _walk(report, None, bounds)
    collected = report.collected_at.seconds
    if collected < bounds.oldest_report:
        raise ReportInvalid(
            f"collected_at: {_show(collected)} is more than {MAX_REPORT_AGE.days} days before"
            f" the report arrived ({_show(bounds.now)})"
        )


# Facts found within every limit (`facts` of validate_report -> the least `latest` they were
# found within at), about 2 KB each; emptied when full.
WITHIN_KEPT = 2048
_found_within: dict[bytes, int] = {}


def _within(report: pb.PostureReport, bounds: _Bounds, facts: bytes | None) -> bool:
    """`_within_limits(report, bounds.earliest, bounds.latest)`, answered from memory for a
    report whose facts (all but fields 1 and 4) were found within at a `latest` no later than
    this one's. Why that is the same answer: `_within_limits` is a conjunction, field by field,
    and the other fields' bytes, hence values, are those found within; `earliest` is one
    constant, and a timestamp no later than a smaller `latest` is no later than this one. What
    is left is fields 1 and 4, checked here as `_within_limits` checks them."""
    if facts is not None:
        least = _found_within.get(facts)
        if least is not None and least <= bounds.latest:
            t = report.collected_at
            return (
                len(report.report_id) <= _REPORT_ID_CHARS
                and bounds.earliest <= t.seconds <= bounds.latest
                and 0 <= t.nanos <= _MAX_NANOS
            )
    if not _within_limits(report, bounds.earliest, bounds.latest):
        return False
    if facts is not None:
        if len(_found_within) >= WITHIN_KEPT:
            _found_within.clear()
        least = _found_within.get(facts)
        _found_within[facts] = bounds.latest if least is None else min(least, bounds.latest)
    return True


class _Bounds:
    """The instants every timestamp is compared with, in whole seconds since the epoch."""

    def __init__(self, now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = int(now.timestamp())
        self.earliest = int(EARLIEST.timestamp())
        self.latest = int((now + FUTURE_TOLERANCE).timestamp())
        self.oldest_report = int((now - MAX_REPORT_AGE).timestamp())


# A field's place in the report, built as nested pairs while walking and spelled out only
# for an error message ("wifi.sessions[3].network_id"): walking must be cheap, it runs on
# every report the collector receives.
# A part is a field name, an item's index (an int) or a map key (already "[...]").
Path = tuple[object, str | int] | None


def _spell(path: Path) -> str:
    parts: list[str | int] = []
    while path is not None:
        path, part = path  # type: ignore[assignment]
        parts.append(part)
    text = ""
    for part in reversed(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += part if part.startswith("[") or not text else f".{part}"
    return text


# What a field holds, as far as its checks go.
_NUMBER, _STRING, _BYTES, _ENUM, _MESSAGE, _TIMESTAMP, _MAP = range(7)
_SIZED = (_STRING, _BYTES)
_TIMESTAMP_TYPE = Timestamp.DESCRIPTOR.full_name


@dataclass(frozen=True, slots=True)
class _Rule:
    """What to check of one field, worked out once per field from its descriptor."""

    name: str
    kind: int  # _NUMBER, _STRING, ...
    repeated: bool
    max_items: int
    limit: int  # characters or bytes
    enum_values: frozenset[int]
    enum_name: str
    map_entry: tuple[_Rule, _Rule] | None


class _Rules(dict[FieldDescriptor, _Rule]):
    """A message type's rules by field descriptor (the objects ListFields returns, held here
    so that they stay the same objects), and by number should a lookup ever miss."""

    def __init__(self, descriptor: Descriptor) -> None:
        super().__init__((field, _rule(field)) for field in descriptor.fields)
        self.by_number = {field.number: rule for field, rule in self.items()}

    def __missing__(self, field: FieldDescriptor) -> _Rule:
        return self.by_number[field.number]


@functools.cache
def _rules(descriptor: Descriptor) -> _Rules:
    return _Rules(descriptor)


def _rule(field: FieldDescriptor) -> _Rule:
    kind = {
        FieldDescriptor.TYPE_MESSAGE: _MESSAGE,
        FieldDescriptor.TYPE_GROUP: _MESSAGE,
        FieldDescriptor.TYPE_STRING: _STRING,
        FieldDescriptor.TYPE_BYTES: _BYTES,
        FieldDescriptor.TYPE_ENUM: _ENUM,
    }.get(field.type, _NUMBER)
    limit = 0
    if kind == _STRING:
        limit = MAX_CHARS.get(field.full_name, DEFAULT_MAX_CHARS)
    elif kind == _BYTES:
        limit = MAX_BYTES.get(field.full_name, DEFAULT_MAX_BYTES)
    enum = field.enum_type
    map_entry = None
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        entry = message.fields_by_name
        kind, map_entry = _MAP, (_rule(entry["key"]), _rule(entry["value"]))
    elif message is not None and message.full_name == _TIMESTAMP_TYPE:
        kind = _TIMESTAMP
    return _Rule(
        name=field.name,
        kind=kind,
        repeated=field.is_repeated,
        max_items=MAX_ITEMS.get(field.full_name, DEFAULT_MAX_ITEMS),
        limit=limit,
        enum_values=frozenset(enum.values_by_number) if enum is not None else frozenset(),
        enum_name=enum.full_name if enum is not None else "",
        map_entry=map_entry,
    )


def _walk(message: Message, path: Path, bounds: _Bounds) -> None:
    """Check every field set in `message`, in field order, the first problem raised.

    Every report passes through here, so the common case is kept to a few operations per
    field: a repeated string or enum field is checked in one pass in C (`max(map(len))`, a
    set inclusion) and walked item by item only to name the item that breaks a limit; a
    field's path is built only to recurse or to say what is wrong."""
    earliest, latest = bounds.earliest, bounds.latest
    rules = _rules(message.DESCRIPTOR)
    for field, value in message.ListFields():
        rule = rules[field]
        kind = rule.kind
        if kind == _NUMBER:
            if rule.repeated and len(value) > rule.max_items:
                raise _too_many((path, rule.name), len(value), rule)
        elif not rule.repeated:
            if kind == _MESSAGE:
                _walk(value, (path, rule.name), bounds)
            elif kind == _TIMESTAMP:
                nanos = value.nanos
                if not (0 <= nanos <= _MAX_NANOS and earliest <= value.seconds <= latest):
                    _check_timestamp(value, (path, rule.name), bounds)
            elif kind in _SIZED:
                if len(value) > rule.limit:
                    _check_value(rule, value, (path, rule.name), bounds)
            elif kind == _ENUM:
                if value not in rule.enum_values:
                    _check_value(rule, value, (path, rule.name), bounds)
            else:
                _check_map(rule, value, (path, rule.name), bounds)
        else:
            if len(value) > rule.max_items:
                raise _too_many((path, rule.name), len(value), rule)
            if kind == _MESSAGE:
                where = (path, rule.name)
                for index, item in enumerate(value):
                    _walk(item, (where, index), bounds)
            elif kind in _SIZED:
                if max(map(len, value), default=0) > rule.limit:
                    _first_bad_item(rule, value, (path, rule.name), bounds)
            elif kind == _ENUM:
                if not rule.enum_values.issuperset(value):
                    _first_bad_item(rule, value, (path, rule.name), bounds)
            elif kind == _TIMESTAMP:
                where = (path, rule.name)
                for index, item in enumerate(value):
                    _check_timestamp(item, (where, index), bounds)
            else:
                _check_map(rule, value, (path, rule.name), bounds)


def _first_bad_item(rule: _Rule, items: list[object], where: Path, bounds: _Bounds) -> None:
    """Raise for the first item of a repeated field that breaks its limit."""
    for index, item in enumerate(items):
        _check_value(rule, item, (where, index), bounds)


def _check_map(rule: _Rule, value: Mapping[object, object], where: Path, bounds: _Bounds) -> None:
    if len(value) > rule.max_items:
        raise _too_many(where, len(value), rule)
    assert rule.map_entry is not None
    key_rule, value_rule = rule.map_entry
    for key, item in value.items():
        at = (where, f"[{key!r:.40}]")
        _check_value(key_rule, key, at, bounds)
        _check_value(value_rule, item, at, bounds)


def _too_many(where: Path, count: int, rule: _Rule) -> ReportInvalid:
    return ReportInvalid(f"{_spell(where)}: {count} items, at most {rule.max_items}")


def _check_value(rule: _Rule, value: object, where: Path, bounds: _Bounds) -> None:
    kind = rule.kind
    if kind == _MESSAGE:
        assert isinstance(value, Message)
        _walk(value, where, bounds)
    elif kind == _TIMESTAMP:
        assert isinstance(value, Timestamp)
        _check_timestamp(value, where, bounds)
    elif kind == _STRING:
        assert isinstance(value, str)
        if len(value) > rule.limit:
            raise ReportInvalid(f"{_spell(where)}: {len(value)} characters, at most {rule.limit}")
    elif kind == _BYTES:
        assert isinstance(value, bytes)
        if len(value) > rule.limit:
            raise ReportInvalid(f"{_spell(where)}: {len(value)} bytes, at most {rule.limit}")
    elif kind == _ENUM:
        assert isinstance(value, int)
        if value not in rule.enum_values:
            raise ReportInvalid(f"{_spell(where)}: {value} is not a value of {rule.enum_name}")


def _check_timestamp(message: Timestamp, path: Path, bounds: _Bounds) -> None:
    seconds, nanos = message.seconds, message.nanos
    if 0 <= nanos <= _MAX_NANOS and bounds.earliest <= seconds <= bounds.latest:
        return
    where = _spell(path)
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
            f"{where}: {_show(seconds)} is more than {hours} h after the report arrived"
            f" ({_show(bounds.now)}): check the device's clock"
        )


# The text `str(uuid.UUID(...))` gives: exactly what round-trips through uuid.UUID unchanged.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _is_canonical_uuid(text: str) -> bool:
    return _CANONICAL_UUID.fullmatch(text) is not None


def _quote(text: str) -> str:
    return repr(text[:64] + ("…" if len(text) > 64 else ""))


def _show(seconds: int) -> str:
    """An instant for a message; one outside datetime's range is shown as seconds."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} s since 1970"


# --- the compiled check ------------------------------------------------------------------------
#
# Walking a report through ListFields and the rules costs a Python step per field set (about
# a hundred for a laptop's report), and every report the collector receives pays it. The same
# rules, compiled once from the descriptors into one plain function per message type
# (attribute reads and comparisons, no dispatch), answer only "is every limit kept?": about a
# fifth of the cost. They are conservative by construction: each rule is checked at least as
# strictly as `_walk` checks it (an unset field is read as its default, which every rule
# accepts, or else the report goes to the walk), and a map field with any entry is left to the
# walk. So a report the compiled check passes is one the walk passes, and every refusal and
# its message still come from the walk (tests/collector/test_ingest_validation.py compares
# the two on generated reports).


def _attribute(field: FieldDescriptor) -> str:
    name = field.name
    return f"m.{name}" if name.isidentifier() and not keyword.iskeyword(name) else (
        f"getattr(m, {name!r})"
    )  # fmt: skip


def _compile(root: Descriptor) -> Callable[[Message, int, int], bool]:
    """One function per message type reachable from `root`: (message, earliest, latest) ->
    True when every limit of `_walk` is kept."""
    names: dict[str, str] = {}
    sources: list[str] = []
    constants: dict[str, object] = {}

    def constant(value: object) -> str:
        name = f"_C{len(constants)}"
        constants[name] = value
        return name

    def function(descriptor: Descriptor) -> str:
        found = names.get(descriptor.full_name)
        if found is not None:
            return found
        name = names[descriptor.full_name] = f"_ok{len(names)}"
        lines = [f"def {name}(m, lo, hi):"]
        for field in descriptor.fields:
            lines += [f"    {line}" for line in _field_lines(field, _rules(descriptor)[field])]
        lines.append("    return True")
        sources.append("\n".join(lines))
        return name

    def _field_lines(field: FieldDescriptor, rule: _Rule) -> list[str]:
        value = _attribute(field)
        stamp = f"lo <= t.seconds <= hi and 0 <= t.nanos <= {_MAX_NANOS}"
        kind, most = rule.kind, rule.max_items
        if kind == _MAP:  # rare: any entry goes to the walk
            return [f"if len({value}): return False"]
        if not rule.repeated:
            if kind == _MESSAGE:
                assert field.message_type is not None
                check = function(field.message_type)
                return [f"if m.HasField({field.name!r}) and not {check}({value}, lo, hi):",
                        "    return False"]  # fmt: skip
            if kind == _TIMESTAMP:
                return [f"if m.HasField({field.name!r}):", f"    t = {value}",
                        f"    if not ({stamp}): return False"]  # fmt: skip
            if kind in _SIZED:
                return [f"if len({value}) > {rule.limit}: return False"]
            if kind == _ENUM:
                return [f"if {value} not in {constant(rule.enum_values)}: return False"]
            return []
        lines = [f"v = {value}", f"if len(v) > {most}: return False"]
        if kind == _MESSAGE:
            assert field.message_type is not None
            check = function(field.message_type)
            lines += ["for x in v:", f"    if not {check}(x, lo, hi): return False"]
        elif kind == _TIMESTAMP:
            lines += ["for t in v:", f"    if not ({stamp}): return False"]
        elif kind in _SIZED:
            lines += [f"if v and max(map(len, v)) > {rule.limit}: return False"]
        elif kind == _ENUM:
            lines += [f"if not {constant(rule.enum_values)}.issuperset(v): return False"]
        return lines

    entry = function(root)
    namespace: dict[str, object] = dict(constants)
    exec("\n\n".join(sources), namespace)  # noqa: S102 (text made here from the descriptors)
    compiled = namespace[entry]
    assert callable(compiled)
    return compiled


_within_limits = _compile(pb.PostureReport.DESCRIPTOR)
_REPORT_ID_CHARS = MAX_CHARS["devposture.v1.PostureReport.report_id"]


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

"""Limits on report input (collector/validation.py): each limit alone, at its edge, and
through the real collector over mutual TLS, where a refused report leaves nothing stored.

Every rejection test also checks the message (field path and limit) and, where there is an
edge, that the value just inside the limit passes: so removing or loosening a limit fails a
test, and so does tightening it past what agents really send.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from devposture.agent.sessions import MAX_SESSIONS
from devposture.agent.transport import open_channel, send_report
from devposture.collector.validation import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_ITEMS,
    MAX_CHARS,
    MAX_ITEMS,
    ReportInvalid,
    validate_report,
)
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import EnrolledAgent, LiveCollector, make_report

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _report(collected_at: dt.datetime = NOW - HOUR) -> pb.PostureReport:
    return make_report("0123456789abcdef0123456789abcdef", collected_at)


def _invalid(report: pb.PostureReport, now: dt.datetime = NOW) -> str:
    with pytest.raises(ReportInvalid) as caught:
        validate_report(report, now)
    return str(caught.value)


def _stamp(message: Message, field: str, moment: dt.datetime) -> None:
    getattr(message, field).FromDatetime(moment)


def test_a_normal_report_is_accepted() -> None:
    validate_report(_report(), NOW)


def test_report_invalid_is_a_value_error() -> None:
    assert issubclass(ReportInvalid, ValueError)


# --- repeated fields ---------------------------------------------------------------------


def test_too_many_antivirus_products() -> None:
    report = _report()
    for _ in range(DEFAULT_MAX_ITEMS):
        report.antivirus.products.add(name="ClamAV")
    validate_report(report, NOW)
    report.antivirus.products.add(name="one too many")
    assert _invalid(report) == "antivirus.products: 65 items, at most 64"


def test_wifi_sessions_may_hold_what_the_agent_keeps_and_no_more() -> None:
    assert MAX_ITEMS["devposture.v1.WifiFact.sessions"] == MAX_SESSIONS == 500
    report = _report()
    for _ in range(MAX_SESSIONS):
        session = report.wifi.sessions.add(network_id="cafe")
        _stamp(session, "started_at", NOW - 2 * HOUR)
    validate_report(report, NOW)
    report.wifi.sessions.add(network_id="one too many")
    assert _invalid(report) == "wifi.sessions: 501 items, at most 500"


def test_too_many_errors() -> None:
    report = _report()
    for _ in range(64):
        report.errors.add(fact=pb.FACT_VPN, code=pb.PROBE_ERROR_CODE_TIMEOUT, message="slow")
    validate_report(report, NOW)
    report.errors.add(fact=pb.FACT_VPN)
    assert _invalid(report) == "errors: 65 items, at most 64"


def test_repeated_strings_nested_in_repeated_messages_are_counted() -> None:
    report = _report()
    product = report.antivirus.products.add(name="ClamAV")
    product.processes.extend(["clamd"] * (DEFAULT_MAX_ITEMS + 1))
    assert _invalid(report) == "antivirus.products[0].processes: 65 items, at most 64"


# --- strings -----------------------------------------------------------------------------


def test_too_long_string() -> None:
    report = _report()
    report.host.os_name = "x" * DEFAULT_MAX_CHARS
    validate_report(report, NOW)
    report.host.os_name += "x"
    assert _invalid(report) == "host.os_name: 1025 characters, at most 1024"


def test_string_limits_count_characters_not_bytes() -> None:
    report = _report()
    report.host.os_name = "防" * DEFAULT_MAX_CHARS  # 3 bytes each in UTF-8
    validate_report(report, NOW)
    report.host.os_name += "火"
    assert "host.os_name: 1025 characters" in _invalid(report)


def test_hostname_override_is_tighter() -> None:
    report = _report()
    report.host.hostname = "h" * 255
    validate_report(report, NOW)
    report.host.hostname += "h"
    assert _invalid(report) == "host.hostname: 256 characters, at most 255"


def test_probe_error_messages_may_be_longer_than_the_default() -> None:
    report = _report()
    report.errors.add(fact=pb.FACT_FIREWALL, message="e" * 4096)
    validate_report(report, NOW)
    report.errors[0].message += "e"
    assert _invalid(report) == "errors[0].message: 4097 characters, at most 4096"


def test_strings_inside_repeated_messages_are_checked_with_their_index() -> None:
    report = _report()
    report.vpn.interfaces.add(name="wg0")
    report.vpn.interfaces.add(name="n" * (DEFAULT_MAX_CHARS + 1))
    assert _invalid(report) == "vpn.interfaces[1].name: 1025 characters, at most 1024"


# --- the walk is generic -----------------------------------------------------------------


def _paths(
    descriptor: Descriptor, prefix: tuple[FieldDescriptor, ...] = ()
) -> Iterator[tuple[FieldDescriptor, ...]]:
    for field in descriptor.fields:
        path = (*prefix, field)
        yield path
        if field.message_type is not None and field.message_type.full_name != (
            "google.protobuf.Timestamp"
        ):
            yield from _paths(field.message_type, path)


def _holder(report: pb.PostureReport, path: tuple[FieldDescriptor, ...]) -> Message:
    """The message holding the last field of `path`, made present (first item of lists)."""
    message: Message = report
    for field in path[:-1]:
        value = getattr(message, field.name)
        message = (value[0] if len(value) else value.add()) if field.is_repeated else value
    return message


def _dotted(path: tuple[FieldDescriptor, ...]) -> str:
    return ".".join(f.name + ("[0]" if f.is_repeated else "") for f in path[:-1]) + (
        ("." if len(path) > 1 else "") + path[-1].name
    )


ALL_PATHS = list(_paths(pb.PostureReport.DESCRIPTOR))


@pytest.mark.parametrize(
    "path",
    [p for p in ALL_PATHS if p[-1].type == FieldDescriptor.TYPE_STRING and not p[-1].is_repeated],
    ids=_dotted,
)
def test_every_string_field_has_a_limit(path: tuple[FieldDescriptor, ...]) -> None:
    """Found through the descriptor: a string field added later is limited too."""
    field = path[-1]
    limit = MAX_CHARS.get(field.full_name, DEFAULT_MAX_CHARS)
    report = _report()
    setattr(_holder(report, path), field.name, "a" * (limit + 1))
    message = _invalid(report)
    if field.name == "report_id":
        assert message.startswith("report_id: ")
    else:
        assert message == f"{_dotted(path)}: {limit + 1} characters, at most {limit}"


@pytest.mark.parametrize("path", [p for p in ALL_PATHS if p[-1].is_repeated], ids=_dotted)
def test_every_repeated_field_has_a_limit(path: tuple[FieldDescriptor, ...]) -> None:
    field = path[-1]
    limit = MAX_ITEMS.get(field.full_name, DEFAULT_MAX_ITEMS)
    report = _report()
    items = getattr(_holder(report, path), field.name)
    del items[:]
    for _ in range(limit + 1):
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            items.add()
        else:
            items.append("x")
    assert _invalid(report) == f"{_dotted(path)}: {limit + 1} items, at most {limit}"


@pytest.mark.parametrize(
    "path", [p for p in ALL_PATHS if p[-1].type == FieldDescriptor.TYPE_ENUM], ids=_dotted
)
def test_every_enum_field_refuses_unknown_numbers(path: tuple[FieldDescriptor, ...]) -> None:
    field = path[-1]
    assert field.enum_type is not None
    unknown = max(field.enum_type.values_by_number) + 1
    report = _report()
    holder = _holder(report, path)
    setattr(holder, field.name, max(field.enum_type.values_by_number))
    validate_report(report, NOW)
    setattr(holder, field.name, unknown)
    assert _invalid(report) == (
        f"{_dotted(path)}: {unknown} is not a value of {field.enum_type.full_name}"
    )


# --- enums and unknown fields --------------------------------------------------------------


def test_unknown_enum_value() -> None:
    report = _report()
    report.host.os_family = 42  # type: ignore[assignment]
    assert _invalid(report) == "host.os_family: 42 is not a value of devposture.v1.OsFamily"


def test_negative_enum_value() -> None:
    report = _report()
    report.errors.add(fact=pb.FACT_HOST, code=-1)
    assert _invalid(report) == "errors[0].code: -1 is not a value of devposture.v1.ProbeErrorCode"


def test_unknown_fields_from_a_newer_agent_are_accepted_and_kept() -> None:
    """Fields are only ever added to the contract: an agent upgraded before its collector
    must still deliver, and its extra facts stay in the stored report."""
    report = _report()
    report.MergeFromString(b"\xf8\x06\x05")  # field 111, varint 5
    report.firewall.profiles[0].MergeFromString(b"\x98\x06\x01")  # field 99, varint 1
    validate_report(report, NOW)
    assert b"\xf8\x06\x05" in report.SerializeToString()


# --- timestamps ----------------------------------------------------------------------------


def test_collected_at_more_than_a_day_ahead_is_refused() -> None:
    message = _invalid(_report(NOW + 25 * HOUR))
    assert message == (
        "collected_at: 2026-11-25T13:00:00Z is more than 24 h after the report arrived"
        " (2026-11-24T12:00:00Z): check the device's clock"
    )


def test_a_clock_hours_ahead_is_accepted() -> None:
    validate_report(_report(NOW + 3 * HOUR), NOW)
    validate_report(_report(NOW + 23 * HOUR), NOW)


def test_nested_future_timestamp_is_refused() -> None:
    report = _report()
    session = report.wifi.sessions.add(network_id="cafe")
    _stamp(session, "started_at", NOW - HOUR)
    _stamp(session, "ended_at", NOW + 24 * HOUR + dt.timedelta(seconds=1))
    assert _invalid(report).startswith(
        "wifi.sessions[0].ended_at: 2026-11-25T12:00:01Z is more than 24 h after"
    )
    _stamp(session, "ended_at", NOW + 24 * HOUR)
    validate_report(report, NOW)


def test_ancient_timestamp_is_refused() -> None:
    report = _report()
    product = report.antivirus.products.add(name="ClamAV")
    _stamp(product, "signatures_updated_at", dt.datetime(1990, 1, 1, tzinfo=dt.UTC))
    validate_report(report, NOW)
    _stamp(product, "signatures_updated_at", dt.datetime(1989, 12, 31, 23, 59, tzinfo=dt.UTC))
    assert _invalid(report) == (
        "antivirus.products[0].signatures_updated_at: 1989-12-31T23:59:00Z is before"
        " 1990-01-01: the clock or the source was not set"
    )


def test_a_set_but_zero_timestamp_is_refused() -> None:
    report = _report()
    report.os_updates.last_checked.SetInParent()  # 1970-01-01: a parser's zero
    assert _invalid(report).startswith("os_updates.last_checked: 1970-01-01T00:00:00Z is before")


def test_absurd_seconds_are_refused_without_crashing() -> None:
    report = _report()
    report.os_updates.last_installed.seconds = 2**62
    assert "os_updates.last_installed: 4611686018427387904 s since 1970 is more than" in (
        _invalid(report)
    )
    report.os_updates.last_installed.seconds = -(2**62)
    assert "is before 1990-01-01" in _invalid(report)


@pytest.mark.parametrize("nanos", [-1, 1_000_000_000, 2**31 - 1])
def test_bad_nanos_are_refused(nanos: int) -> None:
    report = _report()
    report.collected_at.nanos = 999_999_999
    validate_report(report, NOW)
    report.collected_at.nanos = nanos
    assert _invalid(report) == f"collected_at: nanos {nanos} is not between 0 and 999999999"


def test_bad_nanos_in_nested_timestamp() -> None:
    report = _report()
    backup = report.chat_backups.backups.add(app=pb.CHAT_APP_WECHAT)
    _stamp(backup, "newest_backup_at", NOW - HOUR)
    backup.newest_backup_at.nanos = -5
    assert _invalid(report) == (
        "chat_backups.backups[0].newest_backup_at: nanos -5 is not between 0 and 999999999"
    )


def test_missing_collected_at() -> None:
    report = _report()
    report.ClearField("collected_at")
    assert _invalid(report).startswith("collected_at is missing")


def test_report_older_than_400_days_is_refused() -> None:
    validate_report(_report(NOW - dt.timedelta(days=399)), NOW)
    message = _invalid(_report(NOW - dt.timedelta(days=401)))
    assert message.startswith("collected_at: 2025-10-19T12:00:00Z is more than 400 days before")


def test_old_facts_inside_a_fresh_report_are_fine() -> None:
    report = _report()
    _stamp(report.os_updates, "last_installed", NOW - dt.timedelta(days=3000))
    validate_report(report, NOW)


# --- report_id -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "not-a-uuid",
        "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
        "6f9619ff8b86d011b42d00c04fc964ff",
        "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
    ],
)
def test_bad_report_id(bad_id: str) -> None:
    report = _report()
    report.report_id = bad_id
    assert _invalid(report).startswith(f"report_id: {bad_id!r} is not a lowercase UUID")


def test_long_report_id_is_quoted_short() -> None:
    report = _report()
    report.report_id = "z" * 10_000
    assert len(_invalid(report)) < 200


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_report(_report(), NOW.replace(tzinfo=None))


# --- through the real collector ------------------------------------------------------------


def _stored(collector: LiveCollector) -> list[str]:
    store = collector.store()
    try:
        return store.reports.report_ids()
    finally:
        store.close()


def _refusal(agent: EnrolledAgent, report: pb.PostureReport) -> grpc.RpcError:
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        send_report(channel, report)
    return caught.value


def test_collector_refuses_too_many_items_and_stores_nothing(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    for n in range(300):
        report.antivirus.products.add(name=f"av{n}")
    error = _refusal(agent, report)
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "antivirus.products: 300 items, at most 64"
    assert report.report_id not in _stored(live_collector)
    assert _stored(live_collector) == []


def test_collector_refuses_a_report_from_the_future_and_stores_nothing(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id, dt.datetime.now(dt.UTC) + 30 * HOUR)
    error = _refusal(agent, report)
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "collected_at: " in str(error.details()) and "more than 24 h after" in str(
        error.details()
    )
    assert _stored(live_collector) == []


def test_collector_refuses_an_unknown_enum_and_stores_nothing(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    report.wifi.sessions.add(network_id="x", security=77)
    error = _refusal(agent, report)
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "wifi.sessions[0].security: 77 is not a value of devposture.v1.WifiSecurity"
    )
    assert _stored(live_collector) == []


def test_collector_accepts_a_clock_three_hours_ahead(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id, dt.datetime.now(dt.UTC) + 3 * HOUR)
    with open_channel(agent.state, agent.enrollment) as channel:
        ack = send_report(channel, report)
    assert ack.report_id == report.report_id
    assert _stored(live_collector) == [report.report_id]


def test_collector_refuses_an_uppercase_report_id_with_the_reason(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    report.report_id = str(uuid.uuid4()).upper()
    error = _refusal(agent, report)
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a lowercase UUID" in str(error.details())
    assert _stored(live_collector) == []

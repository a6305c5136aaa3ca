"""From a received report to what the store keeps: identity, limits, clock skew and times.

Pure functions, shared by Report and ReportBatch, so one report is judged the same way however
it arrived.

Clock skew. An agent's clock may be hours off. The request says when the agent sent it
(`sent_at`, the agent's clock); the collector's clock at receipt minus that is the skew. The
report's times are then read on the collector's clock: its collection time is the agent's
`collected_at` plus the skew (and never after receipt), which dates the device's history and
orders its reports. Checks compare a fact's time with the report's own `collected_at`, both on
the agent's clock, so ages (signatures, backups) are right whatever the skew. An agent that
sends no `sent_at` (an older version) is read as before: skew unknown, its clock trusted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.collector.evidence.body_parts import leading_fields
from devposture.collector.store import OutboxFigures, ReportRecord
from devposture.collector.validation import ReportInvalid, validate_report
from devposture.policy.checks import utc
from devposture.v1 import devposture_pb2 as pb

# Beyond this the agent's `sent_at` is not believed: such a clock is broken, not skewed.
MAX_SKEW = dt.timedelta(days=400)


@dataclass(frozen=True)
class Refusal:
    """Why one report is refused: the status a Report call fails with."""

    code: grpc.StatusCode
    message: str


def _os_family_name(value: pb.OsFamily.ValueType) -> str:
    name = pb.OsFamily.Name(value) if value in pb.OsFamily.values() else "OS_FAMILY_UNSPECIFIED"
    return name.removeprefix("OS_FAMILY_").lower().replace("unspecified", "")


# Every report names its OS family: the names are worked out once.
_OS_FAMILY_NAMES: dict[int, str] = {v: _os_family_name(v) for v in pb.OsFamily.values()}


def os_family_name(value: pb.OsFamily.ValueType) -> str:
    return _OS_FAMILY_NAMES.get(value, "")


def measure_skew(sent_at: Timestamp | None, received_at: dt.datetime) -> dt.timedelta | None:
    """Collector clock minus agent clock, or None when the agent did not say when it sent."""
    if sent_at is None or (sent_at.seconds == 0 and sent_at.nanos == 0):
        return None
    if not 0 <= sent_at.nanos < 1_000_000_000:
        return None
    try:
        sent = utc(sent_at)
    except (ValueError, OverflowError):
        return None
    skew = received_at - sent
    return skew if abs(skew) <= MAX_SKEW else None


def agent_now(received_at: dt.datetime, skew: dt.timedelta | None) -> dt.datetime:
    """The agent's clock at the moment the collector received its request."""
    return received_at if skew is None else received_at - skew


def collected_on_collector_clock(
    report: pb.PostureReport, received_at: dt.datetime, skew: dt.timedelta | None
) -> dt.datetime:
    collected = utc(report.collected_at) + (skew or dt.timedelta())
    return min(collected, received_at)


def refusal(
    report: pb.PostureReport, device_id: str, received_at: dt.datetime,
    skew: dt.timedelta | None, facts: bytes | None = None,
) -> Refusal | None:  # fmt: skip
    """Why this report from `device_id` cannot be stored, or None when it can. `facts`: its
    `facts_key`, by which a report like one seen is validated from memory."""
    if not report.device_id:  # an empty report, or one that names no device: bad input
        return Refusal(
            grpc.StatusCode.INVALID_ARGUMENT,
            "device_id is empty: a report names the device it is from (the client"
            " certificate's device id)",
        )
    if report.device_id != device_id:
        return Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            f"the report names device {report.device_id[:64]!r} but the client certificate"
            f" is device {device_id}",
        )
    try:
        # Limits on times are read on the agent's clock: an agent hours off still delivers.
        validate_report(report, agent_now(received_at, skew), facts)
    except ReportInvalid as exc:
        return Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    return None


def record_of(
    report: pb.PostureReport, device_id: str, received_at: dt.datetime,
    skew: dt.timedelta | None, body: bytes | None = None,
) -> ReportRecord:  # fmt: skip
    """The report as the store keeps it. `body`: its deterministic serialization, where the
    caller made it already."""
    delivery = report.delivery
    return ReportRecord(
        report_id=report.report_id,
        device_id=device_id,
        received_at=received_at,
        collected_at=collected_on_collector_clock(report, received_at, skew),
        agent_version=report.agent_version[:64],
        body=report.SerializeToString(deterministic=True) if body is None else body,
        hostname=report.host.hostname[:255],
        os_family=os_family_name(report.host.os_family),
        os_name=report.host.os_name[:255],
        os_version=report.host.os_version[:255],
        clock_skew_ms=None if skew is None else int(skew.total_seconds() * 1000),
        outbox=OutboxFigures(
            pending=_fits(delivery.pending_reports),
            coalesced_total=_fits(delivery.coalesced_total),
            dropped_total=_fits(delivery.dropped_total),
            corrupt_total=_fits(delivery.corrupt_total),
        ),
    )


def facts_key(body: bytes) -> bytes | None:
    """What the checks may read of a report, `body` (its serialization) less its id (field 1)
    and collection time (field 4), which no check reads: the verdict memo's key
    (policy/verdict_memo.py). A deterministic serialization writes fields in number order,
    so fields 1-4 (each length-delimited) come first; the walk stops at the first other
    field and keeps the rest whole (a later field 1 or 4 would only stay in the key). None
    where a length is not one or two bytes (then the report is judged, not kept)."""
    fields = leading_fields(body)
    if fields is None:
        return None
    kept: list[bytes] = []
    start = 0
    for number, end in fields:
        if number not in (1, 4):
            kept.append(body[start:end])
        start = end
    kept.append(body[start:])
    return b"".join(kept)


def _fits(count: int) -> int:
    """A uint64 counter as SQLite can hold it (a signed 64-bit integer)."""
    return min(count, 2**62)

"""Property test of report validation: 4,000 generated reports, deterministic for CI.

(500 on the PostgreSQL leg, each sent: see EXAMPLES.)

Reports are built from the proto's descriptor, not by hand: a fully populated valid report,
then up to four mutations at random places of the schema (string lengths across the limits
and random unicode, repeated counts across the limits, timestamps far ahead, behind or at odd
nanos, unknown enum numbers, unknown fields, bad report ids, a missing collected_at). A field
added to the proto later is fuzzed without touching this file.

Properties:
* validate_report accepts or raises ReportInvalid, never anything else;
* through the real collector over mutual TLS (every 8th example; 4,000 gRPC calls with
  synchronous SQLite commits would take minutes), the collector answers OK exactly when
  validate_report accepted, INVALID_ARGUMENT with the same message otherwise, and afterwards
  the store holds exactly the accepted reports' ids: nothing of a rejected report is stored.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devposture.agent.transport import open_channel, send_report
from devposture.collector.evidence import body_parts
from devposture.collector.validation import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_ITEMS,
    MAX_CHARS,
    MAX_ITEMS,
    ReportInvalid,
    validate_report,
)
from devposture.v1 import devposture_pb2 as pb
from tests.collector.report_fields import PATHS, TIMESTAMP, FieldPath, fill, holder
from tests.conftest import LiveCollector, enroll_agent
from tests.databases import on_postgresql

# On the PostgreSQL leg only what the engine changes is run again: the same number of reports
# sent to the collector (500), each example sent, and the validation of 4,000 reports left
# to the SQLite leg, where it ran already (it never touches a database). 4,000 there, as many
# kinds of mutation in each place of the schema as a run of the suite can afford: 10,000
# took half a minute of a core, the longest single test of the suite.
EXAMPLES, SEND_EVERY = (500, 1) if on_postgresql() else (4_000, 8)
# Offsets from now for timestamps, kept minutes away from every limit so that the collector's
# clock (a few seconds later than the test's) judges them as the test does.
HOUR = 3600
DAY = 24 * HOUR
OFFSETS = [-401 * DAY, -399 * DAY, -30 * DAY, -HOUR, 0, 3 * HOUR, 23 * HOUR, 25 * HOUR, 3650 * DAY]
WILD_SECONDS = [0, -1, 631_152_000 - 60, 2**40, -(2**40), 2**62, 253_402_300_800]
BAD_NANOS = [-1, 1_000_000_000, 2**31 - 1, -(2**31)]

MESSAGE_PATHS: list[FieldPath] = [()] + [
    p for p in PATHS if p[-1].type == FieldDescriptor.TYPE_MESSAGE
]


Mutation = Callable[[pb.PostureReport], None]


@st.composite
def _string_value(draw: st.DrawFn, limit: int) -> str:
    if draw(st.booleans()):
        return draw(st.text(max_size=40))
    length = draw(st.sampled_from([0, limit - 1, limit, limit + 1, 2 * limit]))
    return draw(st.characters(exclude_categories=["Cs"])) * length


@st.composite
def _mutation(draw: st.DrawFn, now: int) -> Mutation:
    path = draw(st.sampled_from(PATHS))
    fd = path[-1]
    parent = path[:-1]

    def at(change: Callable[[Message], None]) -> Mutation:
        return lambda report: change(holder(report, parent))

    if fd.is_repeated:
        limit = MAX_ITEMS.get(fd.full_name, DEFAULT_MAX_ITEMS)
        count = draw(st.sampled_from([0, 1, 2, limit - 1, limit, limit + 1]))

        def resize(holder: Message) -> None:
            items = getattr(holder, fd.name)
            template = items[0] if len(items) else None
            del items[:]
            for _ in range(count):
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    added = items.add()
                    if template is not None:
                        added.CopyFrom(template)
                else:
                    items.append(template if template is not None else "x")

        return at(resize)
    if fd.type == FieldDescriptor.TYPE_STRING:
        text = draw(_string_value(MAX_CHARS.get(fd.full_name, DEFAULT_MAX_CHARS)))
        return at(lambda holder: setattr(holder, fd.name, text))
    if fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        known = sorted(fd.enum_type.values_by_number)
        number = draw(st.sampled_from([*known, -1, known[-1] + 1, 99, 2**31 - 1, -(2**31)]))
        return at(lambda holder: setattr(holder, fd.name, number))
    if fd.message_type is not None and fd.message_type.full_name == TIMESTAMP:
        if draw(st.integers(0, 3)) == 0:
            seconds = draw(st.sampled_from(WILD_SECONDS))
        else:
            seconds = now + draw(st.sampled_from(OFFSETS))
        nanos = draw(st.one_of(st.integers(0, 999_999_999), st.sampled_from(BAD_NANOS)))
        clear = draw(st.integers(0, 9)) == 0

        def stamp(holder: Message) -> None:
            if clear:
                holder.ClearField(fd.name)
                return
            ts = getattr(holder, fd.name)
            ts.seconds, ts.nanos = seconds, nanos

        return at(stamp)
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return at(lambda holder: holder.ClearField(fd.name))
    if fd.type == FieldDescriptor.TYPE_BOOL:
        flag = draw(st.booleans())
        return at(lambda holder: setattr(holder, fd.name, flag))
    if fd.cpp_type in (FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64):
        bits = 32 if fd.cpp_type == FieldDescriptor.CPPTYPE_UINT32 else 64
        number = draw(st.integers(0, 2**bits - 1))
        return at(lambda holder: setattr(holder, fd.name, number))
    return lambda report: None


_varint = body_parts.varint_bytes


@st.composite
def _special(draw: st.DrawFn) -> Mutation:
    """Mutations that are not about one field's value: ids and unknown fields."""
    kind = draw(st.sampled_from(["id", "unknown"]))
    if kind == "id":
        bad = draw(
            st.one_of(
                st.uuids().map(lambda u: str(u).upper()),
                st.uuids().map(lambda u: u.hex),
                st.text(max_size=40),
            )
        )
        return lambda report: setattr(report, "report_id", bad)
    where = draw(st.sampled_from(MESSAGE_PATHS))
    number = draw(st.integers(100, 2000))
    encoded = _varint(number << 3) + b"\x01"  # field `number`, wire type 0 (varint), value 1

    def inject(report: pb.PostureReport) -> None:
        holder(report, where).MergeFromString(encoded)

    return inject


def _without_clock(message: str) -> str:
    return re.sub(r"\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", "(now)", message)


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0
    sent: int = 0
    sent_accepted: set[str] = field(default_factory=set)


def test_validation_accepts_or_rejects_and_rejected_reports_are_never_stored(
    generous_collector: LiveCollector, tmp_path: Path
) -> None:
    agent = enroll_agent(generous_collector, tmp_path / "agent")
    device_id = agent.enrollment.device_id
    now_dt = dt.datetime.now(dt.UTC)
    now = int(now_dt.timestamp())
    base = pb.PostureReport()
    fill(base, now - HOUR)
    base.device_id = device_id
    base.report_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    validate_report(base, now_dt)  # the starting point is valid
    tally = Tally()
    started = time.monotonic()

    with open_channel(agent.state, agent.enrollment) as channel:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            report_id=st.uuids().map(str),
            mutations=st.lists(st.one_of(_mutation(now), _mutation(now), _special()), max_size=4),
        )
        def run(report_id: str, mutations: list[Mutation]) -> None:
            report = pb.PostureReport()
            report.CopyFrom(base)
            report.report_id = report_id
            for mutate in mutations:
                mutate(report)
            report.device_id = device_id  # identity is checked by the service, not here
            problem: str | None = None
            try:
                validate_report(report, now_dt)
            except ReportInvalid as exc:
                problem = str(exc)
                tally.rejected += 1
            else:
                tally.accepted += 1
            if (tally.accepted + tally.rejected) % SEND_EVERY:
                return
            tally.sent += 1
            try:
                ack = send_report(channel, report)
            except grpc.RpcError as exc:
                assert isinstance(exc, grpc.Call)
                assert problem is not None, f"valid report refused: {exc.code()} {exc.details()}"
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                # Equal but for the collector's clock, which it names in time messages.
                assert _without_clock(str(exc.details())) == _without_clock(problem)
            else:
                assert problem is None, f"invalid report acknowledged: {problem}"
                assert ack.report_id == report.report_id
                tally.sent_accepted.add(report.report_id)

        run()

    elapsed = time.monotonic() - started
    store = generous_collector.store()
    try:
        stored = set(store.reports.report_ids())
    finally:
        store.close()
    print(
        f"\nvalidation fuzz: {tally.accepted + tally.rejected} examples,"
        f" {tally.accepted} accepted, {tally.rejected} rejected;"
        f" {tally.sent} sent to the collector ({len(tally.sent_accepted)} stored)"
        f" in {elapsed:.1f} s"
    )
    assert tally.accepted + tally.rejected >= EXAMPLES
    assert tally.accepted > EXAMPLES // 10 and tally.rejected > EXAMPLES // 10
    assert stored == tally.sent_accepted

"""What is wrong with bytes that are not a message (collector/wire_reason.py), and the raw
requests that carry them (collector/raw_rpc.py).

The walk must agree with protobuf's own decoder (upb) on every input: it is asked only after
the decoder refused, and must then name a problem; on bytes the decoder accepts it must find
none, or it would name the wrong one. The property test checks both directions on seeded
mutations of a real report's serialization and on random wire data, deterministic for CI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError, Message
from grpc_reflection.v1alpha import reflection_pb2  # type: ignore[import-untyped]

from devposture.collector.raw_rpc import RawRequest, Undecodable, add_raw_servicer, message_of
from devposture.collector.wire_reason import MAX_DEPTH, UNEXPLAINED, undecodable_reason
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import make_report

KINDS: list[type[Message]] = [
    pb.ReportBatchRequest, pb.ReportRequest, pb.EnrollRequest, pb.RenewRequest,
    pb.ReestablishRequest, pb.PostureReport, admin_pb.AdminCommand,
]  # fmt: skip


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _reason(kind: type[Message], data: bytes) -> str:
    with pytest.raises(DecodeError):
        kind.FromString(data)
    return undecodable_reason(kind.DESCRIPTOR, data)  # type: ignore[arg-type]


def _batch_with_broken_hostname() -> bytes:
    reports = [make_report("device-1") for _ in range(3)]
    reports[2].host.hostname = "laptop-é"
    data = pb.ReportBatchRequest(reports=reports).SerializeToString()
    return data.replace("é".encode(), b"\xff\xfe")


def test_broken_utf8_is_named_by_its_field_path() -> None:
    data = _batch_with_broken_hostname()
    reason = _reason(pb.ReportBatchRequest, data)
    at = data.index(b"\xff\xfe")
    assert reason == f"reports[2].host.hostname is not valid UTF-8 text (byte {at})"


def test_bytes_that_are_not_protobuf_are_named_as_such() -> None:
    assert _reason(pb.ReportRequest, b"\x0f") == (
        "byte 0 holds wire type 7, which does not exist: these bytes are not protobuf"
    )
    assert _reason(pb.ReportRequest, b"\x00\x01") == (
        "byte 0 holds field number 0, which does not exist: these bytes are not protobuf"
    )
    assert _reason(pb.ReportRequest, b"\x08" + b"\xff" * 11) == (
        "the number at byte 1 runs past 10 bytes"
    )
    assert _reason(pb.ReportRequest, _tag(1, 2) + _varint(300) + b"\x00" * 12) == (
        "report at byte 0 says it holds 300 bytes, but only 12 follow"
    )
    cut = pb.ReportRequest(report=make_report("device-1")).SerializeToString()[:-1]
    assert _reason(pb.ReportRequest, cut).startswith("report at byte 0 says it holds")
    # A length cut off inside a nested message names the nested field.
    host = pb.HostInfo(hostname="laptop").SerializeToString()
    number = pb.PostureReport.DESCRIPTOR.fields_by_name["host"].number
    inner = _tag(number, 2) + _varint(len(host) + 5) + host
    truncated = _tag(1, 2) + _varint(len(inner)) + inner
    assert _reason(pb.ReportRequest, truncated) == (
        f"report.host at byte 2 says it holds {len(host) + 5} bytes, but only {len(host)} follow"
    )


def test_groups_must_close_and_nest_at_most_as_deep_as_the_decoder_allows() -> None:
    assert _reason(pb.ReportRequest, _tag(99, 3)) == "the group field 99 is never closed"
    assert _reason(pb.ReportRequest, _tag(99, 4)) == "byte 0 ends a group that was never started"

    def nested(depth: int) -> bytes:
        return _tag(99, 3) * depth + _tag(99, 4) * depth

    pb.ReportRequest.FromString(nested(MAX_DEPTH))  # the decoder's limit, accepted
    assert undecodable_reason(pb.ReportRequest.DESCRIPTOR, nested(MAX_DEPTH)) == UNEXPLAINED
    reason = _reason(pb.ReportRequest, nested(MAX_DEPTH + 1))
    assert reason == (
        f"field 99.field 99.…({MAX_DEPTH + 1 - 4} more)….field 99.field 99 (byte {2 * MAX_DEPTH})"
        f" is nested more than {MAX_DEPTH} levels deep"
    )


def test_packed_numbers_cut_off_are_named() -> None:
    location = descriptor_pb2.SourceCodeInfo.Location  # `path` is packed int32
    data = _tag(1, 2) + _varint(3) + b"\x01\x02\xff"
    assert _reason(location, data) == "the data ends in the middle of a number (byte 4) in path[0]"


def test_the_walk_agrees_with_the_decoder_on_every_input() -> None:
    rng = random.Random(14)
    # A fixed report (not now's time, not a new id), so the mutations are the same every run:
    # with a report of the moment the decoder accepted 2000 to 2013 of them, at the bound.
    report = make_report("device-1", dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC))
    report.report_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    report.host.hostname = "主机-é"
    valid = [
        pb.ReportBatchRequest(reports=[report, report]).SerializeToString(),
        pb.ReportRequest(report=report).SerializeToString(),
        admin_pb.AdminCommand(command=["device", "list"], arguments={"k": "v"}).SerializeToString(),
    ]
    refused = accepted = 0
    for _ in range(20_000):
        data = _mutated(rng, rng.choice(valid)) if rng.random() < 0.7 else _wire(rng, 0)
        kind = rng.choice(KINDS)
        reason = undecodable_reason(kind.DESCRIPTOR, data)  # type: ignore[arg-type]
        try:
            kind.FromString(data)
        except DecodeError:
            refused += 1
            assert reason != UNEXPLAINED, data.hex()
        else:
            accepted += 1
            assert reason == UNEXPLAINED, (reason, data.hex())
    assert refused > 2_000 and accepted > 2_000  # both directions were exercised


def _mutated(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        where = rng.randrange(len(out) + 1)
        choice = rng.random()
        if choice < 0.5 and where < len(out):
            out[where] = rng.randrange(256)
        elif choice < 0.7 and where < len(out):
            del out[where]
        elif choice < 0.85:
            out.insert(where, rng.randrange(256))
        else:
            del out[where:]
    return bytes(out)


def _wire(rng: random.Random, depth: int) -> bytes:
    """Random wire data: fields of every wire type, strings valid and not, groups, nesting."""
    parts = []
    for _ in range(rng.randrange(1, 5)):
        number = rng.choice([0, 1, 2, 3, 4, 5, 6, 9, 15, 99, 2**29 - 1])
        wire = rng.choice([0, 1, 2, 2, 2, 3, 4, 5, 6, 7])
        tag = _tag(number, wire)
        if wire == 0:
            parts.append(tag + _varint(rng.choice([0, 1, 300, 2**63, 2**64 - 1, 2**70])))
        elif wire in (1, 5):
            parts.append(tag + bytes(8 if wire == 1 else 4))
        elif wire == 2:
            if rng.random() < 0.5 and depth < 8:
                body = _wire(rng, depth + 1)
            else:
                body = rng.choice([b"abc", "é".encode(), b"\xff", b"\xed\xa0\x80", b"\xc0\x80"])
            parts.append(tag + _varint(len(body)) + body)
        elif wire == 3 and depth < 8:
            closed = _tag(number, 4) if rng.random() < 0.9 else b""
            parts.append(tag + _wire(rng, depth + 1) + closed)
        else:
            parts.append(tag)
    return b"".join(parts)


def test_a_raw_request_decodes_once_and_says_what_is_wrong_without_python_names() -> None:
    good = pb.ReportRequest(report=make_report("device-1"))
    raw = RawRequest(pb.ReportRequest, good.SerializeToString())
    assert raw.decode() == good and raw.decode() is raw.decode()
    assert message_of(good) is good  # a message already decoded passes through

    bad = RawRequest(pb.ReportBatchRequest, _batch_with_broken_hostname())
    with pytest.raises(Undecodable) as refused:
        message_of(bad)
    message = str(refused.value)
    assert message.startswith(
        "the request is not a valid devposture.v1.ReportBatchRequest:"
        " reports[2].host.hostname is not valid UTF-8 text (byte "
    )
    assert "DecodeError" not in message and "<class" not in message
    assert bad.decodable() is None


def test_only_unary_requests_are_served_raw() -> None:
    streaming = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]

    async def register() -> None:  # a grpc.aio server belongs to an event loop
        add_raw_servicer(object(), streaming, grpc.aio.server())

    with pytest.raises(TypeError, match="only unary requests"):
        asyncio.run(register())

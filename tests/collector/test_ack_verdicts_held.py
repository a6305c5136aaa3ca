"""An acknowledgement carries the verdicts only when they are not those the agent holds
(`verdicts_held`, issue 17 item 5): over real mutual TLS, on the real store. A steady device's
verdicts repeat, and with their titles and remedies in two languages they were most of every
acknowledgement's bytes."""

from __future__ import annotations

import datetime as dt

from devposture.agent.transport import open_channel
from devposture.collector.agent_config import verdicts_digest
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, make_report


def _send(agent: EnrolledAgent, report: pb.PostureReport, held: bytes = b"") -> pb.ReportAck:
    with open_channel(agent.state, agent.enrollment) as channel:
        ack: pb.ReportAck = pb_grpc.CollectorStub(channel).Report(
            pb.ReportRequest(report=report, verdicts_held=held), timeout=30
        )
    return ack


def _batch(
    agent: EnrolledAgent, reports: list[pb.PostureReport], held: bytes = b""
) -> pb.ReportBatchResponse:
    with open_channel(agent.state, agent.enrollment) as channel:
        response: pb.ReportBatchResponse = pb_grpc.CollectorStub(channel).ReportBatch(
            pb.ReportBatchRequest(reports=reports, verdicts_held=held), timeout=30
        )
    return response


def _at(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=hours)


def test_verdicts_the_agent_holds_are_not_sent_again_until_they_change(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    device = agent.enrollment.device_id
    first = _send(agent, make_report(device, _at(3)))
    assert first.verdicts and first.verdicts_digest and not first.verdicts_unchanged
    # The next report changes nothing: only the digest comes back, smaller by the verdicts.
    same = _send(agent, make_report(device, _at(2)), held=first.verdicts_digest)
    assert same.verdicts_unchanged and not same.verdicts
    assert same.verdicts_digest == first.verdicts_digest
    assert same.ByteSize() < first.ByteSize() // 4, (same.ByteSize(), first.ByteSize())
    # The firewall goes off: new verdicts, with a new digest, whatever the agent held.
    failing = _send(agent, make_report(device, _at(1), firewall_enabled=False),
                    held=first.verdicts_digest)  # fmt: skip
    assert not failing.verdicts_unchanged
    assert next(v for v in failing.verdicts if v.check_id == "firewall").state == "FAIL"
    assert failing.verdicts_digest and failing.verdicts_digest != first.verdicts_digest


def test_an_agent_that_holds_nothing_or_something_else_gets_the_verdicts(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # What an older agent sends (nothing), or a digest that is not the collector's (a file
    # from another collector, a damaged one): the verdicts in full, as before.
    device = agent.enrollment.device_id
    for held in (b"", b"\x00" * 32, b"not a digest"):
        ack = _send(agent, make_report(device), held=held)
        assert ack.verdicts and ack.verdicts_digest and not ack.verdicts_unchanged


def test_a_batch_leaves_them_out_of_its_newest_reports_acknowledgement(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    device = agent.enrollment.device_id
    first = _batch(agent, [make_report(device, _at(5)), make_report(device, _at(4))])
    (judged,) = [a for a in first.acks if a.verdicts]
    reports = [make_report(device, _at(hours)) for hours in (3, 2, 1)]
    again = _batch(agent, reports, held=judged.verdicts_digest)
    assert [a.report_id for a in again.acks] == [r.report_id for r in reports]
    assert not any(a.verdicts for a in again.acks)
    # Only the newest report's acknowledgement speaks for the verdicts: they stand.
    assert [a.report_id for a in again.acks if a.verdicts_unchanged] == [reports[-1].report_id]
    assert again.acks[-1].verdicts_digest == judged.verdicts_digest


def test_the_digest_names_the_verdicts_and_each_grace_deadline() -> None:
    deadline = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC)
    verdicts = b"\x2a\x05the verdicts as sent"
    digest = verdicts_digest(verdicts, {"firewall": deadline})
    assert digest == verdicts_digest(verdicts, {"firewall": deadline})
    assert len(digest) == 32
    # Another grace deadline (a policy's grace period changed) is other verdicts for the
    # employee, though the verdicts' own bytes are the same; so is another wording.
    assert digest != verdicts_digest(verdicts, {"firewall": deadline + dt.timedelta(hours=1)})
    assert digest != verdicts_digest(verdicts, {})
    assert digest != verdicts_digest(verdicts + b"!", {"firewall": deadline})
    two = {"firewall": deadline, "antivirus": deadline}
    assert verdicts_digest(verdicts, two) == verdicts_digest(verdicts, dict(reversed(two.items())))

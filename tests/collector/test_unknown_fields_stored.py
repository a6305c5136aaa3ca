"""Fields this collector does not know, from an agent newer than it, are accepted and kept
whole in the stored report (threat model row 15, DESIGN principle 6: the contract only ever
adds fields, and agents may be upgraded before their collector). Over real mutual TLS."""

from __future__ import annotations

from devposture.agent.transport import open_channel, send_report
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import EnrolledAgent, LiveCollector, make_report

# Field 111 (varint 5) at the top, field 99 (varint 1) inside the firewall fact: numbers this
# proto does not use, as a newer agent's additions would arrive.
TOP_LEVEL = b"\xf8\x06\x05"
NESTED = b"\x98\x06\x01"


def test_unknown_fields_from_a_newer_agent_are_stored_whole(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    report.MergeFromString(TOP_LEVEL)
    report.firewall.MergeFromString(NESTED)
    with open_channel(agent.state, agent.enrollment) as channel:
        ack = send_report(channel, report)
    assert ack.report_id == report.report_id and not ack.duplicate
    assert {v.check_id: v.state for v in ack.verdicts}["firewall"] == "PASS"  # still judged
    store = live_collector.store()
    try:
        ((_, report_id, _, body),) = store.reports.latest_reports()
    finally:
        store.close()
    assert report_id == report.report_id
    assert TOP_LEVEL in body and NESTED in body
    assert pb.PostureReport.FromString(body) == report

"""The acknowledgement tells the agent when a failing check's grace period ends, the date IT
reads as GRACE: over real mutual TLS, from the history the real store kept."""

from __future__ import annotations

import datetime as dt

from devposture.agent.transport import open_channel
from devposture.collector.company_time import shown, zone_of
from devposture.collector.compliance import standings
from devposture.policy import default_policy
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, make_report

FIREWALL_GRACE = dt.timedelta(hours=default_policy().check("firewall").grace_hours)  # type: ignore[union-attr]


def _send(agent: EnrolledAgent, report: pb.PostureReport) -> pb.ReportAck:
    with open_channel(agent.state, agent.enrollment) as channel:
        ack: pb.ReportAck = pb_grpc.CollectorStub(channel).Report(
            pb.ReportRequest(report=report), timeout=30
        )
    return ack


def _batch(agent: EnrolledAgent, reports: list[pb.PostureReport]) -> pb.ReportBatchResponse:
    with open_channel(agent.state, agent.enrollment) as channel:
        response: pb.ReportBatchResponse = pb_grpc.CollectorStub(channel).ReportBatch(
            pb.ReportBatchRequest(reports=reports), timeout=30
        )
    return response


def _verdict(ack: pb.ReportAck, check_id: str) -> pb.CheckVerdict:
    return next(v for v in ack.verdicts if v.check_id == check_id)


def _deadline(verdict: pb.CheckVerdict) -> dt.datetime | None:
    if not verdict.HasField("grace_until"):
        return None
    return verdict.grace_until.ToDatetime(dt.UTC)


def test_a_failure_carries_the_end_of_its_grace_from_when_it_began(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    began = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    device = agent.enrollment.device_id
    first = _send(agent, make_report(device, began, firewall_enabled=False))
    assert _verdict(first, "firewall").state == "FAIL"
    assert _deadline(_verdict(first, "firewall")) == began + FIREWALL_GRACE
    # Still failing an hour later: the grace period still runs from when the failure began.
    later = _send(agent, make_report(device, began + dt.timedelta(hours=1), firewall_enabled=False))
    assert _deadline(_verdict(later, "firewall")) == began + FIREWALL_GRACE
    # The same date IT's standing says GRACE until.
    store = live_collector.store()
    try:
        now = began + dt.timedelta(hours=1, minutes=1)
        it = standings(
            store.reports.devices_seen(), store.reports.state_changes(), default_policy(), now
        )
    finally:
        store.close()
    firewall = next(s for s in it if s.device_id == device and s.check_id == "firewall")
    assert firewall.state == "GRACE"
    # IT reads it in the company's time zone (the policy's, Asia/Shanghai by default).
    ends = shown(began + FIREWALL_GRACE, zone_of(default_policy()))
    assert ends in render(firewall.reason, "en", zone_of(default_policy())), firewall.reason
    # Checks that do not fail carry no date.
    assert all(_deadline(v) is None for v in later.verdicts if v.check_id != "firewall")


def test_a_failure_after_a_pass_starts_a_new_grace_period(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    device = agent.enrollment.device_id
    _send(agent, make_report(device, start, firewall_enabled=False))
    passing = _send(agent, make_report(device, start + dt.timedelta(hours=1)))
    assert _verdict(passing, "firewall").state == "PASS"
    assert _deadline(_verdict(passing, "firewall")) is None
    again = start + dt.timedelta(hours=2)
    failing = _send(agent, make_report(device, again, firewall_enabled=False))
    assert _deadline(_verdict(failing, "firewall")) == again + FIREWALL_GRACE


def test_a_batch_gives_the_date_on_its_newest_reports_verdicts(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    began = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    device = agent.enrollment.device_id
    reports = [
        make_report(device, began + dt.timedelta(minutes=m), firewall_enabled=False)
        for m in (0, 30, 60)
    ]
    response = _batch(agent, reports)
    (newest,) = [a for a in response.acks if a.verdicts]
    assert newest.report_id == reports[-1].report_id
    assert _deadline(_verdict(newest, "firewall")) == began + FIREWALL_GRACE

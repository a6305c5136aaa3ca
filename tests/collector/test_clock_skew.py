"""Clock skew over real mutual TLS: an agent hours off still delivers, the collector records
how far off it is, dates the device's history on its own clock, and judges a fact's age on the
report's own clock so the skew cannot make a fresh backup look old (or an old one fresh)."""

from __future__ import annotations

import datetime as dt
import re

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.transport import open_channel
from devposture.collector.cli import main as collector_cli
from devposture.collector.intake import measure_skew
from devposture.collector.store.base import from_us
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, make_report


def _ts(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _send(agent: EnrolledAgent, report: pb.PostureReport, sent_at: dt.datetime | None) -> None:
    request = pb.ReportRequest(report=report)
    if sent_at is not None:
        request.sent_at.CopyFrom(_ts(sent_at))
    with open_channel(agent.state, agent.enrollment) as channel:
        pb_grpc.CollectorStub(channel).Report(request, timeout=30)


def _row(collector: LiveCollector, sql: str, *args: object) -> tuple[object, ...]:
    store = collector.store()
    try:
        return tuple(store._db.execute(sql, args).fetchone())
    finally:
        store.close()


def _with_backup(report: pb.PostureReport, backed_up_at: dt.datetime) -> pb.PostureReport:
    backup = report.chat_backups.backups.add(
        kind=pb.BACKUP_KIND_ARCHIVE, app=pb.CHAT_APP_WECHAT, location="~/微信备份/a.7z",
        file_count=1,
        encryption=pb.ENCRYPTION_STATE_ENCRYPTED, encryption_evidence="7z archive with AES header",
    )  # fmt: skip
    backup.newest_backup_at.CopyFrom(_ts(backed_up_at))
    report.chat_backups.locations_checked = 2
    return report


def test_an_agent_thirty_hours_ahead_delivers_and_its_skew_is_recorded(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    now = dt.datetime.now(dt.UTC)
    agent_clock = now + dt.timedelta(hours=30)
    report = make_report(agent.enrollment.device_id, agent_clock - dt.timedelta(minutes=1))
    # Without saying when it sent, such a report is in the collector's future: refused.
    with pytest.raises(grpc.RpcError) as refused:
        _send(agent, report, sent_at=None)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    _send(agent, report, sent_at=agent_clock)
    skew_ms, collected_us = _row(
        live_collector,
        "SELECT clock_skew_ms, collected_us FROM reports WHERE report_id = ?",
        report.report_id,
    )
    assert isinstance(skew_ms, int) and isinstance(collected_us, int)
    assert abs(skew_ms + 30 * 3600 * 1000) < 10_000
    # Dated on the collector's clock: collected a minute before it arrived.
    collected = from_us(collected_us)
    assert now - dt.timedelta(minutes=2) < collected < now
    (device_skew,) = _row(
        live_collector, "SELECT clock_skew_ms FROM devices WHERE device_id = ?",
        agent.enrollment.device_id,
    )  # fmt: skip
    assert device_skew == skew_ms
    shown = live_collector.store().identity.device(agent.enrollment.device_id)
    assert shown is not None and shown.clock_skew is not None
    assert abs(shown.clock_skew + dt.timedelta(hours=30)) < dt.timedelta(seconds=10)


def test_a_fact_age_is_measured_on_the_agents_own_clock(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """An agent 40 days behind, with a backup made an hour ago by its clock: fresh. Read on the
    collector's clock the backup would look 40 days old, past the policy's 30."""
    now = dt.datetime.now(dt.UTC)
    agent_clock = now - dt.timedelta(days=40)
    report = _with_backup(
        make_report(agent.enrollment.device_id, agent_clock), agent_clock - dt.timedelta(hours=1)
    )
    _send(agent, report, sent_at=agent_clock)
    state, reason = _row(
        live_collector,
        "SELECT state, reason FROM check_results WHERE device_id = ? AND check_id = ?",
        agent.enrollment.device_id, "chat-backup",
    )  # fmt: skip
    assert state == "PASS", reason


def test_a_backlog_report_is_judged_and_dated_as_of_its_collection(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """Collected ten days ago with a day-old backup, delivered now: at its moment the backup
    was fresh, and the history says so ten days back, not today."""
    now = dt.datetime.now(dt.UTC)
    collected = now - dt.timedelta(days=10)
    report = _with_backup(
        make_report(agent.enrollment.device_id, collected), collected - dt.timedelta(days=1)
    )
    _send(agent, report, sent_at=now)
    state, since_us = _row(
        live_collector,
        "SELECT state, since_us FROM state_changes WHERE device_id = ? AND check_id = ?",
        agent.enrollment.device_id, "chat-backup",
    )  # fmt: skip
    assert state == "PASS"
    assert isinstance(since_us, int)
    assert abs(from_us(since_us) - collected) < dt.timedelta(seconds=10)


def test_skew_is_measured_only_from_a_believable_sent_at() -> None:
    received = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    assert measure_skew(None, received) is None
    assert measure_skew(Timestamp(), received) is None
    hours_behind = _ts(received - dt.timedelta(hours=3))
    assert measure_skew(hours_behind, received) == dt.timedelta(hours=3)
    assert measure_skew(_ts(received - dt.timedelta(days=500)), received) is None
    assert measure_skew(Timestamp(seconds=1, nanos=-5), received) is None


def send_from_a_clock_behind(agent: EnrolledAgent) -> None:
    """A report from an agent whose clock is 3 h 5 min behind, whose outbox holds 2 reports,
    merged 12 and dropped 3 while it was offline."""
    agent_clock = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3, minutes=5)
    report = make_report(agent.enrollment.device_id, agent_clock)
    report.delivery.pending_reports = 2
    report.delivery.coalesced_total = 12
    report.delivery.dropped_total = 3
    _send(agent, report, sent_at=agent_clock)


def test_it_sees_the_skew_and_the_lost_reports_in_device_list_and_show(
    live_collector: LiveCollector, agent: EnrolledAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    send_from_a_clock_behind(agent)
    data = str(live_collector.config.data_dir)
    assert collector_cli(["device", "list", "--data", data]) == 0
    listed = capsys.readouterr()
    assert "1 device with a clock off by 5 minutes or more" in listed.err
    assert "1 device that lost reports to a full outbox" in listed.err
    assert collector_cli(["device", "show", agent.enrollment.device_id, "--data", data]) == 0
    shown = capsys.readouterr().out
    assert "3 h 5 min behind the collector" in shown
    assert "2 waiting; since install 12 merged" in shown and "3 dropped" in shown


def test_a_time_refused_on_a_skewed_agents_clock_is_told_against_that_clock(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # Limits on times are read on the agent's own clock when it says when it sent: the
    # refusal called that moment "the collector's clock" and showed the agent's time.
    agent_clock = dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)
    report = make_report(agent.enrollment.device_id, agent_clock + dt.timedelta(hours=25))
    with pytest.raises(grpc.RpcError) as refused:
        _send(agent, report, sent_at=agent_clock)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = str(refused.value.details())
    found = re.search(r"is more than 24 h after the report arrived \((\S+)\): check the"
                      r" device's clock", details)  # fmt: skip
    assert found is not None, details
    arrived = dt.datetime.fromisoformat(found[1].replace("Z", "+00:00"))
    assert abs(arrived - agent_clock) < dt.timedelta(minutes=1)  # the agent's clock, as said
    assert "collector's clock" not in details

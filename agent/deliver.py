"""One round of the agent's work: collect a report, keep it on disk, send what is queued.

Shared by `devposture-agent once` and the service loop, so both follow the same order: the
Wi-Fi session log is merged into the report, the report is written to the outbox before any
sending, and closed sessions are forgotten only once a report carrying them is acknowledged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from agent.collect import build_report
from agent.host import Host
from agent.outbox import Outbox
from agent.probes import ProbeConfig
from agent.renewal import ensure_fresh_certificate
from agent.sessions import SessionLog
from agent.state import AgentState, Enrollment
from agent.transport import DrainResult, drain
from devposture.v1 import devposture_pb2 as pb


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Round:
    report: pb.PostureReport
    result: DrainResult

    @property
    def acknowledged(self) -> bool:
        return self.report.report_id in self.result.acknowledged + self.result.duplicates


def collect_and_deliver(
    state: AgentState, enrollment: Enrollment, host: Host, config: ProbeConfig
) -> Round:
    report = build_report(host, config, enrollment.device_id)
    sessions = SessionLog(state.wifi_sessions_path)
    sessions.apply(report)
    outbox = Outbox(state.outbox_dir)
    outbox.put(report)
    # Before sending: a certificate renewed now is the one the reports travel with.
    ensure_fresh_certificate(state, enrollment, utcnow())
    result = drain(state, enrollment, outbox)
    done = Round(report, result)
    if done.acknowledged:
        sessions.acknowledged(report)
        if result.last_ack is not None and result.last_ack.report_id == report.report_id:
            state.save_verdicts(result.last_ack)
    return done

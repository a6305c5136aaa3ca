"""Build one PostureReport: a fresh id, the time, and every fact the probes could read, held
to what the collector takes (agent/probes/report_room.py): a report it refused would be
retried forever."""

from __future__ import annotations

import uuid

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent import __version__
from devposture.agent.host import Host
from devposture.agent.probes import collect_facts
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.report_room import fit
from devposture.v1 import devposture_pb2 as pb


def build_report(host: Host, config: ProbeConfig, device_id: str = "") -> pb.PostureReport:
    report = pb.PostureReport(
        report_id=str(uuid.uuid4()), device_id=device_id, agent_version=__version__
    )
    collected_at = Timestamp()
    collected_at.FromDatetime(host.now())
    report.collected_at.CopyFrom(collected_at)
    collect_facts(host, config, report)
    fit(report)
    return report

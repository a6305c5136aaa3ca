"""Clause 6.3.2 on one public Wi-Fi session beside a VPN probe's outcome, for the VPN tests of
every OS: what a PPP link's reading (a VPN, a dial-up, unknown) makes of public Wi-Fi."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.probes.outcome import FactOutcome
from devposture.policy.checks import CheckParameters, State, check_public_wifi
from devposture.v1 import devposture_pb2 as pb


def public_session_verdict(outcome: FactOutcome) -> State:
    """Clause 6.3.2 on a report with this VPN outcome and one public Wi-Fi session."""
    now = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    report = pb.PostureReport()
    assert isinstance(outcome.fact, pb.VpnFact)
    report.vpn.CopyFrom(outcome.fact)
    report.errors.extend(outcome.errors)
    report.wifi.has_wifi_interface = True
    started = Timestamp()
    started.FromDatetime(now - dt.timedelta(hours=1))
    report.wifi.sessions.add(
        network_id="CMCC-WEB", classification=pb.NETWORK_CLASS_PUBLIC, started_at=started,
        vpn_up=outcome.fact.active, vpn_up_at=started if outcome.fact.active else None,
    )  # fmt: skip
    return check_public_wifi(report, now, CheckParameters()).state

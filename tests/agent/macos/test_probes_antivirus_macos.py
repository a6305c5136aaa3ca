"""Defender for Endpoint on a replayed Mac: real-time protection that is enabled but not
available is off, with the reason in health_issues, and the collector fails it.

Fixtures: tests/fixtures/macos/README.md ("mdatp health").
"""

from __future__ import annotations

from datetime import UTC, datetime

from devposture.agent.host import ProcessInfo
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.macos import antivirus
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.policy.checks import State, evaluate
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import MacReplayHost, out

XPROTECT = "/Library/Apple/System/Library/CoreServices/XProtect.bundle"


def _defender(health_fixture: str) -> pb.AntivirusProduct:
    host = MacReplayHost(procs=[ProcessInfo(90, "wdavdaemon", "wdavdaemon")])
    host.with_tool("mdatp")
    host.commands[("mdatp", "health")] = out(health_fixture)
    host.mtimes[XPROTECT] = datetime(2026, 1, 10, tzinfo=UTC).timestamp()
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    outcome = run_probe(pb.FACT_ANTIVIRUS, antivirus.probe, ctx)
    assert isinstance(outcome.fact, pb.AntivirusFact) and outcome.errors == []
    products = {p.name: p for p in outcome.fact.products}
    assert set(products) == {"XProtect", "Microsoft Defender for Endpoint"}
    return products["Microsoft Defender for Endpoint"]


def _verdict(product: pb.AntivirusProduct) -> tuple[State, str]:
    report = pb.PostureReport()
    report.antivirus.products.add().CopyFrom(product)
    verdict = {c.check_id: v for c, v in evaluate(report, datetime(2022, 7, 7, tzinfo=UTC))}
    return verdict["antivirus"].state, render(verdict["antivirus"].reason, "en", UTC)


def test_enabled_but_not_available_is_off_and_fails() -> None:
    mde = _defender("mdatp/mdatp-health-macos-kext-enabled-not-available.out")
    assert mde.enabled and mde.HasField("real_time_protection") and not mde.real_time_protection
    assert list(mde.health_issues) == ["real-time protection enabled but not available"]
    state, reason = _verdict(mde)
    assert state is State.FAIL
    assert "real-time protection off" in reason
    assert "health issues: real-time protection enabled but not available" in reason


def test_healthy_mac_defender_passes() -> None:
    mde = _defender("mdatp/mdatp-health-macos-healthy-tamper-block.out")
    assert mde.real_time_protection and not mde.health_issues
    assert mde.signature_version == "1.369.896.0" and mde.signatures_up_to_date
    assert _verdict(mde) == (
        State.PASS,
        "Microsoft Defender for Endpoint: on, real-time protection, signatures fresh",
    )

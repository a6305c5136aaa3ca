"""A probe that hangs costs its own fact only: TIMEOUT after the deadline, the other facts are
there, and a probe still hung from an earlier round is not started a second time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from devposture.agent.probes import facts as fact_table
from devposture.agent.probes import linux, runner
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost

DEADLINE = 0.5


class Hanging:
    """A probe that blocks until released (a stuck mount, a tool waiting on a lock)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0

    def __call__(self, ctx: ProbeContext) -> FactOutcome:
        self.started += 1
        self.release.wait(30)
        return FactOutcome(pb.FirewallFact(enabled=True))


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hanging]:
    probe = Hanging()
    monkeypatch.setitem(linux.PROBES, pb.FACT_FIREWALL, probe)
    monkeypatch.setattr(runner, "PROBE_DEADLINE_SECONDS", DEADLINE)
    yield probe
    probe.release.set()


def _collect() -> tuple[pb.PostureReport, float]:
    report = pb.PostureReport()
    started = time.monotonic()
    runner.collect_facts(ReplayHost(), ProbeConfig(), report)
    return report, time.monotonic() - started


def _errors(report: pb.PostureReport, fact: pb.Fact.ValueType) -> list[pb.ProbeError]:
    return [e for e in report.errors if e.fact == fact]


def _probe_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "probe-fact_firewall" and t.is_alive()]


def _facts_other_than_firewall(report: pb.PostureReport) -> set[str]:
    """Every fact either present or with its own (non-timeout) error: the others all ran."""
    done = set()
    for fact, field in fact_table.FIELDS.items():
        if fact == pb.FACT_FIREWALL:
            continue
        errors = _errors(report, fact)
        assert all(e.code != pb.PROBE_ERROR_CODE_TIMEOUT for e in errors)
        if report.HasField(field) or errors:  # type: ignore[arg-type]
            done.add(field)
    return done


def test_a_hung_probe_times_out_and_the_others_still_run(hanging: Hanging) -> None:
    baseline, _ = _collect_without(hanging)
    report, took = _collect()
    (timeout,) = _errors(report, pb.FACT_FIREWALL)
    assert timeout.code == pb.PROBE_ERROR_CODE_TIMEOUT
    assert timeout.message == f"FACT_FIREWALL probe did not finish within {DEADLINE:g} s"
    assert not report.HasField("firewall")
    assert _facts_other_than_firewall(report) == _facts_other_than_firewall(baseline)
    assert report.host.os_family == pb.OS_FAMILY_LINUX
    assert DEADLINE <= took < DEADLINE + 1.0


def _collect_without(hanging: Hanging) -> tuple[pb.PostureReport, float]:
    """The same collection with the firewall probe answering at once (for comparison)."""
    hanging.release.set()
    try:
        return _collect()
    finally:
        hanging.release.clear()
        hanging.started = 0


def test_a_probe_still_hung_is_not_started_again(hanging: Hanging) -> None:
    _collect()
    assert hanging.started == 1 and len(_probe_threads()) == 1
    second, took = _collect()
    assert took < DEADLINE  # no waiting for a probe known to be stuck
    (still,) = _errors(second, pb.FACT_FIREWALL)
    assert still.code == pb.PROBE_ERROR_CODE_TIMEOUT
    assert still.message.startswith("FACT_FIREWALL probe still running since ")
    assert hanging.started == 1 and len(_probe_threads()) == 1
    assert runner.hung_probes() == ["FACT_FIREWALL"]
    # Once it finishes by itself, the next round runs it again (and it answers in time).
    hanging.release.set()
    deadline = time.monotonic() + 5
    while _probe_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    third, _ = _collect()
    assert hanging.started == 2
    assert third.firewall.enabled and _errors(third, pb.FACT_FIREWALL) == []
    assert runner.hung_probes() == []


def test_a_probe_that_raises_is_still_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: ProbeContext) -> FactOutcome:
        raise KeyError("oops")

    monkeypatch.setitem(linux.PROBES, pb.FACT_FIREWALL, broken)
    report, _ = _collect()
    (err,) = _errors(report, pb.FACT_FIREWALL)
    assert err.code == pb.PROBE_ERROR_CODE_INTERNAL
    assert err.message.startswith("probe failed: KeyError at test_probe_timeouts.py:")


def test_probes_see_the_facts_collected_before_them(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def wifi(ctx: ProbeContext) -> FactOutcome:
        seen.append(ctx.report.HasField("vpn"))
        return FactOutcome(pb.WifiFact())

    def vpn(ctx: ProbeContext) -> FactOutcome:
        return FactOutcome(pb.VpnFact(active=True))

    monkeypatch.setitem(linux.PROBES, pb.FACT_VPN, vpn)
    monkeypatch.setitem(linux.PROBES, pb.FACT_WIFI, wifi)
    report, _ = _collect()
    assert seen == [True] and report.vpn.active

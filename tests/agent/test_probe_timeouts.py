"""A probe that hangs costs its own fact only: TIMEOUT after the deadline, the other facts are
there, and a probe still hung from an earlier round is not started a second time."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator

import pytest

from devposture.agent.cli import probe_config
from devposture.agent.employee.company_time import company_zone
from devposture.agent.probes import facts as fact_table
from devposture.agent.probes import linux, runner
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.status import View, local_verdicts, reason_text
from devposture.policy import catalogs, phrases
from devposture.policy.catalogs import Lang
from devposture.policy.phrases import is_phrase, worded
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost
from tests.conftest import EnrolledAgent

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


def _collect(config: ProbeConfig | None = None) -> tuple[pb.PostureReport, float]:
    report = pb.PostureReport()
    started = time.monotonic()
    runner.collect_facts(ReplayHost(), config or ProbeConfig(), report)
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


STILL = ("FACT_FIREWALL probe still running since {since}: it did not finish within 0.5 s then,"
         " and is not started again until it does")


@pytest.mark.parametrize(("zone", "offset"), [("", "UTC+08:00"), ("Asia/Tokyo", "UTC+09:00")])
def test_a_hung_probe_says_since_when_in_the_company_s_time_and_the_reader_s_language(
    hanging: Hanging, zone: str, offset: str
) -> None:
    """The agent's own words, declared (`phrases`): a Chinese employee read them in English,
    with a UTC time ("… since 2026-12-05 09:00:00 UTC"). The time is the company's (the zone
    the collector handed out; Beijing before it has), as every time the agent writes."""
    config = ProbeConfig(time_zone=zone)
    _collect(config)
    (still,) = _errors(_collect(config)[0], pb.FACT_FIREWALL)
    found = re.fullmatch(re.escape(STILL).replace(r"\{since\}", "(.*)"), still.message)
    assert found is not None, still.message
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d \({re.escape(offset)}\)", found[1])
    assert is_phrase(still.message)
    local = found[1].replace(" (", "（").replace(")", "）")
    assert local in worded(still.message, "zh") and found[1] in worded(still.message, "en")
    (timeout,) = _errors(_collect_without_release(hanging), pb.FACT_FIREWALL)
    assert is_phrase(timeout.message)


def test_the_probes_say_times_in_the_zone_the_collector_handed_out(agent: EnrolledAgent) -> None:
    """The policy's `time_zone`, as the agent keeps it from an acknowledgement."""
    assert probe_config(agent.state).time_zone == ""  # none yet: Beijing
    agent.state.save_config(pb.AgentConfig(version=1, time_zone="Asia/Tokyo"))
    assert probe_config(agent.state).time_zone == "Asia/Tokyo"


def _collect_without_release(hanging: Hanging) -> pb.PostureReport:
    """A round after the hung probe finished: it is started again, and hangs again."""
    hanging.release.set()
    deadline = time.monotonic() + 5
    while _probe_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    hanging.release.clear()
    return _collect()[0]


@pytest.fixture
def marked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The agent's phrases in Chinese as their English in brackets: a phrase worded for the
    reader shows so whether or not the catalogs have its Chinese yet; one shown as it came
    (undeclared) shows bare."""
    real = catalogs.translate

    def translate(lang: Lang, context: str, english: str) -> str:
        if lang == "zh" and context == phrases.CONTEXT:
            return f"〔{english}〕"
        return real(lang, context, english)

    monkeypatch.setattr(phrases, "translate", translate)
    phrases._worded.cache_clear()
    yield
    phrases._worded.cache_clear()


@pytest.mark.usefixtures("marked")
def test_an_employee_reading_chinese_reads_why_a_hung_probe_s_fact_is_unknown(
    hanging: Hanging,
) -> None:
    _collect()
    report, _ = _collect()
    now = dt.datetime.now(dt.UTC)
    view = View("zh", "linux", company_zone(), now)
    (firewall,) = [v for v in local_verdicts(report, now) if v.check_id == "firewall"]
    said = reason_text(firewall, view)
    assert "〔防火墙 probe still running since " in said, said  # worded, the fact by its word
    assert "（UTC+08:00）: it did not finish" in said and "UTC)" not in said, said


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

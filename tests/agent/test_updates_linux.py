"""OS updates on Linux, source by source: what one source read stays when another fails
(replayed dnf 4 and dnf 5 outputs, apt recorded on this machine)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pytest

from devposture.agent.host import OK_ONLY, CommandResult, CommandTimeoutError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.dnf import parse_check_update, parse_updateinfo_security
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.linux import updates
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost, fixture_bytes, fixture_text, ok, recorded

FEDORA34_SECURITY = "dnf/dnf-updateinfo-list-security-fedora34.out"
DNF5_ADVISORIES = "dnf/dnf5-advisory-list-fedora44-first-rows.out"
DNF5_NARROW = "dnf/dnf5-advisory-list-fedora40-narrow-columns.out"
DNF5_UPGRADES = "dnf/dnf5-check-upgrade-fedora44-obsoleting.out"
# check-update's documented status when updates are pending ("exit code will be 100 when there
# are updates available", dnf(8); ci-dnf-stack's check-update.feature expects 100). No
# recording shows the status itself.
PENDING = 100
# `-C` without metadata: exit 1 and this stderr (ci-dnf-stack, the dnf 5 scenario
# "repoquery -Cq (without any cache)").
NO_CACHE = (1, b"", fixture_bytes("dnf/dnf5-cacheonly-no-cache.err"))


def run(host: ReplayHost) -> FactOutcome:
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    return run_probe(pb.FACT_OS_UPDATES, updates.probe, ctx)


def sources(outcome: FactOutcome) -> list[tuple[str, int]]:
    return [(e.source, e.code) for e in outcome.errors]


def dnf_host(
    updateinfo: tuple[int, bytes, bytes] | None, check_update: tuple[int, bytes, bytes] | None
) -> ReplayHost:
    host = ReplayHost().with_tool("dnf")
    if updateinfo is not None:
        host.commands[tuple(cmd.DNF_UPDATEINFO)] = updateinfo
    if check_update is not None:
        host.commands[tuple(cmd.DNF_CHECK_UPDATE)] = check_update
    return host


# --- parsers ----------------------------------------------------------------------------------


def test_dnf5_advisory_table_counts_security_rows_only() -> None:
    advisories = parse_updateinfo_security(fixture_text(DNF5_ADVISORIES))
    assert [(a.advisory_id, a.severity, a.package) for a in advisories] == [
        ("FEDORA-2026-bc20b091a8", "Important", "kernel-core"),
        ("FEDORA-2026-bc20b091a8", "Important", "kernel-modules-core"),
    ]


def test_dnf5_columns_cut_to_the_terminal_still_tell_security() -> None:
    # "secu Importan": the type and severity cut to the column width.
    advisories = parse_updateinfo_security(fixture_text(DNF5_NARROW))
    assert {a.package for a in advisories} == {"glib2-debuginfo", "glib2-debugsource"}
    assert {a.severity for a in advisories} == {"Importan"}


def test_dnf4_updateinfo_still_read() -> None:
    advisories = parse_updateinfo_security(fixture_text(FEDORA34_SECURITY))
    assert advisories[1].package == "dhcp-client" and advisories[1].severity == "Important"


def test_dnf5_check_upgrade_heading_and_obsoleting_section() -> None:
    # The author counted five upgrades; the "Obsoleting packages" rows repeat two of them.
    names = parse_check_update(fixture_text(DNF5_UPGRADES))
    assert len(names) == 5 and names[0] == "apparmor-libs.x86_64"
    assert names[3:] == [
        "python3-proton-vpn-api-core.aarch64",
        "python3-proton-vpn-api-core.x86_64",
    ]


def test_a_long_name_wrapped_before_its_version_is_one_update() -> None:
    # yum's layout, kept by dnf 4: the whole count was lost (ParseError) for one long name.
    names = parse_check_update(fixture_text("dnf/yum-check-update-wrapped-rhel6.out"))
    assert names == ["java-1.7.0-openjdk-devel.x86_64"]
    with pytest.raises(ParseError):  # cut off after the name: not a whole line
        parse_check_update("java-1.7.0-openjdk-devel.x86_64\n")


def test_dnf_outputs_that_are_neither_are_errors() -> None:
    with pytest.raises(ParseError):
        parse_check_update(fixture_text(FEDORA34_SECURITY))
    with pytest.raises(ParseError):
        parse_updateinfo_security(fixture_text(DNF5_UPGRADES))


# --- dnf, source by source --------------------------------------------------------------------


def test_dnf5_both_sources() -> None:
    host = dnf_host(ok(fixture_text(DNF5_ADVISORIES)), (PENDING, fixture_bytes(DNF5_UPGRADES), b""))
    outcome = run(host)
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and outcome.errors == []
    assert (fact.source, fact.pending_security, fact.pending_total) == ("dnf", 2, 5)
    assert list(fact.pending_security_names) == ["kernel-core", "kernel-modules-core"]


def test_security_count_stays_when_check_update_fails() -> None:
    outcome = run(dnf_host(ok(fixture_text(FEDORA34_SECURITY)), NO_CACHE))
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact)
    assert fact.pending_security == 16 and not fact.HasField("pending_total")
    assert sources(outcome) == [("dnf check-update", pb.PROBE_ERROR_CODE_COMMAND_FAILED)]
    assert "no cache" in outcome.errors[0].message


@dataclass
class TimingOutHost(ReplayHost):
    """A replay in which some commands run out of time."""

    timeouts: set[tuple[str, ...]] = field(default_factory=set)

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        if tuple(argv) in self.timeouts:
            raise CommandTimeoutError(f"{argv[0]} did not finish within {timeout:g} s")
        return super().run(argv, timeout, ok_codes)


def test_security_count_stays_when_check_update_times_out() -> None:
    host = TimingOutHost(timeouts={tuple(cmd.DNF_CHECK_UPDATE)}).with_tool("dnf")
    host.commands[tuple(cmd.DNF_UPDATEINFO)] = ok(fixture_text(FEDORA34_SECURITY))
    outcome = run(host)
    assert isinstance(outcome.fact, pb.OsUpdatesFact) and outcome.fact.pending_security == 16
    assert sources(outcome) == [("dnf check-update", pb.PROBE_ERROR_CODE_TIMEOUT)]


def test_total_stays_when_updateinfo_fails_and_security_is_unknown() -> None:
    outcome = run(dnf_host(NO_CACHE, (PENDING, fixture_bytes(DNF5_UPGRADES), b"")))
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and fact.pending_total == 5
    assert not fact.HasField("pending_security")  # unknown, never "0 security updates"
    assert sources(outcome) == [("dnf updateinfo", pb.PROBE_ERROR_CODE_COMMAND_FAILED)]


def test_exit_status_and_listing_must_agree() -> None:
    # Exit 100 ("updates pending") with nothing listed: neither is believed.
    outcome = run(dnf_host(ok(fixture_text(FEDORA34_SECURITY)), (PENDING, b"", b"")))
    assert isinstance(outcome.fact, pb.OsUpdatesFact)
    assert not outcome.fact.HasField("pending_total")
    assert sources(outcome) == [("dnf check-update", pb.PROBE_ERROR_CODE_PARSE_ERROR)]


def test_both_dnf_sources_failing_is_no_fact_and_two_errors() -> None:
    outcome = run(dnf_host(NO_CACHE, NO_CACHE))
    assert outcome.fact is None
    assert sources(outcome) == [
        ("dnf updateinfo", pb.PROBE_ERROR_CODE_COMMAND_FAILED),
        ("dnf check-update", pb.PROBE_ERROR_CODE_COMMAND_FAILED),
    ]


# --- apt, source by source --------------------------------------------------------------------


def apt_host() -> ReplayHost:
    host = ReplayHost().with_tool("apt-get").with_tool("apt-config")
    host.commands[tuple(cmd.APT_CONFIG)] = recorded("apt/apt-config-dump-debian12")
    host.dirs["/var/lib/apt/lists"] = ["deb.debian.org_debian_dists_bookworm_InRelease", "lock"]
    host.mtimes["/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease"] = 1.7e9
    host.mtimes["/var/log/apt/history.log"] = 1.6e9
    return host


def test_apt_dates_and_policy_stay_when_the_simulation_fails() -> None:
    host = apt_host()
    # apt-get refusing to simulate (its exit status 100, the one apt-get uses for errors);
    # no recorded stderr is needed to show that the other sources stay.
    host.commands[tuple(cmd.APT_SIMULATE)] = (100, b"", b"")
    outcome = run(host)
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and fact.source == "apt"
    assert not fact.HasField("pending_security") and not fact.HasField("pending_total")
    assert fact.last_checked.seconds == 1_700_000_000
    assert fact.HasField("automatic_updates") and not fact.automatic_updates
    assert sources(outcome) == [("apt-get", pb.PROBE_ERROR_CODE_COMMAND_FAILED)]


def test_security_updates_apt_keeps_back_are_counted() -> None:
    # The same machine with its 81 security updates on hold: `apt-get upgrade` kept them back
    # and named them only, so none was counted and os-updates passed. The simulated
    # dist-upgrade, holds ignored, lists each with its archive.
    host = apt_host()
    held = recorded("apt/apt-get-s-dist-upgrade-debian12-held")
    host.commands[tuple(cmd.APT_SIMULATE)] = held
    fact = run(host).fact
    assert isinstance(fact, pb.OsUpdatesFact)
    assert (fact.pending_total, fact.pending_security) == (124, 81)
    assert "dist-upgrade" in cmd.APT_SIMULATE
    assert "APT::Ignore-Hold=true" in cmd.APT_SIMULATE


def test_apt_counts_stay_when_apt_config_is_missing() -> None:
    host = apt_host()
    del host.tools["apt-config"]
    pending = recorded("apt/apt-get-s-dist-upgrade-debian12-pending")
    host.commands[tuple(cmd.APT_SIMULATE)] = pending
    outcome = run(host)
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact)
    assert (fact.pending_total, fact.pending_security) == (124, 81)
    assert not fact.HasField("automatic_updates")
    assert sources(outcome) == [("apt-config", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)]

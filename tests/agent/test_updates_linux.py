"""OS updates on Linux, source by source: what one source read stays when another fails
(replayed dnf 4 and dnf 5 outputs, apt recorded on this machine), and apt on distributions
without a security archive (Deepin, UOS, Kylin), whose security count is unknown, never 0."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pytest

from devposture.agent.host import OK_ONLY, CommandResult, CommandTimeoutError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.apt import AptArchive, parse_list_names
from devposture.agent.parsers.dnf import parse_check_update, parse_updateinfo_security
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.linux import updates
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.policy.checks import CheckParameters, State, check_os_updates
from devposture.policy.reasons import render
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


# --- apt on distributions without a security archive ----------------------------------------
#
# Listings of /var/lib/apt/lists are host state. apt names each Release file after its source:
# the URI without the scheme, then "dists" and the suite, every "/" turned into "_" (so the
# development machine's "http://deb.debian.org/debian-security bookworm-security" left
# deb.debian.org_debian-security_dists_bookworm-security_InRelease). Each listing below says
# which published sources.list it is made from (tests/fixtures/linux/README.md, "apt's lists").

# `ls /var/lib/apt/lists` on the development machine (Debian 12), recorded 2026-12-05.
DEBIAN12_LISTS = [
    "auxfiles",
    "deb.debian.org_debian-security_dists_bookworm-security_InRelease",
    "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.lz4",
    "deb.debian.org_debian_dists_bookworm-updates_InRelease",
    "deb.debian.org_debian_dists_bookworm-updates_main_binary-amd64_Packages.lz4",
    "deb.debian.org_debian_dists_bookworm_InRelease",
    "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4",
    "lock",
    "partial",
]
# The same machine with its security archive taken out of its sources (what
# apt-get-s-dist-upgrade-debian12-no-security planned from).
DEBIAN12_WITHOUT_SECURITY_LISTS = [n for n in DEBIAN12_LISTS if "security" not in n]
# Deepin 20 (apricot) as installed: sources.list, appstore.list and printer.list.
DEEPIN20_LISTS = [
    "community-packages.deepin.com_deepin_dists_apricot_InRelease",
    "community-packages.deepin.com_deepin_dists_apricot_main_binary-amd64_Packages",
    "community-packages.deepin.com_printer_dists_eagle_InRelease",
    "community-store-packages.deepin.com_appstore_dists_eagle_InRelease",
    "lock",
    "partial",
]
# Deepin 23 (beige) and its app store.
DEEPIN23_LISTS = [
    "com-store-packages.uniontech.com_appstorev23_dists_beige_InRelease",
    "community-packages.deepin.com_beige_dists_beige_InRelease",
    "lock",
]
# UOS 20 professional 1050: sources.list and security.list; the two Packages names are the
# ones apt-cache showpkg printed on such a machine.
UOS1050_LISTS = [
    "professional-packages.chinauos.com_desktop-professional_dists_eagle_InRelease",
    "professional-packages.chinauos.com_desktop-professional_dists_eagle_main_binary-amd64_Packages",
    "professional-security.chinauos.com_dists_eagle_1050_InRelease",
    "professional-security.chinauos.com_dists_eagle_1050_main_binary-amd64_Packages",
    "lock",
]
# Kylin V10 SP1 (2303): its source manager's sources.list.
KYLIN_V10_LISTS = [
    "archive.kylinos.cn_kylin_KYLIN-ALL_dists_10.1-2303-hwe-updates_InRelease",
    "archive.kylinos.cn_kylin_KYLIN-ALL_dists_10.1-2303-updates_InRelease",
    "archive.kylinos.cn_kylin_KYLIN-ALL_dists_10.1_InRelease",
    "archive2.kylinos.cn_deb_kylin_production_PART-V10-SP1_custom_partner_V10-SP1_dists_default_InRelease",
    "lock",
]
# openKylin 1.0 (yangtze), which has a security archive like Ubuntu's.
OPENKYLIN_LISTS = [
    "archive.build.openkylin.top_openkylin_dists_yangtze-security_InRelease",
    "archive.build.openkylin.top_openkylin_dists_yangtze-updates_InRelease",
    "archive.build.openkylin.top_openkylin_dists_yangtze_InRelease",
    "lock",
]
# Debian 10 (buster), whose security suite was "buster/updates" (no "-security" in its name).
DEBIAN10_LISTS = [
    "deb.debian.org_debian_dists_buster_InRelease",
    "security.debian.org_debian-security_dists_buster_updates_InRelease",
    "lock",
]
NO_SECURITY_PENDING = "apt/apt-get-s-dist-upgrade-debian12-no-security"
NOTHING_PENDING = "apt/apt-get-s-dist-upgrade-no-archives"


def apt_host_with(lists: list[str], simulation: str) -> ReplayHost:
    host = apt_host()
    host.dirs["/var/lib/apt/lists"] = list(lists)
    for name in lists:
        host.mtimes[f"/var/lib/apt/lists/{name}"] = 1.7e9
    host.commands[tuple(cmd.APT_SIMULATE)] = recorded(simulation)
    return host


def os_updates_verdict(outcome: FactOutcome) -> tuple[State, str]:
    report = pb.PostureReport()
    assert isinstance(outcome.fact, pb.OsUpdatesFact)
    report.os_updates.CopyFrom(outcome.fact)
    report.errors.extend(outcome.errors)
    collected = dt.datetime.fromtimestamp(outcome.fact.last_checked.seconds + 86_400, dt.UTC)
    result = check_os_updates(report, collected, CheckParameters())
    return result.state, render(result.reason, "en", dt.UTC)


def test_list_names_give_the_archives_and_which_are_security() -> None:
    archives = parse_list_names(DEBIAN12_LISTS)
    assert [(str(a), a.security) for a in archives] == [
        ("deb.debian.org/debian-security bookworm-security", True),
        ("deb.debian.org/debian bookworm-updates", False),
        ("deb.debian.org/debian bookworm", False),
    ]
    (buster, buster_security) = parse_list_names(DEBIAN10_LISTS)
    assert not buster.security
    assert (buster_security.suite, buster_security.security) == ("buster/updates", True)
    uos = parse_list_names(UOS1050_LISTS)
    assert [str(a) for a in uos] == [
        "professional-packages.chinauos.com/desktop-professional eagle",
        "professional-security.chinauos.com eagle/1050",
    ]
    # Release and InRelease of one archive, a flat repository, an escaped "_" in the URI.
    assert parse_list_names(
        [
            "a.example_debian_dists_stable_InRelease",
            "a.example_debian_dists_stable_Release",
            "a.example_debian_dists_stable_Release.gpg",
            "b.example_repo_._InRelease",
            "c.example_my%5frepo_dists_stable_InRelease",
        ]
    ) == (AptArchive("a.example/debian", "stable"), AptArchive("c.example/my_repo", "stable"))


@pytest.mark.parametrize(
    ("lists", "named"),
    [
        (DEEPIN20_LISTS, "community-packages.deepin.com/deepin apricot"),
        (DEEPIN23_LISTS, "community-packages.deepin.com/beige beige"),
        (UOS1050_LISTS, "professional-security.chinauos.com eagle/1050"),
        (KYLIN_V10_LISTS, "archive.kylinos.cn/kylin/KYLIN-ALL 10.1-2303-updates"),
        (DEBIAN12_WITHOUT_SECURITY_LISTS, "deb.debian.org/debian bookworm"),
    ],
    ids=["deepin20", "deepin23", "uos1050", "kylin-v10", "debian12-without-security"],
)
def test_pending_updates_without_a_security_archive_are_unknown_never_pass(
    lists: list[str], named: str
) -> None:
    # 94 updates pending, none from a "-security" archive: on a machine that has no such
    # archive that says nothing. The count was 0, and os-updates passed.
    outcome = run(apt_host_with(lists, NO_SECURITY_PENDING))
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and fact.pending_total == 94
    assert not fact.HasField("pending_security") and not fact.pending_security_names
    assert sources(outcome) == [("apt archives", pb.PROBE_ERROR_CODE_NO_SOURCE)]
    message = outcome.errors[0].message
    assert message.startswith("no security archive") and named in message
    assert "apt cannot tell security updates apart" in message
    assert fact.last_checked.seconds == 1_700_000_000  # the other sources stay
    state, reason = os_updates_verdict(outcome)
    assert state is State.UNKNOWN
    assert reason.startswith("the update tool (apt) did not tell pending security updates: ")
    assert named in reason


@pytest.mark.parametrize(
    "lists", [DEBIAN12_LISTS, DEBIAN10_LISTS, OPENKYLIN_LISTS],
    ids=["debian12", "debian10-buster-updates", "openkylin-yangtze-security"],
)  # fmt: skip
def test_pending_updates_with_a_security_archive_none_from_it_count_zero(
    lists: list[str],
) -> None:
    # Debian and Ubuntu as before: a security archive is there and nothing pending is from it.
    outcome = run(apt_host_with(lists, NO_SECURITY_PENDING))
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and outcome.errors == []
    assert (fact.pending_total, fact.pending_security) == (94, 0)
    assert os_updates_verdict(outcome)[0] is State.PASS


@pytest.mark.parametrize("lists", [DEEPIN20_LISTS, KYLIN_V10_LISTS, UOS1050_LISTS])
def test_nothing_pending_is_a_known_zero_anywhere(lists: list[str]) -> None:
    outcome = run(apt_host_with(lists, NOTHING_PENDING))
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and outcome.errors == []
    assert (fact.pending_total, fact.pending_security) == (0, 0)


def test_security_updates_pending_are_counted_whatever_the_lists_say() -> None:
    # An update from a "-security" archive proves there is one: counted as always.
    outcome = run(apt_host_with(DEEPIN20_LISTS, "apt/apt-get-s-dist-upgrade-debian12-pending"))
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and outcome.errors == []
    assert (fact.pending_total, fact.pending_security) == (124, 81)


def test_unreadable_lists_leave_the_security_count_unknown() -> None:
    host = apt_host_with(DEEPIN20_LISTS, NO_SECURITY_PENDING)
    del host.dirs["/var/lib/apt/lists"]
    outcome = run(host)
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact) and fact.pending_total == 94
    assert not fact.HasField("pending_security")
    assert ("apt archives", pb.PROBE_ERROR_CODE_NO_SOURCE) in sources(outcome)

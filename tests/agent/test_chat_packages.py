"""WeChat and WeCom installed from rpm, and which package database is the system's own.

The parser is tested on rpm 4.18's recorded outputs (tests/fixtures/linux/rpm). The probe runs
its own rpm and dpkg-query commands for real, on databases of the test's own
(tests/agent/package_roots.py): empty rpms built with rpmbuild, this machine's dpkg and rpm
entries copied into a dpkg root. The policy's check then judges what the probe found.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.rpm_query import (
    FORMAT,
    RpmPackage,
    database_errors,
    parse_rpm_query,
)
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.linux import chat_clients as linux
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.policy.checks import CheckParameters, State, check_chat_app_updates
from devposture.v1 import devposture_pb2 as pb
from tests.agent.package_roots import (
    PackageRootsHost,
    build_deb,
    build_rpm,
    dpkg,
    dpkg_root,
    rpm_database,
)
from tests.agent.replay import ReplayHost, recorded

WECHAT, WECOM = pb.CHAT_APP_WECHAT, pb.CHAT_APP_WECOM
NAMES = cmd.RPM_QUERY[4:]
NOW = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC)


def _parsed(stem: str) -> list[RpmPackage]:
    rc, out, _ = recorded(f"rpm/{stem}")
    return parse_rpm_query(out.decode(), rc, NAMES)


# --- the parser, on recorded outputs --------------------------------------------------------


def test_the_recordings_ran_the_probes_query() -> None:
    assert cmd.RPM_QUERY[:4] == ("rpm", "-q", "--queryformat", FORMAT)
    assert ("rpm", *cmd.WECHAT_RPMS, *cmd.WECOM_RPMS) == NAMES
    out = recorded("rpm/rpm-q-debian-no-database")[1].decode()
    assert out == "".join(f"package {name} is not installed\n" for name in NAMES)


def test_each_installed_instance_is_a_package() -> None:
    assert _parsed("rpm-q-fedora-wechat-4.1.1.8") == [
        RpmPackage("rpm", None, "4.19.1.1", "1.fc40", "x86_64"),
        RpmPackage("wechat", None, "4.1.1.8", "1", "x86_64"),
    ]
    two = _parsed("rpm-q-two-wechat-versions")
    assert [(p.name, p.version) for p in two[1:]] == [("wechat", "4.1.1.8"), ("wechat", "4.0.1.11")]
    epoch = _parsed("rpm-q-epoch-two-arches")
    assert [(p.epoch, p.version, p.arch) for p in epoch[1:]] == [
        (1, "4.1.1.8", "x86_64"), (1, "4.1.1.8", "i686"),
    ]  # fmt: skip


def test_names_not_installed_are_counted_by_the_exit_status() -> None:
    assert _parsed("rpm-q-debian-no-database") == []
    out = recorded("rpm/rpm-q-fedora-wechat-4.1.1.8")[1].decode()
    with pytest.raises(ParseError, match="exit status"):
        parse_rpm_query(out, 1, NAMES)  # rpm counts the names it did not find: 5 here


def test_an_unreadable_database_is_told_by_stderr_alone() -> None:
    rc, out, err = recorded("rpm/rpm-q-unreadable-database")
    assert parse_rpm_query(out.decode(), rc, NAMES) == []  # stdout and status: "none installed"
    errors = database_errors(err.decode())
    assert len(errors) == 21 and errors[0].startswith("error: sqlite failure")
    assert database_errors("warning: Found bdb Packages database while attempting sqlite "
                           "backend: using bdb backend.\n") == []  # fmt: skip


@pytest.mark.parametrize(
    ("text", "rc"),
    [
        ("wechat 4.1.1.8\n", 0),  # not rpm's tab-separated format
        ("chrome\t(none)\t1\t1\tx86_64\n", 0),  # a name that was not asked
        ("package chrome is not installed\n", 1),
        ("wechat\tone\t4.1.1.8\t1\tx86_64\n", 0),  # an epoch that is not a number
        ("wechat\t(none)\t\t1\tx86_64\n", 0),
    ],
)
def test_anything_else_is_a_parse_error(text: str, rc: int) -> None:
    with pytest.raises(ParseError):
        parse_rpm_query(text, rc, NAMES)


# --- the probe, on real databases -----------------------------------------------------------


@pytest.fixture(scope="module")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Empty packages with public header values (tests/fixtures/linux/rpm/README.md); WeCom's
    3.1.12.2 is the fedora-deepin-wework-wine6 version its project lists (xuthus5/
    fedora-packager README), its release the test's own."""
    top = tmp_path_factory.mktemp("rpmbuild")
    return {
        "rpm": build_rpm(top, "rpm", "4.19.1.1", "1.fc40"),
        "wechat-old": build_rpm(top, "wechat", "4.0.1.11", "1"),
        "wechat": build_rpm(top, "wechat", "4.1.1.8", "1"),
        "wecom": build_rpm(top, "fedora-deepin-wework-wine6", "3.1.12.2", "1"),
    }


def _probe(host: PackageRootsHost | ReplayHost) -> FactOutcome:
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    return run_probe(pb.FACT_CHAT_CLIENTS, linux.probe, ctx)


def _clients(outcome: FactOutcome) -> list[tuple[int, str, str]]:
    assert isinstance(outcome.fact, pb.ChatClientsFact)
    return [(c.app, c.version, c.source) for c in outcome.fact.clients]


def _verdict(outcome: FactOutcome) -> tuple[State, str]:
    report = pb.PostureReport(errors=outcome.errors)
    assert isinstance(outcome.fact, pb.ChatClientsFact)
    report.chat_clients.CopyFrom(outcome.fact)
    verdict = check_chat_app_updates(report, NOW, CheckParameters())
    return verdict.state, verdict.reason


def test_an_rpm_system_lists_every_installed_client(
    tmp_path: Path, rpms: dict[str, Path]
) -> None:
    """Fedora, RHEL, openEuler, Anolis, Kylin and UOS server: no dpkg-query; two WeChat
    versions side by side are two clients; the old WeCom fails the policy's minimum."""
    db = rpm_database(tmp_path, [rpms["rpm"], rpms["wechat-old"], rpms["wechat"], rpms["wecom"]])
    host = PackageRootsHost(None, db)
    outcome = _probe(host)
    assert outcome.errors == []
    assert sorted(_clients(outcome)) == sorted([
        (WECHAT, "4.1.1.8", "rpm wechat"),
        (WECHAT, "4.0.1.11", "rpm wechat"),
        (WECOM, "3.1.12.2", "rpm fedora-deepin-wework-wine6"),
    ])  # fmt: skip
    assert host.calls == [cmd.RPM_QUERY]
    state, reason = _verdict(outcome)
    assert state is State.FAIL and "3.1.12.2" in reason and "4.1.30" in reason


def test_dpkg_installed_on_an_rpm_system_does_not_hide_rpms_answer(
    tmp_path: Path, rpms: dict[str, Path]
) -> None:
    """Fedora ships dpkg too: its database, which lists no dpkg, is not the system's."""
    host = PackageRootsHost(dpkg_root(tmp_path, managers=()),
                            rpm_database(tmp_path, [rpms["rpm"], rpms["wechat"]]))  # fmt: skip
    outcome = _probe(host)
    assert outcome.errors == [] and _clients(outcome) == [(WECHAT, "4.1.1.8", "rpm wechat")]
    assert host.calls == [cmd.DPKG_QUERY, cmd.RPM_QUERY]
    assert _verdict(outcome)[0] is State.PASS


def test_debians_own_rpm_is_left_alone(tmp_path: Path) -> None:
    """Debian (or Deepin, UOS, Kylin desktop) with its rpm package installed: rpm's database
    there is a side one in the home of whoever runs it, which `rpm -q` would create. dpkg's
    database answers; rpm is never run and its database never made."""
    root = dpkg_root(tmp_path, managers=("dpkg", "rpm"))
    dpkg(root, "-i", str(build_deb(tmp_path, "com.qq.weixin.deepin", "3.9.0.28deepin7")))
    host = PackageRootsHost(root, tmp_path / "rpmdb")
    outcome = _probe(host)
    assert outcome.errors == [] and _clients(outcome) == [
        (WECHAT, "3.9.0.28", "dpkg com.qq.weixin.deepin")
    ]
    assert host.calls == [cmd.DPKG_QUERY] and not (tmp_path / "rpmdb").exists()


def test_an_rpm_database_that_is_not_the_systems_is_not_none_installed(tmp_path: Path) -> None:
    """No dpkg-query, and an rpm database that does not list rpm itself (Debian's rpm whose
    dpkg-query is gone, a chroot): it says nothing about this system, so UNKNOWN, not PASS."""
    outcome = _probe(PackageRootsHost(None, rpm_database(tmp_path, [])))
    assert _clients(outcome) == []
    (error,) = outcome.errors
    assert (error.source, error.code) == ("dpkg/rpm", pb.PROBE_ERROR_CODE_NO_SOURCE)
    assert "lists its own package manager" in error.message
    assert _verdict(outcome)[0] is State.UNKNOWN


def test_an_unreadable_rpm_database_is_an_error_not_none_installed(tmp_path: Path) -> None:
    db = tmp_path / "rpmdb"
    db.mkdir()
    (db / "rpmdb.sqlite").write_bytes(bytes(range(256)) * 32)  # not an SQLite file
    outcome = _probe(PackageRootsHost(None, db))
    (error,) = outcome.errors
    assert (error.source, error.code) == ("rpm", pb.PROBE_ERROR_CODE_COMMAND_FAILED)
    assert error.message.startswith("rpm could not read its package database: error: ")
    assert _verdict(outcome)[0] is State.UNKNOWN


def test_while_dpkgs_database_is_unread_rpm_is_not_run() -> None:
    """Whether rpm is Debian's cannot be told then, and running Debian's would write a
    database into root's home: dpkg's failure stands alone."""
    host = ReplayHost().with_tool("dpkg-query").with_tool("rpm")
    host.commands[cmd.DPKG_QUERY] = (2, b"", b"dpkg-query: error: parsing file\n")
    outcome = _probe(host)
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("dpkg", pb.PROBE_ERROR_CODE_COMMAND_FAILED)
    ]
    assert host.calls == [cmd.DPKG_QUERY]


def test_without_dpkg_query_or_rpm_the_fact_says_so() -> None:
    outcome = _probe(ReplayHost())  # no package tool, no flatpak
    assert _clients(outcome) == []
    (error,) = outcome.errors
    assert (error.source, error.code) == ("dpkg/rpm", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)
    assert error.message.startswith("neither dpkg-query nor rpm is installed")
    assert _verdict(outcome)[0] is State.UNKNOWN

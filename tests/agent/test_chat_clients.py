"""Installed WeChat and WeCom clients on Linux, and the version parsers every OS shares.

dpkg is run for real: each test builds small packages with dpkg-deb and installs them with
dpkg into a database of its own (`--root`, tests/agent/package_roots.py), then the probe's own
dpkg-query command runs against that database (rpm: tests/agent/test_chat_packages.py).
flatpak is not on this machine and no WeChat flatpak can be installed here, so its two cases
replay `flatpak list` as published (tests/fixtures/linux/chat_clients).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from devposture.agent.host import Host, LiveHost
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.app_versions import (
    dotted_version,
    folder_version,
    newest,
    package_version,
    version_key,
)
from devposture.agent.parsers.dpkg_query import FORMAT, parse_dpkg_query
from devposture.agent.parsers.flatpak import flatpak_versions
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.linux import PROBES, chat_packages
from devposture.agent.probes.linux import chat_clients as linux
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.v1 import devposture_pb2 as pb
from tests.agent import package_roots
from tests.agent.package_roots import PackageRootsHost, build_deb, dpkg
from tests.agent.replay import FIXTURES, ReplayHost

WECHAT, WECOM = pb.CHAT_APP_WECHAT, pb.CHAT_APP_WECOM


def _fixture(name: str) -> str:
    return (FIXTURES / "chat_clients" / name).read_text(encoding="utf-8")


# --- versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("4.0.1.11", "4.0.1.11"),  # the flatpak's and the official deb's numbering
        ("3.0.20.1618deepin5", "3.0.20.1618"),  # AUR com.qq.weixin.work.deepin pkgver
        ("4.1.32.6005deepin2", "4.1.32.6005"),
        ("1:4.1.0.10-1", "4.1.0.10"),  # an epoch and a Debian revision
    ],
)
def test_package_version_keeps_the_dotted_number(text: str, version: str) -> None:
    assert package_version(text) == version


@pytest.mark.parametrize("text", ["", "v0.167.1", "latest", "deepin5"])
def test_a_package_version_without_a_number_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        package_version(text)


def test_dotted_version_is_strict() -> None:
    assert dotted_version("4.1.5\n") == "4.1.5"
    for text in ("4", "4.1.5 (32281)", "4.1.x", ""):
        with pytest.raises(ParseError):
            dotted_version(text)


def test_install_folder_names() -> None:
    assert folder_version("[3.9.5.80]") == "3.9.5.80"
    assert folder_version("4.0.0.26") == "4.0.0.26"
    assert folder_version("5.0.9.6029") == "5.0.9.6029"
    assert folder_version("WXWork.exe") is None
    assert folder_version("Plugins") is None and folder_version("[4.0]") is None


def test_newest_orders_by_number_not_text() -> None:
    assert newest(["3.9.8.25", "3.9.10.19"]) == "3.9.10.19"  # "3.9.10" < "3.9.8" as text
    assert newest([]) is None
    assert version_key("4.1.30.6008") == (4, 1, 30, 6008)


# --- dpkg, for real ----------------------------------------------------------------------


@pytest.fixture
def dpkg_root(tmp_path: Path) -> Path:
    return package_roots.dpkg_root(tmp_path)  # holding dpkg itself, as on Debian


def _install(root: Path, tmp: Path, name: str, version: str, conffile: bool = False) -> None:
    dpkg(root, "-i", str(build_deb(tmp, name, version, conffile)))


def _probe(host: Host) -> FactOutcome:
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    return run_probe(pb.FACT_CHAT_CLIENTS, linux.probe, ctx)


def _query(root: Path) -> str:
    done = subprocess.run(
        ["dpkg-query", f"--root={root}", *cmd.DPKG_QUERY[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def test_dpkg_query_output_parses(tmp_path: Path, dpkg_root: Path) -> None:
    _install(dpkg_root, tmp_path, "com.qq.weixin.work.deepin", "4.1.32.6005deepin2")
    _install(dpkg_root, tmp_path, "wechat", "4.0.1.11", conffile=True)
    dpkg(dpkg_root, "-r", "wechat")  # removed, not purged: its conffile keeps a record
    packages = {p.name: p for p in parse_dpkg_query(_query(dpkg_root))}
    assert set(packages) == {"dpkg", "com.qq.weixin.work.deepin", "wechat"}
    assert packages["dpkg"].on_disk  # this machine's own entry, copied into the root
    wecom, wechat = packages["com.qq.weixin.work.deepin"], packages["wechat"]
    assert (wecom.status, wecom.version, wecom.on_disk) == ("installed", "4.1.32.6005deepin2", True)
    assert (wechat.status, wechat.on_disk) == ("config-files", False)


def test_dpkg_query_format_is_the_probes() -> None:
    assert cmd.DPKG_QUERY[:3] == ("dpkg-query", "-W", f"-f={FORMAT}")
    assert cmd.DPKG_QUERY[3:] == (*cmd.PACKAGE_MANAGERS, *chat_packages.DEB_PACKAGES)


def test_unexpected_dpkg_query_lines_are_parse_errors() -> None:
    for text in ("wechat installed 4.0.1.11\n", "wechat\tbroken\t4.0.1.11\n"):
        with pytest.raises(ParseError):
            parse_dpkg_query(text)


def test_nothing_installed_on_this_machine_is_an_empty_fact() -> None:
    outcome = _probe(LiveHost())
    assert outcome.errors == [] and isinstance(outcome.fact, pb.ChatClientsFact)
    assert list(outcome.fact.clients) == []


def test_installed_packages_are_listed_with_their_versions(tmp_path: Path, dpkg_root: Path) -> None:
    _install(dpkg_root, tmp_path, "com.qq.weixin.deepin", "3.9.0.28deepin7")
    _install(dpkg_root, tmp_path, "com.qq.weixin.work.deepin", "4.1.32.6005deepin2")
    _install(dpkg_root, tmp_path, "wechat", "4.0.1.11", conffile=True)
    dpkg(dpkg_root, "-r", "wechat")
    host = PackageRootsHost(dpkg_root)
    outcome = _probe(host)
    assert outcome.errors == []
    assert isinstance(outcome.fact, pb.ChatClientsFact)
    got = [(c.app, c.version, c.source, c.version_error) for c in outcome.fact.clients]
    assert got == [
        (WECHAT, "3.9.0.28", "dpkg com.qq.weixin.deepin", ""),
        (WECOM, "4.1.32.6005", "dpkg com.qq.weixin.work.deepin", ""),
    ]  # the removed wechat (config-files only) is not a client
    assert host.calls == [tuple(cmd.DPKG_QUERY)]


def test_a_package_version_without_a_number_is_listed_as_unknown(
    tmp_path: Path, dpkg_root: Path
) -> None:
    _install(dpkg_root, tmp_path, "wechat-beta", "20240315~beta")
    outcome = _probe(PackageRootsHost(dpkg_root))
    assert isinstance(outcome.fact, pb.ChatClientsFact)
    (client,) = outcome.fact.clients
    assert (client.app, client.version) == (WECHAT, "")
    assert "package version not understood" in client.version_error


def test_a_failing_dpkg_query_is_an_error_of_its_source() -> None:
    host = ReplayHost().with_tool("dpkg-query")
    host.commands[tuple(cmd.DPKG_QUERY)] = (2, b"", b"dpkg-query: error: parsing file\n")
    outcome = _probe(host)
    (error,) = outcome.errors
    assert (error.source, error.code) == ("dpkg", pb.PROBE_ERROR_CODE_COMMAND_FAILED)


# --- flatpak, replayed -------------------------------------------------------------------


def test_flatpak_list_as_published() -> None:
    assert flatpak_versions(
        _fixture("flatpak-list-mint-wechat-1.0.0.238.txt"), "com.tencent.WeChat"
    ) == ["1.0.0.238"]
    zh = _fixture("flatpak-list-zh-wechat-4.0.1.11.txt")
    assert flatpak_versions(zh, "com.tencent.WeChat") == ["4.0.1.11"]
    assert flatpak_versions(zh, "com.tencent.WeCom") == []
    # A row whose Version cell is empty: the next word is the branch, not a version.
    mint = _fixture("flatpak-list-mint-wechat-1.0.0.238.txt")
    assert flatpak_versions(mint, "org.gnome.Platform") == [""]


def _flatpak_host(listing: str, homes: Sequence[str] = ()) -> ReplayHost:
    host = ReplayHost(homes=list(homes)).with_tool("flatpak")
    host.commands[tuple(cmd.FLATPAK_LIST)] = (0, listing.encode(), b"")
    return host


def test_the_wechat_flatpak_is_a_client() -> None:
    outcome = _probe(_flatpak_host(_fixture("flatpak-list-zh-wechat-4.0.1.11.txt")))
    assert isinstance(outcome.fact, pb.ChatClientsFact)
    (client,) = outcome.fact.clients
    assert (client.app, client.version, client.source) == (
        WECHAT, "4.0.1.11", "flatpak com.tencent.WeChat",
    )  # fmt: skip
    assert [e.source for e in outcome.errors] == ["dpkg/rpm"]  # neither tool on this replay


def test_another_users_own_flatpak_is_listed_with_its_version_unknown() -> None:
    host = _flatpak_host("", homes=["/home/wangfang"])
    host.dirs["/home/wangfang/.local/share/flatpak/app/com.tencent.WeChat"] = ["current"]
    outcome = _probe(host)
    assert isinstance(outcome.fact, pb.ChatClientsFact)
    (client,) = outcome.fact.clients
    assert client.version == "" and "one user only" in client.version_error
    assert client.location == "~/.local/share/flatpak/app" and "wangfang" not in str(outcome.fact)


def test_the_probe_is_in_the_linux_table() -> None:
    assert PROBES[pb.FACT_CHAT_CLIENTS] is linux.probe

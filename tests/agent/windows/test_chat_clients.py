"""WeChat and WeCom on Windows, replayed: the install folders as public sources show them
(tests/fixtures/windows/chat_clients/README.md), reg's real "key not found" answers, and real
Uninstall-key listings of other programs for the key parser.

No public `reg query` output of WeChat's, Weixin's or WeCom's own Uninstall key was found.
The key parser is tested on real listings of other programs' keys (an MSI key with an empty
InstallLocation, a per-user key with a quoted uninstaller). End to end, one test answers the
Weixin key with the MSI listing, said so where it does; a key naming a folder the user chose
(D:\\...) is not replayed end to end, for want of a recording.
"""

from __future__ import annotations

import json

import pytest

from devposture.agent.parsers.windows.reg_query import parse_reg_query
from devposture.agent.parsers.windows.uninstall_key import uninstall_entry
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.agent.probes.windows import PROBES
from devposture.agent.probes.windows import chat_clients as windows
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

WECHAT, WECOM = pb.CHAT_APP_WECHAT, pb.CHAT_APP_WECOM
REG_MISSING = 1
FOLDERS = json.loads(fixture("chat_clients/install-folder-entries.json"))


def _run(host: WindowsReplayHost) -> FactOutcome:
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    return run_probe(pb.FACT_CHAT_CLIENTS, windows.probe, ctx)


def _no_keys(host: WindowsReplayHost, missing: str = "reg_query/not-found-en.txt") -> None:
    for _, argv in windows.UNINSTALL_QUERIES:
        host.record(argv, output(missing, REG_MISSING))


def _with_folder(host: WindowsReplayHost, label: str) -> str:
    folder = FOLDERS[label]["folder"]
    host.dirs[folder] = list(FOLDERS[label]["entries"])
    return str(folder)


def _clients(outcome: FactOutcome) -> list[tuple[int, str, str, str]]:
    assert isinstance(outcome.fact, pb.ChatClientsFact), outcome.errors
    return [(c.app, c.version, c.source, c.location) for c in outcome.fact.clients]


def test_the_commands_are_the_six_uninstall_keys() -> None:
    argvs = [argv for _, argv in windows.UNINSTALL_QUERIES]
    assert len(argvs) == 6 and all(argv[:2] == ("reg", "query") for argv in argvs)
    keys = {argv[2].rsplit("\\", 1)[1] for argv in argvs}
    assert keys == {"WeChat", "Weixin", "企业微信"}
    assert PROBES[pb.FACT_CHAT_CLIENTS] is windows.probe


def test_nothing_installed_is_an_empty_fact() -> None:
    host = WindowsReplayHost()
    _no_keys(host)
    outcome = _run(host)
    assert outcome.errors == [] and _clients(outcome) == []
    assert len(host.calls) == 6


@pytest.mark.parametrize(
    ("label", "app", "version"),
    [
        ("wechat3-x86-3.9.5.80", WECHAT, "3.9.5.80"),
        ("wechat3-x64-3.9.7.29", WECHAT, "3.9.7.29"),
        ("weixin4-4.0.0.26", WECHAT, "4.0.0.26"),
        ("wecom-5.0.9.6029", WECOM, "5.0.9.6029"),
    ],
)
def test_the_version_folder_is_the_version(label: str, app: int, version: str) -> None:
    host = WindowsReplayHost()
    _no_keys(host)
    folder = _with_folder(host, label)
    outcome = _run(host)
    assert outcome.errors == []
    assert _clients(outcome) == [(app, version, "install folder", folder)]


def test_wechat_3_and_4_and_wecom_side_by_side_on_chinese_windows() -> None:
    host = WindowsReplayHost(console_encoding="cp936")
    _no_keys(host, "reg_query/not-found-zh.cp936-crlf.txt")  # 错误: 系统找不到指定的注册表项或值。
    for label in ("wechat3-x86-3.9.5.80", "weixin4-4.0.0.26", "wecom-5.0.9.6029"):
        _with_folder(host, label)
    got = sorted((app, version) for app, version, _, _ in _clients(_run(host)))
    assert got == [(WECHAT, "3.9.5.80"), (WECHAT, "4.0.0.26"), (WECOM, "5.0.9.6029")]


def test_a_default_folder_without_the_program_is_not_an_install() -> None:
    host = WindowsReplayHost()
    _no_keys(host)
    # What an uninstall may leave behind: the folder, none of the program. Stated here, not
    # recorded: no public listing of such a leftover was found.
    host.dirs["C:/Program Files (x86)/Tencent/WeChat"] = []
    assert _clients(_run(host)) == []


def test_a_failing_reg_query_is_an_error_and_the_folders_still_count() -> None:
    host = WindowsReplayHost()
    _no_keys(host)
    first = windows.UNINSTALL_QUERIES[0][1]
    host.timeouts.add(tuple(first))
    folder = _with_folder(host, "wecom-5.0.9.6029")
    outcome = _run(host)
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("Uninstall keys", pb.PROBE_ERROR_CODE_TIMEOUT)
    ]
    assert _clients(outcome) == [(WECOM, "5.0.9.6029", "install folder", folder)]


def test_reg_missing_everywhere_is_command_not_found() -> None:
    outcome = _run(WindowsReplayHost())  # no reg.exe at all
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("Uninstall keys", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)
    ]
    assert _clients(outcome) == []  # the folders were still looked at


def test_a_key_that_names_no_folder_gives_its_display_version() -> None:
    # The replay answers the Weixin key with a real listing of ANOTHER program's key (Checkmk's
    # MSI: empty InstallLocation, MsiExec uninstaller), stated as such: what counts is its shape.
    host = WindowsReplayHost()
    _no_keys(host)
    weixin = next(argv for _, argv in windows.UNINSTALL_QUERIES if argv[2].endswith("Weixin"))
    host.record(weixin, output("chat_clients/reg-uninstall-checkmk-msi-htb-nanocorp.txt"))
    assert _clients(_run(host)) == [(WECHAT, "2.1.0.50010", "registry", "")]


# --- the Uninstall-key parser, on real listings ---------------------------------------------


def test_an_msi_key_with_empty_install_location() -> None:
    text = fixture("chat_clients/reg-uninstall-checkmk-msi-htb-nanocorp.txt").decode()
    entry = uninstall_entry(parse_reg_query(text))
    assert (entry.folder, entry.display_version) == ("", "2.1.0.50010")


def test_a_per_user_key_with_a_quoted_uninstaller() -> None:
    text = fixture("chat_clients/reg-uninstall-two-keys-zcode-per-user-crlf.txt").decode()
    first_key = text.replace("\r\n", "\n").strip("\n").split("\n\n")[0]
    entry = uninstall_entry(parse_reg_query(first_key))
    assert entry.folder == "C:/Users/user/AppData/Local/Programs/ZCode"
    assert entry.display_version == "3.14.4"
    second_key = text.replace("\r\n", "\n").strip("\n").split("\n\n")[1]
    entry = uninstall_entry(parse_reg_query(second_key))
    assert (entry.folder, entry.display_version) == (
        "C:/Users/user/AppData/Local/Programs/Netcatty", "",
    )  # fmt: skip

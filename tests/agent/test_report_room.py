"""The VPN and chat-backup facts hold no more items than the collector takes (256 VPN
interfaces, 256 backup sets, 64 chat accounts' live data folders), so a computer with very many
never goes dark: the agent's report, run through the collector's own
validation (imported in a test only: the agent never imports the collector), is accepted.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zipfile
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from devposture.agent.host import HostError, LiveHost, NetInterface
from devposture.agent.probes import ProbeConfig, chat_clients, collect_facts, report_room, vpn_room
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.chat_backups import LIVE_DATA_SOURCE, MAX_LIVE_DATA, MAX_SETS
from devposture.agent.probes.linux import backups, vpn
from devposture.agent.probes.macos import chat_clients as mac_chat_clients
from devposture.agent.probes.outcome import ProbeContext, source_error
from devposture.agent.probes.windows import antivirus as windows_antivirus
from devposture.agent.probes.windows import firewall as windows_firewall
from devposture.collector.validation import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_ITEMS,
    MAX_CHARS,
    MAX_ITEMS,
    ReportInvalid,
    validate_report,
)
from devposture.policy.checks import (
    LIVE_DATA_LEFT_OUT,
    CheckParameters,
    State,
    check_chat_app_updates,
    check_chat_backup,
    evaluate,
)
from devposture.policy.phrases import is_phrase
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import MacReplayHost, out
from tests.agent.macos.replay_macos import fixture as mac_fixture
from tests.agent.replay import ReplayHost
from tests.agent.test_probes_backups import TempHomeHost, dated
from tests.agent.windows.machines import healthy_english
from tests.agent.windows.replay_windows import fixture
from tests.collector.report_fields import PATHS

NOW = dt.datetime(2026, 9, 21, 12, 0, tzinfo=dt.UTC)


def accepted(fact: pb.VpnFact | pb.ChatBackupFact) -> pb.PostureReport:
    report = pb.PostureReport(report_id=str(uuid.UUID(int=9)), device_id="d")
    report.collected_at.FromDatetime(NOW)
    if isinstance(fact, pb.VpnFact):
        report.vpn.CopyFrom(fact)
    else:
        report.chat_backups.CopyFrom(fact)
    validate_report(report, NOW)
    return report


def test_the_agent_keeps_the_collectors_limits() -> None:
    assert MAX_ITEMS["devposture.v1.VpnFact.interfaces"] == vpn_room.MAX_INTERFACES
    assert MAX_ITEMS["devposture.v1.ChatBackupFact.backups"] >= MAX_SETS


def test_three_hundred_tunnels_are_reported_the_ones_up_kept() -> None:
    """A VPN concentrator's tun devices (stated: 299 down, the last one up) beside Docker's
    veth pairs, which are no VPN."""
    tunnels = [NetInterface(f"tun{n}", True, 1500, ("up",)) for n in range(299)]
    up = NetInterface("tun299", True, 1500, ("up", "running"))
    veths = [NetInterface(f"veth{n:04x}", True, 1500, ("up", "running")) for n in range(300)]
    host = ReplayHost(interfaces=[*veths, *tunnels, up])
    fact = vpn.probe(ProbeContext(host, ProbeConfig(), pb.PostureReport())).fact
    assert isinstance(fact, pb.VpnFact)
    accepted(fact)  # refused before: vpn.interfaces: 300 items, at most 256
    assert len(fact.interfaces) == 256 and fact.active
    assert fact.interfaces[-1].name == "tun299"
    assert not any(i.name.startswith("veth") for i in fact.interfaces)


def test_a_folder_of_three_hundred_backup_archives_is_reported(tmp_path: Path) -> None:
    """Three hundred ZIP files written by Python's zipfile in a folder the policy names: the
    newest sets are reported, the rest counted as skipped with the reason."""
    folder = tmp_path / "chat-archive"
    folder.mkdir()
    for n in range(300):
        path = folder / f"chats-{n:03}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("chat.txt", "聊天记录导出")
        dated(path, 1 + n / 10)
    ctx = ProbeContext(TempHomeHost(tmp_path), ProbeConfig(backup_folders=("~/chat-archive",)),
                       pb.PostureReport())  # fmt: skip
    fact = backups.probe(ctx).fact
    assert isinstance(fact, pb.ChatBackupFact)
    accepted(fact)
    assert len(fact.backups) == MAX_SETS and fact.entries_skipped == 300 - MAX_SETS
    assert "100 older backup set(s) not reported" in fact.skipped_reasons


def _accounts(home: Path, count: int) -> list[str]:
    """`count` WeChat 4.x accounts' live data folders (docs/chat-backups.md: xwechat_files/<wxid>/
    db_storage/message), each used a day before the next: wxid_000 longest ago."""
    names = [f"wxid_{n:03}" for n in range(count)]
    for n, name in enumerate(names):
        store = home / "Documents" / "xwechat_files" / name / "db_storage" / "message"
        store.mkdir(parents=True)
        dated(store, count - n)  # the app writes its store while the account is used
        dated(store.parent.parent, count + 10)  # the account folder itself, long unchanged
    return names


def _live(home: Path) -> tuple[pb.ChatBackupFact, list[pb.ProbeError]]:
    outcome = backups.probe(ProbeContext(TempHomeHost(home), ProbeConfig(), pb.PostureReport()))
    assert isinstance(outcome.fact, pb.ChatBackupFact), outcome.errors
    return outcome.fact, outcome.errors


def test_a_support_desk_with_a_hundred_chat_accounts_is_reported(tmp_path: Path) -> None:
    """A shared computer logged into a hundred WeChat accounts: the report is accepted, with the
    64 accounts used most recently, in the scan's order, and says how many were left out. No
    backup anywhere stays a FAIL: an account left out hides no backup (backups are looked for
    in every account's folder all the same)."""
    names = _accounts(tmp_path, 100)
    fact, errors = _live(tmp_path)
    report = accepted(fact)  # refused before: chat_backups.live_data: 100 items, at most 64
    most = MAX_ITEMS.get("devposture.v1.ChatBackupFact.live_data", DEFAULT_MAX_ITEMS)
    assert [f.account for f in fact.live_data] == names[100 - most :]
    (said,) = [e for e in errors if e.source == "live_data"]
    assert said.message == (
        f"{100 - most} of 100 chat accounts' data folders left out of the report (the collector"
        f" takes {most}): the most recently used are kept"
    )
    assert is_phrase(said.message)
    assert said.fact == pb.FACT_CHAT_BACKUPS and said.code == pb.PROBE_ERROR_CODE_UNSPECIFIED
    report.errors.extend(errors)
    verdict = check_chat_backup(report, NOW, CheckParameters())
    assert (verdict.state, verdict.reason.split(" ", 1)[0]) == (State.FAIL, "backup.none_live")


def test_accounts_within_the_limit_are_all_reported_and_nothing_is_said(tmp_path: Path) -> None:
    most = MAX_ITEMS.get("devposture.v1.ChatBackupFact.live_data", DEFAULT_MAX_ITEMS)
    names = _accounts(tmp_path, most)
    fact, errors = _live(tmp_path)
    accepted(fact)
    assert [f.account for f in fact.live_data] == names and errors == []


def test_a_live_data_folder_deeper_than_the_collector_takes_is_left_out_and_counted(
    tmp_path: Path,
) -> None:
    """WeChat 4.x moved to a folder whose path takes 1,000 characters (its pointer file may
    name up to 1,024): its account folder's path passes the collector's 1,024 for a text, and
    the whole report was refused for it."""
    home = tmp_path / "home"
    names = _accounts(home, 2)
    parent = tmp_path
    while len(str(parent)) < 1000:
        parent /= "d" * min(200, 1000 - len(str(parent)))
    store = parent / "xwechat_files" / "wxid_moved" / "db_storage" / "message"
    store.mkdir(parents=True)
    pointer = home / ".xwechat" / "config" / "51a1fffea11325a1e4104c6b3de47af7.ini"
    pointer.parent.mkdir(parents=True)
    pointer.write_text(str(parent), encoding="utf-8")
    fact, errors = _live(home)
    accepted(fact)
    assert [f.account for f in fact.live_data] == names
    assert [e.message.split(" chat accounts'")[0] for e in errors] == ["1 of 3"]


def test_the_agent_takes_no_more_live_data_folders_than_the_collector_and_says_so_apart() -> (
    None
):
    most = MAX_ITEMS.get("devposture.v1.ChatBackupFact.live_data", DEFAULT_MAX_ITEMS)
    assert most >= MAX_LIVE_DATA
    # The check of 6.2.1 knows the agent's word for accounts left out (no unread place).
    assert LIVE_DATA_SOURCE == LIVE_DATA_LEFT_OUT


# --- what no single fact owns: the report's errors and the texts copied from the machine ------


def _report(report: pb.PostureReport) -> pb.PostureReport:
    report.report_id = str(uuid.UUID(int=9))
    report.collected_at.FromDatetime(NOW)
    return report


def test_the_agents_text_limits_are_no_more_than_the_collectors() -> None:
    every = _strings()
    assert set(report_room.CHARS) <= set(every) and set(MAX_CHARS) <= set(every)
    for name in every:
        ours = report_room.CHARS.get(name, report_room.DEFAULT_CHARS)
        assert 0 < ours <= MAX_CHARS.get(name, DEFAULT_MAX_CHARS), name
    assert MAX_ITEMS["devposture.v1.PostureReport.errors"] >= report_room.MAX_ERRORS


def _strings() -> list[str]:
    """Every string field reachable from PostureReport, each once (report_fields' walk)."""
    return list(dict.fromkeys(
        path[-1].full_name for path in PATHS if path[-1].type == FieldDescriptor.TYPE_STRING
    ))  # fmt: skip


def _unreadable(tmp_path: Path, count: int) -> list[pb.ProbeError]:
    """`count` real errors of the live host, worded as the chat-backup scan files one for a
    place it cannot list (source "backups"): real files where folders were expected."""
    errors = []
    for n in range(count):
        path = tmp_path / f"home{n:03}"
        path.write_text("", encoding="utf-8")
        try:
            LiveHost().list_dir(str(path))
        except HostError as exc:
            errors.append(source_error(pb.FACT_CHAT_BACKUPS, "backups", exc))
    assert len(errors) == count
    return errors


def test_a_hundred_and_twenty_errors_keep_one_per_fact_and_source_and_say_the_rest(
    tmp_path: Path,
) -> None:
    """A computer with nothing on it (every probe's real error) and a chat-backup scan that
    could not list 120 places: refused before (errors: 130 items, at most 64)."""
    report = _report(pb.PostureReport())
    collect_facts(ReplayHost(), ProbeConfig(), report)
    before = list(report.errors)
    assert 0 < len(before) < 20
    report.errors.extend(_unreadable(tmp_path, 60))
    report.errors.extend(before)  # each probe's error again, as a second round would add
    report.errors.extend(_unreadable(tmp_path, 60))
    total = len(report.errors)
    errors = list(report.errors)
    with pytest.raises(ReportInvalid, match=rf"errors: {total} items, at most 64"):
        validate_report(report, NOW)
    report_room.fit(report)
    validate_report(report, NOW)
    assert len(report.errors) == 64
    *kept, said = report.errors
    assert said.message == (
        f"{total - 63} of {total} errors left out of the report (the collector takes 64): the"
        " first of each fact and of each source are kept"
    )
    assert is_phrase(said.message) and (said.fact, said.source) == (pb.FACT_UNSPECIFIED, "errors")
    # Every probe's own error is kept, once, in the order written; then the scan's first.
    assert kept[: len(before)] == before
    assert kept[len(before) :] == errors[len(before) : len(before) + 63 - len(before)]


def test_errors_within_the_limit_are_left_as_they_are(tmp_path: Path) -> None:
    report = _report(pb.PostureReport())
    report.errors.extend(_unreadable(tmp_path, 64))
    report_room.fit(report)
    assert [e.message for e in report.errors] == [e.message for e in _unreadable(tmp_path, 64)]


def test_a_path_longer_than_the_collector_takes_is_cut_in_its_middle(tmp_path: Path) -> None:
    """A backup's place 4,500 characters long, as a policy's folder may name one: the live
    host's real error names it whole (the OS refuses it: too long), and the fact holds it."""
    where = str(tmp_path / (("d" * 200 + "/") * 22) / "wechat-backup.zip")
    assert len(where) > 4400
    problem = None
    try:
        LiveHost().read_bytes(where, 16)
    except HostError as exc:
        problem = source_error(pb.FACT_CHAT_BACKUPS, "backups", exc)
    assert problem is not None
    report = _report(pb.PostureReport())
    report.errors.append(problem)
    report.chat_backups.backups.add(location=where, volume_evidence=f"on {where}")
    assert len(problem.message) > 4096
    with pytest.raises(ReportInvalid, match="characters, at most"):
        validate_report(report, NOW)
    report_room.fit(report)
    validate_report(report, NOW)
    message = report.errors[0].message
    assert len(message) == 4096 and "…" in message
    assert message.endswith(problem.message[-1000:])
    backup = report.chat_backups.backups[0]
    assert len(backup.location) == 4096 and backup.location.endswith("/wechat-backup.zip")
    assert len(backup.volume_evidence) == 1024 and backup.volume_evidence.startswith("on ")


# --- lists of the Windows and macOS facts, from recorded outputs repeated ----------------------


def _repeated(relative: str, times: int) -> tuple[int, bytes, bytes]:
    """A recorded PowerShell listing printed `times` over: records one after the other."""
    return 0, b"\n\n".join([fixture(relative).strip(b"\r\n")] * times) + b"\n", b""


def test_ninety_security_center_registrations_keep_those_protecting() -> None:
    """Trend Micro and Sophos on, Windows Defender off (a recorded Security Center listing),
    listed thirty times over, beside Defender's own status: 91 products, refused before
    (antivirus.products: 91 items, at most 64)."""
    host = healthy_english()
    listing = "security_center/cim-antivirusproduct-trend-sophos-defender-annotated.txt"
    host.record(cmd.SECURITY_CENTER, _repeated(listing, 30))
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    outcome = windows_antivirus.probe(ctx)
    assert isinstance(outcome.fact, pb.AntivirusFact)
    report = _report(pb.PostureReport(antivirus=outcome.fact, errors=outcome.errors))
    validate_report(report, NOW)
    products = report.antivirus.products
    assert len(products) == windows_antivirus.MAX_PRODUCTS == 64
    names = [p.name for p in products]
    # The sixty protecting registrations and Defender's status first; three of the thirty
    # Defender-off registrations fill the rest, in the order listed.
    assert names.count("Trend Micro Antivirus+") == names.count("Sophos Home") == 30
    assert names.count(windows_antivirus.DEFENDER_NAME) == 1
    assert names.count("Windows Defender") == 3
    (said,) = [e for e in report.errors if e.source == windows_antivirus.PRODUCTS_SOURCE]
    assert said.message == (
        "27 of 91 antivirus products left out of the report (the collector takes 64): those"
        " protecting are kept first"
    )
    assert is_phrase(said.message) and said.fact == pb.FACT_ANTIVIRUS
    (judged,) = [v for c, v in evaluate(report, NOW) if c.check_id == "antivirus"]
    assert judged.state == State.PASS, judged


def test_firewall_profiles_printed_thirty_times_are_reported_once() -> None:
    host = healthy_english()
    host.record(cmd.FIREWALL_PROFILES,
                _repeated("firewall/netfirewallprofile-all-enabled.txt", 30))  # fmt: skip
    outcome = windows_firewall.probe(ProbeContext(host, ProbeConfig(), pb.PostureReport()))
    assert isinstance(outcome.fact, pb.FirewallFact)
    validate_report(_report(pb.PostureReport(firewall=outcome.fact)), NOW)
    assert [p.name for p in outcome.fact.profiles] == ["domain", "private", "public"]
    assert outcome.fact.enabled
    assert windows_firewall.MAX_PROFILES <= DEFAULT_MAX_ITEMS


SHORT_VERSION = "chat_clients/defaults-wechat-shortversion-4.1.5-wechattweak-895.out"
KEY_MISSING = "chat_clients/defaults-wechat-key-missing-wechattweak-928.err"


def test_a_hundred_chat_clients_keep_the_unknown_and_the_oldest() -> None:
    """The recorded answers of `defaults read` (WeChat 4.1.5, and the key missing), given by
    a hundred copies of WeChat.app: no public recording holds so many copies, so the replayed
    Mac has them in numbered folders /Applications/Copy <n>/. Each copy is a client of its
    own place; the collector takes 64."""
    host = MacReplayHost()
    host.with_tool("defaults")
    bundles = [f"/Applications/Copy {n:03}/WeChat.app" for n in range(100)]
    for n, bundle in enumerate(bundles):
        host.commands[cmd.bundle_version(bundle)] = (
            (1, b"", mac_fixture(KEY_MISSING)) if n == 70 else out(SHORT_VERSION)
        )

    def copies(ctx: ProbeContext) -> list[pb.ChatClient]:
        return [mac_chat_clients._version(ctx, pb.CHAT_APP_WECHAT, b) for b in bundles]

    outcome = chat_clients.scan(ProbeContext(host, ProbeConfig(), pb.PostureReport()),
                                (("Info.plist", copies),))  # fmt: skip
    assert isinstance(outcome.fact, pb.ChatClientsFact)
    report = _report(pb.PostureReport(chat_clients=outcome.fact, errors=outcome.errors))
    validate_report(report, NOW)
    clients = report.chat_clients.clients
    assert len(clients) == chat_clients.MAX_CLIENTS == 64
    # The copy whose version is unknown is kept, then the oldest (all 4.1.5: the first listed).
    assert [c.location for c in clients] == [
        *(f"/Applications/Copy {n:03}/WeChat.app" for n in range(63)),
        "/Applications/Copy 070/WeChat.app",
    ]
    assert clients[-1].version_error
    (said,) = report.errors
    assert said.message == (
        "36 of 100 chat clients left out of the report (the collector takes 64): those whose"
        " version is unknown and each app's oldest are kept"
    )
    assert is_phrase(said.message) and said.source == chat_clients.CLIENTS_SOURCE
    # A partial list never passes: the clients left out are unknown.
    verdict = check_chat_app_updates(report, NOW, CheckParameters())
    assert verdict.state == State.UNKNOWN, verdict

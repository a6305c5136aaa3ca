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

from devposture.agent.host import NetInterface
from devposture.agent.probes import ProbeConfig, vpn_room
from devposture.agent.probes.chat_backups import LIVE_DATA_SOURCE, MAX_LIVE_DATA, MAX_SETS
from devposture.agent.probes.linux import backups, vpn
from devposture.agent.probes.outcome import ProbeContext
from devposture.collector.validation import DEFAULT_MAX_ITEMS, MAX_ITEMS, validate_report
from devposture.policy.checks import (
    LIVE_DATA_LEFT_OUT,
    CheckParameters,
    State,
    check_chat_backup,
)
from devposture.policy.phrases import is_phrase
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost
from tests.agent.test_probes_backups import TempHomeHost, dated

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

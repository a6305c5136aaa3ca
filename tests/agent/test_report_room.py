"""The VPN and chat-backup facts hold no more items than the collector takes (256 each), so a
computer with very many never goes dark: the agent's report, run through the collector's own
validation (imported in a test only: the agent never imports the collector), is accepted.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zipfile
from pathlib import Path

from devposture.agent.host import NetInterface
from devposture.agent.probes import ProbeConfig, vpn_room
from devposture.agent.probes.chat_backups import MAX_SETS
from devposture.agent.probes.linux import backups, vpn
from devposture.agent.probes.outcome import ProbeContext
from devposture.collector.validation import MAX_ITEMS, validate_report
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

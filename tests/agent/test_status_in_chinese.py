"""What an employee reading Chinese sees in `status` for the agent's own words: Windows' firewall
profiles, macOS's application firewall, why a fact could not be read (a tool missing, a failed
Windows Update search, Apple's catalog out of reach), a backup's evidence. Whole machines
replayed from real recordings (tests/agent/windows/machines.py, the macOS probe tests' Macs),
this machine's own tools searched for on an empty PATH, a ZIP written by Python's zipfile. The
phrases read in the catalogs' Chinese; a tool's own words stay as the tool wrote them."""

from __future__ import annotations

import datetime as dt
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from devposture.agent.employee.company_time import company_zone
from devposture.agent.host import HostError
from devposture.agent.host.live import LiveHost
from devposture.agent.parsers.file_headers import sniff
from devposture.agent.probes import ProbeConfig, collect_facts
from devposture.agent.probes.backup_volume import on_volume
from devposture.agent.probes.commands import NFT_RULESET
from devposture.agent.probes.linux import firewall
from devposture.agent.probes.outcome import ProbeContext, ProbeFailure, source_error
from devposture.agent.status import View, local_verdicts, reason_text
from devposture.policy.checks import CheckParameters, check_chat_backup
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import fixture, out
from tests.agent.macos.test_probes_macos import _mac
from tests.agent.windows import machines
from tests.agent.windows.test_machines import CONFIG

NOW = dt.datetime(2026, 12, 2, 8, 38, tzinfo=dt.UTC)
ZONE = company_zone()


def _said(report: pb.PostureReport) -> dict[str, str]:
    """Each check's reason as `status` words it for a Chinese reader."""
    view = View("zh", "linux", ZONE, NOW)
    return {v.check_id: reason_text(v, view) for v in local_verdicts(report, NOW)}


def _collected(host: object, config: ProbeConfig = CONFIG) -> pb.PostureReport:
    report = pb.PostureReport()
    collect_facts(host, config, report)  # type: ignore[arg-type]
    return report


def test_windows_firewall_profiles_read_as_windows_names_them_in_chinese() -> None:
    assert _said(_collected(machines.healthy_english()))["firewall"] == (
        "防火墙正在过滤入站流量：域网络、专用网络、公用网络"
    )
    assert _said(_collected(machines.failing_english()))["firewall"] == (
        "没有防火墙过滤入站流量（域网络、专用网络、公用网络）"
    )


def test_a_failed_windows_update_search_says_why_in_chinese() -> None:
    """The Chinese Windows' search timed out (0x8024401C, a real stderr)."""
    assert _said(_collected(machines.chinese()))["os-updates"] == (
        "更新工具（windows-update）未给出待装的安全更新：windows-update-agent：工具运行失败"
        "（Windows 更新代理搜索更新失败，错误 0x8024401C，WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT："
        "更新服务器响应超时）"
    )


def test_a_macs_application_firewall_and_an_unreachable_catalog_in_chinese() -> None:
    healthy = _mac(
        airport=out("system_profiler/SPAirPortDataType-wpa2-macos15.5-heatmapper.json"),
        fdesetup=out("fdesetup/status-on-master-keychain-munkireport-158.out"),
        firewall=out("socketfilterfw/getglobalstate-state1-m-cli-160.out"),
        swu=out("softwareupdate/list-catalog-error-reposado-66.out"),
        scutil=out("scutil/nc-list-l2tp-disconnected-alfred-19.out"),
        prefs=out("defaults/softwareupdate-keys-absent-catalina-marslo-ibook.out"),
        history=(0, fixture("softwareupdate_history/history-tahoe-26.5-year-first-zh.out"), b""),
    )
    said = _said(_collected(healthy, ProbeConfig(network_hash_key=b"k")))
    assert said["firewall"] == "防火墙正在过滤入站流量：应用程序防火墙"
    # Apple's own words about the catalog stay as softwareupdate printed them.
    assert said["os-updates"] == (
        "更新工具（softwareupdate）未给出待装的安全更新：softwareupdate：工具运行失败"
        "（softwareupdate 无法读取 Apple 的更新目录：The operation couldn’t be completed."
        " (NSURLErrorDomain error -1100.)）"
    )


def test_a_linux_computer_without_firewall_tools_says_so_in_chinese(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """This machine's real host, searching an empty PATH: no firewall tool found, and running
    one says it is not installed, each in Chinese with the tool's name as it is."""
    monkeypatch.setenv("PATH", str(tmp_path))
    ctx = ProbeContext(LiveHost(), ProbeConfig(network_hash_key=b"k"), pb.PostureReport())
    with pytest.raises(ProbeFailure) as failure:
        firewall.probe(ctx)
    report = pb.PostureReport()
    report.errors.add(fact=pb.FACT_FIREWALL, code=failure.value.code,
                      message=failure.value.message)  # fmt: skip
    assert _said(report)["firewall"] == (
        "无法读取防火墙：缺少所需的工具（未安装任何防火墙工具，已查找：nft、iptables、ufw、"
        "firewall-cmd）"
    )
    with pytest.raises(HostError) as missing:
        ctx.host.run(NFT_RULESET, 10)
    report.errors.add().CopyFrom(source_error(pb.FACT_OS_UPDATES, "nft", missing.value))
    report.ClearField("firewall")
    stored = local_verdicts(report, NOW)
    worded = [render(v.reason_code, "zh", ZONE) for v in stored if v.check_id == "os-updates"]
    assert worded == ["无法读取系统更新：nft：缺少所需的工具（nft 未安装，搜索路径中找不到它）"]


def test_a_backups_evidence_reads_in_chinese() -> None:
    """A plain ZIP (written by Python's zipfile) on a volume the disk-encryption fact says
    is not encrypted: the failure says both in Chinese, the path as it is."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("chat.txt", "work chat export")
    report = pb.PostureReport()
    report.disk_encryption.volumes.add(device="/dev/sda2", mount_point="/home", encrypted=False)
    backup = report.chat_backups.backups.add(
        location="~/备份/wechat.zip", kind=pb.BACKUP_KIND_ARCHIVE,
        encryption=pb.ENCRYPTION_STATE_NOT_ENCRYPTED,
        encryption_evidence=sniff(buffer.getvalue()).evidence,
    )  # fmt: skip
    backup.newest_backup_at.FromDatetime(NOW - dt.timedelta(days=1))
    on_volume(backup, "/home/li/备份/wechat.zip", report, pb.OS_FAMILY_LINUX)
    verdict = check_chat_backup(report, NOW, CheckParameters())
    assert render(verdict.reason, "zh", ZONE) == (
        "2026-12-01 的备份 ~/备份/wechat.zip 未加密（未加密的 ZIP 压缩包）"
        "（位于挂载在 /home 的卷 /dev/sda2 上，该卷未加密）"
    )

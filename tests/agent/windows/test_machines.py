"""Whole Windows machines through collect_facts: every fact, or an explicit error for it."""

from __future__ import annotations

from datetime import UTC, datetime

from devposture.agent.probes import ProbeConfig, collect_facts
from devposture.agent.probes.chat_layouts import WINDOWS
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.machines import chinese, failing_english, healthy_english
from tests.agent.windows.replay_windows import WindowsReplayHost

CONFIG = ProbeConfig(network_hash_key=b"k", public_network_patterns=("SSID-*",))
SEARCH_FAILED = ("windows-update-agent", pb.PROBE_ERROR_CODE_COMMAND_FAILED)


def collect(host: WindowsReplayHost) -> pb.PostureReport:
    report = pb.PostureReport()
    collect_facts(host, CONFIG, report)
    return report


def errors(report: pb.PostureReport) -> set[tuple[int, str, int]]:
    return {(e.fact, e.source, e.code) for e in report.errors}


def ts(when: datetime) -> int:
    return int(when.replace(tzinfo=UTC).timestamp())


def test_healthy_english_machine() -> None:
    report = collect(healthy_english())
    assert report.host.os_family == pb.OS_FAMILY_WINDOWS
    assert errors(report) == set()

    sc, defender = report.antivirus.products
    assert (sc.name, sc.source, sc.enabled, sc.signatures_up_to_date) == (
        "Windows Defender", "security-center", True, True,
    )  # fmt: skip
    assert (defender.source, defender.enabled, defender.real_time_protection) == (
        "defender", True, True,
    )  # fmt: skip
    assert defender.signature_version == "1.413.102.0" and defender.signatures_up_to_date
    # "6/4/2024 8:06:27 AM" read with the en-US pattern, Pacific standard offset -08:00.
    assert defender.signatures_updated_at.seconds == ts(datetime(2024, 6, 4, 16, 6, 27))

    fw = report.firewall
    assert fw.HasField("enabled") and fw.enabled
    assert [(p.name, p.enabled, p.active) for p in fw.profiles] == [
        ("domain", True, False), ("private", True, False), ("public", True, True),
    ]  # fmt: skip

    up = report.os_updates
    assert up.source == "windows-update" and up.automatic_updates
    assert up.last_installed.seconds == ts(datetime(2026, 8, 12))  # \/Date(ms)\/ is UTC
    assert up.HasField("pending_security") and up.pending_security == 0  # known zero
    assert up.pending_total == 0 and not up.pending_security_names

    assert report.vpn.active
    assert [(i.name, i.kind, i.up) for i in report.vpn.interfaces] == [
        ("WireGuard Tunnel #2", "wireguard", True)
    ]
    assert report.wifi.has_wifi_interface
    (session,) = report.wifi.sessions
    assert session.security == pb.WIFI_SECURITY_WPA3_PERSONAL
    assert session.classification == pb.NETWORK_CLASS_OTHER
    assert session.network_id.startswith("h:") and "alextrex" not in str(report)
    assert session.vpn_up and session.interface == "Wi-Fi"

    (volume,) = report.disk_encryption.volumes
    assert (volume.mount_point, volume.encrypted, volume.method) == (
        "C:", True, "BitLocker XTS-AES 128",
    )  # fmt: skip
    roots = sum(len(layout.roots) for layout in WINDOWS)  # each default data root, looked at
    assert report.chat_backups.locations_checked == roots and not report.chat_backups.backups


def test_chinese_machine() -> None:
    report = collect(chinese())
    assert errors(report) == {
        (pb.FACT_ANTIVIRUS, "defender", pb.PROBE_ERROR_CODE_PARSE_ERROR),
        (pb.FACT_OS_UPDATES, *SEARCH_FAILED),
        (pb.FACT_FIREWALL, "Get-NetFirewallProfile", pb.PROBE_ERROR_CODE_COMMAND_FAILED),
        (pb.FACT_FIREWALL, "Get-NetConnectionProfile", pb.PROBE_ERROR_CODE_COMMAND_FAILED),
        # The same cmdlet gives Wi-Fi its network category: the session has none.
        (pb.FACT_WIFI, "Get-NetConnectionProfile", pb.PROBE_ERROR_CODE_COMMAND_FAILED),
        (pb.FACT_DISK_ENCRYPTION, "", pb.PROBE_ERROR_CODE_TIMEOUT),
    }
    assert not report.HasField("disk_encryption")  # timed out: unknown, not "unencrypted"

    names = [(p.name, p.source, p.enabled) for p in report.antivirus.products]
    assert names == [
        ("Bitdefender Antivirus", "security-center", True),
        ("Windows Defender", "security-center", False),
        ("Microsoft Defender Antivirus", "defender", True),
    ]
    defender = report.antivirus.products[2]
    assert defender.HasField("real_time_protection") and not defender.real_time_protection
    # No culture printout in this replay (none published for zh-CN): the date is not read.
    assert not defender.HasField("signatures_updated_at")

    fw = report.firewall
    assert fw.enabled and {p.source for p in fw.profiles} == {"netsh advfirewall"}
    assert not any(p.HasField("active") for p in fw.profiles)  # active profile unknown

    assert report.os_updates.automatic_updates  # no policy key (Chinese message): default on
    # The search could not reach its server: pending is unknown, never "0 pending".
    assert not report.os_updates.HasField("pending_security")
    (search_error,) = [e for e in report.errors if e.fact == pb.FACT_OS_UPDATES]
    assert "0x8024401C" in search_error.message

    (session,) = report.wifi.sessions
    assert session.interface == "WLAN"
    assert session.security == pb.WIFI_SECURITY_WPA2_PERSONAL
    assert not session.vpn_up and session.network_category == ""

    assert not report.vpn.active
    assert [(i.name, i.kind, i.up) for i in report.vpn.interfaces] == [
        ("TAP-Windows Adapter V9 #2", "tap", False),
        ("TAP-Windows Adapter V9", "tap", False),
    ]


def test_failing_machine() -> None:
    report = collect(failing_english())
    assert errors(report) == set()

    defender = report.antivirus.products[-1]
    assert (defender.source, defender.enabled, defender.real_time_protection) == (
        "defender", False, False,
    )  # fmt: skip
    assert defender.signature_version == "" and not defender.HasField("signatures_updated_at")

    fw = report.firewall
    assert fw.HasField("enabled") and not fw.enabled
    public = next(p for p in fw.profiles if p.name == "public")
    assert public.active and not public.enabled

    assert report.os_updates.HasField("automatic_updates")
    assert not report.os_updates.automatic_updates
    # cnquery's Server 2019 mock file, the same file as the search recording above.
    assert report.os_updates.last_installed.seconds == ts(datetime(2020, 9, 9))
    assert (report.os_updates.pending_total, report.os_updates.pending_security) == (6, 2)
    assert list(report.os_updates.pending_security_names) == ["KB4537759", "KB4538461"]

    (session,) = report.wifi.sessions
    assert session.security == pb.WIFI_SECURITY_OPEN  # "Ouvrir"
    assert session.classification == pb.NETWORK_CLASS_PUBLIC and session.network_id == "SSID-1"
    assert not session.vpn_up and not report.vpn.active

    assert [v.encrypted for v in report.disk_encryption.volumes] == [False, False, False]
    assert all(v.HasField("encrypted") for v in report.disk_encryption.volumes)

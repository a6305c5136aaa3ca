"""macOS probes on replayed Macs: whole `collect_facts` runs and each error path.

Each replayed Mac is assembled from real recordings of several real Macs (the fixtures'
README names each one); interface lists, process lists and file times are stated here.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from devposture.agent.host import NetInterface, ProcessInfo
from devposture.agent.probes import ProbeConfig, collect_facts
from devposture.agent.probes.chat_layouts import MACOS
from devposture.policy.checks import evaluate
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import SOCKETFILTERFW, MacReplayHost, fixture, out

XPROTECT = "/Library/Apple/System/Library/CoreServices/XProtect.bundle"
AIRPORT = ("system_profiler", "SPAirPortDataType", "-json")
FDESETUP = ("fdesetup", "status")
GLOBALSTATE = (SOCKETFILTERFW, "--getglobalstate")
SWU = ("softwareupdate", "-l")
SCUTIL = ("scutil", "--nc", "list")
PREFS = ("defaults", "read", "/Library/Preferences/com.apple.SoftwareUpdate")
HISTORY = ("softwareupdate", "--history")
# macOS always has these: iCloud Private Relay / Continuity tunnels with link-local IPv6 only.
SYSTEM_UTUNS = [
    NetInterface(f"utun{i}", True, 1380, ("up", "running"), (f"fe80::{i + 1}",)) for i in range(4)
]
EN0 = NetInterface("en0", True, 1500, ("up", "running"), ("192.168.1.23",))
KEY = b"fleet-key"


def _mac(**commands: tuple[int, bytes, bytes]) -> MacReplayHost:
    host = MacReplayHost(homes=["/Users/ann"])
    for tool in ("system_profiler", "fdesetup", SOCKETFILTERFW, "softwareupdate", "scutil"):
        host.with_tool(tool)
    host.with_tool("defaults")
    host.interfaces = [EN0, *SYSTEM_UTUNS]
    host.mtimes[XPROTECT] = 1_748_000_000.0
    host.dirs[XPROTECT] = ["Contents"]
    names = {"airport": AIRPORT, "fdesetup": FDESETUP, "firewall": GLOBALSTATE, "swu": SWU}
    names.update(scutil=SCUTIL, prefs=PREFS, history=HISTORY)
    for name, recording in commands.items():
        host.commands[names[name]] = recording
    return host


def _collect(host: MacReplayHost, config: ProbeConfig | None = None) -> pb.PostureReport:
    report = pb.PostureReport()
    collect_facts(host, config or ProbeConfig(network_hash_key=KEY), report)
    return report


def _errors(report: pb.PostureReport) -> set[tuple[str, str, str]]:
    return {(pb.Fact.Name(e.fact), e.source, pb.ProbeErrorCode.Name(e.code)) for e in report.errors}


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def test_healthy_mac() -> None:
    host = _mac(
        airport=out("system_profiler/SPAirPortDataType-wpa2-macos15.5-heatmapper.json"),
        fdesetup=out("fdesetup/status-on-master-keychain-munkireport-158.out"),
        firewall=out("socketfilterfw/getglobalstate-state1-m-cli-160.out"),
        swu=(0, b"", fixture("softwareupdate/list-none-elcapitan-osxlockdown-27.err")),
        scutil=out("scutil/nc-list-l2tp-disconnected-alfred-19.out"),
        prefs=out("defaults/softwareupdate-keys-absent-catalina-marslo-ibook.out"),
        history=out("softwareupdate_history/history-sequoia-15.6.1-day-first-cyber-bootcamp.out"),
    )
    host.procs = [ProcessInfo(1, "launchd"), ProcessInfo(310, "falcond", "falcond")]
    report = _collect(host)

    assert report.host.os_family == pb.OS_FAMILY_MACOS and report.host.os_name == "macOS"
    assert report.errors == []
    (volume,) = report.disk_encryption.volumes
    assert (volume.mount_point, volume.method, volume.encrypted) == ("/", "FileVault", True)
    assert report.firewall.enabled
    (profile,) = report.firewall.profiles
    assert (profile.name, profile.enabled, profile.active) == ("application", True, True)
    assert profile.default_inbound_action == ""  # per-application decisions
    updates = report.os_updates
    assert updates.source == "softwareupdate"
    assert updates.pending_total == 0 and updates.pending_security == 0
    # Neither key of the rule is in the plist: macOS's default (on) applies.
    assert updates.HasField("automatic_updates") and updates.automatic_updates
    assert updates.last_checked.seconds == _utc(2020, 10, 10, 14, 14, 38)
    assert updates.last_installed.seconds == _utc(2025, 8, 28, 2, 1, 8)  # 28/08: day first
    assert not report.vpn.active
    assert [(i.name, i.kind, i.up) for i in report.vpn.interfaces] == [
        ("My VPN", "ppp:l2tp", False)
    ]
    av = {p.name: p for p in report.antivirus.products}
    assert set(av) == {"XProtect", "CrowdStrike Falcon"}
    assert av["XProtect"].enabled and av["XProtect"].signatures_updated_at.seconds == 1_748_000_000
    assert list(av["CrowdStrike Falcon"].processes) == ["falcond"]
    assert report.wifi.has_wifi_interface
    (session,) = report.wifi.sessions
    expected = "h:" + hmac.new(KEY, b"SSID-7", hashlib.sha256).hexdigest()[:32]
    assert session.network_id == expected and "SSID-7" not in str(report)
    assert session.security == pb.WIFI_SECURITY_WPA2_PERSONAL
    assert session.classification == pb.NETWORK_CLASS_OTHER and session.interface == "en0"
    assert session.started_at.seconds == int(host.clock.timestamp()) and not session.vpn_up
    roots = sum(len(layout.roots) for layout in MACOS)  # each default data root, looked at
    assert report.chat_backups.locations_checked == roots and len(report.chat_backups.backups) == 0


def test_failing_mac_open_wifi_no_vpn_firewall_and_filevault_off() -> None:
    host = _mac(
        airport=out("system_profiler/SPAirPortDataType-open-macos15.5-heatmapper.json"),
        fdesetup=out("fdesetup/status-off-macos26-askrubyai.out"),
        firewall=out("socketfilterfw/getglobalstate-state0-m-cli-161.out"),
        swu=out("softwareupdate/list-pending-ventura-super-151.out"),
        scutil=out("scutil/nc-list-empty-alfred-19.out"),
        prefs=out("defaults/softwareupdate-critical-off-yes-string-catalina-ansible-101.out"),
        history=out("softwareupdate_history/history-ventura-13.5.2-month-first-ambiguous.out"),
    )
    host.product_version = "13.5.2"  # the Ventura its history last installed
    report = _collect(host)

    assert report.errors == []
    assert not report.disk_encryption.volumes[0].encrypted
    assert report.disk_encryption.volumes[0].HasField("encrypted")  # a fact, not unknown
    assert report.firewall.HasField("enabled") and not report.firewall.enabled
    assert report.firewall.profiles[0].default_inbound_action == "allow"
    assert report.os_updates.pending_total == 3 and report.os_updates.pending_security == 1
    assert list(report.os_updates.pending_security_names) == ["macOS Ventura 13.6-22G120"]
    # CriticalUpdateInstall = 0: security updates do not install themselves (a fact, not unknown).
    assert report.os_updates.HasField("automatic_updates")
    assert not report.os_updates.automatic_updates
    assert report.os_updates.last_checked.seconds == _utc(2021, 2, 23, 7, 52, 51)
    assert report.os_updates.last_installed.seconds == _utc(2023, 9, 9, 17, 1, 19)
    assert not report.vpn.active and len(report.vpn.interfaces) == 0  # utun0-3 are not VPNs
    (session,) = report.wifi.sessions
    assert session.security == pb.WIFI_SECURITY_OPEN
    assert session.classification == pb.NETWORK_CLASS_PUBLIC and session.network_id == "SSID-2"
    assert not session.vpn_up
    assert [p.name for p in report.antivirus.products] == ["XProtect"]  # process list empty


def test_odd_mac_block_all_redacted_ssid_catalog_error_second_av() -> None:
    host = _mac(
        airport=out("system_profiler/SPAirPortDataType-redacted-wpa3-macos26-trimmed.json"),
        fdesetup=out("fdesetup/status-on-master-keychain-munkireport-158.out"),
        firewall=out("socketfilterfw/getglobalstate-blocking-state2-mac-health-check-8.out"),
        swu=out("softwareupdate/list-catalog-error-reposado-66.out"),
        scutil=out("scutil/nc-list-pptp-disconnected-security-growler-24.out"),
        prefs=out("defaults/softwareupdate-all-on-sequoia-trimmed.out"),
        history=out("softwareupdate_history/history-tahoe-26.5-year-first-zh.out"),
    )
    tunnel = NetInterface("utun4", True, 1280, ("up", "running"), ("100.101.102.103", "fe80::9"))
    host.interfaces.append(tunnel)
    host.with_tool("mdatp")
    host.commands[("mdatp", "health")] = out("mdatp/mdatp-health-macos-unavailable.out")
    host.procs = [ProcessInfo(90, "wdavdaemon", "wdavdaemon")]
    report = _collect(host)

    assert report.firewall.enabled  # State = 2 is on, at its strictest
    assert report.firewall.profiles[0].default_inbound_action == "drop"
    updates = report.os_updates
    assert not updates.HasField("pending_total")  # a catalog error is not "nothing pending"
    assert not updates.HasField("pending_security")
    assert updates.automatic_updates and not updates.HasField("last_checked")  # trimmed plist
    assert updates.last_installed.seconds == _utc(2026, 6, 1, 1, 20, 10)  # macOS Tahoe 26.5
    (swu_error,) = [e for e in report.errors if e.fact == pb.FACT_OS_UPDATES]
    assert swu_error.code == pb.PROBE_ERROR_CODE_COMMAND_FAILED
    assert "NSURLErrorDomain" in swu_error.message
    assert report.vpn.active
    assert [(i.name, i.kind, i.up) for i in report.vpn.interfaces] == [
        ("myVPName", "ppp:pptp", False),
        ("utun4", "utun", True),
    ]
    (session,) = report.wifi.sessions
    assert session.security == pb.WIFI_SECURITY_WPA3_PERSONAL
    # Name hidden by macOS: never "other", never a hash of the placeholder.
    assert session.classification == pb.NETWORK_CLASS_UNKNOWN and session.network_id == ""
    assert list(session.classification_reasons) == ["name hidden by macOS"]
    assert session.vpn_up and session.vpn_up_at.seconds == session.started_at.seconds
    av = {p.name: p for p in report.antivirus.products}
    assert set(av) == {"XProtect", "Microsoft Defender for Endpoint"}
    mde = av["Microsoft Defender for Endpoint"]
    # The daemon answered (enabled), but says what keeps it from protecting.
    assert mde.source == "mdatp" and mde.enabled and not mde.HasField("real_time_protection")
    assert "full disk access has not been granted" in mde.health_issues
    assert list(mde.processes) == ["wdavdaemon"]
    assert _errors(report) == {
        ("FACT_OS_UPDATES", "softwareupdate", "PROBE_ERROR_CODE_COMMAND_FAILED"),
        ("FACT_WIFI", "ssid", "PROBE_ERROR_CODE_PERMISSION_DENIED"),
    }


def _judged_updates(report: pb.PostureReport) -> tuple[str, str]:
    (judged,) = [v for c, v in evaluate(report, datetime.now(UTC)) if c.check_id == "os-updates"]
    return judged.state.value, judged.reason


def _offered_tahoe_26_7_and_macos_27(product_version: str) -> MacReplayHost:
    """A Mac whose Software Update offers 26.7 and macOS 27 (a real Tahoe 26.6 capture),
    telling `product_version` as its own."""
    host = _mac(
        swu=out("softwareupdate/list-tahoe-26.6-point-and-macos-27.out"),
        prefs=out("defaults/softwareupdate-all-on-sequoia-trimmed.out"),
        history=out("softwareupdate_history/history-tahoe-26.5-year-first-zh.out"),
    )
    host.product_version = product_version
    return host


def test_a_major_upgrade_is_not_a_missing_security_update() -> None:
    # A Tahoe 26.6 Mac offered the 26.7 point update and macOS 27 (a real capture): one
    # security update. The same Mac once on 26.7 would be offered macOS 27 alone; that is an
    # upgrade. The installed version comes from HostInfo's product version, no new command.
    host = _offered_tahoe_26_7_and_macos_27("26.6")
    report = _collect(host)
    assert report.host.os_version == "26.6"
    updates = report.os_updates
    assert (updates.pending_total, updates.pending_security) == (3, 1)
    assert list(updates.pending_security_names) == ["macOS Tahoe 26.7-25G229"]
    assert [c for c in host.calls if c[0] == "sw_vers"] == []


def test_a_ventura_mac_with_only_sequoia_left_is_not_failed() -> None:
    # Macjutsu/super#290's list on a Ventura Mac at 13.7.3: the 13.7.4 point update fails the
    # clause; Sequoia 15.3.1 beside it is an upgrade, counted in the total only.
    host = _mac(
        swu=out("softwareupdate/list-ventura-point-and-sequoia-super-290.out"),
        prefs=out("defaults/softwareupdate-all-on-sequoia-trimmed.out"),
        history=out("softwareupdate_history/history-ventura-13.5.2-month-first-ambiguous.out"),
    )
    host.product_version = "13.7.3"  # a test input: the log does not name the Mac's version
    report = _collect(host)
    assert (report.os_updates.pending_total, report.os_updates.pending_security) == (3, 1)
    state, reason = _judged_updates(report)
    assert state == "FAIL" and "macOS Ventura 13.7.4-22H420" in reason
    assert "Sequoia" not in reason


def test_a_compatibility_version_leaves_security_updates_unknown() -> None:
    # 10.16 is what macOS 11+ tells a program in compatibility mode: the list's macOS entries
    # cannot be told from upgrades, so the clause is UNKNOWN, not PASS and not FAIL.
    report = _collect(_offered_tahoe_26_7_and_macos_27("10.16"))
    assert ("FACT_OS_UPDATES", "softwareupdate", "PROBE_ERROR_CODE_PARSE_ERROR") in _errors(report)
    assert not report.os_updates.HasField("pending_security")
    assert _judged_updates(report)[0] == "UNKNOWN"


def test_wifi_switched_off_has_interface_no_session() -> None:
    host = _mac(airport=out("system_profiler/SPAirPortDataType-wifi-off-macos15.5-heatmapper.json"))
    report = _collect(host)
    assert report.wifi.has_wifi_interface and len(report.wifi.sessions) == 0


def test_missing_tool_is_command_not_found() -> None:
    host = MacReplayHost()
    report = _collect(host)
    codes = _errors(report)
    for fact in ("FACT_DISK_ENCRYPTION", "FACT_FIREWALL", "FACT_WIFI"):
        assert (fact, "", "PROBE_ERROR_CODE_COMMAND_NOT_FOUND") in codes
    for source in ("com.apple.SoftwareUpdate", "softwareupdate", "softwareupdate --history"):
        assert ("FACT_OS_UPDATES", source, "PROBE_ERROR_CODE_COMMAND_NOT_FOUND") in codes
    assert ("FACT_VPN", "scutil", "PROBE_ERROR_CODE_COMMAND_NOT_FOUND") in codes
    assert ("FACT_ANTIVIRUS", "xprotect", "PROBE_ERROR_CODE_NO_SOURCE") in codes
    for field in ("disk_encryption", "firewall", "os_updates", "wifi"):
        assert not report.HasField(field)  # unknown is not pass


def test_non_zero_exit_is_command_failed_with_reason() -> None:
    host = _mac(firewall=(1, b"", b"socketfilterfw: something went wrong\n"))
    report = _collect(host)
    (err,) = [e for e in report.errors if e.fact == pb.FACT_FIREWALL]
    assert err.code == pb.PROBE_ERROR_CODE_COMMAND_FAILED
    assert "exited with status 1" in err.message and "something went wrong" in err.message
    assert not report.HasField("firewall")


def test_hanging_softwareupdate_is_timeout() -> None:
    host = _mac(
        prefs=out("defaults/softwareupdate-critical-off-yes-string-catalina-ansible-101.out"),
        history=out("softwareupdate_history/history-tahoe-26.5-year-first-zh.out"),
    )
    host.hangs.add(SWU)
    report = _collect(host)
    (err,) = [e for e in report.errors if e.fact == pb.FACT_OS_UPDATES]
    assert err.code == pb.PROBE_ERROR_CODE_TIMEOUT and err.source == "softwareupdate"
    # Pending updates are unknown; what the other two sources said is still reported.
    updates = report.os_updates
    assert not updates.HasField("pending_total") and not updates.HasField("pending_security")
    assert updates.HasField("automatic_updates") and not updates.automatic_updates
    assert updates.last_installed.seconds == _utc(2026, 6, 1, 1, 20, 10)


def test_unparseable_fdesetup_output_is_a_parse_error() -> None:
    host = _mac(fdesetup=out("scutil/nc-list-empty-alfred-19.out"))
    report = _collect(host)
    (err,) = [e for e in report.errors if e.fact == pb.FACT_DISK_ENCRYPTION]
    assert err.code == pb.PROBE_ERROR_CODE_PARSE_ERROR

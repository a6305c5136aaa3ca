"""Windows probes one by one: the traps (missing tool, timeout, refusal, no Wi-Fi, GBK, two
antivirus products, fallbacks) on replayed real outputs."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from devposture.agent.host import NetInterface
from devposture.agent.parsers.windows.defender import DefenderStatus
from devposture.agent.parsers.windows.security_center import (
    SecurityCenterProduct,
    decode_product_state,
)
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.outcome import FactOutcome, Probe, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.agent.probes.windows import PROBES, antivirus, disk, firewall, updates, vpn, wifi
from devposture.policy.checks import evaluate
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.machines import ACCESS_DENIED_EXIT, REG_MISSING
from tests.agent.windows.replay_windows import (
    EN_US_CULTURE,
    PACIFIC,
    WindowsReplayHost,
    one_run,
    output,
)


def run(probe: Probe, fact: pb.Fact.ValueType, host: WindowsReplayHost) -> FactOutcome:
    ctx = ProbeContext(host, ProbeConfig(network_hash_key=b"k"), pb.PostureReport())
    return run_probe(fact, probe, ctx)


def codes(outcome: FactOutcome) -> list[tuple[str, int]]:
    return [(e.source, e.code) for e in outcome.errors]


def test_every_fact_has_a_windows_probe() -> None:
    assert set(PROBES) == {
        pb.FACT_ANTIVIRUS, pb.FACT_FIREWALL, pb.FACT_OS_UPDATES, pb.FACT_WIFI,
        pb.FACT_VPN, pb.FACT_CHAT_BACKUPS, pb.FACT_DISK_ENCRYPTION, pb.FACT_CHAT_CLIENTS,
    }  # fmt: skip


# --- Wi-Fi -------------------------------------------------------------------------------


@pytest.mark.parametrize("returncode", [0, 1])
def test_no_wireless_interface_is_a_fact(returncode: int) -> None:
    host = WindowsReplayHost()
    host.record(
        cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-no-wireless-interface.txt", returncode)
    )
    outcome = run(wifi.probe, pb.FACT_WIFI, host)
    assert outcome.fact == pb.WifiFact(has_wifi_interface=False) and outcome.errors == []


def test_stopped_wlan_service_is_an_error_not_no_wifi() -> None:
    host = WindowsReplayHost()
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-wlansvc-not-running.txt", 1))
    outcome = run(wifi.probe, pb.FACT_WIFI, host)
    assert outcome.fact is None
    assert codes(outcome) == [("netsh wlan", pb.PROBE_ERROR_CODE_COMMAND_FAILED)]
    assert "wlansvc" in outcome.errors[0].message


def test_location_permission_refused_is_permission_denied() -> None:
    host = WindowsReplayHost()
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-24h2-location-denied.txt"))
    outcome = run(wifi.probe, pb.FACT_WIFI, host)
    assert outcome.fact is None
    assert codes(outcome) == [("netsh wlan", pb.PROBE_ERROR_CODE_PERMISSION_DENIED)]


def test_netsh_missing_or_timing_out() -> None:
    missing = run(wifi.probe, pb.FACT_WIFI, WindowsReplayHost())
    assert codes(missing) == [("netsh wlan", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)]
    host = WindowsReplayHost()
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-win11-ax201-wpa2.txt"))
    host.timeouts.add(tuple(cmd.NETSH_WLAN))
    assert codes(run(wifi.probe, pb.FACT_WIFI, host)) == [
        ("netsh wlan", pb.PROBE_ERROR_CODE_TIMEOUT)
    ]


def test_gbk_output_on_a_chinese_console_and_vpn_from_the_report() -> None:
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(
        cmd.NETSH_WLAN, output("netsh_wlan/interfaces-zh-win10-3165-wpa2-enterprise.cp936-crlf.txt")
    )
    report = pb.PostureReport()
    report.vpn.active = True
    config = ProbeConfig(trusted_networks=("DC_WLAN(5GHz)",))
    fact = run_probe(pb.FACT_WIFI, wifi.probe, ProbeContext(host, config, report)).fact
    assert isinstance(fact, pb.WifiFact)
    (session,) = fact.sessions
    assert (session.network_id, session.classification) == (
        "DC_WLAN(5GHz)",
        pb.NETWORK_CLASS_TRUSTED,
    )
    assert session.security == pb.WIFI_SECURITY_WPA2_ENTERPRISE
    assert session.vpn_up and session.vpn_up_at.seconds == session.started_at.seconds


def test_same_gbk_bytes_on_an_english_console_are_still_decoded_as_gbk_or_rejected() -> None:
    # cp437 cannot turn GBK into Chinese labels: the output is not understood, so the fact is
    # a parse error rather than a silent "no Wi-Fi".
    host = WindowsReplayHost(console_encoding="cp437")
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-zh-win11-ax211-wpa2.cp936-crlf.txt"))
    outcome = run(wifi.probe, pb.FACT_WIFI, host)
    assert outcome.fact is None
    assert codes(outcome) == [("netsh wlan", pb.PROBE_ERROR_CODE_PARSE_ERROR)]


# --- antivirus ---------------------------------------------------------------------------


def test_two_products_and_defender() -> None:
    host = WindowsReplayHost()
    host.record(
        cmd.SECURITY_CENTER,
        output("security_center/cim-antivirusproduct-sentinelone-and-defender.txt"),
    )
    host.record(
        cmd.DEFENDER,
        one_run(EN_US_CULTURE, PACIFIC, "defender/mpcomputerstatus-signatures-278-days.txt"),
    )
    fact = run(antivirus.probe, pb.FACT_ANTIVIRUS, host).fact
    assert isinstance(fact, pb.AntivirusFact)
    assert [(p.name, p.enabled) for p in fact.products] == [
        ("Sentinel Agent", True),
        ("Windows Defender", False),
        ("Microsoft Defender Antivirus", True),
    ]
    # 278 days old, though Defender itself does not flag it: the date lets the collector judge.
    # "5/6/2024 1:09:46 AM" on an en-US machine in Pacific time is 6 May, 09:09:46 UTC.
    updated = fact.products[2].signatures_updated_at.ToDatetime()
    assert updated.isoformat() == "2024-05-06T09:09:46"


def judge_antivirus(fact: pb.AntivirusFact) -> tuple[str, str]:
    """The antivirus clause's state and stored reason for a report holding only this fact."""
    report = pb.PostureReport()
    report.antivirus.CopyFrom(fact)
    (judged,) = [
        v for c, v in evaluate(report, dt.datetime.now(dt.UTC)) if c.check_id == "antivirus"
    ]
    return judged.state.value, judged.reason


def test_huorong_on_in_security_center_passes_with_defender_off() -> None:
    # 火绒 (Huorong) took over from Defender on a real Chinese Windows 11 machine. Security
    # Center's "on" is Microsoft's WSC_SECURITY_PRODUCT_STATE_ON, "turned on and protecting the
    # user": real-time protection, as osquery and Fleet read it. With Defender switched off
    # (its status not read), Huorong on with fresh signatures passes the clause; it used to read
    # UNKNOWN forever ("cannot tell whether real-time protection is on").
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(
        cmd.SECURITY_CENTER,
        output("security_center/cim-antivirusproduct-zh-huorong-and-defender.cp936-crlf.txt"),
    )
    host.record(cmd.DEFENDER, (1, b"", b""))  # Get-MpComputerStatus's error not recorded
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact)
    defender, huorong = outcome.fact.products
    assert (huorong.name, huorong.enabled, huorong.real_time_protection) == (
        "火绒安全软件",
        True,
        True,
    )
    # Defender's Security Center entry is off, and says nothing of its real-time protection.
    assert (defender.name, defender.enabled) == ("Windows Defender", False)
    assert not defender.HasField("real_time_protection")
    state, reason = judge_antivirus(outcome.fact)
    assert state == "PASS" and "火绒安全软件" in reason


@pytest.mark.parametrize(
    ("value", "enabled", "state"),
    [
        (262144, False, "FAIL"),  # 0x040000 third party, off: disabled, whatever else
        (270336, False, "FAIL"),  # 0x042000 snoozed: not enabled now
        (274432, None, "UNKNOWN"),  # 0x043000 expired: neither enabled nor scanning is stated
        (397568, True, "UNKNOWN"),  # 0x061100 Defender on: its own status tells real time
    ],
)
def test_only_a_third_party_product_on_claims_real_time_protection(
    value: int, enabled: bool | None, state: str
) -> None:
    found = SecurityCenterProduct("Product", decode_product_state(value))
    product = antivirus.security_center_product(found)
    assert (product.enabled if product.HasField("enabled") else None) == enabled
    assert not product.HasField("real_time_protection")
    assert judge_antivirus(pb.AntivirusFact(products=[product]))[0] == state


def test_a_third_party_product_on_with_old_signatures_still_fails() -> None:
    # 0x041010: on, signatures out of date. Real time does not excuse stale signatures.
    found = SecurityCenterProduct("Product", decode_product_state(266256))
    product = antivirus.security_center_product(found)
    assert product.real_time_protection and not product.signatures_up_to_date
    assert judge_antivirus(pb.AntivirusFact(products=[product]))[0] == "FAIL"


def test_a_date_that_does_not_fit_the_machines_pattern_is_a_parse_error_not_a_guess() -> None:
    # The en-IN status (day first) printed after an en-US culture cannot be read: the product
    # is still reported, its date is unknown and the defender source says why.
    host = WindowsReplayHost()
    host.record(cmd.SECURITY_CENTER, (1, b"", b""))
    host.record(
        cmd.DEFENDER,
        one_run(EN_US_CULTURE, PACIFIC, "defender/mpcomputerstatus-en-in-win11-22h2-2022.txt"),
    )
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact)
    (defender,) = outcome.fact.products
    assert defender.enabled and defender.real_time_protection
    assert not defender.HasField("signatures_updated_at")
    assert ("defender", pb.PROBE_ERROR_CODE_PARSE_ERROR) in codes(outcome)


def test_powershell_missing_gives_no_fact_and_both_errors() -> None:
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, WindowsReplayHost())
    assert outcome.fact is None
    assert codes(outcome) == [
        ("security-center", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
        ("defender", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
    ]


def test_server_without_security_center_still_reports_defender() -> None:
    host = WindowsReplayHost()
    # Windows Server has no root/SecurityCenter2; its error text is not recorded here.
    host.record(cmd.SECURITY_CENTER, (1, b"", b""))
    host.record(
        cmd.DEFENDER,
        one_run(EN_US_CULTURE, PACIFIC, "defender/mpcomputerstatus-msdocs-healthy.txt"),
    )
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact) and len(outcome.fact.products) == 1
    assert codes(outcome) == [("security-center", pb.PROBE_ERROR_CODE_COMMAND_FAILED)]


def test_defender_timeout() -> None:
    host = WindowsReplayHost()
    host.record(
        cmd.SECURITY_CENTER, output("security_center/cim-antivirusproduct-defender-only.txt")
    )
    host.record(cmd.DEFENDER, output("defender/mpcomputerstatus-msdocs-healthy.txt"))
    host.timeouts.add(tuple(cmd.DEFENDER))
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact) and len(outcome.fact.products) == 1
    assert codes(outcome) == [("defender", pb.PROBE_ERROR_CODE_TIMEOUT)]


# --- firewall ----------------------------------------------------------------------------


def test_firewall_falls_back_to_netsh_when_powershell_is_missing() -> None:
    host = WindowsReplayHost()
    host.record(cmd.NETSH_FIREWALL, output("netsh_firewall/allprofiles-en-all-off.txt"))
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert isinstance(outcome.fact, pb.FirewallFact)
    assert outcome.fact.HasField("enabled") and not outcome.fact.enabled
    assert codes(outcome) == [
        ("Get-NetFirewallProfile", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
        ("Get-NetConnectionProfile", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
    ]


def test_firewall_unreadable_everywhere_is_no_fact() -> None:
    outcome = run(firewall.probe, pb.FACT_FIREWALL, WindowsReplayHost())
    assert outcome.fact is None and len(outcome.errors) == 2


def test_active_profile_without_printed_state_leaves_enabled_unknown() -> None:
    host = WindowsReplayHost()
    host.record(
        cmd.FIREWALL_PROFILES,
        output("firewall/netfirewallprofile-private-only-wrapped.txt"),
    )
    host.record(
        cmd.CONNECTION_PROFILES,
        output("connection_profile/netconnectionprofile-ethernet-public.txt"),
    )
    fact = run(firewall.probe, pb.FACT_FIREWALL, host).fact
    assert isinstance(fact, pb.FirewallFact) and not fact.HasField("enabled")


def test_only_active_profiles_decide() -> None:
    host = WindowsReplayHost()
    host.record(
        cmd.FIREWALL_PROFILES,
        output("firewall/netfirewallprofile-private-only-wrapped.txt"),
    )
    host.record(
        cmd.CONNECTION_PROFILES,
        output("connection_profile/netconnectionprofile-hyperv-private.txt"),
    )
    fact = run(firewall.probe, pb.FACT_FIREWALL, host).fact
    assert isinstance(fact, pb.FirewallFact) and fact.enabled and fact.profiles[0].active


# --- disk encryption ---------------------------------------------------------------------


def test_manage_bde_access_denied_is_permission_denied_with_the_reason() -> None:
    host = WindowsReplayHost()
    host.record(
        cmd.MANAGE_BDE, output("manage_bde/status-en-26100-access-denied.txt", ACCESS_DENIED_EXIT)
    )
    outcome = run(disk.probe, pb.FACT_DISK_ENCRYPTION, host)
    assert outcome.fact is None
    (err,) = outcome.errors
    assert err.code == pb.PROBE_ERROR_CODE_PERMISSION_DENIED
    assert "An attempt to access a required resource was denied" in err.message


def test_chinese_access_denied_text_is_recognised() -> None:
    host = WindowsReplayHost(console_encoding="cp936")
    # ERROR_ACCESS_DENIED's Chinese message, "拒绝访问。", as the console prints it.
    host.record(cmd.MANAGE_BDE, (5, "拒绝访问。\r\n".encode("gbk"), b""))
    assert [e.code for e in run(disk.probe, pb.FACT_DISK_ENCRYPTION, host).errors] == [
        pb.PROBE_ERROR_CODE_PERMISSION_DENIED
    ]


def test_chinese_bitlocker_status_is_read_from_the_gbk_console() -> None:
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(
        cmd.MANAGE_BDE,
        output("manage_bde/status-zh-18362-data-volume-used-space-encrypted.cp936-crlf.txt"),
    )
    outcome = run(disk.probe, pb.FACT_DISK_ENCRYPTION, host)
    assert outcome.errors == [] and isinstance(outcome.fact, pb.DiskEncryptionFact)
    (m,) = outcome.fact.volumes
    assert (m.mount_point, m.encrypted, m.method) == ("M:", True, "BitLocker XTS-AES 128")


def test_manage_bde_missing_and_timeout() -> None:
    assert [
        e.code for e in run(disk.probe, pb.FACT_DISK_ENCRYPTION, WindowsReplayHost()).errors
    ] == [pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND]
    host = WindowsReplayHost()
    host.record(cmd.MANAGE_BDE, output("manage_bde/status-en-26100-encrypted.txt"))
    host.timeouts.add(tuple(cmd.MANAGE_BDE))
    assert [e.code for e in run(disk.probe, pb.FACT_DISK_ENCRYPTION, host).errors] == [
        pb.PROBE_ERROR_CODE_TIMEOUT
    ]


def test_encryption_in_progress_is_reported_with_its_method() -> None:
    host = WindowsReplayHost()
    host.record(cmd.MANAGE_BDE, output("manage_bde/status-en-26100-encryption-in-progress.txt"))
    fact = run(disk.probe, pb.FACT_DISK_ENCRYPTION, host).fact
    assert isinstance(fact, pb.DiskEncryptionFact)
    (c,) = fact.volumes
    assert (c.mount_point, c.encrypted, c.method) == ("C:", False, "BitLocker XTS-AES 128")


# --- updates -----------------------------------------------------------------------------


def test_missing_policy_key_is_the_automatic_default_and_pending_is_unknown() -> None:
    # No PowerShell recorded: the Windows Update search cannot run, so pending stays unknown.
    host = WindowsReplayHost()
    # A single update comes as one JSON object; 7 September 2019 00:00 in Spain is 22:00 UTC
    # the day before (a remoting session's Get-HotFix, its InstalledOn a bare \/Date(ms)\/).
    host.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-es-remoting-one-object.txt"))
    host.record(cmd.REG_AU, output("reg_query/not-found-en.txt", REG_MISSING))
    outcome = run(updates.probe, pb.FACT_OS_UPDATES, host)
    assert isinstance(outcome.fact, pb.OsUpdatesFact)
    assert outcome.fact.automatic_updates and not outcome.fact.HasField("pending_security")
    assert outcome.fact.last_installed.ToDatetime().isoformat() == "2019-09-06T22:00:00"
    assert codes(outcome) == [("windows-update-agent", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)]


def test_reg_exit_1_without_the_not_found_message_is_not_read_as_missing() -> None:
    host = WindowsReplayHost()
    host.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-ws2019-cnquery.txt"))
    host.record(cmd.REG_AU, (REG_MISSING, b"", b""))
    outcome = run(updates.probe, pb.FACT_OS_UPDATES, host)
    assert isinstance(outcome.fact, pb.OsUpdatesFact)
    assert not outcome.fact.HasField("automatic_updates")
    assert ("reg AU policy", pb.PROBE_ERROR_CODE_PARSE_ERROR) in codes(outcome)


def test_nothing_readable_is_no_fact() -> None:
    outcome = run(updates.probe, pb.FACT_OS_UPDATES, WindowsReplayHost())
    assert outcome.fact is None
    assert {c for _, c in codes(outcome)} == {pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND}


# --- VPN ---------------------------------------------------------------------------------


def test_psutil_supplements_ipconfig() -> None:
    host = WindowsReplayHost()
    host.record(cmd.IPCONFIG, output("ipconfig/all-en-win7-tap-disconnected-mojibake.txt"))
    host.interfaces = [NetInterface("OpenVPN Wintun", True), NetInterface("Ethernet", True)]
    fact = run(vpn.probe, pb.FACT_VPN, host).fact
    assert isinstance(fact, pb.VpnFact) and fact.active
    assert [(i.name, i.kind, i.up) for i in fact.interfaces][-1] == ("OpenVPN Wintun", "tun", True)


def test_ipconfig_missing_but_psutil_answers() -> None:
    outcome = run(vpn.probe, pb.FACT_VPN, WindowsReplayHost())
    assert isinstance(outcome.fact, pb.VpnFact) and not outcome.fact.active
    # Neither adapter listing could run (powershell is not installed either): both are named.
    assert codes(outcome) == [
        ("Get-NetAdapter", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
        ("ipconfig", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
    ]


def test_an_inactive_profile_that_is_off_does_not_decide() -> None:
    # The rule itself, on profile values (no tool output involved).
    profiles = [
        pb.FirewallProfile(name="domain", enabled=False),
        pb.FirewallProfile(name="private", enabled=True),
        pb.FirewallProfile(name="public", enabled=False),
    ]
    assert firewall.firewall_enabled(profiles, frozenset({"private"})) is True
    assert firewall.firewall_enabled(profiles, frozenset({"private", "public"})) is False
    assert firewall.firewall_enabled(profiles, None) is False
    assert firewall.firewall_enabled(profiles, frozenset()) is False
    assert firewall.firewall_enabled(profiles[1:2], frozenset({"public"})) is None


@pytest.mark.parametrize("mode", ["Passive Mode", "SxS Passive Mode", "EDR Block Mode"])
def test_defender_standing_by_beside_another_antivirus_is_not_protecting(mode: str) -> None:
    # The AMRunningMode values of Microsoft's "Microsoft Defender Antivirus compatibility with
    # other security products": in them Defender still says AMServiceEnabled,
    # AntivirusEnabled and RealTimeProtectionEnabled True, and scans nothing until asked.
    # Read as on, such a machine passed with no antivirus protecting it.
    standing_by = DefenderStatus(
        service_enabled=True, antivirus_enabled=True, real_time_protection=True,
        signature_version="1.381.2871.0", signatures_out_of_date=False, signatures_updated="",
        running_mode=mode,
    )  # fmt: skip
    errors: list[pb.ProbeError] = []
    product = antivirus._defender_product(standing_by, errors)
    assert product.enabled and list(product.health_issues) == [f"AMRunningMode: {mode}"]
    report = pb.PostureReport()
    report.antivirus.products.append(product)
    verdict = evaluate(report, dt.datetime.now(dt.UTC))
    (judged,) = [v for c, v in verdict if c.check_id == "antivirus"]
    assert judged.state.value == "FAIL", judged
    normal = antivirus._defender_product(replace(standing_by, running_mode="Normal"), errors)
    assert not normal.health_issues and not errors

"""The first evaluation: each check's PASS, FAIL and UNKNOWN, and that missing facts never pass."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.policy import checks
from devposture.policy.checks import CHECKS, Check, CheckParameters, State, Verdict, evaluate
from devposture.policy.reasons import parse, render
from devposture.v1 import devposture_pb2 as pb

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
P = CheckParameters()


def english(reason: str) -> str:
    """A stored reason in English, times in UTC; it must be a declared code, never text."""
    assert parse(reason) is not None, reason
    return render(reason, "en", dt.UTC)


def ts(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def verdict(check_id: str, report: pb.PostureReport) -> tuple[State, str]:
    for check, result in evaluate(report, NOW):
        if check.check_id == check_id:
            return result.state, english(result.reason)
    raise AssertionError(check_id)


def test_every_check_is_unknown_on_an_empty_report() -> None:
    results = evaluate(pb.PostureReport(), NOW)
    assert [c.check_id for c, _ in results] == [c.check_id for c in CHECKS]
    assert {r.state for _, r in results} == {State.UNKNOWN}


def test_probe_error_is_the_reason_for_unknown() -> None:
    report = pb.PostureReport()
    report.errors.add(
        fact=pb.FACT_FIREWALL,
        code=pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND,
        message="none of nft, iptables, ufw, firewall-cmd is installed",
    )
    state, reason = verdict("firewall", report)
    assert state is State.UNKNOWN
    assert "none of nft, iptables, ufw, firewall-cmd is installed" in reason


@pytest.mark.parametrize(
    ("code", "zh", "en"),
    [
        (pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND, "缺少所需的工具",
         "a tool it needs is not installed"),
        (pb.PROBE_ERROR_CODE_PERMISSION_DENIED, "权限不足", "permission denied"),
        (pb.PROBE_ERROR_CODE_TIMEOUT, "读取超时", "it took too long"),
        (pb.PROBE_ERROR_CODE_UNSPECIFIED, "出错", "an error"),
    ],
)
def test_why_a_fact_could_not_be_read_is_worded_in_each_language(
    code: pb.ProbeErrorCode.ValueType, zh: str, en: str
) -> None:
    """The agent's error code in words, its own message (its tools' English) beside it."""
    report = pb.PostureReport()
    report.errors.add(fact=pb.FACT_FIREWALL, code=code, message="ufw: exit status 1")
    stored = _stored("firewall", report)
    zone = dt.timezone(dt.timedelta(hours=8))
    assert render(stored, "zh", zone) == f"无法读取防火墙：{zh}（ufw: exit status 1）"
    assert render(stored, "en", zone) == (
        f"the firewall could not be read: {en} (ufw: exit status 1)"
    )


def _antivirus(**fields: object) -> pb.PostureReport:
    report = pb.PostureReport()
    report.antivirus.products.add(**fields)
    return report


def test_antivirus_pass_fail_unknown() -> None:
    fresh = ts(NOW - dt.timedelta(days=1))
    stale = ts(NOW - dt.timedelta(days=30))
    healthy = _antivirus(
        name="ClamAV",
        enabled=True,
        real_time_protection=True,
        signature_version="27100",
        signatures_updated_at=fresh,
    )
    assert verdict("antivirus", healthy)[0] is State.PASS
    old = _antivirus(
        name="ClamAV",
        enabled=True,
        real_time_protection=True,
        signature_version="26000",
        signatures_updated_at=stale,
    )
    state, reason = verdict("antivirus", old)
    assert state is State.FAIL and "older than 7 days" in reason
    no_db = _antivirus(name="ClamAV", source="clamav-db", enabled=True, real_time_protection=True)
    no_db.errors.add(  # what the ClamAV probe says when the database folder is empty
        fact=pb.FACT_ANTIVIRUS, code=pb.PROBE_ERROR_CODE_NO_SOURCE,
        message="ClamAV is installed but has no signature database", source="clamav-db",
    )  # fmt: skip
    state, reason = verdict("antivirus", no_db)
    assert state is State.FAIL and "no signature database" in reason
    # Seen only through its processes: no version, no date. Cannot tell, so not a failure.
    vague = _antivirus(name="CrowdStrike Falcon", source="process", enabled=True)
    state, reason = verdict("antivirus", vague)
    assert state is State.UNKNOWN and "signature date unknown" in reason
    empty = pb.PostureReport()
    empty.antivirus.SetInParent()
    assert verdict("antivirus", empty) == (
        State.FAIL,
        "no known antivirus product installed or running",
    )


def test_antivirus_one_healthy_product_among_several_passes() -> None:
    report = _antivirus(name="ClamAV", source="clamav-db", enabled=True, real_time_protection=False)
    report.antivirus.products.add(
        name="Defender", enabled=True, real_time_protection=True, signatures_up_to_date=True
    )
    assert verdict("antivirus", report)[0] is State.PASS


def test_firewall_states() -> None:
    report = pb.PostureReport()
    report.firewall.enabled = True
    report.firewall.profiles.add(name="nftables", enabled=True)
    assert verdict("firewall", report)[0] is State.PASS
    report.firewall.enabled = False
    report.firewall.profiles[0].enabled = False
    assert verdict("firewall", report)[0] is State.FAIL
    report.firewall.ClearField("enabled")
    assert verdict("firewall", report)[0] is State.UNKNOWN


def test_firewall_off_on_the_active_windows_profile_fails() -> None:
    report = pb.PostureReport()
    report.firewall.enabled = True
    report.firewall.profiles.add(name="domain", enabled=True, active=False)
    report.firewall.profiles.add(name="public", enabled=False, active=True)
    state, reason = verdict("firewall", report)
    assert state is State.FAIL and "public" in reason


def test_firewall_on_linux_one_filtering_backend_is_enough() -> None:
    # firewalld rejects what its zone does not allow; iptables -S shows only a VPN client's
    # rules (active, not filtering by itself): the same packets meet both.
    report = pb.PostureReport()
    report.host.os_family = pb.OS_FAMILY_LINUX
    report.firewall.enabled = True
    report.firewall.profiles.add(name="firewalld", enabled=True, active=True)
    report.firewall.profiles.add(name="iptables", enabled=False, active=True)
    assert verdict("firewall", report)[0] is State.PASS
    report.firewall.enabled = False
    report.firewall.profiles[0].enabled = False
    assert verdict("firewall", report)[0] is State.FAIL


Zone = tuple[str, str, str, list[str], bool]  # name, target, action, interfaces, default


def _linux_firewalld(*zones: Zone, nft: bool = True) -> pb.PostureReport:
    """A Linux report as the agent makes it: nftables' reading (firewalld's own table, which
    rejects at its end) beside firewalld's zones in force."""
    report = pb.PostureReport()
    report.host.os_family = pb.OS_FAMILY_LINUX
    if nft:
        report.firewall.profiles.add(name="nftables", enabled=True, active=True,
                                     default_inbound_action="reject")  # fmt: skip
    open_path = any(action == "allow" for _, _, action, _, _ in zones)
    firewalld = report.firewall.profiles.add(name="firewalld", enabled=not open_path, active=True)
    for name, target, action, interfaces, default in zones:
        firewalld.zones.add(name=name, target=target, default_inbound_action=action,
                            interfaces=interfaces, is_default=default)  # fmt: skip
    report.firewall.enabled = not open_path
    return report


PUBLIC: Zone = ("public", "default", "reject", ["enp0s31f6"], True)


def test_a_firewalld_zone_accepting_everything_fails_naming_it_whatever_nftables_shows() -> None:
    report = _linux_firewalld(("trusted", "ACCEPT", "allow", ["wlp2s0"], False), PUBLIC)
    assert verdict("firewall", report) == (
        State.FAIL, "firewalld zone trusted accepts all inbound traffic on wlp2s0"
    )  # fmt: skip
    # Even where the summary said "filters" (nftables reads firewalld's table as rejecting).
    report.firewall.enabled = True
    assert verdict("firewall", report)[0] is State.FAIL
    # A known open path is a FAIL though another source could not be read.
    report.firewall.ClearField("enabled")
    report.errors.add(fact=pb.FACT_FIREWALL, code=pb.PROBE_ERROR_CODE_PERMISSION_DENIED,
                      source="iptables", message="iptables -S: permission denied")  # fmt: skip
    assert verdict("firewall", report)[0] is State.FAIL


def test_an_accepting_default_zone_fails_for_every_interface_bound_to_no_zone() -> None:
    default: Zone = ("trusted", "ACCEPT", "allow", [], True)
    assert verdict("firewall", _linux_firewalld(default, nft=False)) == (
        State.FAIL,
        "firewalld's default zone trusted accepts all inbound traffic on every interface bound"
        " to no other zone",
    )
    default = ("trusted", "ACCEPT", "allow", ["enp0s3"], True)
    work: Zone = ("work", "ACCEPT", "allow", ["tun0", "wlp2s0"], False)
    assert verdict("firewall", _linux_firewalld(default, work)) == (
        State.FAIL,
        "firewalld's default zone trusted accepts all inbound traffic on every interface bound"
        " to no other zone (enp0s3); firewalld zone work accepts all inbound traffic on tun0,"
        " wlp2s0",
    )


def test_firewalld_zones_that_refuse_what_they_do_not_allow_pass() -> None:
    # NetworkManager's hotspot zone: target ACCEPT, then a rich rule that rejects the rest.
    hotspot: Zone = ("nm-shared", "ACCEPT", "reject", ["wlp2s0"], False)
    assert verdict("firewall", _linux_firewalld(hotspot, PUBLIC))[0] is State.PASS


def test_an_older_agents_firewalld_report_is_judged_as_before() -> None:
    """Agents before FirewallProfile.zones judged firewalld by its default zone's name: a
    `trusted` default zone gave a profile off, and nftables' reading still passed the host."""
    report = pb.PostureReport()
    report.host.os_family = pb.OS_FAMILY_LINUX
    report.firewall.enabled = True
    report.firewall.profiles.add(name="nftables", enabled=True, active=True)
    report.firewall.profiles.add(name="firewalld", enabled=False, active=True,
                                 default_inbound_action="allow")  # fmt: skip
    assert verdict("firewall", report) == (State.PASS, "filtering inbound traffic: nftables")


def test_linux_open_cards_are_named_by_the_family_they_are_open_in() -> None:
    """The agent names a card open in one IP family only "wlp2s0 (IPv6)"; one open in every
    family in use (and any card from an older agent) by its name alone; ip6tables-legacy is a
    tool, no card."""
    report = pb.PostureReport()
    report.host.os_family = pb.OS_FAMILY_LINUX
    report.firewall.enabled = False
    report.firewall.profiles.add(name="ip6tables-legacy", enabled=False, active=False,
                                 default_inbound_action="allow")  # fmt: skip
    for name in ("enp0s31f6", "wlp2s0 (IPv6)", "wwan0 (IPv4)", "wlp3s0 (IPv6)"):
        report.firewall.profiles.add(name=name, enabled=False, active=True,
                                     default_inbound_action="allow")  # fmt: skip
    assert verdict("firewall", report) == (
        State.FAIL,
        "all inbound traffic is accepted on network card(s) enp0s31f6; all inbound IPv4 traffic"
        " is accepted on network card(s) wwan0; all inbound IPv6 traffic is accepted on network"
        " card(s) wlp2s0, wlp3s0",
    )


def test_a_fact_no_tool_could_give_is_unknown_with_each_tools_reason() -> None:
    report = pb.PostureReport()
    stopped = "firewall-cmd exited with status 252: FirewallD is not running"
    report.errors.add(fact=pb.FACT_FIREWALL, code=pb.PROBE_ERROR_CODE_COMMAND_FAILED,
                      source="firewall-cmd", message=stopped)  # fmt: skip
    assert verdict("firewall", report) == (
        State.UNKNOWN,
        "the firewall could not be read: firewall-cmd: a tool failed (firewall-cmd exited with"
        " status 252: FirewallD is not running)",
    )


def test_os_updates_states() -> None:
    report = pb.PostureReport()
    report.os_updates.source = "apt"
    report.os_updates.pending_security = 2
    report.os_updates.pending_security_names.extend(["openssl", "libc6"])
    state, reason = verdict("os-updates", report)
    assert state is State.FAIL and "openssl" in reason
    report.os_updates.pending_security = 0
    report.os_updates.last_checked.CopyFrom(ts(NOW - dt.timedelta(days=1)))
    assert verdict("os-updates", report)[0] is State.PASS
    report.os_updates.last_checked.CopyFrom(ts(NOW - dt.timedelta(days=60)))
    assert verdict("os-updates", report)[0] is State.FAIL
    report.os_updates.ClearField("last_checked")
    assert verdict("os-updates", report)[0] is State.UNKNOWN
    report.os_updates.ClearField("pending_security")
    assert verdict("os-updates", report)[0] is State.UNKNOWN


def test_os_updates_untold_security_count_is_unknown_with_the_agents_reason() -> None:
    """apt on Deepin, UOS or Kylin (no security archive): updates pending, the security count
    left unset with the agent's reason, which the verdict gives in each language."""
    report = pb.PostureReport()
    report.os_updates.source = "apt"
    report.os_updates.pending_total = 94
    report.os_updates.last_checked.CopyFrom(ts(NOW - dt.timedelta(days=1)))
    why = 'no security archive configured (no "-security" suite among: a.example/deepin apricot)'
    report.errors.add(fact=pb.FACT_OS_UPDATES, code=pb.PROBE_ERROR_CODE_NO_SOURCE,
                      message=why, source="apt archives")  # fmt: skip
    assert verdict("os-updates", report)[0] is State.UNKNOWN
    stored = _stored("os-updates", report)
    zone = dt.timezone(dt.timedelta(hours=8))
    assert render(stored, "en", zone) == (
        f"the update tool (apt) did not tell pending security updates: apt archives: "
        f"nothing to read it from ({why})"
    )
    assert render(stored, "zh", zone) == (
        f"更新工具（apt）未给出待装的安全更新：apt archives：没有可读取的来源（{why}）"
    )


def _wifi(classification: int, vpn_up: bool, vpn_delay: int = 0) -> pb.PostureReport:
    report = pb.PostureReport()
    report.wifi.has_wifi_interface = True
    start = NOW - dt.timedelta(hours=1)
    session = report.wifi.sessions.add(
        network_id="Starbucks",
        security=pb.WIFI_SECURITY_OPEN,
        classification=classification,
        started_at=ts(start),
        vpn_up=vpn_up,
    )
    if vpn_up:
        session.vpn_up_at.CopyFrom(ts(start + dt.timedelta(seconds=vpn_delay)))
    return report


def test_public_wifi_states() -> None:
    state, reason = verdict("public-wifi", _wifi(pb.NETWORK_CLASS_PUBLIC, vpn_up=False))
    assert state is State.FAIL and "Starbucks" in reason and "without VPN" in reason
    assert verdict("public-wifi", _wifi(pb.NETWORK_CLASS_PUBLIC, True, 30))[0] is State.PASS
    state, reason = verdict("public-wifi", _wifi(pb.NETWORK_CLASS_PUBLIC, True, 600))
    assert state is State.FAIL and "late" in reason
    assert verdict("public-wifi", _wifi(pb.NETWORK_CLASS_TRUSTED, False))[0] is State.PASS
    no_wifi = pb.PostureReport()
    no_wifi.wifi.has_wifi_interface = False
    assert verdict("public-wifi", no_wifi)[0] is State.PASS


def _backup(
    age_days: int,
    encryption: int,
    evidence: str = "",
    *,
    on_encrypted_volume: bool | None = False,
    kind: int = pb.BACKUP_KIND_APP_BACKUP,
    report: pb.PostureReport | None = None,
    location: str = "~/Documents/WeChat Files/wxid_a/BackupFiles/1",
) -> pb.PostureReport:
    report = report or pb.PostureReport()
    report.chat_backups.locations_checked = 3
    backup = report.chat_backups.backups.add(
        kind=kind,
        app=pb.CHAT_APP_WECHAT,
        location=location,
        newest_backup_at=ts(NOW - dt.timedelta(days=age_days)),
        file_count=4,
        total_bytes=1000,
        encryption=encryption,
        encryption_evidence=evidence,
        volume_evidence="on volume C: (test)",
    )
    if on_encrypted_volume is not None:
        backup.on_encrypted_volume = on_encrypted_volume
    return report


ENC, PLAIN, UNSURE = (
    pb.ENCRYPTION_STATE_ENCRYPTED,
    pb.ENCRYPTION_STATE_NOT_ENCRYPTED,
    pb.ENCRYPTION_STATE_UNKNOWN,
)


def test_chat_backup_states() -> None:
    state, reason = verdict("chat-backup", _backup(2, ENC, "7z archive with AES-256 encryption"))
    assert state is State.PASS and "AES-256" in reason
    state, reason = verdict("chat-backup", _backup(2, PLAIN, "SQLite format 3"))
    assert state is State.FAIL and "not encrypted" in reason
    assert verdict("chat-backup", _backup(90, ENC))[0] is State.FAIL
    assert verdict("chat-backup", _backup(2, UNSURE))[0] is State.UNKNOWN
    none = pb.PostureReport()
    none.chat_backups.locations_checked = 5
    state, reason = verdict("chat-backup", none)
    assert state is State.FAIL and "5 locations" in reason


def test_an_old_backup_is_judged_by_its_own_age() -> None:
    state, reason = verdict("chat-backup", _backup(40, ENC, "7z archive with AES-256"))
    assert state is State.FAIL and "older than 30 days" in reason
    assert "WeChat Files/wxid_a/BackupFiles/1" in reason


def test_the_apps_live_data_is_in_use_but_no_backup() -> None:
    report = pb.PostureReport()
    report.chat_backups.locations_checked = 4
    report.chat_backups.live_data.add(
        app=pb.CHAT_APP_WECHAT,
        location="~/Documents/WeChat Files/wxid_a",
        account="wxid_a",
        layout="WeChat 3.x",
    )
    state, reason = verdict("chat-backup", report)
    assert state is State.FAIL
    assert (
        "no WeChat or WeCom backup found" in reason and "1 account found, not a backup" in reason
    )


def test_a_plain_backup_on_an_encrypted_volume_is_kept_safe() -> None:
    report = _backup(2, PLAIN, "ZIP archive without encryption", on_encrypted_volume=True)
    report.chat_backups.backups[0].volume_evidence = "on BitLocker volume C: mounted at C:"
    state, reason = verdict("chat-backup", report)
    assert state is State.PASS and "BitLocker" in reason
    # Its volume unknown: cannot tell whether it is kept safe.
    state, reason = verdict("chat-backup", _backup(2, PLAIN, "ZIP", on_encrypted_volume=None))
    assert state is State.UNKNOWN and "unknown" in reason


def test_any_exposed_plain_backup_fails_even_beside_a_good_one() -> None:
    report = _backup(1, ENC, "7z archive with AES-256 encryption",
                     location="~/微信备份/2026-11.7z", kind=pb.BACKUP_KIND_ARCHIVE)  # fmt: skip
    _backup(300, PLAIN, "ZIP archive without encryption", report=report,
            location="~/微信备份/old.zip", kind=pb.BACKUP_KIND_ARCHIVE)  # fmt: skip
    state, reason = verdict("chat-backup", report)
    assert state is State.FAIL and "~/微信备份/old.zip" in reason


def test_an_older_agents_folders_are_not_trusted_as_backups() -> None:
    report = _backup(0, ENC, "weak evidence", kind=pb.BACKUP_KIND_UNSPECIFIED)
    report.agent_version = "0.1.0"
    state, reason = verdict("chat-backup", report)
    assert state is State.UNKNOWN and "update the agent" in reason


def test_no_backup_with_unreadable_places_is_unknown() -> None:
    report = pb.PostureReport()
    report.chat_backups.locations_checked = 4
    report.chat_backups.entries_skipped = 1
    report.chat_backups.skipped_reasons.append("~/微信备份/locked: permission denied")
    state, reason = verdict("chat-backup", report)
    assert state is State.UNKNOWN and "permission denied" in reason


def test_a_check_that_raises_is_unknown_not_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
        raise ZeroDivisionError

    monkeypatch.setattr(checks, "CHECKS", (Check("boom", "0", "", "", broken), *checks.CHECKS))
    results = checks.evaluate(pb.PostureReport(), NOW)
    assert results[0][1].state is State.UNKNOWN
    assert "ZeroDivisionError" in results[0][1].reason


# --- antivirus: health issues and the signature updater's state (issue 13) --------------


def _clam(update: pb.SignatureUpdate | None = None, **fields: object) -> pb.PostureReport:
    """A ClamAV product that is on and scans on access; `fields` override or add."""
    values: dict[str, object] = {
        "name": "ClamAV",
        "source": "clamav-db",
        "enabled": True,
        "real_time_protection": True,
    }
    values.update(fields)
    report = _antivirus(**values)
    if update is not None:
        report.antivirus.products[0].signature_update.CopyFrom(update)
    return report


def _update(
    outcome: pb.SignatureUpdateOutcome.ValueType,
    detail: str = "",
    succeeded: dt.datetime | None = None,
    attempted: dt.datetime | None = None,
) -> pb.SignatureUpdate:
    update = pb.SignatureUpdate(outcome=outcome, detail=detail)
    if succeeded is not None:
        update.succeeded_at.CopyFrom(ts(succeeded))
    if attempted is not None:
        update.attempted_at.CopyFrom(ts(attempted))
    return update


def test_antivirus_health_issues_fail_and_are_named() -> None:
    report = _antivirus(
        name="Microsoft Defender for Endpoint",
        source="mdatp",
        enabled=True,
        real_time_protection=False,
        signatures_updated_at=ts(NOW - dt.timedelta(hours=3)),
        health_issues=["real-time protection enabled but not available"],
    )
    state, reason = verdict("antivirus", report)
    assert state is State.FAIL
    assert "health issues: real-time protection enabled but not available" in reason
    # Health issues alone fail too, even where every flag reads well.
    report = _antivirus(
        name="Microsoft Defender for Endpoint",
        source="mdatp",
        enabled=True,
        real_time_protection=True,
        signatures_updated_at=ts(NOW - dt.timedelta(hours=3)),
        health_issues=["missing license"],
    )
    assert verdict("antivirus", report) == (
        State.FAIL,
        "Microsoft Defender for Endpoint: health issues: missing license",
    )


def test_antivirus_health_issues_fail_even_when_real_time_is_unknown() -> None:
    # mdatp printed "unavailable" for real-time protection: unknown, but its own issues fail.
    report = _antivirus(
        name="Microsoft Defender for Endpoint",
        source="mdatp",
        enabled=True,
        health_issues=["no active event provider"],
    )
    state, reason = verdict("antivirus", report)
    assert state is State.FAIL and "no active event provider" in reason


def test_antivirus_engine_outdated_fails_even_with_fresh_signatures() -> None:
    report = _clam(
        _update(
            pb.SIGNATURE_UPDATE_OUTCOME_ENGINE_OUTDATED,
            "Local version: 0.103.2 Recommended version: 0.103.3",
            succeeded=NOW - dt.timedelta(hours=1),
        ),
        signatures_updated_at=ts(NOW - dt.timedelta(hours=5)),
    )
    assert verdict("antivirus", report) == (
        State.FAIL,
        "ClamAV: engine outdated (Local version: 0.103.2 Recommended version: 0.103.3):"
        " upgrade ClamAV",
    )


def test_antivirus_failed_update_with_fresh_signatures_passes_and_says_so() -> None:
    report = _clam(
        _update(
            pb.SIGNATURE_UPDATE_OUTCOME_FAILED,
            "Database update process failed: HTTP GET failed",
            succeeded=NOW - dt.timedelta(days=2),
            attempted=NOW - dt.timedelta(hours=1),
        ),
        signatures_updated_at=ts(NOW - dt.timedelta(days=2)),
    )
    state, reason = verdict("antivirus", report)
    assert state is State.PASS
    assert reason == (
        "ClamAV: on, real-time protection, signatures fresh; ClamAV: last signature update"
        " failed on 2026-11-24 (Database update process failed: HTTP GET failed); last success"
        " 2026-11-22"
    )


def test_antivirus_failed_update_whose_last_success_is_too_old_fails() -> None:
    # The files may still look recent (a database built before a failed run was copied in by
    # hand), but the updater has not succeeded within the limit.
    report = _clam(
        _update(
            pb.SIGNATURE_UPDATE_OUTCOME_LOCKED,
            "Failed to lock the log file /var/log/clamav/freshclam.log",
            succeeded=NOW - dt.timedelta(days=9),
        ),
        signatures_updated_at=ts(NOW - dt.timedelta(days=1)),
    )
    state, reason = verdict("antivirus", report)
    assert state is State.FAIL
    assert "last signature update did not run: updater locked" in reason
    assert "last success 2026-11-15, older than 7 days" in reason


def test_antivirus_failed_update_with_stale_signatures_fails_on_the_age() -> None:
    report = _clam(
        _update(pb.SIGNATURE_UPDATE_OUTCOME_FAILED, "Update failed."),
        signatures_updated_at=ts(NOW - dt.timedelta(days=20)),
    )
    state, reason = verdict("antivirus", report)
    assert state is State.FAIL
    assert reason == "ClamAV: signatures from 2026-11-04, older than 7 days"


def test_antivirus_failed_update_without_any_date_is_unknown_never_pass() -> None:
    report = _clam(_update(pb.SIGNATURE_UPDATE_OUTCOME_FAILED, "Update failed."))
    state, reason = verdict("antivirus", report)
    assert state is State.UNKNOWN
    assert "last signature update failed (Update failed.), and neither the last success" in reason


def test_antivirus_update_ok_changes_nothing() -> None:
    fresh = _clam(
        _update(pb.SIGNATURE_UPDATE_OUTCOME_OK, succeeded=NOW - dt.timedelta(hours=1)),
        signatures_updated_at=ts(NOW - dt.timedelta(days=1)),
    )
    assert verdict("antivirus", fresh) == (
        State.PASS,
        "ClamAV: on, real-time protection, signatures fresh",
    )
    stale = _clam(
        _update(pb.SIGNATURE_UPDATE_OUTCOME_OK, succeeded=NOW - dt.timedelta(hours=1)),
        signatures_updated_at=ts(NOW - dt.timedelta(days=10)),
    )
    assert verdict("antivirus", stale)[0] is State.FAIL


# --- chat-app-updates (6.3.1: WeChat and WeCom kept updated) ------------------------------


def _clients(*clients: pb.ChatClient) -> pb.PostureReport:
    report = pb.PostureReport()
    report.chat_clients.SetInParent()
    report.chat_clients.clients.extend(clients)
    return report


WECHAT, WECOM = pb.CHAT_APP_WECHAT, pb.CHAT_APP_WECOM


def test_chat_app_updates_passes_when_every_client_is_recent_enough() -> None:
    report = _clients(
        pb.ChatClient(app=WECHAT, version="4.1.5", source="Info.plist"),
        pb.ChatClient(app=WECOM, version="5.0.9.6029", source="install folder"),
    )
    state, reason = verdict("chat-app-updates", report)
    assert state is State.PASS
    assert "WeChat 4.1.5" in reason and "WeCom 5.0.9.6029" in reason


def test_chat_app_updates_fails_naming_the_old_client_and_the_minimum() -> None:
    report = _clients(
        pb.ChatClient(app=WECHAT, version="4.1.5", source="Info.plist"),
        pb.ChatClient(
            app=WECHAT,
            version="3.9.12.17",
            source="install folder",
            location="C:/Program Files/Tencent/WeChat",
        ),
    )
    state, reason = verdict("chat-app-updates", report)
    assert state is State.FAIL
    assert "WeChat 3.9.12.17 at C:/Program Files/Tencent/WeChat" in reason
    assert f"minimum {P.min_version_wechat}" in reason and "4.1.5" not in reason


def test_chat_app_updates_compares_number_by_number() -> None:
    # As text "4.1.100" < "4.1.30"; as numbers it is above.
    p = CheckParameters(min_version_wecom="4.1.30")
    passing = _clients(pb.ChatClient(app=WECOM, version="4.1.100.6000"))
    failing = _clients(pb.ChatClient(app=WECOM, version="4.1.29.9999"))
    assert checks.check_chat_app_updates(passing, NOW, p).state is State.PASS
    assert checks.check_chat_app_updates(failing, NOW, p).state is State.FAIL
    exact = _clients(pb.ChatClient(app=WECOM, version="4.1.30"))
    assert checks.check_chat_app_updates(exact, NOW, p).state is State.PASS


def test_a_shorter_version_equal_so_far_cannot_be_compared() -> None:
    # A Mac's "4.1.5" against a minimum of 4.1.5.30: the build it does not tell decides.
    p = CheckParameters(min_version_wechat="4.1.5.30")
    shorter = _clients(pb.ChatClient(app=WECHAT, version="4.1.5"))
    result = checks.check_chat_app_updates(shorter, NOW, p)
    assert result.state is State.UNKNOWN
    assert "cannot compare with 4.1.5.30" in english(result.reason)
    zeros = CheckParameters(min_version_wechat="4.1.5.0")
    assert checks.check_chat_app_updates(shorter, NOW, zeros).state is State.PASS


def test_a_client_without_a_version_is_unknown_with_the_reason() -> None:
    report = _clients(
        pb.ChatClient(app=WECHAT, version="4.1.5"),
        pb.ChatClient(
            app=WECOM,
            location="/Applications/企业微信.app",
            version_error="Info.plist has no CFBundleShortVersionString",
        ),
    )
    state, reason = verdict("chat-app-updates", report)
    assert state is State.UNKNOWN
    assert "WeCom at /Applications/企业微信.app: version unknown" in reason
    assert "CFBundleShortVersionString" in reason


def test_an_old_client_fails_even_beside_an_unknown_one() -> None:
    report = _clients(
        pb.ChatClient(app=WECHAT, version="3.9.5.80"),
        pb.ChatClient(app=WECOM, version_error="no version folder"),
    )
    state, reason = verdict("chat-app-updates", report)
    assert state is State.FAIL and "3.9.5.80" in reason and "no version folder" in reason


def test_no_client_installed_is_nothing_to_update() -> None:
    state, reason = verdict("chat-app-updates", _clients())
    assert (state, reason) == (State.PASS, "no WeChat or WeCom client installed")


def test_an_unread_source_is_unknown_never_pass() -> None:
    report = _clients()
    report.errors.add(
        fact=pb.FACT_CHAT_CLIENTS,
        source="dpkg",
        code=pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND,
        message="dpkg-query is not installed",
    )
    state, reason = verdict("chat-app-updates", report)
    assert state is State.UNKNOWN
    assert "dpkg: a tool it needs is not installed (dpkg-query is not installed)" in reason
    report.chat_clients.clients.add(app=WECHAT, version="4.1.5", source="flatpak")
    state, reason = verdict("chat-app-updates", report)
    assert state is State.UNKNOWN and "4.1.5" not in reason and "dpkg-query" in reason


def test_chat_app_updates_without_the_fact_is_unknown() -> None:
    report = pb.PostureReport()
    report.errors.add(
        fact=pb.FACT_CHAT_CLIENTS, code=pb.PROBE_ERROR_CODE_TIMEOUT, message="probe timed out"
    )
    state, reason = verdict("chat-app-updates", report)
    assert state is State.UNKNOWN and "probe timed out" in reason


def test_the_minimums_come_from_the_parameters() -> None:
    report = _clients(pb.ChatClient(app=WECHAT, version="4.0.3.22"))
    assert checks.check_chat_app_updates(report, NOW, P).state is State.PASS
    stricter = CheckParameters.from_values({"chat-app-updates": {"min_version_wechat": "4.1"}})
    assert stricter.min_version_wecom == P.min_version_wecom
    result = checks.check_chat_app_updates(report, NOW, stricter)
    assert result.state is State.FAIL and "older than the minimum 4.1" in english(result.reason)


# The stored reason is a code with its parameters; the words come in both languages.


def _stored(check_id: str, report: pb.PostureReport) -> str:
    return next(v.reason for c, v in evaluate(report, NOW) if c.check_id == check_id)


SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def test_a_reason_is_stored_as_its_code_and_parameters_never_as_words() -> None:
    none = pb.PostureReport()
    none.antivirus.SetInParent()
    assert _stored("antivirus", none) == "av.none"
    assert render("av.none", "zh", SHANGHAI) == "未发现已安装或正在运行的杀毒软件"
    assert render("av.none", "en", SHANGHAI) == "no known antivirus product installed or running"


def test_dates_are_stored_as_utc_seconds_and_shown_in_the_company_zone() -> None:
    # Signatures of 23:30 UTC on 3 Nov: 4 Nov in Beijing, 3 Nov in UTC.
    late = dt.datetime(2026, 11, 3, 23, 30, tzinfo=dt.UTC)
    report = _clam(signatures_updated_at=ts(late))
    stored = _stored("antivirus", report)
    found = parse(stored)
    assert found is not None and found.code == "av.signatures_old"
    assert found.params == {"product": "ClamAV", "date": int(late.timestamp()), "days": 7}
    assert render(stored, "zh", SHANGHAI) == "ClamAV：病毒库日期为 2026-11-04，已超过 7 天"
    assert render(stored, "en", SHANGHAI) == (
        "ClamAV: signatures from 2026-11-04, older than 7 days"
    )
    assert "2026-11-03" in render(stored, "en", dt.UTC)


def test_several_problems_are_a_list_of_coded_items() -> None:
    report = _clam(enabled=False, real_time_protection=False)
    found = parse(_stored("antivirus", report))
    assert found is not None and found.code == "list.items"
    assert [one[0] for one in found.params["items"]] == ["av.disabled", "av.rtp_off"]
    assert render(_stored("antivirus", report), "zh", SHANGHAI) == (
        "ClamAV：已停用；ClamAV：实时防护已关闭"
    )


def test_a_wifi_session_time_is_shown_in_the_company_zone_in_both_languages() -> None:
    stored = _stored("public-wifi", _wifi(pb.NETWORK_CLASS_PUBLIC, vpn_up=False))
    found = parse(stored)
    assert found is not None and found.code == "wifi.public"
    assert render(stored, "zh", SHANGHAI).startswith("公共无线网络：")
    assert "2026-11-24 19:00（UTC+08:00）" in render(stored, "zh", SHANGHAI)
    assert "without VPN" in render(stored, "en", SHANGHAI)


def test_the_chat_app_names_are_words_of_each_language() -> None:
    stored = _stored("chat-app-updates", _clients(pb.ChatClient(app=WECHAT, version="3.9.5.80")))
    assert "微信 3.9.5.80 低于最低版本" in render(stored, "zh", SHANGHAI)
    assert "WeChat 3.9.5.80 is older than the minimum" in render(stored, "en", SHANGHAI)


def test_a_crashed_check_names_the_error_in_a_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(report: pb.PostureReport, now: dt.datetime, p: CheckParameters) -> Verdict:
        raise ZeroDivisionError

    monkeypatch.setattr(checks, "CHECKS", (Check("boom", "0", "", "", broken),))
    ((_, result),) = evaluate(pb.PostureReport(), NOW)
    assert result.reason == 'check.crashed {"error":"ZeroDivisionError"}'
    assert render(result.reason, "zh", SHANGHAI) == "检查程序内部出错（ZeroDivisionError）"

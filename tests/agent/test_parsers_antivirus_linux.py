"""Antivirus parsers on real recordings: freshclam's log, terminal and journal text (ClamAV's
updater), freshclam.conf, /etc/localtime, and `mdatp health` from Linux and macOS.

Sources of every fixture: tests/fixtures/linux/README.md and tests/fixtures/macos/README.md.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.freshclam import (
    ENGINE_OUTDATED,
    FAILED,
    LOCKED,
    OK,
    parse_freshclam_conf,
    parse_update_log,
)
from devposture.agent.parsers.localtime import parse_tzif
from devposture.agent.parsers.mdatp import parse_mdatp_health
from tests.agent.replay import fixture_bytes, fixture_text

MACOS = Path(__file__).resolve().parent.parent / "fixtures" / "macos"


def freshclam(name: str) -> str:
    return fixture_text(f"freshclam/{name}")


# --- freshclam's log --------------------------------------------------------------------


def test_failed_update_recorded_offline_on_debian() -> None:
    # Real freshclam 1.4.6 with no route to database.clamav.net: ten tries, then "Update failed."
    state = parse_update_log(freshclam("freshclam-log-update-failed-offline-debian12.log"), UTC)
    assert state is not None
    assert state.outcome == FAILED
    assert state.detail == "Database update process failed: HTTP GET failed"
    assert state.attempted_at == datetime(2026, 12, 2, 20, 32, 22, tzinfo=UTC)  # the last line
    assert state.succeeded_at is None


def test_the_same_failure_on_the_terminal() -> None:
    # freshclam's stderr puts the level before the time: "ERROR: <ctime> -> …".
    state = parse_update_log(freshclam("freshclam-update-failed-offline-debian12.err"), UTC)
    assert state is not None and state.outcome == FAILED
    assert state.attempted_at == datetime(2026, 12, 2, 20, 32, 22, tzinfo=UTC)
    # Its stdout alone says only that it tried: no finished attempt, so no state.
    assert parse_update_log(freshclam("freshclam-update-failed-offline-debian12.out"), UTC) is None


def test_local_times_are_read_in_the_machines_zone() -> None:
    text = freshclam("freshclam-log-update-failed-offline-debian12.log")
    shanghai = parse_tzif(fixture_bytes("localtime/Asia-Shanghai.tzif"))
    state = parse_update_log(text, shanghai)
    assert state is not None
    assert state.attempted_at == datetime(2026, 12, 2, 12, 32, 22, tzinfo=UTC)  # 20:32 at +08
    unknown = parse_update_log(text, None)
    assert unknown is not None and unknown.outcome == FAILED and unknown.attempted_at is None


def test_summer_time_is_the_zone_file_s_business() -> None:
    berlin = parse_tzif(fixture_bytes("localtime/Europe-Berlin.tzif"))
    july = freshclam("freshclam-log-up-to-date-1.4-topgrade-1239.log")
    december = freshclam("freshclam-log-update-failed-offline-debian12.log")
    summer = parse_update_log(july, berlin)
    winter = parse_update_log(december, berlin)
    assert summer is not None and summer.attempted_at == datetime(
        2025, 7, 28, 15, 10, 45, tzinfo=UTC
    )
    assert winter is not None and winter.attempted_at == datetime(
        2026, 12, 2, 19, 32, 22, tzinfo=UTC
    )


def test_hourly_up_to_date_checks_of_freshclam_1_4() -> None:
    # A daemon's log: one separator, then an hourly "database is up-to-date" set.
    state = parse_update_log(freshclam("freshclam-log-up-to-date-1.4-topgrade-1239.log"), UTC)
    assert state is not None and state.outcome == OK and state.detail == ""
    assert state.succeeded_at == datetime(2025, 7, 28, 17, 10, 45, tzinfo=UTC)
    assert state.attempted_at == state.succeeded_at


def test_database_updated_by_freshclam_0_98() -> None:
    state = parse_update_log(
        freshclam("freshclam-log-up-to-date-0.98-docker-mailserver-16.log"), UTC
    )
    assert state is not None and state.outcome == OK
    assert state.succeeded_at == datetime(2015, 8, 20, 1, 0, 42, tzinfo=UTC)


def test_outdated_engine_in_the_log_even_while_the_run_goes_on() -> None:
    # The log ends mid-download, but the warning is the latest word: the engine is outdated.
    state = parse_update_log(
        freshclam("freshclam-log-outdated-0.103.2-owncloud-docs-3963.log"), UTC
    )
    assert state is not None and state.outcome == ENGINE_OUTDATED
    assert state.detail == "Local version: 0.103.2 Recommended version: 0.103.3"
    assert state.attempted_at == datetime(2021, 8, 18, 12, 43, 12, tzinfo=UTC)
    assert state.succeeded_at is None


def test_outdated_engine_whose_databases_are_up_to_date() -> None:
    # 0.103 marked warnings with "^" on the terminal.
    state = parse_update_log(freshclam("freshclam-outdated-up-to-date-0.103.2-clamav-188.out"), UTC)
    assert state is not None and state.outcome == ENGINE_OUTDATED
    assert state.detail == "Local version: 0.103.2 Recommended version: 0.103.3"
    assert state.succeeded_at == datetime(2021, 7, 4, 20, 17, 50, tzinfo=UTC)


def test_cool_down_after_the_cdn_refused_an_outdated_engine() -> None:
    text = freshclam("freshclam-cooldown-outdated-0.105.2-clamav-1609.out")
    state = parse_update_log(text, UTC)
    assert state is not None and state.outcome == ENGINE_OUTDATED
    assert state.detail == "Local version: 0.105.2 Recommended version: 1.0.9"
    assert state.attempted_at == datetime(2025, 10, 19, 14, 47, 51, tzinfo=UTC)  # "started at"


def test_cdn_403_is_a_failure_before_any_update_failed_line() -> None:
    state = parse_update_log(freshclam("freshclam-cdn-403-0.102.8-clamav-920.log"), UTC)
    assert state is not None and state.outcome == FAILED
    assert state.detail.startswith("FreshClam received error code 403")


def test_lock_held_by_another_freshclam_recorded_on_debian() -> None:
    # A second real freshclam, started while the first held the log: stdout then stderr.
    text = freshclam("freshclam-locked-debian12.out") + freshclam("freshclam-locked-debian12.err")
    state = parse_update_log(text, UTC)
    assert state is not None and state.outcome == LOCKED
    assert state.detail.startswith("Failed to lock the log file /tmp/dp-fc2/freshclam.log")
    assert state.attempted_at is None  # the refusal carries no time


def test_lock_in_older_words_and_in_the_journal() -> None:
    old = parse_update_log(freshclam("freshclam-locked-0.103.11-clamav-1185.out"), UTC)
    assert old is not None and old.outcome == LOCKED
    assert old.detail == "/var/log/clamav/freshclam.log is locked by another process"
    journal = parse_update_log(freshclam("journal-freshclam-once-locked-gardenlinux-3638.txt"), UTC)
    assert journal is not None and journal.outcome == LOCKED


def test_a_lock_after_a_good_run_is_the_latest_word_and_keeps_the_success() -> None:
    good = freshclam("freshclam-log-up-to-date-1.4-topgrade-1239.log")
    locked = freshclam("journal-freshclam-once-locked-gardenlinux-3638.txt")
    state = parse_update_log(good + locked, UTC)
    assert state is not None and state.outcome == LOCKED
    assert state.succeeded_at == datetime(2025, 7, 28, 17, 10, 45, tzinfo=UTC)


def test_a_failure_after_a_success_keeps_the_success_date() -> None:
    good = freshclam("freshclam-log-up-to-date-1.4-topgrade-1239.log")
    failed = freshclam("freshclam-log-update-failed-offline-debian12.log")
    state = parse_update_log(good + failed, UTC)
    assert state is not None and state.outcome == FAILED
    assert state.succeeded_at == datetime(2025, 7, 28, 17, 10, 45, tzinfo=UTC)
    assert state.attempted_at == datetime(2026, 12, 2, 20, 32, 22, tzinfo=UTC)
    # The latest word is the last in the text (a log only grows at its end), whatever the
    # dates of these two machines' recordings say.
    later = parse_update_log(failed + good, UTC)
    assert later is not None and later.outcome == OK


def test_a_tail_cut_in_the_middle_of_a_line() -> None:
    text = freshclam("freshclam-log-update-failed-offline-debian12.log")
    state = parse_update_log(text[len(text) // 2 :], UTC)
    assert state is not None and state.outcome == FAILED


def test_no_attempt_at_all() -> None:
    assert parse_update_log("", UTC) is None
    assert parse_update_log(fixture_text("os_release/os-release-debian12"), UTC) is None


# --- freshclam.conf and /etc/localtime --------------------------------------------------


def test_debian_freshclam_conf() -> None:
    config = parse_freshclam_conf(freshclam("freshclam-conf-debian12.conf"))
    assert config.update_log_file == "/var/log/clamav/freshclam.log"
    assert config.database_directory == "/var/lib/clamav"


def test_freshclam_conf_without_a_log_and_the_unedited_sample() -> None:
    text = freshclam("freshclam-conf-debian12.conf")
    no_log = "\n".join(line for line in text.splitlines() if not line.startswith("UpdateLogFile"))
    assert parse_freshclam_conf(no_log).update_log_file is None
    with pytest.raises(ParseError):
        parse_freshclam_conf("# the sample file\nExample\n" + text)


def test_tzif_zone() -> None:
    zone = parse_tzif(fixture_bytes("localtime/Asia-Shanghai.tzif"))
    assert datetime(2026, 1, 15, tzinfo=zone).utcoffset() == timedelta(hours=8)
    with pytest.raises(ParseError):
        parse_tzif(b"Etc/UTC\n")
    with pytest.raises(ParseError):
        parse_tzif(fixture_bytes("localtime/Asia-Shanghai.tzif")[:20])


# --- mdatp health -----------------------------------------------------------------------


def test_mdatp_healthy_ubuntu_protects() -> None:
    health = parse_mdatp_health(fixture_text("mdatp/mdatp-health-ubuntu2004.out"))
    assert health.real_time_protection is True
    assert health.real_time_protection_subsystem == "fanotify"
    assert health.passive_mode is False and health.licensed is True
    assert health.health_issues == () and health.problems() == []
    assert health.product_expiration == datetime(2024, 4, 10, 13, 34, 28, tzinfo=UTC)


def test_mdatp_missing_license_on_a_real_ubuntu_vm() -> None:
    # The "ATTENTION:" banner line is not a field; org_id prints a bare "unavailable".
    health = parse_mdatp_health(fixture_text("mdatp/mdatp-health-missing-license-ubuntu.out"))
    assert health.healthy is False and health.licensed is False
    assert health.health_issues == ("missing license",)
    assert health.problems() == ["missing license"]  # not repeated as "not licensed"
    assert health.real_time_protection is None  # no real-time field printed


def test_mdatp_unavailable_on_a_mac_lists_its_issues() -> None:
    # Microsoft's page, with curly quotes and "..." elisions.
    health = parse_mdatp_health(fixture_text("mdatp/mdatp-health-macos-unavailable.out"))
    assert health.real_time_protection is None  # "unavailable" is not a yes or a no
    assert health.health_issues == (
        "no active event provider",
        "network event provider not running",
        "full disk access has not been granted",
    )


def test_mdatp_enabled_but_not_available_is_not_protecting() -> None:
    health = parse_mdatp_health(
        (MACOS / "mdatp/mdatp-health-macos-kext-enabled-not-available.out").read_text()
    )
    assert health.real_time_protection_enabled is True
    assert health.real_time_protection_available is False
    assert health.real_time_protection is False
    assert health.problems() == ["real-time protection enabled but not available"]


def test_mdatp_healthy_mac_with_endpoint_security_extension() -> None:
    health = parse_mdatp_health(
        (MACOS / "mdatp/mdatp-health-macos-healthy-tamper-block.out").read_text()
    )
    assert health.real_time_protection is True and health.problems() == []
    assert health.real_time_protection_subsystem == "endpoint_security_extension"
    assert health.definitions_updated == datetime(2022, 7, 6, 13, 57, 3, tzinfo=UTC)
    assert health.definitions_up_to_date is True


def test_mdatp_passive_or_unavailable_subsystem_is_off() -> None:
    # No public recording shows passive mode or a subsystem "unavailable", so the rule is
    # tested on the parsed fields of the healthy Mac (data, not a made-up mdatp output).
    healthy = parse_mdatp_health(
        (MACOS / "mdatp/mdatp-health-macos-healthy-tamper-block.out").read_text()
    )
    passive = replace(healthy, passive_mode=True)
    assert passive.real_time_protection is False
    assert passive.problems() == ["passive mode: detects but does not block or remediate"]
    no_subsystem = replace(healthy, real_time_protection_subsystem="unavailable")
    assert no_subsystem.real_time_protection is False
    assert no_subsystem.problems() == ["real-time protection subsystem unavailable"]
    unlicensed = replace(healthy, licensed=False)
    assert unlicensed.problems() == ["not licensed (not onboarded to a tenant)"]
    unhealthy = replace(healthy, healthy=False)
    assert unhealthy.problems() == ["mdatp reports the product unhealthy"]


def test_mdatp_rejects_other_text() -> None:
    with pytest.raises(ParseError):
        parse_mdatp_health(freshclam("freshclam-locked-0.103.11-clamav-1185.out"))

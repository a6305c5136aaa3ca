"""macOS OS-updates sources on real recordings: the Software Update preferences
(`defaults read /Library/Preferences/com.apple.SoftwareUpdate`), the install history
(`softwareupdate --history`), and how the updates probe combines them with `softwareupdate -l`.
Each assertion is what a person reading the recording would say; tests/fixtures/macos/README.md
names where every recording came from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.macos.softwareupdate_history import (
    is_os_or_security,
    newest_os_install,
    parse_history,
)
from devposture.agent.parsers.macos.softwareupdate_prefs import domain_missing, parse_prefs
from devposture.agent.probes import ProbeConfig, collect_facts
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import MacReplayHost, fixture, out

PREFS = ("defaults", "read", "/Library/Preferences/com.apple.SoftwareUpdate")
LIST = ("softwareupdate", "-l")
HISTORY = ("softwareupdate", "--history")
KEYS_ABSENT = "defaults/softwareupdate-keys-absent-catalina-marslo-ibook.out"
CRITICAL_OFF = "defaults/softwareupdate-critical-off-yes-string-catalina-ansible-101.out"
ALL_ON = "defaults/softwareupdate-all-on-sequoia-trimmed.out"
DAY_FIRST = "softwareupdate_history/history-sequoia-15.6.1-day-first-cyber-bootcamp.out"
AMBIGUOUS = "softwareupdate_history/history-ventura-13.5.2-month-first-ambiguous.out"
YEAR_FIRST = "softwareupdate_history/history-tahoe-26.5-year-first-zh.out"
NOTHING_PENDING = "softwareupdate/list-none-elcapitan-osxlockdown-27.err"


def text(relative: str) -> str:
    return fixture(relative).decode("utf-8")


# --- defaults read /Library/Preferences/com.apple.SoftwareUpdate ------------------------


def test_keys_absent_take_the_macos_default_which_is_on() -> None:
    prefs = parse_prefs(text(KEYS_ABSENT))
    # Catalina 10.15.7 that never had the Software Update settings changed: neither key exists.
    assert prefs.automatic_check is None and prefs.critical_update_install is None
    assert prefs.defaulted == ("AutomaticCheckEnabled", "CriticalUpdateInstall")
    assert prefs.automatic_updates is True
    assert prefs.last_successful == datetime(2020, 10, 10, 14, 14, 38, tzinfo=UTC)


def test_critical_updates_off_and_a_yes_string_for_the_check() -> None:
    prefs = parse_prefs(text(CRITICAL_OFF))
    # "AutomaticCheckEnabled = YES;" is a string someone wrote: Software Update reads it as on.
    assert prefs.automatic_check is True
    assert prefs.critical_update_install is False
    assert prefs.automatic_updates is False  # checks, but installs no security update itself
    assert prefs.defaulted == ()
    # LastSuccessfulDate, not LastBackgroundSuccessfulDate (a second earlier).
    assert prefs.last_successful == datetime(2021, 2, 23, 7, 52, 51, tzinfo=UTC)


def test_all_on_without_a_last_successful_date() -> None:
    prefs = parse_prefs(text(ALL_ON))
    assert prefs.automatic_check is True and prefs.critical_update_install is True
    assert prefs.automatic_updates is True
    # Nested dictionaries of dates are skipped; the trimmed capture has no LastSuccessfulDate,
    # which is unknown, not the epoch and not one of the nested dates.
    assert prefs.last_successful is None


def test_an_unknown_value_for_a_rule_key_is_not_guessed() -> None:
    # The ansible-101 recording with one value replaced by a word Software Update does not know.
    changed = text(CRITICAL_OFF).replace(
        "AutomaticCheckEnabled = YES;", "AutomaticCheckEnabled = Maybe;"
    )
    with pytest.raises(ParseError):
        parse_prefs(changed)


def test_a_truncated_listing_is_rejected() -> None:
    lines = text(CRITICAL_OFF).splitlines()
    with pytest.raises(ParseError):
        parse_prefs("\n".join(lines[:20]))  # cut inside PrimaryLanguages = ( ... );


@pytest.mark.parametrize("raw", ["", "{", "not a plist", text(NOTHING_PENDING)])
def test_prefs_reject_what_they_do_not_know(raw: str) -> None:
    with pytest.raises(ParseError):
        parse_prefs(raw)


def test_missing_domain_message() -> None:
    # defaults' wording for a domain without a plist, as recorded for another domain (index id
    # 4673313203, "2021-05-27 21:03:51.851 defaults[58215:4039346] Domain ... does not exist").
    assert domain_missing(
        "2021-05-27 21:03:51.851 defaults[58215:4039346]\n"
        "Domain /Library/Preferences/com.apple.SoftwareUpdate does not exist\n"
    )
    assert not domain_missing("")
    assert not domain_missing(text(NOTHING_PENDING))


# --- softwareupdate --history -------------------------------------------------------------


def test_day_first_history_counts_the_macos_update_not_the_command_line_tools() -> None:
    entries = parse_history(text(DAY_FIRST))
    assert [(e.name, e.version) for e in entries] == [
        ("Command Line Tools for Xcode", "14.2"),
        ("Command Line Tools for Xcode", "14.3"),
        ("macOS Sequoia 15.6.1", "15.6.1"),
    ]
    assert [is_os_or_security(e) for e in entries] == [False, False, True]
    # "28/08/2025" can only be day first, so the whole table is read day first.
    assert newest_os_install(entries) == datetime(2025, 8, 28, 2, 1, 8, tzinfo=UTC)


def test_ambiguous_order_is_read_when_the_answer_does_not_depend_on_it() -> None:
    entries = parse_history(text(AMBIGUOUS))
    # Every date fits both orders; the newest macOS install, "09/09/2023", is the same in both.
    assert [e.name for e in entries if is_os_or_security(e)] == [
        "macOS Ventura 13.5.1",
        "macOS Ventura 13.5.2",
    ]
    assert newest_os_install(entries) == datetime(2023, 9, 9, 17, 1, 19, tzinfo=UTC)


def test_ambiguous_order_that_changes_the_answer_is_an_error() -> None:
    # The same recording as it read before 13.5.2 was installed (header and first row only):
    # "09/02/2023" is 2 September or 9 February, and nothing in the output says which.
    lines = text(AMBIGUOUS).splitlines()[:3]
    entries = parse_history("\n".join(lines) + "\n")
    assert [e.name for e in entries] == ["macOS Ventura 13.5.1"]
    with pytest.raises(ParseError):
        newest_os_install(entries)


def test_year_first_history_takes_the_upgrade_an_hour_after_the_update() -> None:
    entries = parse_history(text(YEAR_FIRST))
    assert len(entries) == 4
    assert entries[3].name == "macOS Tahoe 26.5" and entries[3].version == "26.5"
    assert newest_os_install(entries) == datetime(2026, 6, 1, 1, 20, 10, tzinfo=UTC)


def test_a_history_of_header_only_has_no_last_install() -> None:
    header = "\n".join(text(DAY_FIRST).splitlines()[:2]) + "\n"
    assert parse_history(header) == []
    assert newest_os_install([]) is None


@pytest.mark.parametrize(
    "raw", ["", "No history\n", text(NOTHING_PENDING), text(KEYS_ABSENT)], ids=range(4)
)
def test_history_rejects_what_it_does_not_know(raw: str) -> None:
    with pytest.raises(ParseError):
        parse_history(raw)


# --- the updates probe on a replayed Mac ----------------------------------------------------


def _mac(**commands: tuple[int, bytes, bytes]) -> MacReplayHost:
    host = MacReplayHost()
    host.with_tool("defaults").with_tool("softwareupdate")
    names = {"prefs": PREFS, "swu": LIST, "history": HISTORY}
    for name, recording in commands.items():
        host.commands[names[name]] = recording
    return host


def _updates(host: MacReplayHost) -> tuple[pb.PostureReport, list[pb.ProbeError]]:
    report = pb.PostureReport()
    collect_facts(host, ProbeConfig(network_hash_key=b"k"), report)
    return report, [e for e in report.errors if e.fact == pb.FACT_OS_UPDATES]


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def test_preferences_are_read_before_softwareupdate_rescans() -> None:
    host = _mac(
        prefs=out(KEYS_ABSENT),
        swu=(0, b"", fixture(NOTHING_PENDING)),
        history=out(DAY_FIRST),
    )
    report, errors = _updates(host)
    assert errors == []
    calls = [c for c in host.calls if c in (PREFS, LIST, HISTORY)]
    # `softwareupdate -l` rewrites LastSuccessfulDate; read after it, it would be the probe's.
    assert calls.index(PREFS) < calls.index(LIST)
    updates = report.os_updates
    assert updates.source == "softwareupdate" and updates.pending_security == 0
    assert updates.automatic_updates and updates.last_checked.seconds == _utc(
        2020, 10, 10, 14, 14, 38
    )
    assert updates.last_installed.seconds == _utc(2025, 8, 28, 2, 1, 8)


def test_missing_preferences_domain_is_no_source_not_off() -> None:
    # The missing-domain wording as recorded for another domain (see test_missing_domain_message).
    missing = (
        b"2021-05-27 21:03:51.851 defaults[58215:4039346]\n"
        b"Domain /Library/Preferences/com.apple.SoftwareUpdate does not exist\n"
    )
    host = _mac(
        prefs=(1, b"", missing), swu=(0, b"", fixture(NOTHING_PENDING)), history=out(YEAR_FIRST)
    )
    report, errors = _updates(host)
    (err,) = errors
    assert err.code == pb.PROBE_ERROR_CODE_NO_SOURCE and err.source == "com.apple.SoftwareUpdate"
    updates = report.os_updates
    assert not updates.HasField("automatic_updates")  # unknown, not false
    assert not updates.HasField("last_checked")
    assert updates.pending_total == 0 and updates.last_installed.seconds == _utc(
        2026, 6, 1, 1, 20, 10
    )


def test_defaults_failing_otherwise_is_command_failed() -> None:
    host = _mac(prefs=(1, b"", b""), swu=(0, b"", fixture(NOTHING_PENDING)), history=out(DAY_FIRST))
    report, errors = _updates(host)
    (err,) = errors
    assert (
        err.code == pb.PROBE_ERROR_CODE_COMMAND_FAILED and err.source == "com.apple.SoftwareUpdate"
    )
    assert not report.os_updates.HasField("automatic_updates")


def test_undecidable_history_is_a_parse_error_for_that_source_only() -> None:
    first_row = "\n".join(text(AMBIGUOUS).splitlines()[:3]) + "\n"
    host = _mac(
        prefs=out(CRITICAL_OFF),
        swu=(0, b"", fixture(NOTHING_PENDING)),
        history=(0, first_row.encode(), b""),
    )
    report, errors = _updates(host)
    (err,) = errors
    assert err.code == pb.PROBE_ERROR_CODE_PARSE_ERROR and err.source == "softwareupdate --history"
    updates = report.os_updates
    assert not updates.HasField("last_installed")
    assert updates.HasField("automatic_updates") and not updates.automatic_updates


def test_no_source_readable_gives_no_fact() -> None:
    host = MacReplayHost()  # neither defaults nor softwareupdate installed
    report, errors = _updates(host)
    assert not report.HasField("os_updates")
    assert {(e.source, e.code) for e in errors} == {
        ("com.apple.SoftwareUpdate", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
        ("softwareupdate", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
        ("softwareupdate --history", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND),
    }

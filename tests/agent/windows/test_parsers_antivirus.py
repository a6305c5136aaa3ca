"""Security Center's productState bit field and Defender's status, from real outputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.defender import (
    parse_mp_computer_status,
    signatures_updated_at,
)
from devposture.agent.parsers.windows.security_center import (
    decode_product_state,
    parse_antivirus_products,
)
from devposture.agent.parsers.windows.text import decode_output
from tests.agent.windows.replay_windows import EN_US_CULTURE, PACIFIC, fixture, one_run


def text(name: str) -> str:
    return decode_output(fixture(name), "cp437")


def run_text(*names: str) -> str:
    """The Defender probe's output put together from recordings (see one_run)."""
    return decode_output(one_run(*names)[1], "cp437")


@pytest.mark.parametrize(
    ("value", "scanner", "microsoft", "fresh"),
    [
        (397568, "on", True, True),  # 0x061100 Defender on
        (393472, "off", True, True),  # 0x060100 Defender off, another product took over
        (266240, "on", False, True),  # 0x041000 third-party on
        (266256, "on", False, False),  # 0x041010 third-party on, signatures out of date
        (262144, "off", False, True),  # 0x040000 third-party off
        (270336, "snoozed", False, True),  # 0x042000
        (274432, "expired", False, True),  # 0x043000
    ],
)
def test_product_state_is_decoded_as_a_bit_field(
    value: int, scanner: str, microsoft: bool, fresh: bool
) -> None:
    state = decode_product_state(value)
    assert (state.scanner, state.microsoft, state.signatures_up_to_date) == (
        scanner,
        microsoft,
        fresh,
    )


@pytest.mark.parametrize("value", [0x064100, 0x061120, 0x061101, 0x1000000, -1])
def test_unexplained_bits_are_an_error(value: int) -> None:
    with pytest.raises(ParseError):
        decode_product_state(value)


def test_defender_alone() -> None:
    (defender,) = parse_antivirus_products(
        text("security_center/cim-antivirusproduct-defender-only.txt")
    )
    assert defender.name == "Windows Defender" and defender.state.scanner == "on"


def test_two_products_third_party_on_and_defender_off() -> None:
    s1, defender = parse_antivirus_products(
        text("security_center/cim-antivirusproduct-sentinelone-and-defender.txt")
    )
    assert (s1.name, s1.state.scanner, s1.state.microsoft) == ("Sentinel Agent", "on", False)
    assert (defender.name, defender.state.scanner) == ("Windows Defender", "off")


def test_utf16_copy_gives_the_same_products() -> None:
    plain = parse_antivirus_products(
        text("security_center/cim-antivirusproduct-bitdefender-and-defender.txt")
    )
    utf16 = parse_antivirus_products(
        text("security_center/cim-antivirusproduct-bitdefender-and-defender.utf16le-bom-crlf.txt")
    )
    assert plain == utf16 and [p.name for p in plain] == [
        "Bitdefender Antivirus",
        "Windows Defender",
    ]


@pytest.mark.parametrize("copy", ["utf8", "cp936-crlf"])
def test_huorong_on_a_chinese_machine(copy: str) -> None:
    # 火绒 (Huorong) took over from Defender: a Chinese product name, read from the GBK console.
    name = f"security_center/cim-antivirusproduct-zh-huorong-and-defender.{copy}.txt"
    defender, huorong = parse_antivirus_products(decode_output(fixture(name), "cp936"))
    assert (huorong.name, huorong.state.raw, huorong.state.scanner) == (
        "火绒安全软件",
        266240,
        "on",
    )
    assert not huorong.state.microsoft and huorong.state.signatures_up_to_date
    assert (defender.name, defender.state.scanner) == ("Windows Defender", "off")


def test_no_product_registered_and_broken_objects() -> None:
    assert parse_antivirus_products("\n\n") == []
    with pytest.raises(ParseError):
        parse_antivirus_products("displayName : X\nproductState : on\n")


def test_defender_healthy_per_microsoft_docs_example() -> None:
    # Microsoft's docs for all three parts: en-US culture, Pacific time, the status.
    status = parse_mp_computer_status(
        run_text(EN_US_CULTURE, PACIFIC, "defender/mpcomputerstatus-msdocs-healthy.txt")
    )
    assert status.service_enabled and status.antivirus_enabled and status.real_time_protection
    assert status.signature_version == "1.413.102.0" and status.signatures_out_of_date is False
    # "6/4/2024 8:06:27 AM" read with M/d/yyyy h:mm:ss tt, minus the standard offset -08:00.
    assert signatures_updated_at(status) == datetime(2024, 6, 4, 16, 6, 27, tzinfo=UTC)


def test_defender_status_alone_has_no_readable_date() -> None:
    # The output as recorded alone, without the machine's patterns: nothing says whether
    # 6/4/2024 is June or April there, so the date is refused; the status is still read.
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-msdocs-healthy.txt"))
    assert status.real_time_protection and status.signatures_updated == "6/4/2024 8:06:27 AM"
    with pytest.raises(ParseError, match="pattern was not printed"):
        signatures_updated_at(status)


def test_defender_not_running_has_no_signatures() -> None:
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-not-running.txt"))
    assert not status.service_enabled and not status.antivirus_enabled
    assert status.real_time_protection is False and status.running_mode == "Not running"
    assert status.signature_version == "" and status.signatures_updated == ""
    assert signatures_updated_at(status) is None  # no signatures: no date, and no error


def test_defender_with_278_day_old_signatures() -> None:
    # No time zone printed: the local time is taken as UTC (the documented fallback).
    status = parse_mp_computer_status(
        run_text(EN_US_CULTURE, "defender/mpcomputerstatus-signatures-278-days.txt")
    )
    assert status.signature_version == "1.409.717.0"
    assert signatures_updated_at(status) == datetime(2024, 5, 6, 1, 9, 46, tzinfo=UTC)


def test_defender_output_cut_short_leaves_realtime_unknown() -> None:
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-htb-truncated.txt"))
    assert status.antivirus_enabled and status.real_time_protection is None


def test_chinese_status_realtime_off() -> None:
    # The zh-CN date itself is read in test_local_dates (no zh-CN culture printout was found).
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-zh-cn-realtime-off.txt"))
    assert status.antivirus_enabled and status.real_time_protection is False
    assert status.signatures_updated == "2025/10/16 15:07:36"


def test_defender_output_missing_the_essentials_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_mp_computer_status("AMRunningMode : Normal\n")
    with pytest.raises(ParseError):
        parse_mp_computer_status("AMServiceEnabled : Yes\nAntivirusEnabled : True\n")

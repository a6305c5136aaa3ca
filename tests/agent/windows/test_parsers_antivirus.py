"""Security Center's productState bit field and Defender's status, from real outputs."""

from __future__ import annotations

import pytest

from agent.parsers import ParseError
from agent.parsers.windows.defender import parse_mp_computer_status
from agent.parsers.windows.local_dates import parse_local_datetime
from agent.parsers.windows.security_center import decode_product_state, parse_antivirus_products
from agent.parsers.windows.text import decode_output
from tests.agent.windows.replay_windows import fixture


def text(name: str) -> str:
    return decode_output(fixture(name), "cp437")


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


def test_no_product_registered_and_broken_objects() -> None:
    assert parse_antivirus_products("\n\n") == []
    with pytest.raises(ParseError):
        parse_antivirus_products("displayName : X\nproductState : on\n")


def test_defender_healthy_per_microsoft_docs_example() -> None:
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-msdocs-healthy.txt"))
    assert status.service_enabled and status.antivirus_enabled and status.real_time_protection
    assert status.signature_version == "1.413.102.0" and status.signatures_out_of_date is False
    updated = parse_local_datetime(status.signatures_updated, status.date_order)
    assert updated.isoformat() == "2024-06-04T08:06:27"


def test_defender_not_running_has_no_signatures() -> None:
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-not-running.txt"))
    assert not status.service_enabled and not status.antivirus_enabled
    assert status.real_time_protection is False and status.running_mode == "Not running"
    assert status.signature_version == "" and status.signatures_updated == ""


def test_defender_with_278_day_old_signatures() -> None:
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-signatures-278-days.txt"))
    assert status.signature_version == "1.409.717.0"
    assert parse_local_datetime(
        status.signatures_updated, status.date_order
    ).date().isoformat() == ("2024-05-06")


def test_defender_output_cut_short_leaves_realtime_unknown() -> None:
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-htb-truncated.txt"))
    assert status.antivirus_enabled and status.real_time_protection is None


def test_chinese_culture_dates_and_realtime_off() -> None:
    status = parse_mp_computer_status(text("defender/mpcomputerstatus-zh-cn-realtime-off.txt"))
    assert status.antivirus_enabled and status.real_time_protection is False
    updated = parse_local_datetime(status.signatures_updated, status.date_order)
    assert updated.isoformat() == "2025-10-16T15:07:36"


def test_defender_output_missing_the_essentials_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_mp_computer_status("AMRunningMode : Normal\n")
    with pytest.raises(ParseError):
        parse_mp_computer_status("AMServiceEnabled : Yes\nAntivirusEnabled : True\n")

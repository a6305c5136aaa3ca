"""Windows dates read with the machine's own patterns and time zone, on real printouts of
(Get-Culture).DateTimeFormat, Get-TimeZone and Get-MpComputerStatus from several cultures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.defender import parse_mp_computer_status
from devposture.agent.parsers.windows.dotnet_pattern import Designators, compile_pattern
from devposture.agent.parsers.windows.listformat import parse_list
from devposture.agent.parsers.windows.local_dates import DateFormat, date_format, local_zone, to_utc
from devposture.agent.parsers.windows.psjson import json_datetime
from devposture.agent.parsers.windows.text import decode_output
from tests.agent.windows.replay_windows import CHINA, EN_US_CULTURE, PACIFIC, fixture

EN_IN_2022 = "defender/mpcomputerstatus-en-in-win11-22h2-2022.txt"
EN_IN_2023 = "defender/mpcomputerstatus-en-in-win11-22h2-2023.txt"
ZH_CN = "defender/mpcomputerstatus-zh-cn-realtime-off.txt"

# No public printout of (Get-Culture).DateTimeFormat from an en-IN or a zh-CN machine was found,
# so these two are given as data, from public statements of the patterns:
# en-IN day first, "dd-MM-yyyy hh:mm:ss tt": the en-IN recordings' own author says "02-10-2023
# equals to 2nd October 2023" (MicrosoftDocs/windows-powershell-docs commit 251c0188), and their
# dates show two-digit days, hours with a leading zero and AM/PM ("18-10-2022 09:18:29 AM").
EN_IN = DateFormat("dd-MM-yyyy", "hh:mm:ss tt", Designators("AM", "PM"), "-", ":")
# zh-CN "yyyy/M/d H:mm:ss": Microsoft's "Standard date and time format strings" gives the "G"
# example "2009/6/15 13:45:30 (zh-CN)"; the zh-CN recording prints "2023/6/6 15:36:11".
ZH_CN_FORMAT = DateFormat("yyyy/M/d", "H:mm:ss", Designators("上午", "下午"), "/", ":")


def records(name: str) -> list[dict[str, str]]:
    return parse_list(decode_output(fixture(name), "utf-8"))


def signature_text(name: str) -> str:
    return parse_mp_computer_status(decode_output(fixture(name), "utf-8")).signatures_updated


# --- the culture printout -------------------------------------------------------------------


def test_en_us_printout_gives_month_first_and_a_12_hour_clock() -> None:
    fmt = date_format(records(EN_US_CULTURE))
    assert fmt is not None
    assert (fmt.short_date, fmt.long_time) == ("M/d/yyyy", "h:mm:ss tt")
    assert fmt.designators == Designators("AM", "PM") and fmt.date_separator == "/"
    assert fmt.read("6/4/2024 8:06:27 PM") == datetime(2024, 6, 4, 20, 6, 27)
    # A day-first date cannot pass for a US one: 18 is no month.
    with pytest.raises(ParseError):
        fmt.read("18-10-2022 09:18:29 AM")


def test_french_printout_has_empty_designators_and_a_24_hour_clock() -> None:
    fmt = date_format(records("culture/datetimeformat-fr-fr.txt"))
    assert fmt is not None and (fmt.short_date, fmt.long_time) == ("dd/MM/yyyy", "HH:mm:ss")
    assert fmt.designators == Designators("", "")
    assert fmt.read("04/06/2024 08:06:27") == datetime(2024, 6, 4, 8, 6, 27)


def test_a_printout_cut_before_am_designator_knows_no_am_pm() -> None:
    # The published ru-RU copy starts at DateSeparator: AMDesignator is not known, PMDesignator
    # is empty. A 24-hour pattern still reads; a 12-hour one could not.
    fmt = date_format(records("culture/datetimeformat-ru-ru-cut.txt"))
    assert fmt is not None and fmt.designators == Designators(None, "")
    assert fmt.date_separator == "." and fmt.short_date == "dd.MM.yyyy"
    assert fmt.read("16.10.2025 15:07:35") == datetime(2025, 10, 16, 15, 7, 35)
    with pytest.raises(ParseError, match="designators"):
        compile_pattern("h:mm:ss tt d.M.yyyy", fmt.designators)


def test_a_user_pattern_with_month_names_and_two_digit_years_is_refused() -> None:
    # A real machine set to "dd-MMM-yy": month names are cut from the printout ({Jan, Feb, ...})
    # and "23" could be 1923 or 2023. The date is refused, not guessed.
    fmt = date_format(records("culture/datetimeformat-custom-dd-mmm-yy.txt"))
    assert fmt is not None and fmt.short_date == "dd-MMM-yy"
    with pytest.raises(ParseError, match="month names"):
        fmt.read("05-Mar-23 14:02:11")
    with pytest.raises(ParseError, match="century"):
        compile_pattern("dd-MM-yy", fmt.designators)


def test_no_printout_is_no_format() -> None:
    assert date_format(records(PACIFIC)) is None


# --- recorded Defender dates read with their culture ----------------------------------------


def test_en_in_2023_reads_2_october_not_10_february() -> None:
    text = signature_text(EN_IN_2023)
    assert text == "02-10-2023 12:11:37 PM"
    assert EN_IN.read(text) == datetime(2023, 10, 2, 12, 11, 37)


def test_en_in_2022_day_first_with_a_leading_zero_hour() -> None:
    assert EN_IN.read(signature_text(EN_IN_2022)) == datetime(2022, 10, 18, 9, 18, 29)


def test_zh_cn_year_first_24_hour_and_china_time() -> None:
    local = ZH_CN_FORMAT.read(signature_text(ZH_CN))
    assert local == datetime(2025, 10, 16, 15, 7, 36)
    zone = local_zone(records(CHINA))
    assert to_utc(local, zone) == datetime(2025, 10, 16, 7, 7, 36, tzinfo=UTC)


# --- the time zone --------------------------------------------------------------------------


def test_china_has_no_daylight_saving_so_the_offset_is_exact() -> None:
    zone = local_zone(records(CHINA))
    assert zone is not None and zone.zone_id == "China Standard Time"
    assert zone.base_offset == timedelta(hours=8) and not zone.observes_dst


def test_pacific_standard_offset_is_used_in_summer_too() -> None:
    # The printout gives the standard offset only; a June time comes out an hour late
    # (documented in local_dates). Asserted so that a change of this rule is noticed.
    zone = local_zone(records(PACIFIC))
    assert zone is not None and zone.base_offset == -timedelta(hours=8) and zone.observes_dst
    june = to_utc(datetime(2024, 6, 4, 8, 6, 27), zone)
    assert june == datetime(2024, 6, 4, 16, 6, 27, tzinfo=UTC)


def test_no_zone_takes_local_time_as_utc_and_odd_offsets_are_errors() -> None:
    assert to_utc(datetime(2024, 6, 4, 8, 6, 27), None).tzinfo == UTC
    odd = parse_list("BaseUtcOffset : eight hours\nSupportsDaylightSavingTime : False\n")
    with pytest.raises(ParseError):
        local_zone(odd)
    half = parse_list("BaseUtcOffset : -03:30:00\nSupportsDaylightSavingTime : True\n")
    zone = local_zone(half)
    assert zone is not None and zone.base_offset == -timedelta(hours=3, minutes=30)


# --- the pattern reader ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "marks", "value", "expected"),
    [
        ("M/d/yyyy h:mm:ss tt", ("AM", "PM"), "12/31/1600 4:00:00 PM", datetime(1600, 12, 31, 16)),
        ("M/d/yyyy h:mm:ss tt", ("AM", "PM"), "1/1/1601 12:00:00 AM", datetime(1601, 1, 1)),
        (
            "d/MM/yyyy hh:mm:ss tt",
            ("a. m.", "p. m."),
            "8/02/2020 12:00:00 a. m.",
            datetime(2020, 2, 8),
        ),
        ("d.M.yyyy. H:mm:ss", ("", ""), "18.10.2022. 9:18:29", datetime(2022, 10, 18, 9, 18, 29)),
        (
            "yyyy'年'M'月'd'日' H:mm:ss",
            ("", ""),
            "2025年10月16日 15:07:36",
            datetime(2025, 10, 16, 15, 7, 36),
        ),
        ("ddd dd/MM/yyyy HH:mm", ("", ""), "Mon 03/06/2024 08:06", datetime(2024, 6, 3, 8, 6)),
    ],
)
def test_pattern_reader(
    pattern: str, marks: tuple[str, str], value: str, expected: datetime
) -> None:
    # Patterns from the printouts above and from .NET's documented specifiers; values as
    # PowerShell prints them ("12/31/1600 4:00:00 PM" and "8/02/2020 12:00:00 a. m." are in the
    # recorded outputs).
    assert compile_pattern(pattern, Designators(*marks)).read(value) == expected


def test_pattern_reader_refusals() -> None:
    twelve_hours_no_marker = compile_pattern("d.M.yyyy h:mm:ss tt", Designators("", ""))
    with pytest.raises(ParseError, match="AM/PM"):
        twelve_hours_no_marker.read("1.2.2024 3:04:05")
    with pytest.raises(ParseError, match="calendar"):
        compile_pattern("dd/MM/yyyy", Designators("", "")).read("31/02/2024")
    with pytest.raises(ParseError, match="does not match"):
        compile_pattern("dd/MM/yyyy", Designators("", "")).read("2024-02-01")
    with pytest.raises(ParseError, match="not read"):
        compile_pattern("gg y/M/d", Designators("", ""))


# --- ConvertTo-Json dates -------------------------------------------------------------------


def test_json_dates() -> None:
    assert json_datetime("/Date(1567807200000)/") == datetime(2019, 9, 6, 22, tzinfo=UTC)
    assert json_datetime({"value": "/Date(0)/", "DateTime": "x"}) == datetime(
        1970, 1, 1, tzinfo=UTC
    )
    # FILETIME zero (1601), as Defender prints for a date never set: before 1970, still exact.
    assert json_datetime("/Date(-11644473600000)/") == datetime(1601, 1, 1, tzinfo=UTC)
    assert json_datetime(None) is None and json_datetime("") is None
    with pytest.raises(ParseError):
        json_datetime(1567807200000)

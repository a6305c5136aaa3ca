"""The company's time zone: the policy's `time_zone` setting, and how the collector shows stored
UTC and reads typed dates in it (collector/company_time.py). Time is data here: every moment
is written out, none is read from the clock."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devposture.agent.employee.company_time import stamp as agent_stamp
from devposture.collector.company_time import (
    NotATime,
    offset_label,
    shown,
    stamp,
    typed,
    zone_of,
)
from devposture.policy import PolicyError, default_policy, default_policy_text, parse_policy
from devposture.policy.cli_messages import Said, said
from tests.collector.test_policy import BIN, _line

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def test_the_default_policy_is_in_beijing_time() -> None:
    assert default_policy().time_zone == "Asia/Shanghai"
    without = "\n".join(
        line for line in default_policy_text().splitlines() if not line.startswith("time_zone")
    )
    assert parse_policy(without).time_zone == "Asia/Shanghai"  # the key is optional
    assert shown(utc(2026, 12, 3, 8, 38), zone_of(None)) == "2026-12-03 16:38 (UTC+08:00)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"Asia/Shangai"', "'Asia/Shangai' is not a time zone name: write an IANA name such as"),
        ('"+08:00"', "'+08:00' is not a time zone name"),
        ('"../etc/passwd"', "'../etc/passwd' is not a time zone name"),
        ("8", 'must be a text such as "Asia/Shanghai", not 8'),
    ],
)
def test_a_time_zone_that_is_not_one_is_refused_naming_its_line_and_the_fix(
    value: str, message: str
) -> None:
    text = default_policy_text().replace('time_zone = "Asia/Shanghai"', f"time_zone = {value}")
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "policy.toml")
    line = _line(text, "time_zone =")
    assert refused.value.problems[0][0] == line
    assert f"policy.toml:{line}: time_zone: {message}" in str(refused.value)
    # In Chinese from the catalog, each problem on its line; the English carries none of it.
    assert f"policy.toml 第 {line} 行：time_zone：" in refused.value.worded("zh")
    assert "时区" in refused.value.worded("zh") and "时区" not in str(refused.value)


def test_policy_check_refuses_a_misspelt_zone_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    text = default_policy_text().replace('"Asia/Shanghai"', '"Asia/Chongqin"')
    bad.write_text(text, encoding="utf-8")
    refused = subprocess.run(
        [str(BIN / "devposture-collector"), "policy", "check", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert f"{bad}:{_line(text, 'time_zone =')}: time_zone: 'Asia/Chongqin'" in refused.stderr
    assert '"Europe/Berlin"' in refused.stderr


def test_a_zone_the_policy_names_is_the_one_times_are_shown_in() -> None:
    text = default_policy_text().replace('"Asia/Shanghai"', '"Europe/Berlin"')
    zone = zone_of(parse_policy(text))
    assert shown(utc(2026, 7, 1, 10), zone) == "2026-07-01 12:00 (UTC+02:00)"  # summer time
    assert shown(utc(2026, 12, 1, 10), zone) == "2026-12-01 11:00 (UTC+01:00)"


def test_stored_utc_is_shown_and_stamped_locally_with_its_offset() -> None:
    moment = utc(2026, 12, 31, 16, 0)
    assert shown(moment, SHANGHAI) == "2027-01-01 00:00 (UTC+08:00)"
    assert stamp(moment, SHANGHAI) == "2027-01-01T00:00:00+08:00"
    assert stamp(None, SHANGHAI) is None
    assert dt.datetime.fromisoformat(stamp(moment, BERLIN) or "") == moment  # exact, read back
    assert offset_label(utc(2026, 3, 29, 0, 59), BERLIN) == "UTC+01:00"
    assert offset_label(utc(2026, 3, 29, 1, 0), BERLIN) == "UTC+02:00"  # clocks go forward
    assert offset_label(moment, ZoneInfo("Asia/Kolkata")) == "UTC+05:30"
    assert offset_label(moment, ZoneInfo("America/St_Johns")) == "UTC-03:30"


def test_a_time_in_a_chinese_sentence_has_its_offset_in_full_width_brackets() -> None:
    """ "…于 2026-12-05 09:00 (UTC+08:00) 过期" put ASCII brackets inside Chinese words. The
    brackets follow the language the sentence is worded in, wherever it is worded: in this
    process, after the admin port's wire (an older reader gets the English text), and in the
    agent's sentences."""
    moment = shown(utc(2026, 12, 5, 1), SHANGHAI)
    assert (moment, moment.worded("en")) == ("2026-12-05 09:00 (UTC+08:00)",) * 2
    assert moment.worded("zh") == "2026-12-05 09:00（UTC+08:00）"
    sentence = said("the enrollment token expired at {time}", time=moment)
    raw = Said(sentence.english, {"time": moment})  # a time put into parameters as it is
    for one in (sentence, raw, Said.of_data(json.loads(json.dumps(raw.data())))):
        assert one is not None
        assert one.worded("en") == "the enrollment token expired at 2026-12-05 09:00 (UTC+08:00)"
        assert "2026-12-05 09:00（UTC+08:00）" in one.worded("zh")
        assert "2026-12-05 09:00 (UTC+08:00)" not in one.worded("zh")
    older = Said.of_data({"text": sentence.data()["params"]["time"]["text"]})
    assert older is not None and older.worded("zh") == "2026-12-05 09:00 (UTC+08:00)"
    agent = said("valid until {until}.", until=agent_stamp(utc(2026, 12, 5, 1), SHANGHAI))
    assert agent.worded("zh").endswith("2026-12-05 09:00（UTC+08:00）.")


def test_a_bare_date_is_local_midnight_and_an_expiry_date_the_end_of_that_local_day() -> None:
    assert typed("2026-10-01", SHANGHAI) == utc(2026, 9, 30, 16)
    assert typed("2026-12-31", SHANGHAI, end_of_day=True) == utc(2026, 12, 31, 16)
    # Berlin: the day the clocks go forward has 23 hours, the day they go back 25.
    assert typed("2026-03-29", BERLIN) == utc(2026, 3, 28, 23)
    assert typed("2026-03-29", BERLIN, end_of_day=True) == utc(2026, 3, 29, 22)
    assert typed("2026-10-25", BERLIN) == utc(2026, 10, 24, 22)
    assert typed("2026-10-25", BERLIN, end_of_day=True) == utc(2026, 10, 25, 23)


def test_a_typed_time_is_local_unless_it_names_its_offset() -> None:
    assert typed("2026-11-01T09:30", SHANGHAI) == utc(2026, 11, 1, 1, 30)
    assert typed("2026-11-01 09:30", SHANGHAI) == utc(2026, 11, 1, 1, 30)
    # A time is that moment, not the end of a day, even for an expiry.
    assert typed("2026-12-31T18:00", SHANGHAI, end_of_day=True) == utc(2026, 12, 31, 10)
    assert typed("2026-11-01T09:30Z", SHANGHAI) == utc(2026, 11, 1, 9, 30)
    assert typed("2026-11-01T09:30+01:00", SHANGHAI) == utc(2026, 11, 1, 8, 30)
    assert typed("2026-07-01T12:00", BERLIN) == utc(2026, 7, 1, 10)
    # The hour Berlin repeats in October: the first of the two.
    assert typed("2026-10-25T02:30", BERLIN) == utc(2026, 10, 25, 0, 30)


def test_a_time_a_zone_skips_or_a_text_that_is_no_date_is_refused_with_the_forms() -> None:
    with pytest.raises(NotATime, match="does not exist in the company's time zone"):
        typed("2026-03-29T02:30", BERLIN)
    assert typed("2026-03-29T02:30+01:00", BERLIN) == utc(2026, 3, 29, 1, 30)
    with pytest.raises(NotATime, match=r"use 2026-11-01, 2026-11-01T09:30") as refused:
        typed("31/12/2026", SHANGHAI)
    assert "公司时区" in refused.value.worded("zh")  # the English is str(); Chinese when shown

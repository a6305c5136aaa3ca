"""The single enrollment value: what goes in comes out, and any damage is refused as such."""

from __future__ import annotations

import datetime as dt

import pytest

from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import (
    EnrollmentValue,
    EnrollmentValueError,
    looks_like_value,
    parse_enrollment_value,
)

BEIJING = dt.timezone(dt.timedelta(hours=8))
VALUE = EnrollmentValue(
    collectors=(
        CollectorAddress("collector.corp.example", 7443),
        CollectorAddress("10.0.0.9", 7443),
        CollectorAddress("fd00::9", 8443),
    ),
    ca_fingerprint="sha256:" + "ab" * 32,
    token="dpt_0123456789abcdef_" + "x" * 43,
    expires=dt.datetime(2026, 12, 9, 20, 0, tzinfo=BEIJING),
    uses=50,
)


def test_a_value_round_trips_whole() -> None:
    text = VALUE.encode()
    assert text.startswith("dpe1.") and looks_like_value(text)
    assert parse_enrollment_value(text) == VALUE
    # Wrapped by a mail client or a terminal, with a newline at the end: still the same.
    wrapped = "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + "\n"
    assert parse_enrollment_value(wrapped) == VALUE


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_a_value_cut_short_is_refused_as_damaged(cut: int) -> None:
    with pytest.raises(EnrollmentValueError, match="damaged") as refused:
        parse_enrollment_value(VALUE.encode()[:-cut])
    assert VALUE.token not in str(refused.value)


def test_a_changed_character_is_refused_as_damaged() -> None:
    text = VALUE.encode()
    middle = len(text) // 2
    changed = text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :]
    with pytest.raises(EnrollmentValueError, match="damaged"):
        parse_enrollment_value(changed)


def test_a_bare_token_is_not_a_value() -> None:
    assert not looks_like_value(VALUE.token)
    with pytest.raises(EnrollmentValueError, match="starts with dpe1"):
        parse_enrollment_value(VALUE.token)

"""The report payload written out directly (`chain.report_canonical`) is `chain.canonical`
byte for byte: the exporter holds every report row to its chain entry by comparing these
bytes, so a difference would refuse a sound export (or, worse, pass a changed one). And what reads
payloads and bundle lines fast (orjson, pybase64) reads what the standard library read, and
refuses what it refused."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devposture.collector.evidence import bundle, chain

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]), max_size=40
)  # any text but lone surrogates (which neither form can write)
_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(deadline=None)  # no wall clock: the suite passes with both cores busy
@given(
    report_id=_TEXT, device_id=_TEXT, received=_INT, collected=_INT, agent=_TEXT,
    skew=st.none() | _INT, body=st.binary(max_size=64),
)  # fmt: skip
def test_a_report_payload_written_out_equals_its_canonical_form(
    report_id: str, device_id: str, received: int, collected: int, agent: str,
    skew: int | None, body: bytes,
) -> None:  # fmt: skip
    record = chain.report_payload((report_id, device_id, received, collected, agent, skew), body)
    assert chain.report_canonical(record) == chain.canonical(record)


_VALUE = (st.none() | st.booleans() | st.integers() | _TEXT
          | st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip


@settings(deadline=None)
@given(record=st.dictionaries(_TEXT, _VALUE, max_size=8), other=_VALUE)
def test_a_row_is_its_entry_by_orjson_exactly_when_it_is_by_the_canonical_form(
    record: dict[str, object], other: object
) -> None:
    """`is_canonical` (orjson first) says a row is its entry's payload exactly when the
    canonical form does: any text, integers past 64 bits and floats (which orjson writes
    otherwise or not at all) included."""
    written = chain.canonical(record)
    assert chain.is_canonical(record, written)
    changed = {**record, "k" * 41: other}  # a key longer than any the record has
    assert not chain.is_canonical(changed, written)
    assert chain.is_canonical(changed, chain.canonical(changed))


def test_quotes_backslashes_controls_and_chinese_are_escaped_as_canonical_does() -> None:
    record = chain.report_payload(
        ('r"1\\', "设备\n\t\x00\u2028", 5, 4, "1.0 \x7f", -3), b"body"
    )  # fmt: skip
    written = chain.report_canonical(record)
    assert written == chain.canonical(record)
    assert json.loads(written) == record


@settings(deadline=None)  # no wall clock: the suite passes with both cores busy
@given(st.sampled_from([
    ("received_us", True), ("received_us", 1.5), ("clock_skew_ms", "3"),
    ("device_id", None), ("body_sha256", "ab cd"), ("extra", 1),
]))  # fmt: skip
def test_an_odd_record_goes_through_the_general_encoder(change: tuple[str, object]) -> None:
    """A row the database gives with another type (SQLite keeps what was written) or an
    extra field is encoded by `canonical` itself, never by the template."""
    record = chain.report_payload(("r", "d", 5, 4, "1.0", None), b"body")
    record[change[0]] = change[1]
    assert chain.report_canonical(record) == chain.canonical(record)


_JSON = st.recursive(
    st.none() | st.booleans() | _INT | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(deadline=None)  # no wall clock: the suite passes with both cores busy
@given(value=st.dictionaries(_TEXT, _JSON, max_size=6))
def test_a_payload_is_read_as_the_standard_library_reads_it(value: dict[str, object]) -> None:
    """Payloads and chain lines are parsed by orjson (`Entry.record`, `bundle.line_parser`) for
    speed; what they read must be what the standard library reads, for every canonical text."""
    text = chain.canonical(value)
    entry = chain.Entry(1, chain.STATE, 0, "k", text, chain.GENESIS, chain.GENESIS)
    assert entry.record() == json.loads(text) == value
    assert bundle.line_parser(bundle.CHAIN)(text) == json.loads(text)


@pytest.mark.parametrize("text", [b"not JSON", b"{\"a\": 1", b"{\"a\": 1}}", b"\xff{}"])
def test_a_line_that_is_not_json_is_a_value_error_for_either_parser(text: bytes) -> None:
    """The verifier names a line that does not parse (`member_lines.MemberLines`: a ValueError)."""
    for member in (bundle.CHAIN, bundle.REPORTS):
        with pytest.raises(ValueError):
            bundle.line_parser(member)(text)


@settings(deadline=None)  # no wall clock: the suite passes with both cores busy
@given(st.text(alphabet="ABCabc0189+/=\n -_!é", max_size=24) | st.binary(max_size=18).map(
    lambda b: base64.b64encode(b).decode()))  # fmt: skip
def test_a_body_is_decoded_at_least_as_strictly_as_b64decode_validate(text: str) -> None:
    """`bundle.body_of` (pybase64) refuses whatever b64decode(validate=True) refused, and
    decodes to the same bytes what both accept; what the exporter writes it always reads."""
    try:
        expected: bytes | None = base64.b64decode(text, validate=True)
    except ValueError:
        expected = None
    try:
        got: bytes | None = bundle.body_of(text)
    except ValueError:
        got = None
    assert got is None or got == expected
    if expected is not None:
        assert bundle.body_of(bundle.text_of(expected)) == expected
        assert bundle.text_of(expected) == base64.b64encode(expected).decode()

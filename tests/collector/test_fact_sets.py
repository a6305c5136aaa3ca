"""A report body as its own bytes and its fact set (bundle format 5, `evidence/fact_sets.py`):
the chain keeps no fact, a device's hourly reports share one fact set until a fact changes,
and the body is rebuilt byte for byte from the record's own bytes, the fact set and its parts.

The bodies are real serialized PostureReports (tests/e2e/fleet.py's Linux laptop), with the
facts a day changes, as test_fact_parts.py makes them."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devposture.collector.evidence import body_parts, fact_sets
from devposture.v1 import devposture_pb2 as pb
from tests.collector.test_fact_parts import DAY, HOUR, T0, _report

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def _rebuilt(cut: fact_sets.Cut) -> bytes:
    sets, parts = fact_sets.distinct([cut])
    assert list(sets) == [cut.fact_set_sha256()]
    return fact_sets.rebuild(cut.own, sets[cut.fact_set_sha256()], parts.__getitem__)


def test_a_real_report_keeps_only_its_own_fields_and_is_rebuilt_byte_for_byte() -> None:
    body = _report("d" * 32, T0, pending=3)
    cut = fact_sets.cut(body)
    assert _rebuilt(cut) == body
    own = pb.PostureReport.FromString(cut.own)
    assert own.report_id and own.device_id == "d" * 32 and own.collected_at.seconds
    # No fact stays with the record (the chain, never pruned, holds none).
    for fact in ("host", "antivirus", "firewall", "os_updates", "wifi", "chat_backups"):
        assert not own.HasField(fact), fact
    assert not own.errors
    assert len(cut.parts) == len(fact_sets.digests(cut.fact_set)) >= 6


def test_a_devices_hourly_reports_share_one_fact_set_until_a_fact_changes() -> None:
    day = [fact_sets.cut(_report("d" * 32, T0 + k * HOUR)) for k in range(6)]
    assert len({c.fact_set for c in day}) == 1 and len({c.own for c in day}) == 6
    changed = fact_sets.cut(_report("d" * 32, T0 + 7 * HOUR, pending=2))
    next_day = fact_sets.cut(_report("d" * 32, T0 + DAY))
    assert changed.fact_set != day[0].fact_set and next_day.fact_set != day[0].fact_set
    # Only the changed facts are new parts.
    kept = set(fact_sets.digests(day[0].fact_set))
    assert 0 < len(set(fact_sets.digests(changed.fact_set)) - kept) <= 2
    sets, parts = fact_sets.distinct([*day, changed, next_day])
    assert len(sets) == 3
    bodies = [_report("d" * 32, T0 + k * HOUR) for k in range(6)]
    bodies += [_report("d" * 32, T0 + 7 * HOUR, pending=2), _report("d" * 32, T0 + DAY)]
    for body, c in zip(bodies, (*day, changed, next_day), strict=True):
        assert fact_sets.rebuild(c.own, sets[c.fact_set_sha256()], parts.__getitem__) == body


def test_another_devices_report_shares_its_fleet_facts_not_its_fact_set() -> None:
    mine = fact_sets.cut(_report("d" * 32, T0, host="PC-1"))
    theirs = fact_sets.cut(_report("e" * 32, T0, host="PC-2"))
    assert mine.fact_set != theirs.fact_set
    shared = set(fact_sets.digests(mine.fact_set)) & set(fact_sets.digests(theirs.fact_set))
    assert len(shared) >= len(mine.parts) - 2  # the host differs, and the Wi-Fi


def test_a_fact_set_places_parts_by_own_field_not_by_offset() -> None:
    """A longer report id or delivery figure moves every part's offset, not its fact set."""
    a = _report("d" * 32, T0)
    report = pb.PostureReport.FromString(a)
    report.report_id += "-a-much-longer-id"
    report.delivery.coalesced_total = 10**12
    b = report.SerializeToString()
    assert fact_sets.cut(a).fact_set == fact_sets.cut(b).fact_set
    assert _rebuilt(fact_sets.cut(b)) == b


def test_a_body_that_cannot_be_walked_is_one_part_and_no_own_bytes() -> None:
    group = b"\x0a\x02id\x2b\x00\x2c"  # field 5 as a group (wire type 3)
    cut = fact_sets.cut(group)
    assert cut.own == b"" and cut.parts == (group,)
    assert fact_sets.references(cut.fact_set) == [(0, hashlib.sha256(group).digest())]
    assert _rebuilt(cut) == group
    # An own field written twice with a fact between would read back as one run.
    twice = b"\x0a\x01a\x2a\x01h\x0a\x01b"
    assert fact_sets.cut(twice).own == b"" and _rebuilt(fact_sets.cut(twice)) == twice


def test_a_fact_set_that_does_not_fit_its_own_bytes_is_refused() -> None:
    cut = fact_sets.cut(_report("d" * 32, T0))
    _, parts = fact_sets.distinct([cut])
    first_field = cut.own[: 2 + cut.own[1]]  # the report id alone: fewer own fields
    with pytest.raises(ValueError, match="follows own field 4; the report has 1"):
        fact_sets.rebuild(first_field, cut.fact_set, parts.__getitem__)
    with pytest.raises(ValueError, match="not whole fields"):
        fact_sets.rebuild(cut.own[:-1], cut.fact_set, parts.__getitem__)
    with pytest.raises(ValueError, match="not whole references"):
        fact_sets.rebuild(cut.own, cut.fact_set[:-1], parts.__getitem__)
    placed = fact_sets.cut(b"\x2a\x01h\x0a\x01a\x3a\x01w")  # a fact before and after the id
    assert [i for i, _ in fact_sets.references(placed.fact_set)] == [0, 1]
    backwards = placed.fact_set[36:] + placed.fact_set[:36]
    with pytest.raises(ValueError, match="order"):
        fact_sets.references(backwards)
    with pytest.raises(KeyError):
        fact_sets.rebuild(cut.own, cut.fact_set, dict[bytes, bytes]().__getitem__)


def _tag(number: int) -> bytes:
    """A length-delimited field's tag, one byte or two."""
    tag = number << 3 | 2
    return bytes([tag]) if tag < 0x80 else bytes([tag & 0x7F | 0x80, tag >> 7])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.binary(max_size=60)), max_size=12))
def test_any_message_of_length_fields_is_rebuilt_byte_for_byte(
    found: list[tuple[int, bytes]],
) -> None:
    body = b"".join(_tag(number) + bytes([len(value)]) + value for number, value in found)
    cut = fact_sets.cut(body)
    assert _rebuilt(cut) == body
    # Whatever the fields, the own bytes hold own fields only.
    assert {n for n, _, _ in body_parts.field_runs(cut.own)} <= fact_sets.OWN_FIELDS


@pytest.mark.parametrize("report_id", ["", "r", "长" * 60, "x" * 200])
def test_the_ids_prefix_is_fields_1_and_2_as_protobuf_writes_them(report_id: str) -> None:
    device_id = "d" * 32
    written = pb.PostureReport(report_id=report_id, device_id=device_id).SerializeToString()
    prefix = fact_sets.ids_prefix(report_id, device_id)
    # protobuf leaves an empty id out: the prefix then is not the body's start (kept whole).
    assert (written == prefix) == bool(report_id)

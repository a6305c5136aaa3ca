"""The cut of a body from memory (`evidence/repeat_cut.py`) is `body_parts.split`'s, always:
on real reports of a device's backlog, and on any bytes a sender could make around a middle
met before (fronts and backs of any kind, seams that would join runs, bodies that cannot be
walked)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devposture.collector.evidence import body_parts
from devposture.collector.evidence.repeat_cut import MIDDLES_MOST, Pieces, RepeatCut
from devposture.collector.store.base import to_us
from tests.e2e.fleet import posture_report

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

T0 = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)


def _reference(body: bytes) -> Pieces:
    own, parts = body_parts.split(body)
    return Pieces(
        own,
        tuple(o for o, _ in parts),
        tuple(p for _, p in parts),
        tuple(body_parts.digest(p) for _, p in parts),
    )


def _backlog(device_id: str, count: int, host: str = "财务部-PC-07") -> list[bytes]:
    """A device's backlog after an outage: the same facts every hour, each report its own id,
    time and delivery figures (the outbox shrinking as it drains)."""
    reports = []
    for k in range(count):
        at = T0 + dt.timedelta(hours=k)
        report = posture_report(device_id, at, hostname=host)
        report.collected_at.FromDatetime(at)  # the facts' own dates stay the day's
        report.report_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{device_id}/{to_us(at)}"))
        report.delivery.pending_reports = count - k
        report.delivery.pending_bytes = 2_100 * (count - k)
        report.delivery.oldest_pending_at.FromDatetime(T0)
        reports.append(report.SerializeToString(deterministic=True))
    return reports


def test_a_backlog_is_cut_from_memory_after_its_first_report_exactly_as_afresh() -> None:
    cutter = RepeatCut()
    backlog = _backlog("d" * 32, 64)
    assert len({b[-40:] for b in backlog}) > 1  # the delivery figures differ
    for body in backlog:
        assert cutter.cut(body) == _reference(body)
    # Each day's first report is cut afresh: the facts carry the day's dates.
    days = {(T0 + dt.timedelta(hours=k)).date() for k in range(64)}
    assert cutter.repeats == 64 - len(days) and len(days) == 4
    pieces = cutter.cut(backlog[5])
    assert len(pieces.parts) >= 4  # host, antivirus, firewall, backups...
    assert body_parts.put_together(pieces.own, pieces.offsets, pieces.parts) == backlog[5]


def test_another_devices_facts_or_a_changed_fact_are_not_taken_for_a_repeat() -> None:
    cutter = RepeatCut()
    first = _backlog("d" * 32, 1)[0]
    other = _backlog("d" * 32, 1, host="财务部-PC-08")[0]
    cutter.cut(first)
    changed = bytearray(first)
    changed[len(first) // 2] ^= 0x01  # a byte inside the facts (a string's character)
    for body in (other, bytes(changed)):
        assert cutter.cut(body) == _reference(body)
    assert cutter.repeats == 0


def test_memory_is_bounded() -> None:
    cutter = RepeatCut(most=8)
    bodies = [_backlog(f"{k:032x}", 1)[0] for k in range(20)]
    for body in bodies:
        assert cutter.cut(body) == _reference(body)
    assert sum(len(v) for v in cutter._middles.values()) <= 8
    assert MIDDLES_MOST >= 64  # a batch's device is met again within it


def _field(number: int, payload: bytes | int) -> bytes:
    varint = body_parts.varint_bytes
    if isinstance(payload, int):  # a varint field
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


_fields = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 3, 4, 5, 10, 13, 30, 31, 32, 200]),
        st.one_of(st.binary(max_size=130), st.integers(0, 2**40)),
    ),
    max_size=5,
)
# A report's front as agents write it (fields 1-4 in order, short), sometimes with a long one.
_fronts = st.one_of(
    st.lists(
        st.tuples(st.integers(1, 4), st.binary(max_size=45)),
        min_size=1,
        max_size=4,
        unique_by=lambda f: f[0],
    ).map(sorted),
    _fields,
)
_backs = st.one_of(
    st.lists(
        st.tuples(st.sampled_from([31, 32]), st.one_of(st.binary(max_size=50), st.integers(0, 9))),
        max_size=2,
    ),
    _fields,
)
_middles = st.lists(
    st.tuples(st.sampled_from([4, 5, 10, 11, 15, 30, 31]), st.binary(min_size=30, max_size=160)),
    min_size=1, max_size=6,
)  # fmt: skip


Fields = list[tuple[int, bytes | int]]
# Bodies around middles: (front, which middle, back, trailing bytes).
Shapes = list[tuple[Fields, int, Fields, bytes]]


def shapes(backs: st.SearchStrategy[Fields]) -> st.SearchStrategy[Shapes]:
    return st.lists(
        st.tuples(_fronts, st.integers(0, 1), backs,
                  st.one_of(st.just(b""), st.binary(max_size=3))),
        min_size=2, max_size=8,
    )  # fmt: skip


def bodies_of(middles: Sequence[Sequence[tuple[int, bytes | int]]], made: Shapes) -> list[bytes]:
    """Each shape's body: its front's fields, its middle's, its back's and its bytes."""
    out = []
    for front, which, back, junk in made:
        middle = b"".join(_field(n, p) for n, p in middles[which % len(middles)])
        out.append(b"".join(_field(n, p) for n, p in front) + middle
                   + b"".join(_field(n, p) for n, p in back) + junk)  # fmt: skip
    return out


@settings(max_examples=400, deadline=None)
@given(middles=st.lists(_middles, min_size=1, max_size=2), made=shapes(_backs))
def test_any_front_and_back_around_a_middle_met_before_is_cut_as_afresh(
    middles: list[list[tuple[int, bytes]]], made: Shapes
) -> None:
    """Fronts of any fields (long ones, repeated numbers, varints), middles shared between
    bodies, backs of any fields (a field 31 joining the middle's last run, parts at the
    back) and trailing bytes that may not walk at all."""
    cutter = RepeatCut()
    for body in bodies_of(middles, made):
        assert cutter.cut(body) == _reference(body)


def test_a_seam_that_would_join_two_runs_is_cut_afresh() -> None:
    """A middle met after one front may come after another whose last field has the number
    of the middle's first (or before a back whose first has its last's): there the body's
    runs join across the seam, and only a fresh walk sees them."""
    facts = _field(3, 2**40) + _field(10, b"a" * 50)
    middle = facts + _field(31, b"b" * 20)
    back = _field(32, b"c" * 10)
    cutter = RepeatCut()
    for body in (
        _field(1, b"id-1") + _field(2, b"dev") + middle + back,  # met: a varint 3 begins it
        # A front ending in a string 3: the two fields 3 are one run, long enough for a part.
        _field(1, b"id-2") + _field(2, b"dev") + _field(3, b"v" * 35) + middle + back,
        # A back beginning with a field 10: one run with the middle's last, and a part.
        _field(1, b"id-3") + _field(2, b"dev") + facts + _field(10, b"d" * 45),
    ):
        assert cutter.cut(body) == _reference(body)

"""Format 5's cut of a body from memory (`evidence/fact_repeat.py`) is `fact_sets.cut`'s,
always: on real reports of a device's backlog and hours, and on any bytes a sender could
make around a middle met before (fronts and backs of any kind, own fields among the facts,
bodies that cannot be walked)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devposture.collector.evidence import fact_sets
from devposture.collector.evidence.fact_repeat import FactRepeat
from tests.collector.test_repeat_cut import Shapes, _backlog, _field, _fields, bodies_of, shapes

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def test_a_backlog_is_cut_from_memory_after_its_first_report_of_a_day_exactly_as_afresh() -> None:
    """Not another device's facts, nor one changed byte of them."""
    cutter = FactRepeat()
    backlog = _backlog("d" * 32, 64)
    assert len({b[-40:] for b in backlog}) > 1  # the delivery figures (own, at the back) differ
    for body in backlog:
        assert cutter.cut(body) == fact_sets.cut(body)
    assert cutter.repeats == 64 - 4  # each of the four days' first cut afresh: new dates
    made = cutter.cut(backlog[-1])  # the middle it keeps for the device: its latest
    parts = dict(zip(fact_sets.digests(made.fact_set), made.parts, strict=True))
    assert fact_sets.rebuild(made.own, made.fact_set, parts.__getitem__) == backlog[-1]
    # Another device's facts, or one byte of these changed, are no repeat.
    changed = bytearray(backlog[-1])
    changed[len(changed) // 2] ^= 0x01  # a byte inside the facts (a string's character)
    for body in (_backlog("d" * 32, 1, host="财务部-PC-08")[0], bytes(changed)):
        assert cutter.cut(body) == fact_sets.cut(body)
    assert cutter.repeats == 64 - 4 + 1  # the last report again, and only it


def test_memory_is_bounded() -> None:
    cutter = FactRepeat(most=8)
    for k in range(20):
        body = _backlog(f"{k:032x}", 1, host=f"PC-{k}")[0]
        assert cutter.cut(body) == fact_sets.cut(body)
        assert len(cutter._middles) <= 8


# Facts, own fields among them sometimes (3, 31, 32, 1: not what an agent writes).
_middles = st.lists(
    st.tuples(st.sampled_from([1, 3, 5, 10, 11, 15, 30, 31, 32, 33, 200]),
              st.one_of(st.binary(max_size=160), st.integers(0, 2**40))),
    min_size=1, max_size=6,
)  # fmt: skip
_backs = st.one_of(
    st.lists(
        st.tuples(st.sampled_from([31, 32]), st.one_of(st.binary(max_size=50), st.integers(0, 9))),
        max_size=3,
    ),
    _fields,
)


@settings(max_examples=500, deadline=None)
@given(middles=st.lists(_middles, min_size=1, max_size=2), made=shapes(_backs))
def test_any_front_and_back_around_a_middle_met_before_is_cut_as_afresh(
    middles: list[list[tuple[int, bytes | int]]], made: Shapes
) -> None:
    """Fronts of any fields (repeated numbers, varints, none), middles shared between bodies
    with own fields among their facts or not, backs of any fields (a field 31 twice, facts at
    the back) and trailing bytes that may not walk at all."""
    cutter = FactRepeat()
    for body in bodies_of(middles, made):
        assert cutter.cut(body) == fact_sets.cut(body)


def test_a_front_of_other_own_fields_before_a_middle_met_counts_its_own_runs_anew() -> None:
    """The same facts behind a front of fewer own fields: their references count the own
    runs before them, so the fact set differs and is made afresh."""
    facts = _field(5, b"h" * 60) + _field(10, b"a" * 50)
    back = _field(32, b"c" * 10)
    cutter = FactRepeat()
    long_front = _field(1, b"id-1") + _field(2, b"dev") + _field(3, b"1.4.2") + facts + back
    short_front = _field(1, b"id-2") + _field(2, b"dev") + facts + back
    for body in (long_front, short_front, long_front):
        assert cutter.cut(body) == fact_sets.cut(body)
    assert cutter.cut(long_front).fact_set != cutter.cut(short_front).fact_set

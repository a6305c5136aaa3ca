"""Format 5's cut of a body whose facts were met lately, from memory (`fact_sets.cut`'s
answer, without walking the facts again).

Why: every report stored in format 5 is cut (`store/fact_parts.cut_facts`), and a walk of
every field of every body cost the batched ingest path about 10 µs a report more than
format 4's cut, which `repeat_cut.py` takes from memory for a backlog's and a steady device's
repeated facts (bench/README.md, the thirteenth session). The same idea, simpler here since
every fact is a part: a body an agent writes is

* its **front**: the leading fields 1-4 (report id, device, agent version, collection time),
  each once, numbers rising: own fields, one run each;
* its **middle**: its facts, no own field among them, as `field_runs` found them when the
  middle was first met;
* its **back**: the trailing fields 31 and 32 (trigger, delivery figures), walked again each
  time (a few bytes): own fields.

A middle met before (looked up by its first bytes, compared whole) behind a front of as many
fields gives the fact set and parts it gave then (each reference counts the own runs before
its part: the front's); the own bytes are the front's and the back's. The answer is exactly
`fact_sets.cut`'s (`tests/collector/test_fact_repeat.py` holds the two to it): a body's
fields are read one after another, and the seams join no runs (a front of own fields, a
middle of facts, a back of own fields). Anything else is cut afresh. Pure, no SQL; one
`FactRepeat` per process that stores reports, bounded.
"""

from __future__ import annotations

from typing import NamedTuple

from devposture.collector.evidence.body_parts import NotSplittable, field_runs, leading_fields
from devposture.collector.evidence.fact_sets import OWN_FIELDS, Cut, cut

# The fields a back holds: the trigger and the delivery figures.
BACK_FIELDS = frozenset({31, 32})
# A middle is looked up by this many of its first bytes (a device's host information).
LOOKUP_BYTES = 48
# Middles kept (each a report's facts and their fact set, about 2 KB); one per lookup key
# (a device whose facts changed keeps its latest).
MIDDLES_MOST = 1024


class _Middle(NamedTuple):
    middle: bytes
    front_runs: int  # the own runs before it: its fact set's references count them
    fact_set: bytes
    parts: tuple[bytes, ...]


def _front(body: bytes) -> tuple[int, int] | None:
    """(where the front ends, how many fields it has: its fields 1-4 each once, numbers
    rising), (0, 0) for no front, None where it is not plain."""
    fields = leading_fields(body)
    if fields is None:
        return None
    last = 0
    for number, _ in fields:
        if number <= last:
            return None
        last = number
    return (fields[-1][1], len(fields)) if fields else (0, 0)


def _back_is_own(back: bytes) -> bool:
    """Whether `back` is fields 31 and 32 only, each one run."""
    try:
        runs = field_runs(back)
    except NotSplittable:
        return False
    numbers = [number for number, _, _ in runs]
    return all(n in BACK_FIELDS for n in numbers) and len(set(numbers)) == len(numbers)


class FactRepeat:
    """`fact_sets.cut`, remembering the middles it met."""

    def __init__(self, most: int = MIDDLES_MOST) -> None:
        self._most = most
        self._middles: dict[bytes, _Middle] = {}
        # How many bodies were cut from memory (for tests and benchmarks).
        self.repeats = 0

    def cut(self, body: bytes) -> Cut:
        """`fact_sets.cut(body)`: from a middle met before where there is one, else cut
        afresh (and its middle remembered)."""
        front = _front(body)
        if front is None:
            return cut(body)
        p, front_runs = front
        known = self._middles.get(body[p : p + LOOKUP_BYTES])
        if known is not None and known.front_runs == front_runs:
            q = p + len(known.middle)
            if body.startswith(known.middle, p) and _back_is_own(body[q:]):
                self.repeats += 1
                return Cut(body[:p] + body[q:], known.fact_set, known.parts)
        made = cut(body)
        self._remember(body, p, front_runs, made)
        return made

    def _remember(self, body: bytes, p: int, front_runs: int, made: Cut) -> None:
        """Keep the body's middle where the body is a front, facts and a back of own fields."""
        try:
            runs = field_runs(body)
        except NotSplittable:
            return
        back_at = len(runs)
        while back_at and runs[back_at - 1][0] in BACK_FIELDS:
            back_at -= 1
        middle = runs[front_runs:back_at]
        if not middle or any(n in OWN_FIELDS for n, _, _ in middle) or middle[0][1] != p:
            return
        q = middle[-1][2]
        if not _back_is_own(body[q:]) or len(made.parts) != len(middle):
            return
        if len(self._middles) >= self._most:
            self._middles.clear()
        self._middles[body[p : p + LOOKUP_BYTES]] = _Middle(
            body[p:q], front_runs, made.fact_set, made.parts
        )

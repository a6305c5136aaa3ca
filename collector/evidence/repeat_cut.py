"""The cut of a body whose facts were met lately, from memory (`body_parts.split`'s answer,
without walking the facts again).

Why: a device's backlog (`ReportBatch`, after an outage) and a steady device's hours repeat
their facts byte for byte; what differs is the report's id and times at the front (fields
1-4) and its delivery figures at the back (31, 32). Cutting each body afresh was about a
tenth of a batched report's server CPU (the walk of every field, the slices, the digests:
bench/README.md, "Tenth round"). So a body is seen as three runs of bytes:

* its **front**: the leading length-delimited fields numbered 1-4, walked here (a few
  fields, each shorter than a part and each number once, so none is a part or joins a run);
* its **middle**: everything up to its **back**, the trailing runs of `BACK_FROM` and above,
  as `field_runs` found them when the middle was first met;
* its back, walked again each time (a few bytes).

A middle met before (looked up by its first bytes, then compared whole) gives its own bytes,
its parts' offsets and their digests; the front and back are added around it. The answer
is exactly `split`'s: a protobuf body's fields are read one after another, so the front's
fields, the middle's and the back's are the body's, and their runs are the body's runs
where the numbers on either side of each seam differ (checked; otherwise cut afresh).
Pure, no SQL; one `RepeatCut` per process that stores reports, bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from devposture.collector.evidence.body_parts import (
    PART_MIN,
    NotSplittable,
    cut_runs,
    field_runs,
    leading_fields,
    remembered_digest,
    split_runs,
)

# The first field of a body's back: the trigger (31) and delivery figures (32), which vary
# from one report of a backlog to the next while its facts do not.
BACK_FROM = 31
# A middle is looked up by this many of its first bytes (a device's host information).
LOOKUP_BYTES = 48
# Middles kept (each about two copies of a report's facts, 4 KB): a batch's or backlog's
# device repeats its middle within a few reports; a fleet's unary reports seldom meet theirs.
MIDDLES_MOST = 1024
# Middles kept under one lookup key (a device whose facts changed keeps its latest few).
SAME_START_MOST = 4


class Pieces(NamedTuple):
    """A body as the store keeps it: its own bytes, and its parts (where each goes in the
    whole body, its bytes, its SHA-256). No parts: `own` is the whole body. (A named tuple:
    made for every report stored, and a frozen dataclass costs a microsecond to make.)"""

    own: bytes
    offsets: tuple[int, ...]
    parts: tuple[bytes, ...]
    digests: tuple[bytes, ...]


@dataclass(frozen=True)
class _Middle:
    """A middle met before, cut: its bytes, the numbers of its first and last runs, its own
    bytes and its parts (offsets within the middle)."""

    middle: bytes
    first_number: int
    last_number: int
    own: bytes
    offsets: tuple[int, ...]
    parts: tuple[bytes, ...]
    digests: tuple[bytes, ...]
    # Where the middle began in the body it was met in, and its parts' offsets there: a
    # device's reports have fronts of one length (its ids and times), so these are reused.
    at: int
    offsets_at: tuple[int, ...]


def _front(body: bytes) -> tuple[int, int] | None:
    """(where the front ends, the number of its last field) where the front is plain: its
    leading fields 1-4 (`leading_fields`), numbers rising, none a part (shorter than
    PART_MIN, or the report id). None where there is no plain front."""
    fields = leading_fields(body)
    if not fields:
        return None
    start = last = 0
    for number, end in fields:
        if number <= last or (end - start >= PART_MIN and number != 1):
            return None
        start, last = end, number
    return start, last


def _back(back: bytes, at: int) -> tuple[bytes, list[tuple[int, bytes]], int] | None:
    """The back's own bytes, its parts (offsets in the whole body, where the back begins at
    `at`) and the number of its first run (0: no back). None where it cannot be walked."""
    try:
        runs = field_runs(back)
    except NotSplittable:
        return None
    own, parts = cut_runs(back, runs, 0, len(back))
    return own, [(at + offset, part) for offset, part in parts], runs[0][0] if runs else 0


class RepeatCut:
    """`split` with the digests of the parts, remembering the middles it met."""

    def __init__(self, most: int = MIDDLES_MOST) -> None:
        self._most = most
        self._middles: dict[bytes, list[_Middle]] = {}
        self._count = 0
        # How many bodies were cut from memory (for tests and benchmarks).
        self.repeats = 0

    def cut(self, body: bytes) -> Pieces:
        """The body's pieces: from a middle met before where there is one, else cut afresh
        (and its middle remembered)."""
        front = _front(body)
        if front is not None:
            found = self._from_memory(body, *front)
            if found is not None:
                self.repeats += 1
                return found
        return self._afresh(body, front)

    def _from_memory(self, body: bytes, p: int, front_last: int) -> Pieces | None:
        for known in self._middles.get(body[p : p + LOOKUP_BYTES], ()):
            if known.first_number == front_last or not body.startswith(known.middle, p):
                continue
            q = p + len(known.middle)
            offsets = known.offsets_at if p == known.at else tuple(p + o for o in known.offsets)
            if q == len(body):  # no back
                if not known.parts:
                    return Pieces(body, (), (), ())
                return Pieces(body[:p] + known.own, offsets, known.parts, known.digests)
            back = _back(body[q:], q)
            if back is None:
                return None
            back_own, back_parts, back_first = back
            if back_first == known.last_number:  # the seam would join two runs
                return None
            if not known.parts and not back_parts:
                return Pieces(body, (), (), ())
            own = body[:p] + known.own + back_own
            if not back_parts:
                return Pieces(own, offsets, known.parts, known.digests)
            return Pieces(
                own,
                offsets + tuple(o for o, _ in back_parts),
                known.parts + tuple(b for _, b in back_parts),
                known.digests + tuple(remembered_digest(b) for _, b in back_parts),
            )
        return None

    def _afresh(self, body: bytes, front: tuple[int, int] | None) -> Pieces:
        try:
            runs = field_runs(body)
        except NotSplittable:
            return Pieces(body, (), (), ())
        own, cut = split_runs(body, runs)
        parts = tuple(b for _, b in cut)
        pieces = Pieces(
            own, tuple(o for o, _ in cut), parts, tuple(remembered_digest(b) for b in parts)
        )
        if front is not None:
            self._remember(body, front[0], runs)
        return pieces

    def _remember(self, body: bytes, p: int, runs: list[tuple[int, int, int]]) -> None:
        """Keep the body's middle, cut, where its seams are run boundaries."""
        starts = [start for _, start, _ in runs]
        back_at = len(runs)
        while back_at and runs[back_at - 1][0] >= BACK_FROM:
            back_at -= 1
        q = runs[back_at][1] if back_at < len(runs) else len(body)
        if p not in starts or q <= p:
            return
        inner = runs[starts.index(p) : back_at]
        own, parts = cut_runs(body, inner, p, q)
        middle = _Middle(
            body[p:q], inner[0][0], inner[-1][0], own,
            tuple(o - p for o, _ in parts), tuple(b for _, b in parts),
            tuple(remembered_digest(b) for _, b in parts), p, tuple(o for o, _ in parts),
        )  # fmt: skip
        if self._count >= self._most:
            self._middles.clear()
            self._count = 0
        same = self._middles.setdefault(body[p : p + LOOKUP_BYTES], [])
        same.insert(0, middle)
        self._count += 1
        if len(same) > SAME_START_MOST:
            same.pop()
            self._count -= 1

"""Report groups whose records name each report's fact set (chain kind `report_facts`, bundle
format 5; the cut is `fact_sets.py`, the why is docs/audit-evidence.md).

**The chain entry.** Like a `reports` group (store/sealing.py) it seals the reports numbered
`first_n`..`last_n`, but its payload holds their records as columns, one JSON list per field
(`COLUMNS`, each list in the group's order), instead of an object per report: a verifier
parses a few lists instead of a thousand objects. A report's record is its metadata, `own`
(its own bytes, base64: no fact) and `fact_set` (the SHA-256 of its fact set, hex). No
body's SHA-256: nothing at ingest, export or verify puts a body together or hashes one.
Where every report of the group begins with its report id and device id as the columns hold
them (as an agent writes a report), `ids_cut` is true and `own` leaves them out: they were
72 of the 104 own bytes of a benchmark report, and the chain held each id twice.

**The bundle's lines** (`reports.jsonl`, format 5): one per group entry of the period, in seq
order, `{"parts": [...], "seq": S, "sets": [...]}`: the fact sets (packed, base64) the group's
reports name and the parts (base64) those fact sets name, each only where the bundle's
**window** does not already hold it. The window is what exporter and verifier both replay:
an item is held while it was shipped or named by one of the last `WINDOW_GROUPS` group
entries (a group entry is the clock, its line or not; what falls out is dropped at the end
of a group, swept every `SWEEP_EVERY` groups), and within `WINDOW_BYTES` (the least recently
used dropped first). A report then costs the verifier a look-up,
a fact set a SHA-256 and its parts' look-ups, a part a SHA-256. A fleet seals at least every
30 seconds, so 256 groups span an hour or more for fleets up to tens of thousands of
devices: a device reporting hourly finds its fact set still held, and its next one is
shipped only when a fact changed.

What the verifier can then say: each report of the period is in the chain (its group's
record), its fact set is in the bundle and hashes to what the record names, and each part a
fact set names is in the bundle and hashes to its digest; so each body is rebuilt byte for
byte (`fact_sets.rebuild`) from the record and the bundle, every byte pinned by the chain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from devposture.collector.evidence.chain import Entry, canonical
from devposture.collector.evidence.fact_sets import Cut, ids_prefix, references

REPORT_FACTS = "report_facts"
COLUMNS = (
    "report_id", "device_id", "received_us", "collected_us", "agent_version", "clock_skew_ms",
    "own", "fact_set",
)  # fmt: skip
# How many group entries an item of the window outlives its last use by, and how often the
# window is swept (an item outlives its last use by `WINDOW_GROUPS` to `WINDOW_GROUPS +
# SWEEP_EVERY - 1` groups: a sweep copies what is held, so not after every group).
WINDOW_GROUPS = 256
SWEEP_EVERY = 64
# At a sweep, the window also keeps within this many bytes of fact sets and as many of parts
# (each counted with `HELD_COST` for its key and entry), dropping the least recently used
# first: 256 groups of the seal's 1,000 reports (a backlog draining) could name 256,000 fact
# sets. Between sweeps it may grow by what 64 groups ship.
WINDOW_BYTES = 48 << 20
HELD_COST = 150


def group_canonical(
    first_n: int, last_n: int, rows: Sequence[Sequence[object]], ids_cut: bool
) -> bytes:  # fmt: skip
    """The payload of a group of reports: `rows` are each report's values in `COLUMNS`' order
    (`own` as base64 text, `fact_set` as hex), in the group's order; `ids_cut`: whether every
    report's own bytes are given without their leading ids (`group_rows`)."""
    columns = {name: [row[k] for row in rows] for k, name in enumerate(COLUMNS)}
    return canonical({"columns": columns, "first_n": first_n, "ids_cut": ids_cut, "last_n": last_n})


def record_values(
    metadata: Sequence[object], own: bytes, fact_set_sha256: bytes
) -> tuple[object, ...]:  # fmt: skip
    """A report's values in `COLUMNS`' order from its metadata (`chain.REPORT_FIELDS`' order),
    own bytes and fact set digest."""
    return (*metadata, base64.b64encode(own).decode("ascii"), fact_set_sha256.hex())


def group_rows(
    metadata: Sequence[Sequence[object]], made: Sequence[tuple[bytes, bytes]]
) -> tuple[list[tuple[object, ...]], bool]:  # fmt: skip
    """Each report's values (`record_values`) for a group's payload, from its metadata and
    `made`: its own bytes and the SHA-256 of its fact set (`fact_sets.Cut`). And `ids_cut`:
    when every report's own bytes begin with its report id and device id as its record's
    columns hold them (`fact_sets.ids_prefix`; an agent writes fields 1 and 2 first), the
    records keep the rest only, so that the chain does not hold each id twice; otherwise the
    whole of each. Decided per group, so a record needs no mark of its own."""
    prefixes = [
        ids_prefix(m[0], m[1]) if isinstance(m[0], str) and isinstance(m[1], str) else None
        for m in metadata
    ]
    ids_cut = all(p is not None and own.startswith(p)
                  for p, (own, _) in zip(prefixes, made, strict=True))  # fmt: skip
    rows = [
        record_values(m, own[len(p) :] if ids_cut and p is not None else own, digest)
        for m, p, (own, digest) in zip(metadata, prefixes, made, strict=True)
    ]
    return rows, ids_cut


def own_and_digest(made: Cut) -> tuple[bytes, bytes]:
    """What `group_rows` takes of a report's cut."""
    return made.own, made.fact_set_sha256()


def ids_cut(entry: Entry) -> bool:
    """Whether a group entry's records keep their own bytes without the leading ids
    (ValueError when the payload does not say: an edited entry)."""
    found = entry.record().get("ids_cut")
    if not isinstance(found, bool):
        raise ValueError(f"the payload of seq {entry.seq} does not say how its own bytes are kept")
    return found


def columns(entry: Entry) -> dict[str, list[Any]]:
    """A group entry's columns, checked to be lists of one length (ValueError otherwise: an
    edited entry, which the caller names)."""
    found = entry.record().get("columns")
    if not isinstance(found, dict) or set(found) != set(COLUMNS):
        raise ValueError(f"the payload of seq {entry.seq} holds no columns of reports")
    lists = [found[name] for name in COLUMNS]
    if not all(isinstance(values, list) for values in lists) or len({len(v) for v in lists}) != 1:
        raise ValueError(f"the columns of seq {entry.seq} are not lists of one length")
    return found


def records(entry: Entry) -> list[dict[str, object]]:
    """Each report's record of a group entry, as a dict of `COLUMNS` (what reads reports one
    by one: the opening, the report's figures)."""
    found = columns(entry)
    return [dict(zip(COLUMNS, values, strict=True))
            for values in zip(*(found[name] for name in COLUMNS), strict=True)]  # fmt: skip


def own_bytes(record: dict[str, object], cut_ids: bool) -> bytes:
    """A record's whole own bytes, its ids put back where its group cut them (`cut_ids`:
    `ids_cut` of its entry); what `fact_sets.rebuild` places the parts in. ValueError when
    `own` is not base64 or the ids are not texts."""
    text, report_id, device_id = record.get("own"), record.get("report_id"), record.get("device_id")
    if not isinstance(text, str):
        raise ValueError("a report record without its own bytes")
    try:
        own = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a report's own bytes are not base64: {exc}") from None
    if not cut_ids:
        return own
    if not isinstance(report_id, str) or not isinstance(device_id, str):
        raise ValueError("a report record whose ids are not texts")
    return ids_prefix(report_id, device_id) + own


@dataclass
class Window:
    """The fact sets and parts a bundle holds at a point of its reading, replayed alike by
    the exporter (to ship only what it lacks) and the verifier (to find what a report
    names). Fact sets by hex digest, parts by raw digest; each with the group count at its
    last use. Memory: what the last `groups` groups named, within `most_bytes` of each at
    every sweep.

    Whatever marks an item used at the current count also lists it under that count
    (`sets_marked`, `parts_marked`), and the bytes held are counted as items come and go:
    a sweep then reads only the lists of the counts it drops, not everything held (a fleet
    of 10,000 devices holds tens of thousands of items, swept hundreds of times an hour's
    worth of groups), and the least recently used are looked for only past `most_bytes`."""

    groups: int = WINDOW_GROUPS
    most_bytes: int = WINDOW_BYTES
    sets: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    parts: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    clock: int = 0  # group entries met
    set_bytes: int = 0  # of `sets`, each counted with HELD_COST
    part_bytes: int = 0
    # The items marked at each count since the last sweep (stale once marked again later).
    set_marks: dict[int, list[str]] = field(default_factory=dict)
    part_marks: dict[int, list[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sets_marked = self.set_marks.setdefault(self.clock, [])
        self.parts_marked = self.part_marks.setdefault(self.clock, [])

    def set_of(self, digest: str) -> bytes | None:
        """The packed fact set named by `digest` (hex), marked used; None when not held."""
        return _used(self.sets, digest, self.clock, self.sets_marked)

    def part_of(self, digest: bytes) -> bytes | None:
        """The part named by `digest`, marked used; None when not held."""
        return _used(self.parts, digest, self.clock, self.parts_marked)

    def hold_set(self, digest: str, packed: bytes) -> None:
        had = self.sets.get(digest)
        self.set_bytes += len(packed) - (len(had[0]) if had else -HELD_COST)
        self.sets[digest] = (packed, self.clock)
        self.sets_marked.append(digest)

    def hold_part(self, digest: bytes, part: bytes) -> None:
        had = self.parts.get(digest)
        self.part_bytes += len(part) - (len(had[0]) if had else -HELD_COST)
        self.parts[digest] = (part, self.clock)
        self.parts_marked.append(digest)

    def next_group(self) -> None:
        """A group entry is done: every `SWEEP_EVERY` groups, drop what the last `groups`
        groups did not use, then the least recently used past `most_bytes`. (Both sides
        hold the same items in the same order with the same marks, so they drop alike.)"""
        self.clock += 1
        if not self.clock % SWEEP_EVERY:
            oldest = self.clock - self.groups
            self.set_bytes -= _expire(self.sets, self.set_marks, oldest)
            self.part_bytes -= _expire(self.parts, self.part_marks, oldest)
            if self.set_bytes > self.most_bytes:
                self.sets, self.set_bytes = _bounded(self.sets, self.most_bytes)
            if self.part_bytes > self.most_bytes:
                self.parts, self.part_bytes = _bounded(self.parts, self.most_bytes)
        self.sets_marked = self.set_marks.setdefault(self.clock, [])
        self.parts_marked = self.part_marks.setdefault(self.clock, [])


K = TypeVar("K", str, bytes)


def _expire(held: dict[K, tuple[bytes, int]], marks: dict[int, list[K]], oldest: int) -> int:
    """Drop from `held` each item last marked before `oldest` (each is listed under its
    last mark); returns the bytes dropped (each with HELD_COST)."""
    dropped = 0
    for mark in [m for m in marks if m < oldest]:
        for digest in marks.pop(mark):
            found = held.get(digest)
            if found is not None and found[1] == mark:
                del held[digest]
                dropped += len(found[0]) + HELD_COST
    return dropped


def _bounded(
    held: dict[K, tuple[bytes, int]], most: int
) -> tuple[dict[K, tuple[bytes, int]], int]:  # fmt: skip
    """`held` within `most` bytes, and its bytes: the least recently used dropped first,
    ties in the order they were first held."""
    total = sum(len(v[0]) for v in held.values()) + HELD_COST * len(held)
    if total <= most:
        return held, total
    dropped: set[K] = set()
    for digest, (value, _) in sorted(held.items(), key=lambda item: item[1][1]):
        if total <= most:
            break
        dropped.add(digest)
        total -= len(value) + HELD_COST
    return {d: v for d, v in held.items() if d not in dropped}, total


def _used(
    held: dict[K, tuple[bytes, int]], digest: K, clock: int, marked: list[K]
) -> bytes | None:  # fmt: skip
    found = held.get(digest)
    if found is None:
        return None
    if found[1] != clock:
        held[digest] = (found[0], clock)
        marked.append(digest)
    return found[0]


def line(seq: int, sets: Iterable[bytes], parts: Iterable[bytes]) -> bytes:
    """A group's line of `reports.jsonl` (format 5): the fact sets and parts it ships."""
    shipped_sets = ", ".join(f'"{base64.b64encode(s).decode()}"' for s in sets)
    shipped_parts = ", ".join(f'"{base64.b64encode(p).decode()}"' for p in parts)
    return f'{{"parts": [{shipped_parts}], "seq": {seq}, "sets": [{shipped_sets}]}}\n'.encode()


def parse_line(item: object) -> tuple[int, list[bytes], list[bytes]]:
    """(seq, fact sets, parts) of a format-5 line; ValueError when it is not one."""
    if not isinstance(item, dict) or set(item) != {"parts", "seq", "sets"}:
        raise ValueError("not a group's fact sets and parts")
    seq, sets, parts = item["seq"], item["sets"], item["parts"]
    if type(seq) is not int or not isinstance(sets, list) or not isinstance(parts, list):
        raise ValueError("not a group's fact sets and parts")
    try:
        return (seq, [base64.b64decode(s, validate=True) for s in sets],
                [base64.b64decode(p, validate=True) for p in parts])  # fmt: skip
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"a fact set or part that is not base64: {exc}") from None


class Shipping:
    """The exporter's side: for each group, what its line must ship so that the verifier's
    replayed window holds every fact set its reports name."""

    def __init__(self, groups: int = WINDOW_GROUPS, most_bytes: int = WINDOW_BYTES) -> None:
        self.window = Window(groups, most_bytes)

    def group(
        self, fact_sets: Sequence[str], packed: Mapping[str, bytes],
        parts: Mapping[bytes, bytes], gone: Container[str] = (),
    ) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
        """(fact sets, parts) to ship for a group whose reports name `fact_sets` (hex, in
        order), given the packed bytes of each one and the bytes of each part (`packed`,
        `parts`: only those the window lacks are asked for, so a store may fetch them as
        asked). `gone`: the fact sets of the reports whose bodies were pruned, not shipped
        when the window lacks them, marked used when it holds them, as the verifier marks
        whatever a report names that it holds. KeyError where one is lacking."""
        window = self.window
        sets, held, clock = window.sets, window.parts, window.clock
        sets_marked, parts_marked = window.sets_marked, window.parts_marked
        ship_sets: list[bytes] = []
        ship_parts: list[bytes] = []
        for digest in fact_sets:  # window.set_of and part_of, inline: once per report
            found = sets.get(digest)
            if found is not None:
                if found[1] != clock:
                    sets[digest] = (found[0], clock)
                    sets_marked.append(digest)
                continue
            if digest in gone:
                continue
            fact_set = packed[digest]
            for _, part_digest in references(fact_set):
                had = held.get(part_digest)
                if had is None:
                    part = parts[part_digest]
                    window.hold_part(part_digest, part)
                    ship_parts.append(part)
                elif had[1] != clock:
                    held[part_digest] = (had[0], clock)
                    parts_marked.append(part_digest)
            window.hold_set(digest, fact_set)
            ship_sets.append(fact_set)
        window.next_group()
        return ship_sets, ship_parts


class Replay:
    """The verifier's side: each group's line taken into the window (every part and fact
    set hashed once), then each report's fact set looked up. Problems are returned as
    (what, digest) for the caller to word."""

    def __init__(self, groups: int = WINDOW_GROUPS, most_bytes: int = WINDOW_BYTES) -> None:
        self.window = Window(groups, most_bytes)

    def take(self, sets: Sequence[bytes], parts: Sequence[bytes]) -> list[tuple[str, str]]:
        """A group's shipped fact sets and parts into the window. Returns problems: a fact
        set that cannot be read, or names a part the window lacks."""
        return self.take_hashed([(hashlib.sha256(s).hexdigest(), s) for s in sets],
                                [(hashlib.sha256(p).digest(), p) for p in parts])  # fmt: skip

    def take_hashed(
        self, sets: Sequence[tuple[str, bytes]], parts: Sequence[tuple[bytes, bytes]]
    ) -> list[tuple[str, str]]:  # fmt: skip
        """`take`, each fact set and part with its SHA-256 (hex and raw) made already (by
        the process that reads the member beside the walk, `body_lines`)."""
        window = self.window
        problems: list[tuple[str, str]] = []
        for part_digest, part in parts:
            window.hold_part(part_digest, part)
        for digest, fact_set in sets:
            try:
                refs = references(fact_set)
            except ValueError:
                problems.append(("unreadable", digest))
                continue
            held, clock, marked = window.parts, window.clock, window.parts_marked
            lacking = None
            for _, d in refs:  # window.part_of, inline: a fact set names a dozen parts
                found = held.get(d)
                if found is None:
                    lacking = d
                    break
                if found[1] != clock:
                    held[d] = (found[0], clock)
                    marked.append(d)
            if lacking is not None:
                problems.append(("part missing", lacking.hex()))
                continue
            window.hold_set(digest, fact_set)
        return problems

    def part(self, digest: bytes) -> bytes:
        """A part the window holds (KeyError when it does not): to rebuild a body."""
        return self.window.parts[digest][0]

    def named(self, digest: object) -> bool:
        """Whether the window holds the fact set a report's record names (marked used)."""
        return isinstance(digest, str) and self.window.set_of(digest) is not None

    def unnamed(self, digests: Sequence[object]) -> list[int]:
        """Where in `digests` (a group's column of fact sets) the window holds none; each it
        holds marked used (`named`, inline: once per report of the period)."""
        sets, clock, marked = self.window.sets, self.window.clock, self.window.sets_marked
        lacking: list[int] = []
        for k, digest in enumerate(digests):
            found = sets.get(digest) if isinstance(digest, str) else None
            if found is None:
                lacking.append(k)
            elif found[1] != clock:
                sets[digest] = (found[0], clock)  # type: ignore[index]
                marked.append(digest)  # type: ignore[arg-type]
        return lacking

    def done(self) -> None:
        """The group entry is done (its line taken or not)."""
        self.window.next_group()

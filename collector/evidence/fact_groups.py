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
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

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


K = TypeVar("K", str, bytes)


class Held(Generic[K]):
    """What a window holds of one kind (fact sets by hex digest, parts by raw digest): each
    item's bytes, in the order first held, and the group count it was last used at. Whatever
    marks an item also lists it under that count, and the bytes held are counted as items
    come and go: a sweep reads only the lists of the counts it drops, not everything held (a
    fleet of 10,000 devices holds tens of thousands of items, swept every 64 groups), and a
    group's items are marked together (`use_all`), not one report at a time.

    The lists name each item by the one key object it is held under (`_keys`), not by the
    equal string a report's record was read into: a quarter's sweeps read 23 million entries,
    and each had kept a string of its own alive for 256 groups, out of every cache by then
    (8.5 s of the export's thread over the hourly quarter, 0.36 us an entry)."""

    def __init__(self) -> None:
        self.values: dict[K, bytes] = {}
        self.marks: dict[K, int] = {}
        self.by_mark: dict[int, list[K]] = {}
        self.bytes = 0  # of `values`, each item counted with HELD_COST
        self._keys: dict[K, K] = {}  # each item's digest, as the object it is held under

    def __contains__(self, digest: object) -> bool:
        return digest in self.values

    def __len__(self) -> int:
        return len(self.values)

    def get(self, digest: K) -> bytes | None:
        """The item's bytes, not marked; None when not held."""
        return self.values.get(digest)

    def items(self) -> list[tuple[K, tuple[bytes, int]]]:
        """(digest, (bytes, last used)) of each item, in the order first held."""
        marks = self.marks
        return [(d, (v, marks[d])) for d, v in self.values.items()]

    def use(self, digest: K, clock: int) -> bytes | None:
        """The item's bytes, marked used at `clock`; None when not held."""
        found = self.values.get(digest)
        if found is not None and self.marks[digest] != clock:
            key = self._keys[digest]
            self.marks[key] = clock
            self.by_mark.setdefault(clock, []).append(key)
        return found

    def use_all(self, digests: Collection[K], clock: int) -> None:
        """Mark `digests`, every one held, used at `clock`."""
        keys = list(map(self._keys.__getitem__, digests))
        self.marks.update(dict.fromkeys(keys, clock))
        self.by_mark.setdefault(clock, []).extend(keys)

    def hold(self, digest: K, value: bytes, clock: int) -> None:
        had = self.values.get(digest)
        self.bytes += len(value) - (len(had) if had is not None else -HELD_COST)
        key = self._keys.setdefault(digest, digest)
        self.values[key] = value
        self.marks[key] = clock
        self.by_mark.setdefault(clock, []).append(key)

    def expire(self, oldest: int) -> None:
        """Drop each item last used before `oldest` (each is listed under its last mark)."""
        values, marks, keys = self.values, self.marks, self._keys
        for mark in [m for m in self.by_mark if m < oldest]:
            for digest in self.by_mark.pop(mark):
                if marks.get(digest) == mark:
                    self.bytes -= len(values.pop(digest)) + HELD_COST
                    del marks[digest], keys[digest]

    def bound(self, most: int) -> None:
        """Within `most` bytes: the least recently used dropped first, ties in the order
        they were first held."""
        if self.bytes <= most:
            return
        marks = self.marks
        for digest in sorted(self.values, key=marks.__getitem__):
            if self.bytes <= most:
                break
            self.bytes -= len(self.values.pop(digest)) + HELD_COST
            del marks[digest], self._keys[digest]


class Window:
    """The fact sets and parts a bundle holds at a point of its reading, replayed alike by
    the exporter (to ship only what it lacks) and the verifier (to find what a report
    names). Fact sets by hex digest, parts by raw digest; each with the group count at its
    last use. Memory: what the last `groups` groups named, within `most_bytes` of each at
    every sweep."""

    def __init__(self, groups: int = WINDOW_GROUPS, most_bytes: int = WINDOW_BYTES) -> None:
        self.groups, self.most_bytes = groups, most_bytes
        self.sets: Held[str] = Held()
        self.parts: Held[bytes] = Held()
        self.clock = 0  # group entries met

    def set_of(self, digest: str) -> bytes | None:
        """The packed fact set named by `digest` (hex), marked used; None when not held."""
        return self.sets.use(digest, self.clock)

    def part_of(self, digest: bytes) -> bytes | None:
        """The part named by `digest`, marked used; None when not held."""
        return self.parts.use(digest, self.clock)

    def hold_set(self, digest: str, packed: bytes) -> None:
        self.sets.hold(digest, packed, self.clock)

    def hold_part(self, digest: bytes, part: bytes) -> None:
        self.parts.hold(digest, part, self.clock)

    def next_group(self) -> None:
        """A group entry is done: every `SWEEP_EVERY` groups, drop what the last `groups`
        groups did not use, then the least recently used past `most_bytes`. (Both sides
        hold the same items in the same order with the same marks, so they drop alike.)"""
        self.clock += 1
        if self.clock % SWEEP_EVERY:
            return
        for held in (self.sets, self.parts):
            held.expire(self.clock - self.groups)
        self.sets.bound(self.most_bytes)
        self.parts.bound(self.most_bytes)


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


class Look(NamedTuple):
    """What the window holds of a group's fact sets (`Shipping.look`), before it is shipped."""

    held: set[str]  # those it holds, each to be marked used
    lacking: list[str]  # those it lacks and must ship (not gone), in the order first named


# Past this many fact sets lacking, their order is taken by one pass over the group's names
# instead of a search of them for each.
_SEARCHED_MOST = 16


class Shipping:
    """The exporter's side: for each group, what its line must ship so that the verifier's
    replayed window holds every fact set its reports name."""

    def __init__(self, groups: int = WINDOW_GROUPS, most_bytes: int = WINDOW_BYTES) -> None:
        self.window = Window(groups, most_bytes)

    def look(self, fact_sets: Sequence[str], gone: Container[str] = ()) -> Look:
        """Which of the fact sets a group's reports name (hex, in order) the window holds,
        and which it lacks (`gone`: of the reports whose bodies were pruned, never shipped).
        By sets, not report by report: a quarter's groups name 21 million fact sets, nearly
        all held, and a new one is a few a group."""
        named = set(fact_sets)
        held = named & self.window.sets.values.keys()
        new = [d for d in named - held if d not in gone]
        if len(new) > _SEARCHED_MOST:
            wanted = set(new)
            new = [d for d in dict.fromkeys(fact_sets) if d in wanted]
        elif len(new) > 1:
            new.sort(key=fact_sets.index)  # in the order first named
        return Look(held, new)

    def ship(
        self, look: Look, packed: Mapping[str, bytes], parts: Mapping[bytes, bytes]
    ) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
        """(fact sets, parts) to ship for the group `look` was taken of, given the packed
        bytes of each fact set it lacks and the bytes of each part (`packed`, `parts`: only
        those the window lacks are asked for, so a store may fetch them as asked). The fact
        sets held are marked used, as the verifier marks whatever a report names that it
        holds. KeyError where one is lacking."""
        window = self.window
        sets, held, clock = window.sets, window.parts, window.clock
        ship_sets: list[bytes] = []
        ship_parts: list[bytes] = []
        # In the order the reports name them: the window holds items in the order first held.
        for digest in look.lacking:
            fact_set = packed[digest]
            for _, part_digest in references(fact_set):
                if held.use(part_digest, clock) is None:
                    part = parts[part_digest]
                    held.hold(part_digest, part, clock)
                    ship_parts.append(part)
            sets.hold(digest, fact_set, clock)
            ship_sets.append(fact_set)
        sets.use_all(look.held, clock)  # each report's, held, marked used
        window.next_group()
        return ship_sets, ship_parts

    def group(
        self, fact_sets: Sequence[str], packed: Mapping[str, bytes],
        parts: Mapping[bytes, bytes], gone: Container[str] = (),
    ) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
        """`look` and `ship` at once: (fact sets, parts) to ship for a group whose reports
        name `fact_sets` (hex, in order)."""
        return self.ship(self.look(fact_sets, gone), packed, parts)


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
        held, clock = window.parts, window.clock
        problems: list[tuple[str, str]] = []
        for part_digest, part in parts:
            held.hold(part_digest, part, clock)
        for digest, fact_set in sets:
            try:
                refs = references(fact_set)
            except ValueError:
                problems.append(("unreadable", digest))
                continue
            lacking = next((d for _, d in refs if held.use(d, clock) is None), None)
            if lacking is not None:
                problems.append(("part missing", lacking.hex()))
                continue
            window.sets.hold(digest, fact_set, clock)
        return problems

    def part(self, digest: bytes) -> bytes:
        """A part the window holds (KeyError when it does not): to rebuild a body."""
        return self.window.parts.values[digest]

    def named(self, digest: object) -> bool:
        """Whether the window holds the fact set a report's record names (marked used)."""
        return isinstance(digest, str) and self.window.set_of(digest) is not None

    def unnamed(self, digests: Sequence[object]) -> list[int]:
        """Where in `digests` (a group's column of fact sets) the window holds none; each it
        holds marked used (`named`, for a group at once: once per report of the period)."""
        held = self.window.sets
        try:
            column = set(digests)
        except TypeError:  # an edited column: one at a time
            return [k for k, d in enumerate(digests) if not self.named(d)]
        present: set[Any] = column & held.values.keys()
        held.use_all(present, self.window.clock)
        if len(present) == len(column):
            return []
        return [k for k, d in enumerate(digests) if d not in present]

    def done(self) -> None:
        """The group entry is done (its line taken or not)."""
        self.window.next_group()

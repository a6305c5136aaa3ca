"""Report bodies stored as their own bytes plus the parts a fleet repeats, each part once
(schema 16; the cut is `evidence/body_parts.py`).

A report row keeps in `body` only its own bytes (its id, times, delivery figures) and in
`parts` a recipe: where each part goes and its SHA-256. `fact_parts` holds each part once,
with `last_us`: the receipt time of a report that named it, at most `SLACK_US` older than the
latest such report. That bound is what retention needs to delete the parts no kept report
names, without an index from parts to reports (`garbage`): a part named by a report received
at or after the retention's cutoff has `last_us` no older than the cutoff less the slack.

Writing: a part a report names is upserted (its `last_us` raised) unless this process wrote
or confirmed it within the last half of the slack (`Written`), so a steady fleet writes
nothing here for its repeated facts. The cache is filled only after the commit that wrote it.

Reading: `Bodies` gives whole bodies for rows read with their recipe, fetching the parts
they name in one statement per batch and keeping each part it met by its digest (bounded in
bytes: `PARTS_BYTES_MOST`). Retention never deletes a part a report received within the slack
names, so neither cache can name a part that is gone.

Format 5 (`report_format.py`, docs/audit-evidence.md): a row keeps its own fields only
(`evidence/fact_sets.py`'s cut) and in `parts`, instead of a recipe, `FACT_SET_MARK` and the
SHA-256 of its **fact set**: where each of its other fields goes, and each one's digest.
The fact set is kept here too, as one more part (content addressed alike: its bytes by their
SHA-256), so that the export ships each fact set once by reading it by its digest, and holds
each row to its record by its own bytes and that digest alone. 33 bytes, which no recipe
(whole 36-byte references) is.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devposture.collector.evidence import body_parts, fact_sets
from devposture.collector.evidence.fact_repeat import FactRepeat
from devposture.collector.evidence.repeat_cut import RepeatCut
from devposture.collector.store.chain import padded, pieces
from devposture.collector.store.engine import SQLITE, AnyDatabase, Cursor

DAY_US = 86_400_000_000
# How much older than the latest report naming it a part's `last_us` may be.
SLACK_US = DAY_US
# Parts a process remembers having written (digest -> last_us), about 50 bytes each.
WRITTEN_MOST = 200_000
# The parts a reader keeps, in bytes: a fleet's quarter has some ten thousand, a few MB.
PARTS_BYTES_MOST = 64 << 20
# A format-5 row's `parts`: this byte, then its fact set's SHA-256.
FACT_SET_MARK = b"\x05"
_NAMED_BYTES = 1 + body_parts.DIGEST
_REF = 4 + body_parts.DIGEST  # a fact set's reference: own fields before the part, its digest


@dataclass
class Cut:
    """A report's body as stored: its own bytes, its recipe (None: whole), and its parts."""

    own: bytes
    recipe: bytes | None
    parts: list[tuple[bytes, bytes]] = field(default_factory=list)  # (digest, bytes)

    def columns(self) -> tuple[bytes, bytes | None]:
        """The report row's `body` and `parts`."""
        return self.own, self.recipe


# This process's cutter: a device's backlog repeats its facts (`evidence/repeat_cut.py`).
_cutter = RepeatCut()


def cut(body: bytes) -> Cut:
    """A body cut for storing (`body_parts.split`, by `RepeatCut`)."""
    made = _cutter.cut(body)
    if not made.parts:
        return Cut(body, None)
    recipe = body_parts.pack_parts(made.offsets, made.digests)
    return Cut(made.own, recipe, list(zip(made.digests, made.parts, strict=True)))


# This process's fact cutter: a device's reports repeat their facts (`evidence/fact_repeat.py`).
_fact_cutter = FactRepeat()


def cut_facts(body: bytes) -> Cut:
    """A body cut for storing as format 5 (`evidence/fact_sets.py`): its own bytes, the
    reference to its fact set, and as its parts the fact set itself and each part it names.
    A body that cut cannot place facts in (no own bytes) is stored as `cut` stores it, with
    its fact set (the whole body as one part) and that part beside it, for its seal."""
    made = _fact_cutter.cut(body)
    digest = made.fact_set_sha256()
    if not made.own:  # kept whole, as `cut` keeps it, and its one-part fact set beside it
        whole = cut(body)
        whole.parts += [(digest, made.fact_set), (made.fact_set[4:_REF], body)]
        return whole
    packed = made.fact_set
    named = [packed[k + 4 : k + _REF] for k in range(0, len(packed), _REF)]
    return Cut(made.own, FACT_SET_MARK + digest,
               [(digest, packed), *zip(named, made.parts, strict=True)])  # fmt: skip


def fact_set_of(stored: Cut) -> bytes:
    """The digest of the fact set `cut_facts` made of a body: named by its row, or (a body
    kept whole) the first part beside it."""
    named = fact_set_named(stored.recipe)
    return named if named is not None else stored.parts[-2][0]


class Met:
    """Keys this process met in the reports it stored, and when (the latest): a fact set's
    digest, or a device's id (`cut_chosen`). Least recently used first; bounded."""

    def __init__(self, most: int = WRITTEN_MOST) -> None:
        self._most = most
        self._last: OrderedDict[bytes, int] = OrderedDict()

    def within(self, key: bytes, received: int) -> bool:
        """Whether `key` was met within half the slack before `received`."""
        known = self._last.get(key)
        return known is not None and known >= received - SLACK_US // 2

    def meet(self, key: bytes, received: int) -> None:
        if self._last.get(key, -1) < received:
            self._last[key] = received
        self._last.move_to_end(key)
        if len(self._last) > self._most:
            self._last.popitem(last=False)

    def again(self, key: bytes, received: int) -> bool:
        """`within`, and `key` is met now."""
        known = self.within(key, received)
        self.meet(key, received)
        return known


def fact_set_named(recipe: bytes | memoryview | None) -> bytes | None:
    """The digest of the fact set a row's `parts` names (format 5), None for a recipe or
    none (as either engine reads the column: bytes, or a memoryview)."""
    if recipe is not None and len(recipe) == _NAMED_BYTES and recipe[:1] == FACT_SET_MARK:
        return bytes(recipe[1:])
    return None


@functools.cache
def _upsert(rows: int) -> str:
    return (
        "INSERT INTO fact_parts(digest, part, last_us) VALUES "  # noqa: S608 (placeholders only)
        + ", ".join(["(?, ?, ?)"] * rows)
        + " ON CONFLICT(digest) DO UPDATE SET last_us = excluded.last_us"
        " WHERE fact_parts.last_us < excluded.last_us"
    )


class Written(Met):
    """The parts this process wrote or confirmed, and when (a report's receipt time), so
    that a part repeated by every report is not written again for each. Least recently
    used first; bounded."""

    def due(self, cuts: Iterable[tuple[Cut, int]]) -> list[tuple[bytes, bytes, int]]:
        """(digest, bytes, last_us) of the parts of these (cut, received) to write: those not
        known to be stored with a `last_us` within half the slack of their report's."""
        due: dict[bytes, tuple[bytes, bytes, int]] = {}
        for stored, received in cuts:
            for d, part in stored.parts:
                if self.holds(d, received):
                    continue
                seen = due.get(d)
                if seen is None or seen[2] < received:
                    due[d] = (d, part, received)
        return list(due.values())

    def holds(self, digest: bytes, received: int) -> bool:
        """Whether `digest` is known to be stored with a `last_us` within half the slack of
        `received` (a report received then naming it need not write it)."""
        return self.within(digest, received)

    def committed(self, written: Iterable[tuple[bytes, bytes, int]]) -> None:
        """Remember parts a committed transaction wrote."""
        for d, _, last in written:
            self.meet(d, last)


@dataclass
class Chooser:
    """What `cut_chosen` asks: the parts this process wrote, the fact sets it met, and the
    devices whose reports named a fact set met before (when, the latest)."""

    written: Written = field(default_factory=Written)
    fact_sets: Met = field(default_factory=Met)
    repeating: Met = field(default_factory=Met)


def cut_chosen(body: bytes, received: int, device_id: str, chooser: Chooser) -> Cut:
    """A body cut for storing in a format-5 store: as format 5 (`cut_facts`) where the
    collector will likely meet its fact set again: it met it already (written, or named by
    an earlier report, within half the slack), or the device's reports repeated their facts
    within half the slack (a device whose facts hold for hours names its new fact set again:
    an hourly fleet's facts of a new day); else as format 4 (`cut`), row and record. A fact
    set named once costs a bundle more than the body it stands for (shipped whole beside its
    parts, where deflate keeps a body's repeats within its group's line): a daily fleet, or a
    device whose facts change with every report, stays format 4. The choice is this
    process's alone (another collector, or this one restarted, meets a device afresh):
    either kind of row seals in either kind of entry."""
    made = cut_facts(body)
    digest = fact_set_of(made)
    device = device_id.encode("utf-8")
    # Met each time, so that it remembers the latest.
    if chooser.fact_sets.again(digest, received) or chooser.written.holds(digest, received):
        chooser.repeating.meet(device, received)
        return made
    if chooser.repeating.within(device, received):
        return made
    return cut(body)


def write(cur: Cursor, parts: Sequence[tuple[bytes, bytes, int]]) -> None:
    """Upsert parts (digest, bytes, last_us): a new one is inserted, a known one's `last_us`
    raised. Sorted by digest, so two writers never wait on each other in opposite orders."""
    ordered = sorted(parts)
    for chunk in pieces(ordered):
        cur.execute(_upsert(len(chunk)), [v for row in chunk for v in row])


def fetch(db: AnyDatabase | Cursor, digests: Sequence[bytes]) -> dict[bytes, bytes]:
    """digest -> bytes of those of `digests` stored (a part typed into SQLite as text read
    as its bytes: it then no longer matches its digest, and its reports are named)."""
    found: dict[bytes, bytes] = {}
    sqlite = isinstance(db, sqlite3.Cursor) or getattr(db, "dialect", None) == SQLITE
    part_column = SQLITE.blob("part") if sqlite else "part"
    for chunk in padded(list(dict.fromkeys(digests))):
        marks = ", ".join("?" * len(chunk))
        for d, part in db.execute(
            f"SELECT digest, {part_column} FROM fact_parts WHERE digest IN ({marks})",  # noqa: S608
            list(chunk),
        ):
            found[bytes(d)] = bytes(part)
    return found


# How a row's body is made whole: its recipe's offsets then digests (`body_parts.recipe_flat`),
# its fact set's digest (format 5), why its `parts` cannot be read, or None (its own bytes are
# the body).
_Key = tuple[Any, ...] | bytes | str | None


def _key_of(recipe: bytes | None) -> _Key:
    if not recipe:
        return None
    if len(recipe) % _REF == 0:  # whole references: a recipe (a fact set's name is 33 bytes)
        return body_parts.recipe_flat(recipe)
    named = fact_set_named(bytes(recipe))
    if named is not None:
        return named
    try:
        return body_parts.recipe_flat(bytes(recipe))
    except ValueError as exc:
        return str(exc)


def _refs(packed: bytes) -> list[bytes]:
    """The references of a packed fact set (whatever its bytes: a fact set that cannot be
    read is named when its body is made whole)."""
    return [packed[k : k + _REF] for k in range(0, len(packed) - _REF + 1, _REF)]


def _whole(own: bytes, key: _Key, parts: dict[bytes, bytes]) -> bytes:
    """The whole body of a row from its own bytes, its key and the parts met; ValueError
    naming what is missing or does not fit."""
    if isinstance(key, str):
        raise ValueError(key)
    if isinstance(key, bytes):
        packed = parts.get(key)
        if packed is None:
            raise ValueError(f"fact set {key.hex()[:16]}… is not stored")
        try:
            return fact_sets.rebuild(own, packed, parts.__getitem__)
        except KeyError as missing:
            raise ValueError(f"part {missing.args[0].hex()[:16]}… is not stored") from None
    assert key is not None
    count = len(key) // 2
    try:
        found = [parts[d] for d in key[count:]]
    except KeyError as missing:
        raise ValueError(f"part {missing.args[0].hex()[:16]}… is not stored") from None
    return body_parts.put_together(own, key[:count], found)


class MissingPart(LookupError):
    """A report's recipe names a part that is not stored (deleted, or edited away): its body
    cannot be put together."""


class Bodies:
    """Whole bodies of report rows read with `body, parts` side by side. Each part is fetched
    once and kept by its digest (bounded in bytes: `PARTS_BYTES_MOST`, or one batch's parts
    where they are more), the parts not met yet fetched in one statement per batch of rows: a
    quarter's export puts a million bodies together from some ten thousand parts. (Kept by
    the sequence of a report's parts instead, nothing was ever met twice: a device's host
    name and the day's signature dates make each report's sequence its own.)"""

    def __init__(self, db: AnyDatabase | Cursor, *, lenient: bool = False) -> None:
        """`lenient`: a body whose parts are not all stored comes out as its own bytes only
        (short: a check against its chain entry names it) instead of raising MissingPart."""
        self._db = db
        self._lenient = lenient
        self._parts: dict[bytes, bytes] = {}  # digest -> the part
        self._bytes = 0

    def rows(self, rows: Iterable[Sequence[Any]], at: int) -> list[tuple[Any, ...]]:
        """`rows` with column `at` (own bytes) made the whole body and `at + 1` (the recipe,
        or the fact set a format-5 row names) None. Raises MissingPart naming the report
        (column 0) whose part or fact set is gone."""
        rows = list(map(tuple, rows))  # a tuple as it is: no copy
        keys: list[_Key] = [_key_of(row[at + 1]) for row in rows]
        named = [key for key in keys if type(key) is bytes]
        kept: list[bytes] = []  # what the batch's fact sets need, kept past the bound
        if named:  # the fact sets first, then the parts they name
            self._look_up(named)
            needed: set[bytes] = set()
            for digest in named:
                if (packed := self._parts.get(digest)) is not None:
                    needed.update(ref[4:] for ref in _refs(packed))
            self._look_up(needed, also=named)
            kept = [*named, *needed]
        # The recipes' parts are looked up once a row names one not met yet, for that row
        # and the rest (one statement): a batch of a fleet's reports usually meets only
        # parts met before, and gathering every row's digests first cost a tenth of a body.
        looked = False
        part = self._parts.__getitem__
        together = body_parts.put_together
        out: list[tuple[Any, ...]] = []
        for k, (row, key) in enumerate(zip(rows, keys, strict=True)):
            body = None
            if type(key) is tuple:  # a recipe, as nearly every format-4 row has
                count = len(key) // 2
                try:
                    body = together(row[at], key[:count], map(part, key[count:]))
                except KeyError:
                    if not looked:
                        looked = True
                        rest = set().union(*[r[len(r) // 2 :] for r in keys[k:]
                                             if type(r) is tuple])  # fmt: skip
                        self._look_up(rest, also=kept)
                        part = self._parts.__getitem__
                        with contextlib.suppress(KeyError, ValueError):
                            body = together(row[at], key[:count], map(part, key[count:]))
                except ValueError:
                    pass  # worded by `_whole` below
            if body is None:
                body = self._whole(row, at, key)
            out.append((*row[:at], body, None, *row[at + 2 :]))
        return out

    def _whole(self, row: Sequence[Any], at: int, key: _Key) -> bytes:
        """The body of a row whose key is no recipe or whose recipe does not fit (`_whole`
        names why): raises MissingPart, or gives its own bytes only where lenient (which
        then differ from what its chain entry hashed)."""
        own = bytes(row[at])
        if key is None:
            return own
        try:
            return _whole(own, key, self._parts)
        except ValueError as exc:
            if not self._lenient:
                raise MissingPart(f"report {row[0]}: {exc}") from None
            return own

    def one(self, report_id: str, own: bytes, recipe: bytes | None) -> bytes:
        """One stored body made whole."""
        [row] = self.rows([(report_id, own, recipe)], 1)
        return bytes(row[1])

    def _look_up(self, digests: Collection[bytes], also: Sequence[bytes] = ()) -> None:
        """The parts of `digests` not met yet, in one fetch (a part not stored stays
        unknown: its report is named by `rows`). Past the bound, only this batch's are kept
        (`digests`, and `also`: what the batch has looked up already)."""
        new = set(digests).difference(self._parts)
        if not new:  # a batch of a fleet's reports meets its parts again: by sets, not one by one
            return
        found = fetch(self._db, sorted(new))
        added = sum(map(len, found.values()))
        if self._bytes + added > PARTS_BYTES_MOST:
            wanted = {*digests, *also}
            self._parts = {d: v for d, v in self._parts.items() if d in wanted}
            self._bytes = sum(map(len, self._parts.values()))
        self._parts.update(found)
        self._bytes += added


# A row as format 5's record names it (`fact_cuts`): its own bytes, its fact set's digest,
# and the cut of its whole body where it was stored otherwise (None: stored as format 5).
FactCut = tuple[bytes, bytes, fact_sets.Cut | None]


def fact_cuts(
    bodies: Bodies, rows: Sequence[Sequence[Any]], at: int
) -> list[FactCut | None]:  # fmt: skip
    """Each row (column `at` its own bytes, `at + 1` its `parts`) as format 5's record names
    it: a format-5 row as it is stored; any other cut from its whole body (`bodies` puts it
    together), as the seal cuts it; None where its body was pruned (empty, no parts)."""
    out: list[FactCut | None] = [None] * len(rows)
    other: list[int] = []
    for k, row in enumerate(rows):
        body, recipe = bytes(row[at]), None if row[at + 1] is None else bytes(row[at + 1])
        digest = fact_set_named(recipe)
        if digest is not None:
            out[k] = (body, digest, None)
        elif body or recipe is not None:
            other.append(k)
    for k, whole in zip(other, bodies.rows([rows[k] for k in other], at), strict=True):
        made = fact_sets.cut(bytes(whole[at]))
        out[k] = (made.own, made.fact_set_sha256(), made)
    return out


def garbage(cur: Cursor, before_us: int) -> int:
    """Delete the parts no longer named by a report whose body is kept: those whose `last_us`
    is older than `before_us` (every body received before it is pruned) less the slack,
    except the parts of the reports retention keeps (a device's current verdicts name them):
    their recipes' parts, or their fact sets and the parts those name (format 5). Returns
    how many were deleted."""
    keep: set[bytes] = set()
    named: list[bytes] = []
    other: list[tuple[Any, ...]] = []  # kept rows not stored as format 5
    for row in cur.execute(
        "SELECT r.report_id, r.body, r.parts FROM retention_kept k"
        " JOIN reports r ON r.report_id = k.report_id WHERE length(r.body) > 0"
    ).fetchall():
        key = _key_of(None if row[2] is None else bytes(row[2]))
        if isinstance(key, bytes):
            named.append(key)
            continue
        if isinstance(key, tuple):
            keep.update(key[len(key) // 2 :])
        other.append(tuple(row))
    if other:
        # Sealed in format 5 though stored otherwise (its collector had not met its facts,
        # or before the store's format changed either way, or a body kept whole): its seal
        # named the fact set of its whole body. Whatever the store's format now: a store
        # set back to 4 still exports the periods it sealed in 5. (A few rows: the current
        # reports of devices silent past retention.)
        for row in Bodies(cur, lenient=True).rows(other, 1):
            made = fact_sets.cut(bytes(row[1]))
            named.append(made.fact_set_sha256())
    keep.update(named)
    for packed in fetch(cur, named).values():
        keep.update(ref[4:] for ref in _refs(packed))
    old = [
        bytes(r[0])
        for r in cur.execute(
            "SELECT digest FROM fact_parts WHERE last_us < ?", (before_us - SLACK_US,)
        ).fetchall()
    ]
    gone = [d for d in old if d not in keep]
    for chunk in pieces(gone):
        marks = ", ".join("?" * len(chunk))
        cur.execute(f"DELETE FROM fact_parts WHERE digest IN ({marks})", list(chunk))  # noqa: S608
    return len(gone)

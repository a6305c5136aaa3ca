"""The evidence chain in the database: appending entries inside a writer's transaction, and
reading them back. The hashing and the payloads are `evidence.chain`'s (pure, shared with the
verifier).

Every writer appends inside its own write transaction, which holds the store's one write lock
(SQLite's, or the advisory lock on PostgreSQL): so the chain stays one sequence however many
collectors share the database.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from typing import TypeVar

from devposture.collector.evidence.chain import (
    GENESIS,
    Entry,
    Payload,
    canonical,
    entry_hash,
    now_us,
)
from devposture.collector.store.base import Part, to_us
from devposture.collector.store.engine import AnyDatabase, Cursor, Dialect
from devposture.policy.cli_messages import Worded, said

T = TypeVar("T")

# The row counts a multi-row statement of the ingest path is written for. A statement is
# prepared once per distinct text and kept in the connection's cache (sqlite3 keeps 128;
# psycopg prepares a query on the server after a few runs). Written for every group size, it
# would be hundreds of texts, and each group would prepare its large statements again: a
# hundred-row statement takes a few hundred microseconds to prepare (a hundred index seeks in
# one compound SELECT, a millisecond), about as long as running it. Large statements are
# written for these sizes only; up to SMALL rows are written as they come (their texts are
# short and cheap to prepare).
SHAPES = (100, 64, 32, 16, 8, 4, 2, 1)
SMALL = 16


def pieces(rows: Sequence[T]) -> Iterator[Sequence[T]]:
    """`rows` in consecutive pieces for one statement each: of a size in SHAPES while more
    than SMALL are left, then the rest (at most SMALL) as one."""
    start, count = 0, len(rows)
    while count - start > SMALL:
        size = next(shape for shape in SHAPES if shape <= count - start)
        yield rows[start : start + size]
        start += size
    if start < count:
        yield rows[start:]


def padded(values: Sequence[T]) -> Iterator[list[T]]:
    """`values` in pieces of at most 100, each padded to a size of SHAPES by repeating its
    last value: for reads (`IN (...)`, one lookup per value), where a repeat costs a repeated
    lookup and changes no answer."""
    for start in range(0, len(values), SHAPES[0]):
        piece = list(values[start : start + SHAPES[0]])
        size = min(shape for shape in SHAPES if shape >= len(piece))
        yield piece + [piece[-1]] * (size - len(piece))


def append(cur: Cursor, kind: str, key: str, payload: Payload, at_us: int | None = None) -> int:
    """Chain one record, on the cursor of the transaction that writes the record: one read of
    the head (by primary key), one hash, one INSERT. Returns the new entry's sequence number."""
    return Appender(cur).append(kind, key, payload, at_us)


# (seq, at_us, hash) of the newest entry; (0, 0, GENESIS) before the first.
Head = tuple[int, int, bytes]


class Appender:
    """Chains many records in one write transaction, reading the head once: a group commit of
    hundreds of reports and their state changes would otherwise read it before every entry.

    Only for a transaction that writes the chain through this object alone (the write lock,
    taken by BEGIN IMMEDIATE, keeps other connections out). When a savepoint is rolled back,
    `rewind` to the `mark` taken when it began, so that the next entry follows what is still
    written."""

    def __init__(self, cur: Cursor) -> None:
        self._cur = cur
        self._head: Head | None = None

    def mark(self) -> Head | None:
        return self._head

    def rewind(self, mark: Head | None) -> None:
        self._head = mark

    def append(self, kind: str, key: str, payload: Payload, at_us: int | None = None) -> int:
        """Chain one record (see `append`); returns the new entry's sequence number."""
        row = self.entry(kind, key, payload, at_us)
        self._cur.execute(_INSERT + _VALUES, row)
        return row[0]

    def append_canonical(
        self, kind: str, key: str, payload: bytes, at_us: int | None = None
    ) -> int:
        """`append` of a payload already in its canonical form (a report group's, written
        out from its reports' records)."""
        row = self.canonical_row(kind, key, payload, at_us)
        self._cur.execute(_INSERT + _VALUES, row)
        return row[0]

    def canonical_row(
        self, kind: str, key: str, payload: bytes, at_us: int | None = None
    ) -> tuple[int, str, int, str, bytes, bytes, bytes]:
        """`entry` of a payload already in its canonical form."""
        return self._row(kind, key, payload, at_us)

    def entry(
        self, kind: str, key: str, payload: Payload, at_us: int | None = None
    ) -> tuple[int, str, int, str, bytes, bytes, bytes]:
        """The next entry's row, the head moved past it: the caller writes it (`write`) in
        this transaction, entries in order, before anything else is chained."""
        return self._row(kind, key, canonical(payload), at_us)

    def _row(
        self, kind: str, key: str, body: bytes, at_us: int | None
    ) -> tuple[int, str, int, str, bytes, bytes, bytes]:
        head = self._head
        if head is None:
            row = self._cur.execute(
                "SELECT seq, at_us, hash FROM evidence_chain ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            head = (row[0], row[1], bytes(row[2])) if row else (0, 0, GENESIS)
        seq, prev_at, prev_hash = head[0] + 1, head[1], head[2]
        at = max(now_us() if at_us is None else at_us, prev_at)
        digest = entry_hash(prev_hash, seq, kind=kind, at_us=at, key=key, payload=body)
        self._head = (seq, at, digest)
        return (seq, kind, at, key, body, prev_hash, digest)

    def write(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Write entries made by `entry`, up to a hundred per statement (`pieces`)."""
        for chunk in pieces(rows):
            self._cur.execute(_insert(len(chunk)), [v for row in chunk for v in row])


_INSERT = (
    "INSERT INTO evidence_chain(seq, kind, at_us, record_key, payload, prev_hash, hash) VALUES "
)
_VALUES = "(?, ?, ?, ?, ?, ?, ?)"


@functools.cache
def _insert(rows: int) -> str:
    return _INSERT + ", ".join([_VALUES] * rows)


class EntryUnreadable(Worded, ValueError):
    """A chain entry whose number or time is not a whole number: typed into the database by
    hand (SQLite keeps text in an INTEGER column). Said in words where the export and `audit
    check` read it, instead of an AssertionError's traceback."""


def _entry(row: tuple[object, ...]) -> Entry:
    seq, kind, at_us, key, payload, prev_hash, digest = row
    if not isinstance(seq, int) or not isinstance(at_us, int):
        raise EntryUnreadable(said(
            "the evidence chain's entry at seq {seq} has a time that is not a whole number"
            " ({at}): it was edited outside the collector (证据链条目在采集器之外被修改). Restore"
            " the database from a backup, or find out who changed it.",
            seq=str(seq), at=repr(at_us)))  # fmt: skip
    return Entry(seq, str(kind), at_us, str(key), bytes(payload),  # type: ignore[call-overload]
                 bytes(prev_hash), bytes(digest))  # type: ignore[call-overload]  # fmt: skip


@functools.cache
def _columns(dialect: Dialect) -> str:
    """An entry's columns, its payload and hashes read as bytes whatever a hand edit stored in
    them (`Dialect.blob`): `UPDATE evidence_chain SET payload = '…'` in SQLite stores text,
    which failed to read ("string argument without an encoding") where the export and
    `audit check` are to name the entry as edited."""
    blobs = ", ".join(dialect.blob(column) for column in ("payload", "prev_hash", "hash"))
    return f"seq, kind, at_us, record_key, {blobs}"


def entries(db: AnyDatabase, first: int, last: int) -> list[Entry]:
    return select(db, "seq BETWEEN ? AND ?", (first, last))


def keys(
    db: AnyDatabase, first: int, last: int, most: int | None = None
) -> list[tuple[int, str, str]]:  # fmt: skip
    """(seq, kind, key) of the entries `first`..`last` (the first `most`), without their
    payloads."""
    return index(db, "seq BETWEEN ? AND ?", (first, last), most)


def select(db: AnyDatabase, condition: str, params: Sequence[object]) -> list[Entry]:
    """The entries a fixed condition (written in the store, never from input) picks, in
    sequence order."""
    rows = db.execute(
        f"SELECT {_columns(db.dialect)} FROM evidence_chain WHERE {condition} ORDER BY seq",  # noqa: S608
        tuple(params),
    ).fetchall()
    return [_entry(r) for r in rows]


def index(
    db: AnyDatabase, condition: str, params: Sequence[object], most: int | None = None
) -> list[tuple[int, str, str]]:  # fmt: skip
    """(seq, kind, key) of the entries a fixed condition picks (the first `most`), in sequence
    order, without their payloads: what a reader of the chain sizes its reads by
    (evidence/batches.py)."""
    limit = "" if most is None else " LIMIT ?"
    rows = db.execute(
        f"SELECT seq, kind, record_key FROM evidence_chain WHERE {condition} ORDER BY seq{limit}",  # noqa: S608
        (*params, *(() if most is None else (most,))),
    ).fetchall()
    return [(int(seq), str(kind), str(key)) for seq, kind, key in rows]


def records_in(db: AnyDatabase, first: int, last: int) -> int:
    """How many records the entries `first`..`last` stand for, each report group counted as
    the reports it seals (`report_groups`, one row a group): what an export sizes its work
    by. A sizing only: a `report_groups` row edited by hand changes it, never what is
    checked."""
    row = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(reports), 0) FROM report_groups WHERE seq BETWEEN ? AND ?",
        (first, last),
    ).fetchone()
    groups, reports = (0, 0) if row is None else (int(row[0]), int(row[1]))
    return max(last - first + 1, 0) - groups + reports


def entry(db: AnyDatabase, seq: int) -> Entry | None:
    found = entries(db, seq, seq)
    return found[0] if found else None


def head(db: AnyDatabase) -> Entry | None:
    row = db.execute(
        f"SELECT {_columns(db.dialect)} FROM evidence_chain ORDER BY seq DESC LIMIT 1"  # noqa: S608
    ).fetchone()
    return None if row is None else _entry(row)


def period(db: AnyDatabase, from_us: int, to_us: int) -> tuple[int, int] | None:
    """The first and last sequence numbers of the entries written in [from_us, to_us)."""
    row = db.execute(
        "SELECT MIN(seq), MAX(seq) FROM evidence_chain WHERE at_us >= ? AND at_us < ?",
        (from_us, to_us),
    ).fetchone()
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


class Evidence(Part):
    """The evidence chain's read side (`Store.evidence`); entries are appended by each part's
    writers, in their own transactions."""

    def chain_head(self) -> Entry | None:
        return head(self._db)

    def chain_entries(self, first: int, last: int) -> list[Entry]:
        return entries(self._db, first, last)

    def chain_index(
        self, first: int, last: int, most: int | None = None
    ) -> list[tuple[int, str, str]]:  # fmt: skip
        """(seq, kind, key) of the entries `first`..`last` (the first `most`), without their
        payloads."""
        return keys(self._db, first, last, most)

    def chain_records(self, first: int, last: int) -> int:
        """How many records the entries `first`..`last` stand for (`records_in`)."""
        return records_in(self._db, first, last)

    def chain_period(self, start: dt.datetime, end: dt.datetime) -> tuple[int, int] | None:
        return period(self._db, to_us(start), to_us(end))

    def chain_at(self, seqs: Sequence[int]) -> Iterator[Entry]:
        """The entries at `seqs` (sorted), in sequence order, a hundred a statement."""
        for piece in padded(seqs):
            seen: set[int] = set()
            for entry in select(self._db, f"seq IN ({', '.join('?' * len(piece))})", piece):
                if entry.seq not in seen:
                    seen.add(entry.seq)
                    yield entry

    def chain_first_written_from(self, start: dt.datetime) -> int | None:
        row = self._db.execute(
            "SELECT MIN(seq) FROM evidence_chain WHERE at_us >= ?", (to_us(start),)
        ).fetchone()
        return None if row[0] is None else int(row[0])

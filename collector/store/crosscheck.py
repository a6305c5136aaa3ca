"""The reads that check the tables against the evidence chain (`Store.crosscheck`).

An operator who drops the append-only triggers can edit `state_changes`, `check_results` or a
report, and the dashboard and the reports, which read the tables, would show the edit, while
audit bundles, made from the chain, would not. `evidence.crosscheck` compares the two; this
part reads them for it: the chain by sequence number, the rows a batch of entries names (by
primary key), each chained table's keys in index order, the current verdicts beside the last
state change of each (device, check), and the waivers beside their events.

Every read is one bounded batch (a few thousand rows, report bodies a hundred at a time and
hashed as they arrive), so the check runs in the same memory over a site's thousand reports or
a fleet's ten million chain entries. Nothing is written. The SQL is the shared dialect: row
values compared in index order (`(a, b) > (?, ?)`), keys looked up from a VALUES list.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devposture.collector.evidence import chain, fact_groups
from devposture.collector.evidence.crosscheck import Key, Pair, Record, Verdict, WaiverRow
from devposture.collector.evidence.fact_checks import FactRow
from devposture.collector.store.base import Part
from devposture.collector.store.chain import Evidence, entries, head, keys, padded, select
from devposture.collector.store.checkpoints import Checkpoints
from devposture.collector.store.engine import Dialect, SqliteDatabase
from devposture.collector.store.fact_parts import Bodies, fact_cuts, fetch

# Rows per batch of a walk in key order (a few thousand: one statement each, bounded memory).
BATCH = 2000
# Waivers whose events are read at once (their log has no index by waiver: one pass of it).
WAIVER_BATCH = 1000


@dataclass(frozen=True)
class _Chained:
    """A table whose rows are chained: its primary key and its rows as their entry's payload."""

    table: str
    key: tuple[str, ...]  # the primary key's columns, in index order
    integer: tuple[bool, ...]  # which of them are numbers (cast in a VALUES list)
    select: str  # the columns of a record, of `t` (and its joins)
    joins: str = ""
    blobs: tuple[str, ...] = ()  # columns of `select` that hold bytes

    def record(self, row: Sequence[Any]) -> tuple[Key, Record]:
        return _RECORDS[self.table](row)

    def columns(self, dialect: Dialect) -> str:
        """`select`, its byte columns read as bytes whatever was typed into them by hand."""
        return _columns(self, dialect)


@functools.cache
def _columns(t: _Chained, dialect: Dialect) -> str:
    select = t.select
    for column in t.blobs:
        select = select.replace(column, dialect.blob(column))
    return select


def _report(row: Sequence[Any]) -> tuple[Key, Record]:
    # The body is hashed here, as it arrives: bodies are never held beyond their statement.
    return (row[0],), chain.report_payload(row[:6], bytes(row[6]))


def _state(row: Sequence[Any]) -> tuple[Key, Record]:
    return (row[0], row[1], row[4]), chain.fields(chain.STATE_FIELDS, row)


def _numbered(names: tuple[str, ...]) -> Callable[[Sequence[Any]], tuple[Key, Record]]:
    """Records of a log whose key is its own number (the first column)."""

    def record(row: Sequence[Any]) -> tuple[Key, Record]:
        return (row[0],), chain.fields(names, row)

    return record


def _pruning(row: Sequence[Any]) -> tuple[Key, Record]:
    # Keyed by its entry's seq; the table keeps these fields of the entry (not the retention).
    return (row[0],), {"at_us": row[1], "before_us": row[2], "reports": row[3]}


_RECORDS: dict[str, Callable[[Sequence[Any]], tuple[Key, Record]]] = {
    "reports": _report,
    "state_changes": _state,
    "waiver_events": _numbered(chain.WAIVER_FIELDS),
    "device_events": _numbered(chain.DEVICE_FIELDS),
    "audit_log": _numbered(chain.ADMIN_FIELDS),
    "pruned_spans": _pruning,
}

TABLES: dict[str, _Chained] = {
    chain.REPORT: _Chained(
        "reports", ("report_id",), (False,),
        "t.report_id, t.device_id, t.received_us, t.collected_us, t.agent_version,"
        " t.clock_skew_ms, t.body, t.parts", blobs=("t.body", "t.parts"),
    ),
    chain.STATE: _Chained(
        "state_changes", ("device_id", "check_id", "since_us"), (False, False, True),
        "t.device_id, t.check_id, t.state, t.reason, t.since_us, t.report_id",
    ),
    # The waiver's own fields are chained with each of its events (a LEFT JOIN: an event whose
    # waiver is gone reads as edited, not as missing).
    chain.WAIVER: _Chained(
        "waiver_events", ("event_id",), (True,),
        "t.event_id, t.waiver_id, t.action, t.at_us, t.detail, w.device_id, w.check_id,"
        " w.owner, w.reason, w.created_us, w.expires_us",
        " LEFT JOIN waivers w ON w.waiver_id = t.waiver_id",
    ),
    chain.DEVICE: _Chained(
        "device_events", ("event_id",), (True,),
        "t.event_id, t.device_id, t.action, t.at_us, t.detail",
    ),
    chain.ADMIN: _Chained(
        "audit_log", ("entry_id",), (True,),
        "t.entry_id, t.at_us, t.actor, t.credential_id, t.role, t.command, t.arguments,"
        " t.outcome, t.message, t.peer",
    ),
    chain.PRUNE: _Chained(
        "pruned_spans", ("seq",), (True,), "t.seq, t.at_us, t.before_us, t.reports"
    ),
}  # fmt: skip


def _row(columns: Sequence[str], alias: str = "") -> str:
    """Columns as one value for comparing in index order: `a` or `(a, b, c)`."""
    named = [f"{alias}{c}" for c in columns]
    return named[0] if len(named) == 1 else "(" + ", ".join(named) + ")"


def _marks(count: int) -> str:
    return "?" if count == 1 else "(" + ", ".join("?" * count) + ")"


@functools.cache
def _lookup(dialect: Dialect, kind: str, rows: int) -> str:
    """The records of `rows` keys: an index seek each."""
    t = TABLES[kind]
    columns = t.columns(dialect)
    if len(t.key) == 1:
        marks = ", ".join("?" * rows)
        return f"SELECT {columns} FROM {t.table} t{t.joins} WHERE t.{t.key[0]} IN ({marks})"  # noqa: S608
    values = "(VALUES " + ", ".join([_marks(len(t.key))] * rows) + ") AS v"
    on = " AND ".join(
        f"t.{column} = " + (f"CAST(v.column{n} AS BIGINT)" if number else f"v.column{n}")
        for n, (column, number) in enumerate(zip(t.key, t.integer, strict=True), start=1)
    )
    return f"SELECT {columns} FROM {dialect.lookup_join(values, t.table, 't', on)}{t.joins}"  # noqa: S608


@functools.cache
def _keys_query(kind: str, lower: str = "", *, before: bool = False, every: int = 0) -> str:
    """Keys of a table in index order: from a key (`lower` ">=") or after one (">", a keyset
    walk), up to one (`before`, not included); `every`: only the key that many rows on."""
    t = TABLES[kind]
    row, marks, order = _row(t.key), _marks(len(t.key)), ", ".join(t.key)
    terms = ([f"{row} {lower} {marks}"] if lower else []) + ([f"{row} < {marks}"] if before else [])
    where = " WHERE " + " AND ".join(terms) if terms else ""
    limit = f"LIMIT 1 OFFSET {every}" if every else "LIMIT ?"
    return f"SELECT {order} FROM {t.table}{where} ORDER BY {order} {limit}"  # noqa: S608


# Each current verdict, with the device of the report it names (None: no such report).
_VERDICTS = (
    "SELECT c.device_id, c.check_id, c.state, c.reason, c.report_id, c.since_us,"
    " (SELECT r.device_id FROM reports r WHERE r.report_id = c.report_id)"
    " FROM check_results c{where} ORDER BY c.device_id, c.check_id LIMIT ?"
)
# The last state change of each (device, check), in key order: the newest `since_us` of each
# pair from the primary key's index, then that row, looked up by key (`lookup_join`: joined
# by hashing, PostgreSQL would read the whole history for every batch).
_LAST_OF = (
    "(SELECT device_id, check_id, MAX(since_us) AS since_us FROM state_changes{where}"
    " GROUP BY device_id, check_id ORDER BY device_id, check_id LIMIT ?) AS l"
)


@functools.cache
def _last_changes(dialect: Dialect, *, first: bool) -> str:
    found = dialect.lookup_join(
        _LAST_OF.format(where="" if first else _after_pair("")), "state_changes", "s",
        "s.device_id = l.device_id AND s.check_id = l.check_id AND s.since_us = l.since_us",
    )  # fmt: skip
    return (
        "SELECT s.device_id, s.check_id, s.state, s.reason, s.since_us, s.report_id"  # noqa: S608
        f" FROM {found} ORDER BY s.device_id, s.check_id"
    )


def _after_pair(alias: str) -> str:
    return f" WHERE ({alias}device_id, {alias}check_id) > (?, ?)"


class Crosscheck(Part):
    """The tables and the chain, read in bounded batches for `evidence.crosscheck`."""

    @functools.cached_property
    def _bodies(self) -> Bodies:
        # A part gone or edited away leaves its report's body short: the body then differs
        # from its chain entry, which is what the cross-check says, naming the report.
        return Bodies(self._db, lenient=True)

    @contextmanager
    def consistent(self) -> Iterator[None]:
        """Every read inside sees one committed state, so that counts taken in one pass hold
        in the next; inside a caller's snapshot or transaction already, that one."""
        db = self._db
        if isinstance(db, SqliteDatabase):
            held = db.connection.in_transaction
        else:
            held = db._current() is not None  # this thread's transaction or snapshot
        if held:
            yield
            return
        with db.snapshot():
            yield

    # --- the chain ---------------------------------------------------------------------------

    def chain_last_seq(self) -> int:
        last = head(self._db)
        return 0 if last is None else last.seq

    def chain_entries(self, first: int, last: int) -> list[chain.Entry]:
        return entries(self._db, first, last)

    def chain_index(
        self, first: int, last: int, most: int | None = None
    ) -> list[tuple[int, str, str]]:  # fmt: skip
        return keys(self._db, first, last, most)

    def chain_keys(self, kind: str, first: int, last: int) -> list[tuple[int, str]]:
        """(seq, key) of the entries of one kind in a range, without their payloads; for
        reports, also each report of the report groups there (read from their payloads)."""
        rows = self._db.execute(
            "SELECT seq, record_key FROM evidence_chain WHERE seq BETWEEN ? AND ? AND kind = ?"
            " ORDER BY seq",
            (first, last, kind),
        ).fetchall()
        keys = [(int(r[0]), str(r[1])) for r in rows]
        if kind == chain.REPORT:
            groups = (first, last, chain.REPORT_GROUP, fact_groups.REPORT_FACTS)
            for group in select(self._db, "seq BETWEEN ? AND ? AND kind IN (?, ?)", groups):
                with contextlib.suppress(ValueError):  # an unreadable group is named elsewhere
                    records = (chain.group_records(group) if group.kind == chain.REPORT_GROUP
                               else fact_groups.records(group))  # fmt: skip
                    keys += [(group.seq, str(r.get("report_id"))) for r in records]
        return keys

    def checkpoints(self) -> Iterator[tuple[int, int, list[int]]]:
        """Every checkpoint of the chain, oldest first (`store/checkpoints.py`)."""
        return Checkpoints(self._db).recorded()

    def chain_at(self, seqs: Sequence[int]) -> Iterator[chain.Entry]:
        """The chain's entries at `seqs` (sorted), in sequence order."""
        return Evidence(self._db).chain_at(seqs)

    def opening_entries(self, first: int, last: int) -> Iterator[chain.Entry]:
        """The entries an opening is folded from, in [first, last]."""
        return Checkpoints(self._db).kinds_between(first, last)

    def pruned_before(self) -> int:
        """Report bodies received before this were pruned under the retention policy, by the
        chain's newest prune entry (0: none). Prunings are at most hourly and each prunes up
        to a later time than the one before, so the newest is looked for from the head down,
        no further back than `pruned_spans`' first (none there: nothing to find)."""
        first = self._db.execute("SELECT MIN(seq) FROM pruned_spans").fetchone()[0]
        if first is None:
            return 0
        row = self._db.execute(
            "SELECT payload FROM evidence_chain WHERE kind = ? AND seq >= ?"
            " ORDER BY seq DESC LIMIT 1",
            (chain.PRUNE, int(first)),
        ).fetchone()
        if row is None:
            return 0
        try:
            value = json.loads(bytes(row[0])).get("before_us")
        except (ValueError, AttributeError):  # not a JSON object: the chain check names it
            return 0
        return value if isinstance(value, int) else 0

    def last_pruning(self) -> int:
        """The seq of the newest pruning recorded (0: none). Every pruning that empties bodies
        records one in its transaction, so two reads that agree on it see the same bodies;
        `pruned_before` alone may agree where they do not (a pruning that frees bodies it had
        kept, with nothing newer due, records the before_us of the one before)."""
        row = self._db.execute("SELECT MAX(seq) FROM pruned_spans").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    # --- chained tables, by key ----------------------------------------------------------------

    def records(
        self, kind: str, keys: Sequence[Key], bodies: dict[str, bytes] | None = None
    ) -> dict[Key, Record]:
        """The rows of these keys that exist, each as its chain entry's payload would hold it
        now: a hundred keys a statement (a report body is hashed as it is read, and handed
        to `bodies` when given: the exporter writes the very bytes it checked)."""
        found: dict[Key, Record] = {}
        for piece in padded(list(keys)):
            args = [value for key in piece for value in key]
            rows = self._db.execute(_lookup(self.dialect, kind, len(piece)), args).fetchall()
            if kind == chain.REPORT:
                rows = self._bodies.rows(rows, 6)
            for row in rows:
                key, record = TABLES[kind].record(row)
                found[key] = record
                if bodies is not None and kind == chain.REPORT:
                    bodies[str(row[0])] = bytes(row[6])
        return found

    def reports_numbered(
        self, first_n: int, last_n: int, bodies: dict[str, bytes] | None = None
    ) -> list[tuple[int, Key, Record]]:
        """(n, key, record) of the reports numbered first_n to last_n (report groups'), in
        that order, as `records` gives them."""
        t = TABLES[chain.REPORT]
        found: list[tuple[int, Key, Record]] = []
        for row in self.reports_whole(first_n, last_n):
            found.append((int(row[8]), *t.record(row)))
            if bodies is not None:
                bodies[str(row[0])] = bytes(row[6])
        return found

    def reports_whole(self, first_n: int, last_n: int) -> list[tuple[Any, ...]]:
        """The reports numbered first_n to last_n, in that order, as their rows: (report_id,
        device_id, received_us, collected_us, agent_version, clock_skew_ms, body, None, n),
        each body whole (a part not stored leaves the report's own bytes, which then differ
        from its chain entry). What an export's run holds its groups to, without a record
        made of each row (`evidence/batch_work`)."""
        return self._bodies.rows(self._numbered(first_n, last_n), 6)

    def _numbered(self, first_n: int, last_n: int) -> list[Any]:
        """The rows of the reports numbered first_n to last_n, in that order (`TABLES`'
        report columns and n), as stored."""
        t = TABLES[chain.REPORT]
        return self._db.execute(
            f"SELECT {t.columns(self.dialect)}, t.n FROM reports t WHERE t.n BETWEEN ? AND ?"  # noqa: S608
            " ORDER BY t.n",
            (first_n, last_n),
        ).fetchall()

    def fact_rows(self, first_n: int, last_n: int) -> list[FactRow]:
        """The reports numbered first_n to last_n, in that order, as format 5's records name
        them (`fact_checks.FactRow`): what its groups are held to."""
        return self._fact_rows(self._numbered(first_n, last_n))

    def numbered_count(self, first_n: int, last_n: int) -> tuple[int, int]:
        """How many reports are numbered first_n to last_n, and how many of them had their
        bodies pruned: one walk of the numbers' index and the rows' headers, nothing read out."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN length(body) = 0 THEN 1 ELSE 0 END), 0)"
            " FROM reports WHERE n BETWEEN ? AND ?",
            (first_n, last_n),
        ).fetchone()
        return int(row[0]), int(row[1])

    def fact_rows_of(self, report_ids: Sequence[str]) -> dict[str, FactRow]:
        """`fact_rows` of these reports that exist, by report id (a group's reports numbered
        outside its range)."""
        t = TABLES[chain.REPORT]
        found: dict[str, FactRow] = {}
        for piece in padded(list(report_ids)):
            marks = ", ".join("?" * len(piece))
            rows = self._db.execute(
                f"SELECT {t.columns(self.dialect)}, t.n FROM reports t"  # noqa: S608
                f" WHERE t.report_id IN ({marks})", list(piece),
            ).fetchall()  # fmt: skip
            found.update((r.report_id, r) for r in self._fact_rows(rows))
        return found

    def _fact_rows(self, rows: Sequence[Sequence[Any]]) -> list[FactRow]:
        """Rows (`TABLES`' report columns and n) as `FactRow`s (`fact_parts.fact_cuts`): a
        format-5 row as it is stored; a pruned one without its own bytes and fact set; any
        other cut from its whole body, as the seal cut it (`store/sealing.py`)."""
        return [
            FactRow(-1 if row[8] is None else int(row[8]), tuple(row[:6]),
                    *((None, None) if found is None else found[:2]))
            for row, found in zip(rows, fact_cuts(self._bodies, rows, 6), strict=True)
        ]  # fmt: skip

    def fact_parts(self, digests: Sequence[bytes]) -> dict[bytes, bytes]:
        """The fact sets and parts of these digests that are stored (format 5's bundle
        ships them)."""
        return fetch(self._db, digests)

    def reports_received(
        self, first_us: int, last_us: int, limit: int, bodies: dict[str, bytes] | None = None
    ) -> dict[Key, Record] | None:
        """The reports received in [first_us, last_us], as `records` gives them: one walk of
        `reports_by_received` over rows stored in the order they came, where a hundred
        report ids are a hundred seeks scattered over the whole table. None where more than
        `limit` rows were received then (read them by id): nothing is held beyond it."""
        t = TABLES[chain.REPORT]
        rows = self._db.execute(
            f"SELECT {t.columns(self.dialect)} FROM reports t WHERE t.received_us BETWEEN ? AND ?"  # noqa: S608
            " LIMIT ?",
            (first_us, last_us, limit + 1),
        ).fetchall()
        if len(rows) > limit:
            return None
        found: dict[Key, Record] = {}
        for row in self._bodies.rows(rows, 6):
            key, record = t.record(row)
            found[key] = record
            if bodies is not None:
                bodies[str(row[0])] = bytes(row[6])
        return found

    def range_starts(self, kind: str, every: int) -> Iterator[tuple[Key, int]]:
        """The table in consecutive ranges of `every` rows (the last one fewer), as (first key
        of the range, rows in it): the index is stepped through, not read out."""
        t = TABLES[kind]
        row = self._db.execute(_keys_query(kind), (1,)).fetchone()
        while row is not None:
            start = tuple(row)
            row = self._db.execute(_keys_query(kind, ">=", every=every), start).fetchone()
            if row is not None:
                yield start, every
                continue
            rest = self._db.execute(
                f"SELECT COUNT(*) FROM {t.table} WHERE {_row(t.key)} >= {_marks(len(t.key))}",  # noqa: S608
                start,
            ).fetchone()[0]
            yield start, int(rest)

    def keys_between(self, kind: str, start: Key, end: Key | None) -> Iterator[list[Key]]:
        """The table's keys from `start` up to (not including) `end`, a batch at a time."""
        bound = tuple(end) if end is not None else ()
        lower, after = ">=", start
        while True:
            query = _keys_query(kind, lower, before=end is not None)
            batch = [tuple(r) for r in self._db.execute(query, (*after, *bound, BATCH))]
            if not batch:
                return
            yield batch
            lower, after = ">", batch[-1]

    # --- verdicts beside the state history -----------------------------------------------------

    def pairs(self) -> Iterator[list[Pair]]:
        """Every (device, check) that has a current verdict or a state change, in key order,
        with its verdict and its last state change (either may be None)."""
        after: tuple[str, ...] = ()
        while True:
            first = not after
            verdicts = self._db.execute(
                _VERDICTS.format(where="" if first else _after_pair("c.")), (*after, BATCH)
            ).fetchall()
            changes = self._db.execute(
                _last_changes(self.dialect, first=first), (*after, BATCH)
            ).fetchall()
            if not verdicts and not changes:
                return
            # Up to the smaller of the full batches' last pairs: beyond it, one side is unread.
            ends = [(b[-1][0], b[-1][1]) for b in (verdicts, changes) if len(b) == BATCH]
            end = min(ends) if ends else None
            current = {(r[0], r[1]): Verdict(*r) for r in verdicts}
            last = {(r[0], r[1]): chain.fields(chain.STATE_FIELDS, r) for r in changes}
            yield [
                Pair(pair[0], pair[1], current.get(pair), last.get(pair))
                for pair in sorted(current.keys() | last.keys())
                if end is None or pair <= end
            ]
            if end is None:
                return
            after = end

    def history(self, device_id: str, check_id: str) -> list[Record]:
        """Every state change of one (device, check), oldest first."""
        rows = self._db.execute(
            "SELECT device_id, check_id, state, reason, since_us, report_id FROM state_changes"
            " WHERE device_id = ? AND check_id = ? ORDER BY since_us",
            (device_id, check_id),
        ).fetchall()
        return [chain.fields(chain.STATE_FIELDS, r) for r in rows]

    # --- waivers beside their events -------------------------------------------------------------

    def waivers(self) -> Iterator[list[WaiverRow]]:
        """Every waiver, in id order, with its events (event id, action, time)."""
        after: str | None = None
        while True:
            where = "" if after is None else " WHERE waiver_id > ?"
            rows = self._db.execute(
                f"SELECT waiver_id, revoked_us FROM waivers{where} ORDER BY waiver_id LIMIT ?",  # noqa: S608
                (*([after] if after is not None else []), WAIVER_BATCH),
            ).fetchall()
            if not rows:
                return
            events: dict[str, list[tuple[int, str, int]]] = {r[0]: [] for r in rows}
            ids = ", ".join("?" * len(rows))
            for waiver_id, event_id, action, at_us in self._db.execute(
                "SELECT waiver_id, event_id, action, at_us FROM waiver_events"  # noqa: S608
                f" WHERE waiver_id IN ({ids}) ORDER BY event_id",
                [r[0] for r in rows],
            ):
                events[waiver_id].append((int(event_id), str(action), int(at_us)))
            yield [WaiverRow(r[0], r[1], tuple(events[r[0]])) for r in rows]
            after = rows[-1][0]

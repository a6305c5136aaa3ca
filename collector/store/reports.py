"""Reports and their verdicts: what every agent's report writes, and the reads of them.

Reports are append-only (triggers refuse UPDATE and DELETE), each stored once by its report id.
A write returns only after its transaction is committed (SQLite `synchronous=FULL`, PostgreSQL's
synchronous commit), so the service can acknowledge a report the moment this module returns
(DESIGN principle 5). Reports are written in groups (`store_reports`): one transaction, one
disk sync, each report inside its own savepoint so that one bad report costs only itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from devposture.collector.compliance import DeviceSeen
from devposture.collector.evidence import chain
from devposture.collector.standing_rule import ACTIVE
from devposture.collector.store.base import Part, from_us, maybe_from_us, text, to_us
from devposture.collector.store.chain import Appender, padded, pieces
from devposture.collector.store.engine import AnyDatabase, Cursor, Dialect
from devposture.collector.store.fact_parts import (
    Bodies,
    Chooser,
    Cut,
    Written,
    cut,
    cut_chosen,
    write,
)
from devposture.collector.store.report_format import FORMAT_5, records_of
from devposture.collector.store.sealing import (
    SEAL_AFTER_US,
    SEAL_REPORTS,
    Sealable,
    made_record,
    next_number,
    seal,
)

# Records kept for the seal at most (a few seals' worth; more only when another collector
# sealed ours).
SEALABLE_MOST = 4 * SEAL_REPORTS


class StoreOutcome(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    # The report id is already stored for a different device.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class OutboxFigures:
    """What the agent's outbox said about itself in a report (cumulative since install)."""

    pending: int = 0
    coalesced_total: int = 0
    dropped_total: int = 0
    corrupt_total: int = 0


@dataclass(frozen=True)
class ReportRecord:
    report_id: str
    device_id: str
    received_at: dt.datetime
    # When the facts were collected, on the collector's clock (the agent's time corrected by
    # its measured skew, never after `received_at`); the body keeps the agent's own time.
    collected_at: dt.datetime
    agent_version: str
    body: bytes
    hostname: str
    os_family: str
    os_name: str
    os_version: str
    # Collector clock minus agent clock, when the agent said when it sent the report.
    clock_skew_ms: int | None = None
    outbox: OutboxFigures = OutboxFigures()


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    state: str
    reason: str


@dataclass(frozen=True)
class DeviceResultRow:
    """One device and, when it has reported, its latest verdict for one check."""

    device_id: str
    hostname: str
    os_family: str
    last_report_at: dt.datetime | None
    check_id: str | None
    state: str | None
    reason: str | None
    collected_at: dt.datetime | None
    # When the collector judged it (its own clock).
    evaluated_at: dt.datetime | None = None


@functools.cache
def _update_device(dialect: Dialect) -> str:
    """What every stored report updates of its device; the caller adds the rest and the
    WHERE."""
    return (
        "UPDATE devices SET last_report_us ="  # noqa: S608 (fixed fragments only)
        f" {dialect.greatest('COALESCE(last_report_us, 0)', 'CAST(? AS BIGINT)')},"
        " hostname = ?, os_family = ?, os_name = ?, os_version = ?, agent_version = ?,"
        " clock_skew_ms = COALESCE(CAST(? AS BIGINT), clock_skew_ms)"
    )


@functools.cache
def _upsert_results(rows: int) -> str:
    """The current verdicts of `rows` checks, written unless a newer report's are there."""
    return (
        "INSERT INTO check_results(device_id, check_id, state, reason, report_id,"  # noqa: S608 (only placeholders are joined in)
        " collected_us, evaluated_us, since_us) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
        + " ON CONFLICT(device_id, check_id) DO UPDATE SET state = excluded.state,"
        " reason = excluded.reason, report_id = excluded.report_id,"
        " collected_us = excluded.collected_us, evaluated_us = excluded.evaluated_us,"
        " since_us = COALESCE(excluded.since_us, check_results.since_us)"
        " WHERE excluded.collected_us >= check_results.collected_us"
    )


T = TypeVar("T")
# A check_results row: device, check, state, reason, report, collected, evaluated, since (None
# for a report that is not its device's newest).
VerdictRow = tuple[str, str, str, str, str, int, int, int | None]
# Rows, or SELECT terms, in one statement: at most 100 (chain.SHAPES), well within SQLite's
# limits on bound variables (32766) and on the terms of a compound SELECT (500).
_INSERT_CHANGES = (
    "INSERT INTO state_changes(device_id, check_id, state, reason, since_us, report_id) VALUES "
)
_CHANGE_VALUES = "(?, ?, ?, ?, ?, ?)"
_INSERT_REPORTS = (
    "INSERT INTO reports(report_id, device_id, received_us, collected_us, agent_version,"
    " clock_skew_ms, body, parts, n) VALUES "
)
_REPORT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"

Change = tuple[str, str, str, str, int, str]  # a state_changes row, in STATE_FIELDS order


def _flat(rows: Sequence[Sequence[object]]) -> list[object]:
    """The values of `rows`, one after the other (a multi-row statement's parameters)."""
    return list(itertools.chain.from_iterable(rows))


def _chunks(rows: list[T]) -> Iterator[Sequence[T]]:
    """Rows to write, in pieces of the few sizes statements are written for (chain.pieces)."""
    return pieces(rows)


def _insert(
    cur: Cursor, insert: str, values: str, rows: list[tuple[object, ...]], then: str = ""
) -> int:
    """Write `rows` with one multi-row INSERT per chunk (`then` ends each: an ON CONFLICT
    clause): one step each, not one per row. Returns how many rows went in."""
    inserted = 0
    for chunk in _chunks(rows):
        cur.execute(insert + ", ".join([values] * len(chunk)) + then, _flat(chunk))
        inserted += cur.rowcount
    return inserted


@functools.cache
def _latest_states_query(pairs: int) -> str:
    """One statement for the last state change of `pairs` (device, check) pairs: an index
    seek each, as `ORDER BY since_us DESC LIMIT 1` is for one."""
    one = (
        "SELECT * FROM (SELECT device_id, check_id, state, since_us FROM state_changes"
        " WHERE device_id = ? AND check_id = ? ORDER BY since_us DESC LIMIT 1) AS latest"
    )
    return " UNION ALL ".join([one] * pairs)


def _latest_states(
    cur: Cursor, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, int]]:
    """(device, check) -> (state, since_us) of its last state change, for those with one."""
    latest: dict[tuple[str, str], tuple[str, int]] = {}
    for chunk in padded(list(dict.fromkeys(pairs))):
        args = [v for pair in chunk for v in pair]
        for device_id, check_id, state, since in cur.execute(
            _latest_states_query(len(chunk)), args
        ):
            latest[(device_id, check_id)] = (state, since)
    return latest


def _changes(
    latest: dict[str, tuple[str, int]], device_id: str, report_id: str, at_us: int,
    results: list[CheckResult],
) -> tuple[dict[str, int], list[Change]]:  # fmt: skip
    """A state change for each check whose state differs from its last one (`latest`, check
    -> (state, since_us), brought up to date), and per check since when its (new or
    unchanged) state holds."""
    held: dict[str, int] = {}
    changes: list[Change] = []
    for result in results:
        check_id, state = result.check_id, result.state
        row = latest.get(check_id)
        if row is not None and row[0] == state:
            held[check_id] = row[1]
            continue
        since = max(at_us, row[1] + 1 if row is not None else 0)
        held[check_id] = since
        latest[check_id] = (state, since)
        changes.append((device_id, check_id, state, result.reason, since, report_id))
    return held, changes


def _newest_collected(cur: Cursor, device_ids: list[str]) -> dict[str, int | None]:
    """Each enrolled device's newest collection time stored (None before its first report):
    an index seek each (reports_by_collection)."""
    newest: dict[str, int | None] = {}
    for chunk in padded(device_ids):
        marks = ", ".join("?" * len(chunk))
        newest.update(cur.execute(
            "SELECT d.device_id, (SELECT MAX(r.collected_us) FROM reports r"  # noqa: S608
            f" WHERE r.device_id = d.device_id) FROM devices d WHERE d.device_id IN ({marks})",
            chunk,
        ).fetchall())  # fmt: skip
    return newest


def _owners(cur: Cursor, report_ids: list[str]) -> dict[str, str]:
    """report id -> device id of those already stored."""
    owners: dict[str, str] = {}
    for chunk in padded(list(dict.fromkeys(report_ids))):
        marks = ", ".join("?" * len(chunk))
        owners.update(cur.execute(
            f"SELECT report_id, device_id FROM reports WHERE report_id IN ({marks})",  # noqa: S608
            chunk,
        ).fetchall())  # fmt: skip
    return owners


@dataclass
class _DeviceUpdate:
    """What a group's reports leave in a device's row, applied in the group's order."""

    received: int
    identity: tuple[str, str, str, str, str]  # hostname, OS family, name, version, agent
    skew: int | None
    outbox: OutboxFigures | None  # from the newest report, when one of them was

    def row(self, device_id: str) -> tuple[object, ...]:
        outbox = self.outbox or OutboxFigures()
        return (device_id, self.received, *self.identity, self.skew, int(self.outbox is not None),
                outbox.pending, outbox.coalesced_total, outbox.dropped_total,
                outbox.corrupt_total)  # fmt: skip


# A report to store: its verdicts, its times (received, collected) and whether it is the newest
# of its device so far.
_Stored = tuple[ReportRecord, list[CheckResult], int, int, bool]


def _device_updates(stored: list[_Stored]) -> dict[str, _DeviceUpdate]:
    """Per device, what its reports' updates leave, applied in the group's order."""
    devices: dict[str, _DeviceUpdate] = {}
    for report, _, received, _, is_newest in stored:
        identity = (report.hostname, report.os_family, report.os_name, report.os_version,
                    report.agent_version)  # fmt: skip
        known = devices.get(report.device_id)
        if known is None:
            known = devices[report.device_id] = _DeviceUpdate(received, identity, None, None)
        known.received = max(known.received, received)
        known.identity = identity
        if report.clock_skew_ms is not None:
            known.skew = report.clock_skew_ms
        if is_newest:
            known.outbox = report.outbox
    return devices


@functools.cache
def _update_devices(dialect: Dialect, rows: int) -> str:
    """Each device of a group once: the same as its reports' updates one after the other.
    The numbers are cast where they are used: PostgreSQL types a VALUES column of NULLs as
    text."""
    newer = dialect.greatest("COALESCE(last_report_us, 0)", "CAST(v.column2 AS BIGINT)")

    def outbox(column: str, value: str) -> str:
        return f" {column} = CASE WHEN v.column9 = 1 THEN CAST({value} AS BIGINT) ELSE {column} END"

    return (
        f"UPDATE devices SET last_report_us = {newer},"  # noqa: S608 (only placeholders are joined in)
        " hostname = v.column3, os_family = v.column4, os_name = v.column5,"
        " os_version = v.column6, agent_version = v.column7,"
        " clock_skew_ms = COALESCE(CAST(v.column8 AS BIGINT), clock_skew_ms),"
        + ",".join([outbox("outbox_pending", "v.column10"),
                    outbox("outbox_coalesced_total", "v.column11"),
                    outbox("outbox_dropped_total", "v.column12"),
                    outbox("outbox_corrupt_total", "v.column13")])
        + " FROM (VALUES " + ", ".join([_DEVICE_VALUES] * rows) + ") AS v"
        " WHERE devices.device_id = v.column1"
    )  # fmt: skip


_DEVICE_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _not_yet_stored(
    cur: Cursor, group: list[tuple[ReportRecord, list[CheckResult]]], cuts: list[Cut]
) -> tuple[list[StoreOutcome], list[tuple[ReportRecord, list[CheckResult]]], dict[str, Cut]]:
    """Each report's outcome by its id (stored now, a duplicate of its device's, or a
    conflict with another device's), the reports to write, and each one's body as stored."""
    owners = _owners(cur, [report.report_id for report, _ in group])
    outcomes: list[StoreOutcome] = []
    new: list[tuple[ReportRecord, list[CheckResult]]] = []
    cut_of: dict[str, Cut] = {}
    for (report, results), stored_cut in zip(group, cuts, strict=True):
        owner = owners.get(report.report_id)
        if owner is not None:
            same = owner == report.device_id
            outcomes.append(StoreOutcome.DUPLICATE if same else StoreOutcome.CONFLICT)
            continue
        owners[report.report_id] = report.device_id
        outcomes.append(StoreOutcome.STORED)
        new.append((report, results))
        cut_of[report.report_id] = stored_cut
    return outcomes, new, cut_of


def _metadata(report: ReportRecord, received: int, collected: int) -> tuple[object, ...]:
    """A report row's first columns (`_INSERT_REPORTS`), which its seal's record holds."""
    return (report.report_id, report.device_id, received, collected, report.agent_version,
            report.clock_skew_ms)  # fmt: skip


def _stored_if_all_new(
    cur: Cursor, group: list[tuple[ReportRecord, list[CheckResult]]], cuts: list[Cut],
    first: int,
) -> bool:  # fmt: skip
    """Insert the group's report rows, numbered from `first` in its order, where none of its
    ids is stored yet (nor twice in it): True. Otherwise nothing is written and False: the
    caller finds the stored ones first (`_not_yet_stored`). An agent's ids are new but for a
    retry, so asking first cost every group a look-up of each id (a seek in the primary key,
    which the INSERT makes anyway)."""
    rows = [
        (*_metadata(r, to_us(r.received_at), to_us(r.collected_at)), *c.columns(), first + k)
        for k, ((r, _), c) in enumerate(zip(group, cuts, strict=True))
    ]
    cur.execute("SAVEPOINT fresh")
    inserted = _insert(cur, _INSERT_REPORTS, _REPORT_VALUES, rows, _UNLESS_STORED)
    if inserted != len(rows):
        cur.execute("ROLLBACK TO fresh")
    cur.execute("RELEASE fresh")
    return inserted == len(rows)


_UNLESS_STORED = " ON CONFLICT (report_id) DO NOTHING"


def _write_group(
    cur: Cursor, dialect: Dialect, chained: Appender,
    group: list[tuple[ReportRecord, list[CheckResult]]], *, cuts: list[Cut], written: Written,
    sealable: dict[int, Sealable], held_by_report: dict[str, dict[str, int]],
) -> tuple[list[StoreOutcome], list[tuple[bytes, bytes, int]]]:  # fmt: skip
    """Store a group with a few statements for all of it, leaving what storing its reports
    one after the other (`Store._store_one`) leaves: the same outcomes, rows and chain.
    `cuts`: each report's body as stored (`fact_parts.cut`, or `cut_chosen` where the
    store's format is 5). Also returns the parts written (for `written` once committed),
    puts each stored report's record in `sealable` (in its row's format) and, for
    each that was its device's newest, since when each of its checks' states holds in
    `held_by_report`."""
    first = next_number(cur)
    # Read before the rows are written: each device's newest so far, without this group.
    newest = _newest_collected(cur, list(dict.fromkeys(report.device_id for report, _ in group)))
    fresh = _stored_if_all_new(cur, group, cuts, first)
    if fresh:  # the usual group: no id was stored before (or twice in it)
        outcomes = [StoreOutcome.STORED] * len(group)
        new, cut_of = group, {r.report_id: c for (r, _), c in zip(group, cuts, strict=True)}
    else:
        outcomes, new, cut_of = _not_yet_stored(cur, group, cuts)
    if not new:
        return outcomes, []
    stored: list[_Stored] = []
    pairs: list[tuple[str, str]] = []
    for report, results in new:
        received, collected = to_us(report.received_at), to_us(report.collected_at)
        top = newest.get(report.device_id)
        # Newest of its device so far: what MAX(collected_us) would say once it is stored.
        is_newest = top is None or collected >= top
        if is_newest:
            newest[report.device_id] = collected
            pairs += [(report.device_id, r.check_id) for r in results]
        stored.append((report, results, received, collected, is_newest))
    devices = _device_updates(stored)
    latest_pairs = _latest_states(cur, pairs) if pairs else {}
    latest: dict[str, dict[str, tuple[str, int]]] = {}
    for (device_id, check_id), state in latest_pairs.items():
        latest.setdefault(device_id, {})[check_id] = state
    rows: list[tuple[object, ...]] = []
    entries: list[tuple[object, ...]] = []
    changes: list[tuple[object, ...]] = []
    verdicts: list[VerdictRow] = []
    # Numbered in the order stored; chained when sealed (store/sealing.py).
    numbered = enumerate(stored, start=first)
    for number, (report, results, received, collected, is_newest) in numbered:
        metadata = _metadata(report, received, collected)
        if not fresh:  # else written already
            rows.append((*metadata, *cut_of[report.report_id].columns(), number))
        sealable[number] = made_record(metadata, report.body, cut_of[report.report_id])
        held: dict[str, int] = {}
        if is_newest:
            # The history is dated by when the facts were collected (collector's clock).
            held, made = _changes(latest.setdefault(report.device_id, {}), report.device_id,
                                  report.report_id, collected, results)  # fmt: skip
            held_by_report[report.report_id] = held
            for values in made:
                changes.append(values)
                entries.append(chained.entry(
                    chain.STATE, chain.state_key(values[0], values[1], values[4]),
                    chain.fields(chain.STATE_FIELDS, values),
                ))  # fmt: skip
        verdicts += [
            (report.device_id, r.check_id, r.state, r.reason, report.report_id, collected,
             received, held.get(r.check_id))
            for r in results
        ]  # fmt: skip
    parts = written.due((cut_of[r.report_id], received) for r, _, received, _, _ in stored)
    write(cur, parts)
    if not fresh:
        _insert(cur, _INSERT_REPORTS, _REPORT_VALUES, rows)
    _insert(cur, _INSERT_CHANGES, _CHANGE_VALUES, changes)
    chained.write(entries)
    for chunk in _chunks([update.row(device_id) for device_id, update in devices.items()]):
        cur.execute(_update_devices(dialect, len(chunk)), _flat(chunk))
    _write_verdicts(cur, dialect, verdicts, latest_pairs)
    return outcomes, parts


def _write_verdicts(
    cur: Cursor,
    dialect: Dialect,
    verdicts: list[VerdictRow],
    before: dict[tuple[str, str], tuple[str, int]],
) -> None:
    """Leave check_results as upserting `verdicts` one after the other does, writing less.

    A verdict from a device's newest report (its since is known) always wins over what is
    stored (no stored verdict of the device was collected later), and it sets every column:
    for one (device, check), what came before the last such verdict does not matter. When
    its state and since are those the check already had before the group (`before`: the
    last state change), only columns that no index holds change (reason, report id,
    collected, evaluated): one UPDATE that leaves check_results' indexes alone, where the
    upsert rewrote the standing and failing indexes' entries for every report (about eight
    pages of the WAL per report instead of one). It is guarded by the stored state and
    since, so should a stored row differ after all, the full upsert writes it. Verdicts of
    older reports (since unknown) after it, or without one, are upserted one by one, in
    order."""
    by_pair: dict[tuple[str, str], list[VerdictRow]] = {}
    for row in verdicts:
        pair = (row[0], row[1])
        written = by_pair.get(pair)
        if written is None:
            by_pair[pair] = [row]
        else:
            written.append(row)
    quiet: list[VerdictRow] = []
    upserts: list[VerdictRow] = []
    for pair, written in by_pair.items():
        if len(written) > 1:  # what a newest report wrote replaces everything before it
            last = max((i for i, row in enumerate(written) if row[7] is not None), default=0)
            written = written[last:]  # noqa: PLW2901
        row = written[0]
        if len(written) == 1 and row[7] is not None:
            (quiet if before.get(pair) == (row[2], row[7]) else upserts).append(row)
        else:
            upserts += written
    for chunk in _chunks(quiet):
        cur.execute(_refresh_results(dialect, len(chunk)), _flat(chunk))
        if cur.rowcount != len(chunk):  # a stored row was not as its history says
            upserts += chunk
    for layer in _layers(upserts):
        for chunk in _chunks(layer):
            cur.execute(_upsert_results(len(chunk)), _flat(chunk))


@functools.cache
def _refresh_results(dialect: Dialect, rows: int) -> str:
    """A newer report's verdicts whose state and since are unchanged: their reason, report
    and times, where the stored row has that state and since (and is not newer)."""
    collected = "CAST(v.column6 AS BIGINT)"
    return (
        "UPDATE check_results SET reason = v.column4, report_id = v.column5,"  # noqa: S608 (only placeholders are joined in)
        f" collected_us = {collected}, evaluated_us = CAST(v.column7 AS BIGINT)"
        " FROM (VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows) + ") AS v"
        " WHERE check_results.device_id = v.column1 AND check_results.check_id = v.column2"
        " AND check_results.state = v.column3"
        " AND check_results.since_us = CAST(v.column8 AS BIGINT)"
        f" AND check_results.collected_us <= {collected}"
    )


def _layers(verdicts: list[VerdictRow]) -> list[list[VerdictRow]]:
    """The verdicts in statements that each name a (device, check) once, in the group's order:
    PostgreSQL refuses an upsert that touches a row twice, and SQLite applies such rows one
    after the other, which layers do too. Without two reports of one device, one layer."""
    layers: list[list[VerdictRow]] = []
    seen: dict[tuple[str, str], int] = {}
    for row in verdicts:
        depth = seen.get((row[0], row[1]), 0)
        seen[(row[0], row[1])] = depth + 1
        if depth == len(layers):
            layers.append([])
        layers[depth].append(row)
    return layers


def _text_safe(
    report: ReportRecord, results: list[CheckResult]
) -> tuple[ReportRecord, list[CheckResult]]:
    """The report's text fields and verdicts as both engines store them (`base.text`)."""
    fields = (report.report_id, report.device_id, report.agent_version, report.hostname,
              report.os_family, report.os_name, report.os_version)  # fmt: skip
    if any("\x00" in f for f in fields) or any("\x00" in r.reason + r.check_id + r.state
                                                 for r in results):  # fmt: skip
        report = dataclasses.replace(
            report, report_id=text(report.report_id), device_id=text(report.device_id),
            agent_version=text(report.agent_version), hostname=text(report.hostname),
            os_family=text(report.os_family), os_name=text(report.os_name),
            os_version=text(report.os_version),
        )  # fmt: skip
        results = [CheckResult(text(r.check_id), text(r.state), text(r.reason)) for r in results]
    return report, results


class Reports(Part):
    """Reports, verdicts and the state history (`Store.reports`)."""

    # A stored report's longest wait for its seal, and the most reports a seal waits for
    # (store/sealing.py); a test that reads the chain at once sets the wait to 0.
    seal_after_us = SEAL_AFTER_US
    seal_reports = SEAL_REPORTS

    def __init__(self, database: AnyDatabase) -> None:
        super().__init__(database)
        # The fact parts this process wrote, so that repeated ones are not written again,
        # and (format 5) the fact sets and devices it met (`fact_parts.cut_chosen`).
        self._chooser = Chooser()
        self._written = self._chooser.written
        # The records of reports this process stored and committed, not sealed yet (n ->
        # canonical record): the seal takes them instead of reading the rows back.
        self._sealable: dict[int, Sealable] = {}
        # The store's report format (`report_format.py`), read at the first write.
        self._format: int | None = None

    def _report_format(self) -> int:
        if self._format is None:
            self._format = records_of(self._db)
        return self._format

    def _cut(self, report: ReportRecord) -> Cut:
        """A report's body cut for storing in the store's format (format 5: as 5 or 4 by
        whether this process will likely meet its fact set again, `fact_parts.cut_chosen`)."""
        if self._report_format() == FORMAT_5:
            return cut_chosen(report.body, to_us(report.received_at), report.device_id,
                              self._chooser)  # fmt: skip
        return cut(report.body)

    def device_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM devices").fetchone()[0])

    def any_device(self) -> bool:
        """Whether any device was ever enrolled: one row read, not the table counted (9 ms
        of `report fleet`'s 0.5 s over 100,000 devices on PostgreSQL)."""
        return self._db.execute("SELECT 1 FROM devices LIMIT 1").fetchone() is not None

    def device_exists(self, device_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return row is not None

    def latest_reports(self) -> list[tuple[str, str, dt.datetime, bytes]]:
        """(device id, report id, collection time on the collector's clock, body) of each
        device's most recently collected report."""
        rows = self._db.execute(
            "SELECT r.report_id, r.device_id, r.collected_us, r.body, r.parts FROM reports r"
            " JOIN (SELECT device_id, MAX(collected_us) AS newest"
            " FROM reports GROUP BY device_id) n"
            " ON n.device_id = r.device_id AND n.newest = r.collected_us"
        ).fetchall()
        return [(r[1], r[0], from_us(r[2]), bytes(r[3])) for r in Bodies(self._db).rows(rows, 3)]

    def replace_results(
        self, device_id: str, report_id: str, collected_at: dt.datetime,
        evaluated_at: dt.datetime, results: list[CheckResult],
    ) -> None:  # fmt: skip
        """Put new verdicts for a device's latest report (after the policy changed), unless
        a newer report's verdicts are there: re-judging reads every latest report first, and
        writes device by device while reports go on arriving; it replaced a newer report's
        verdicts with the older one's (the state went back, chained as a change)."""
        with self._write() as cur:
            newer = cur.execute(
                "SELECT 1 FROM check_results WHERE device_id = ? AND collected_us > ? LIMIT 1",
                (device_id, to_us(collected_at)),
            ).fetchone()
            if newer is not None:
                return
            since = self._record_changes(cur, device_id, report_id, evaluated_at, results)
            cur.execute("DELETE FROM check_results WHERE device_id = ?", (device_id,))
            cur.executemany(
                "INSERT INTO check_results(device_id, check_id, state, reason, report_id,"
                " collected_us, evaluated_us, since_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (device_id, r.check_id, r.state, r.reason, report_id, to_us(collected_at),
                     to_us(evaluated_at), since[r.check_id])
                    for r in results
                ],
            )  # fmt: skip

    @staticmethod
    def _record_changes(
        cur: Cursor, device_id: str, report_id: str, at: dt.datetime,
        results: list[CheckResult], *, chained: Appender | None = None,
    ) -> dict[str, int]:  # fmt: skip
        """Append a state change for each check whose state differs from its last one.
        Returns, per check, since when its (new or unchanged) state holds."""
        chained = chained if chained is not None else Appender(cur)
        latest = {
            check_id: state
            for (_, check_id), state in _latest_states(
                cur, [(device_id, r.check_id) for r in results]
            ).items()
        }
        held, changes = _changes(latest, device_id, report_id, to_us(at), results)
        for values in changes:
            cur.execute(_INSERT_CHANGES + _CHANGE_VALUES, values)
            chained.append(chain.STATE, chain.state_key(values[0], values[1], values[4]),
                           chain.fields(chain.STATE_FIELDS, values))  # fmt: skip
        return held

    def devices_seen(self, until: dt.datetime | None = None) -> list[DeviceSeen]:
        """Devices enrolled by `until`, each with its last report received by then and when
        IT revoked or retired it (if it did: `compliance.standings` leaves it out from then;
        a status without its moment reads as left since enrollment, never counted by a guess)."""
        limit = to_us(until) if until is not None else 2**62
        rows = self._db.execute(
            "SELECT d.device_id, d.hostname, d.os_family, d.enrolled_us,"
            " (SELECT MAX(r.received_us) FROM reports r"
            "  WHERE r.device_id = d.device_id AND r.received_us <= ?),"
            " CASE WHEN d.status = ? THEN NULL ELSE COALESCE(d.status_us, d.enrolled_us) END"
            " FROM devices d WHERE d.enrolled_us <= ? ORDER BY d.hostname, d.device_id",
            (limit, ACTIVE, limit),
        ).fetchall()
        return [
            DeviceSeen(r[0], r[1], r[2], from_us(r[3]), maybe_from_us(r[4]), maybe_from_us(r[5]))
            for r in rows
        ]

    def state_changes(
        self, until: dt.datetime | None = None
    ) -> list[tuple[str, str, str, str, dt.datetime]]:
        """(device, check, state, reason, since) of every change, oldest first, up to `until`."""
        limit = to_us(until) if until is not None else 2**62
        rows = self._db.execute(
            "SELECT device_id, check_id, state, reason, since_us FROM state_changes"
            " WHERE since_us <= ? ORDER BY since_us",
            (limit,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], from_us(r[4])) for r in rows]

    def store_report(self, report: ReportRecord, results: list[CheckResult]) -> StoreOutcome:
        """Store a report and its verdicts once; committed on return."""
        outcome = self.store_reports([(report, results)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def store_reports(
        self, group: list[tuple[ReportRecord, list[CheckResult]]],
        held: dict[str, dict[str, int]] | None = None,
    ) -> list[StoreOutcome | Exception]:  # fmt: skip
        """Store a group of reports in one transaction: committed (one disk sync) on return.

        `held`, when given, receives for each stored report that was its device's newest
        (report id -> check -> since_us) since when each of its checks' states holds, as the
        history now says: when a failure began, for the grace deadline its acknowledgement
        carries, without reading the history back.

        The group is written with a few statements for all its reports, inside a savepoint.
        Should any report fail there (a constraint, a bug), that savepoint is rolled back and
        the group is written again report by report, each in its own savepoint: one that fails
        is rolled back and its exception returned in its place, and the others are still
        committed. A failure of the transaction itself raises, and nothing is stored: on a
        full disk StorageFull (collector/disk_space.py), and the same group can be stored
        once space is freed. Either way the outcome, the rows and the evidence chain are those of
        storing the reports one after the other, in the group's order.
        """
        group = [_text_safe(report, results) for report, results in group]
        if not group:
            return []
        # Time as the reports give it: the newest received is "now" for sealing.
        now = max(to_us(report.received_at) for report, _ in group)
        cuts = [self._cut(report) for report, _ in group]  # outside the write lock
        written: list[tuple[bytes, bytes, int]] = []
        # This group's records, for the seal: kept only once committed (a number rolled back
        # is taken again by another report). A seal takes those it uses out of either.
        sealable: dict[int, Sealable] = {}
        held_now: dict[str, dict[str, int]] = {}
        with self._write() as cur:
            chained = Appender(cur)  # the chain's head is read once per group
            outcomes = self._store_group(cur, chained, group, cuts, written, sealable, held_now)
            seal(cur, chained, now_us=now, after_us=self.seal_after_us, most=self.seal_reports,
                 known=(self._sealable, sealable), report_format=self._report_format())  # fmt: skip
        self._written.committed(written)
        self._sealable.update(sealable)
        if held is not None:
            held.update(held_now)
        if len(self._sealable) > SEALABLE_MOST:  # sealed by another collector meanwhile
            self._sealable = dict(sorted(self._sealable.items())[-SEALABLE_MOST // 2 :])
        return outcomes

    def _store_group(  # noqa: PLR0917 - store_reports' own steps
        self, cur: Cursor, chained: Appender,
        group: list[tuple[ReportRecord, list[CheckResult]]], cuts: list[Cut],
        written: list[tuple[bytes, bytes, int]], sealable: dict[int, Sealable],
        held: dict[str, dict[str, int]],
    ) -> list[StoreOutcome | Exception]:  # fmt: skip
        together = self._store_together(cur, chained, group, cuts, written, sealable, held)
        if together is not None:
            return list(together)
        outcomes: list[StoreOutcome | Exception] = []
        for (report, results), stored_cut in zip(group, cuts, strict=True):
            cur.execute("SAVEPOINT report")
            mark = chained.mark()
            try:
                parts = self._written.due([(stored_cut, to_us(report.received_at))])
                outcome = self._store_one(cur, chained, report, results, stored=stored_cut,
                                          parts=parts, sealable=sealable, held=held)  # fmt: skip
                outcomes.append(outcome)
                if outcome is StoreOutcome.STORED:
                    written += parts
            except self._db.failures:
                raise  # the database itself is failing (disk full, I/O): nothing commits
            except self._db.errors as exc:
                cur.execute("ROLLBACK TO report")
                chained.rewind(mark)
                outcomes.append(exc)
            cur.execute("RELEASE report")
        return outcomes

    def _store_together(  # noqa: PLR0917 - store_reports' own steps
        self, cur: Cursor, chained: Appender,
        group: list[tuple[ReportRecord, list[CheckResult]]], cuts: list[Cut],
        written: list[tuple[bytes, bytes, int]], sealable: dict[int, Sealable],
        held: dict[str, dict[str, int]],
    ) -> list[StoreOutcome] | None:  # fmt: skip
        """The group in one savepoint, or None (and nothing written) if a report failed."""
        cur.execute("SAVEPOINT reports")
        mark = chained.mark()
        mine: dict[int, Sealable] = {}
        held_here: dict[str, dict[str, int]] = {}
        try:
            outcomes, parts = _write_group(cur, self.dialect, chained, group, cuts=cuts,
                                           written=self._written, sealable=mine,
                                           held_by_report=held_here)  # fmt: skip
            written += parts
            sealable.update(mine)
            held.update(held_here)
        except self._db.failures:
            raise
        except self._db.errors:
            cur.execute("ROLLBACK TO reports")
            chained.rewind(mark)
            outcomes = None
        cur.execute("RELEASE reports")
        return outcomes

    def _store_one(
        self, cur: Cursor, chained: Appender, report: ReportRecord,
        results: list[CheckResult], *, stored: Cut, parts: list[tuple[bytes, bytes, int]],
        sealable: dict[int, Sealable] | None = None, held: dict[str, dict[str, int]] | None = None,
    ) -> StoreOutcome:  # fmt: skip
        """One report (`stored`: its body as stored), with the fact `parts` it has to write;
        its record put in `sealable` once it is written and, when it is its device's newest,
        since when each check's state holds in `held`."""
        device_id, report_id = report.device_id, report.report_id
        received, collected = to_us(report.received_at), to_us(report.collected_at)
        metadata = (report_id, device_id, received, collected, report.agent_version,
                    report.clock_skew_ms)  # fmt: skip
        number = next_number(cur)
        cur.execute(
            "INSERT INTO reports(report_id, device_id, received_us, collected_us,"
            " agent_version, clock_skew_ms, body, parts, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(report_id) DO NOTHING",
            (*metadata, stored.own, stored.recipe, number),
        )
        if cur.rowcount == 0:
            owner = cur.execute(
                "SELECT device_id FROM reports WHERE report_id = ?", (report_id,)
            ).fetchone()[0]
            return StoreOutcome.DUPLICATE if owner == device_id else StoreOutcome.CONFLICT
        newest = cur.execute(
            "SELECT MAX(collected_us) FROM reports WHERE device_id = ?", (device_id,)
        ).fetchone()[0]
        is_newest = newest == collected
        device = (received, report.hostname, report.os_family, report.os_name,
                  report.os_version, report.agent_version, report.clock_skew_ms)  # fmt: skip
        since: dict[str, int] = {}
        if is_newest:
            figures = report.outbox
            # The outbox figures only from the newest report: an older one says less.
            cur.execute(
                _update_device(self.dialect) + ", outbox_pending = ?, outbox_coalesced_total = ?,"
                " outbox_dropped_total = ?, outbox_corrupt_total = ? WHERE device_id = ?",
                (*device, figures.pending, figures.coalesced_total, figures.dropped_total,
                 figures.corrupt_total, device_id),
            )  # fmt: skip
            # The history is dated by when the facts were collected (collector's clock): a
            # backlog delivered after a week offline keeps its week.
            since = self._record_changes(
                cur, device_id, report_id, report.collected_at, results, chained=chained
            )
        else:
            cur.execute(_update_device(self.dialect) + " WHERE device_id = ?", (*device, device_id))
        write(cur, parts)
        # A late-arriving older report never overwrites the verdict of a newer one. One
        # statement for all of the report's verdicts.
        rows = [
            # Since when this state holds (None for an older report: not the newest).
            (device_id, r.check_id, r.state, r.reason, report_id, collected, received,
             since.get(r.check_id))
            for r in results
        ]  # fmt: skip
        for chunk in _chunks(rows):
            cur.execute(_upsert_results(len(chunk)), _flat(chunk))
        if sealable is not None:
            sealable[number] = made_record(metadata, report.body, stored)
        if is_newest and held is not None:
            held[report_id] = since
        return StoreOutcome.STORED

    def report_bodies(self, report_ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(report_ids), 500):
            chunk = report_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT report_id, body, parts FROM reports WHERE report_id IN ({marks})",  # noqa: S608
                chunk,
            ).fetchall()
            found.update((r[0], bytes(r[1])) for r in Bodies(self._db).rows(rows, 1))
        return found

    def report_ids(self, device_id: str | None = None) -> list[str]:
        if device_id is None:
            rows = self._db.execute("SELECT report_id FROM reports ORDER BY received_us").fetchall()
        else:
            rows = self._db.execute(
                "SELECT report_id FROM reports WHERE device_id = ? ORDER BY received_us",
                (device_id,),
            ).fetchall()
        return [r[0] for r in rows]

    def report_body(self, report_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT body, parts FROM reports WHERE report_id = ?", (report_id,)
        ).fetchone()
        return None if row is None else Bodies(self._db).one(report_id, bytes(row[0]), row[1])

    def device_results(self) -> list[DeviceResultRow]:
        """Every device with its latest verdict per check (a row with no check if none yet)."""
        rows = self._db.execute(
            "SELECT d.device_id, d.hostname, d.os_family, d.last_report_us,"
            " r.check_id, r.state, r.reason, r.collected_us, r.evaluated_us"
            " FROM devices d LEFT JOIN check_results r ON r.device_id = d.device_id"
            " ORDER BY d.hostname, d.device_id, r.check_id"
        ).fetchall()
        return [
            DeviceResultRow(
                device_id=r[0],
                hostname=r[1],
                os_family=r[2],
                last_report_at=None if r[3] is None else from_us(r[3]),
                check_id=r[4],
                state=r[5],
                reason=r[6],
                collected_at=None if r[7] is None else from_us(r[7]),
                evaluated_at=None if r[8] is None else from_us(r[8]),
            )
            for r in rows
        ]

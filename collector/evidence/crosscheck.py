"""Do the tables answer to the chain? The dashboard and the reports read the tables
(`reports`, `state_changes`, `check_results`, the waiver, device and audit logs); audit bundles
are made from the evidence chain, written in the same transaction as each row. Someone with
the database who drops the append-only triggers can turn a FAIL into a PASS in the tables, and
only this check notices: it compares every row with the chain and names each one that differs.

The rules (what must equal what) and the findings' words are here; the reads are
`Store.crosscheck`'s, in bounded batches, all inside one consistent read:

1. Each chained table's keys, in ranges of `RANGE` rows: (first key, rows).
2. The chain, entry by entry: its hash and its link to the entry before; the row its key names,
   compared field by field with the entry's payload (*edited*, or *removed* when missing).
   Each row found is crossed off its range.
3. Rows no entry names (*added*): a range with rows left over is read again beside the
   chain's keys that fall in it.
4. The current verdicts (`check_results`) against the last state change the chain holds for
   each device and check: the same state, since the same time, the same reason when they
   name the same report, a report of the same device. Where step 2 or 3 found that pair's
   history changed, the chain's version of it is the reference, not the table's.
5. Waivers: each has its add event, and is revoked exactly when its revoke event says.

A report body emptied under the retention policy is not an edit when the chain's newest prune
entry covers the time it was received (`pruned_spans`, the prunings' table, is held to those
entries like the other logs).

A finding whose chain entry was not at hand (a verdict is compared with a history row that
matched its entry) gets its sequence number from one more read of the chain's keys.

Memory stays bounded whatever the size: batches, one count per range of a table, at most
`CORRECTIONS` changed history rows remembered for step 4, and the findings the caller keeps.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from devposture.collector.evidence import batches, chain, fact_checks, fact_groups
from devposture.collector.evidence.fact_checks import FactRow
from devposture.collector.evidence.opening import Opening
from devposture.policy.catalogs import Lang
from devposture.policy.cli_messages import Bracketed, Listed, Said, Told, told
from devposture.policy.moments import offset_label

if TYPE_CHECKING:
    from devposture.collector.store import Store

Key = tuple[Any, ...]  # a row's primary key, its columns in index order
Record = dict[str, object]  # a row as its chain entry's payload holds it

RANGE = 4096  # rows of a table per range (step 1): one count each
KEYS_BATCH = 20000  # chain keys read at once (step 3, sequence numbers)
SUSPECT_ROWS = 65536  # rows of ranges with rows left over, searched per read of the chain
CORRECTIONS = 10000  # changed history rows remembered for step 4
UNRESOLVED = 5000  # findings waiting for their sequence number

# step, done, total (0: not known in advance)
Progress = Callable[[str, int, int], None]

_TABLES = {
    chain.REPORT: "reports", chain.STATE: "state_changes", chain.WAIVER: "waiver_events",
    chain.DEVICE: "device_events", chain.ADMIN: "audit_log", chain.PRUNE: "pruned_spans",
}  # fmt: skip
_IN_CHINESE = {
    "reports": "上报记录", "state_changes": "状态变更记录", "check_results": "当前检查结果",
    "waiver_events": "豁免记录", "waivers": "豁免", "device_events": "设备事件记录",
    "audit_log": "审计日志", "pruned_spans": "保留期清理记录", "evidence_chain": "证据链",
}  # fmt: skip
EDITED, REMOVED, ADDED, DIFFERS = "被修改", "被删除", "被添加", "不符"


@dataclass(frozen=True)
class Verdict:
    """A `check_results` row: one device's current verdict on one check."""

    device_id: str
    check_id: str
    state: str
    reason: str
    report_id: str
    since_us: int | None
    report_device: str | None  # the device of the report it names (None: no such report)


@dataclass(frozen=True)
class Pair:
    """What the tables hold for one (device, check): its verdict and its last state change."""

    device_id: str
    check_id: str
    verdict: Verdict | None
    last: Record | None


@dataclass(frozen=True)
class WaiverRow:
    """A `waivers` row and its events (event id, action, time), oldest first."""

    waiver_id: str
    revoked_us: int | None
    events: tuple[tuple[int, str, int], ...]


class Tables(Protocol):
    """The reads this check needs (`Store.crosscheck`)."""

    def consistent(self) -> AbstractContextManager[None]: ...
    def chain_last_seq(self) -> int: ...
    def pruned_before(self) -> int: ...
    def last_pruning(self) -> int: ...
    def chain_entries(self, first: int, last: int) -> list[chain.Entry]: ...
    def chain_index(
        self, first: int, last: int, most: int | None = None
    ) -> list[tuple[int, str, str]]: ...
    def chain_keys(self, kind: str, first: int, last: int) -> list[tuple[int, str]]: ...
    def records(
        self, kind: str, keys: Sequence[Key], bodies: dict[str, bytes] | None = None
    ) -> dict[Key, Record]: ...
    def reports_whole(self, first_n: int, last_n: int) -> list[tuple[Any, ...]]: ...
    def reports_received(
        self, first_us: int, last_us: int, limit: int, bodies: dict[str, bytes] | None = None
    ) -> dict[Key, Record] | None: ...
    def reports_numbered(
        self, first_n: int, last_n: int, bodies: dict[str, bytes] | None = None
    ) -> list[tuple[int, Key, Record]]: ...
    def range_starts(self, kind: str, every: int) -> Iterator[tuple[Key, int]]: ...
    def keys_between(self, kind: str, start: Key, end: Key | None) -> Iterator[list[Key]]: ...
    def pairs(self) -> Iterator[list[Pair]]: ...
    def history(self, device_id: str, check_id: str) -> list[Record]: ...
    def waivers(self) -> Iterator[list[WaiverRow]]: ...
    def checkpoints(self) -> Iterator[tuple[int, int, list[int]]]: ...
    def chain_at(self, seqs: Sequence[int]) -> Iterator[chain.Entry]: ...
    def opening_entries(self, first: int, last: int) -> Iterator[chain.Entry]: ...
    def fact_rows(self, first_n: int, last_n: int) -> list[FactRow]: ...
    def fact_rows_of(self, report_ids: Sequence[str]) -> dict[str, FactRow]: ...
    def numbered_count(self, first_n: int, last_n: int) -> tuple[int, int]: ...
    def fact_parts(self, digests: Sequence[bytes]) -> dict[bytes, bytes]: ...


@dataclass(frozen=True)
class Finding:
    """One row that does not answer to the chain: its table, its key, the chain entry it is
    compared with (None: no entry records it), and what differs, in English and Chinese."""

    table: str
    key: str
    seq: int | None
    problem: str
    gloss: str

    def text(self, zone: dt.tzinfo | None = None) -> Told:
        """In English with the Chinese gloss after it, as scripts read it (`str`, its times in
        UTC); worded whole in the reader's language when printed (`Told.worded`), its times
        in `zone` (the company's) when given."""
        entry = told("no chain entry") if self.seq is None else told("chain seq {seq}",
                                                                     seq=self.seq)
        found = told("{table} row [{key}] ({entry}): {problem}. {chinese}{gloss}。",
                     table=self.table, key=self.key, entry=entry, problem=self.problem,
                     chinese=_IN_CHINESE.get(self.table, self.table), gloss=self.gloss)
        if zone is None:
            return found
        return Told.keeping(found, found.said.swapping(lambda value: _in_zone(value, zone)))


# Each in both languages, as the English has always been; a Chinese reader's copy has the
# catalog's Chinese alone.
AGREE = told(
    "the tables agree with the evidence chain."
    " 核对通过：数据表与证据链一致，未发现在采集器之外的修改。"
)
DISAGREE = told(
    "the tables do not agree with the evidence chain: rows were changed, removed or added"
    " outside the collector, and what the dashboard and reports show from them is not the"
    " evidence. 核对失败：数据表与证据链不一致，有记录在采集器之外被修改、删除或添加。"
)


@dataclass(frozen=True)
class Findings:
    """The first findings (up to the limit asked for) and how many there are in all."""

    found: list[Finding]
    total: int
    entries: int  # chain entries checked

    @property
    def ok(self) -> bool:
        return self.total == 0

    def verdict(self) -> Told:
        """One line, English then Chinese, for the end of the output (worded whole for a
        reader of either language)."""
        if self.ok:
            return told("AGREE: {count} chain entries checked; {agree}", count=self.entries,
                        agree=AGREE)
        if 0 < len(self.found) < self.total:
            return told("DISAGREE: {total} finding(s), the first {count} shown: {disagree}",
                        total=self.total, count=len(self.found), disagree=DISAGREE)
        return told("DISAGREE: {total} finding(s): {disagree}", total=self.total,
                    disagree=DISAGREE)

    def text(self) -> str:
        return self.worded("en")

    def worded(self, lang: Lang) -> str:
        found = "".join(told("problem: {finding}", finding=f.text()).worded(lang) + "\n"
                        for f in self.found)
        return found + self.verdict().worded(lang) + "\n"


def table_disagreements(
    store: Store, *, limit: int = 50, checks: Collection[str] | None = None,
    progress: Progress | None = None,
) -> Findings:  # fmt: skip
    """Every row of the tables compared with the evidence chain; the first `limit` findings
    kept, all of them counted. `checks`: the policy's check ids, so that a device's verdict
    missing on one of them is found too (None: not looked for). Reads one consistent state
    (its own snapshot, or the caller's if it holds one)."""
    check = TableCheck(store.crosscheck, checks=checks, names=limit, progress=progress)
    found: list[Finding] = []
    total = 0
    for finding in check.run():
        total += 1
        if len(found) < limit:
            found.append(finding)
    return Findings(found, total + check.unnamed, check.entries)


# --- words ------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class _Instant(Bracketed):
    """A time the tables and the chain hold (µs since 1970) inside a finding: the number, which
    finds the row, and in brackets the time it means, to the second. Its English is the UTC
    time ("1764925200000000 (2026-12-05 09:00:00 UTC)"), as scripts have always read it; a
    person reads it in the company's time zone (`in_zone`, through `Finding.text`), as every
    other time the command line shows: "1764925200000000（2026-12-05 17:00:00 UTC+08:00）"."""

    moment: dt.datetime = _EPOCH

    @classmethod
    def at(cls, before: str, moment: dt.datetime) -> _Instant:
        inside = f"{moment:%Y-%m-%d %H:%M:%S} UTC"
        plain = Bracketed.of(before, inside)
        return cls(plain.english, before=before, inside=inside, moment=moment)

    def in_zone(self, zone: dt.tzinfo) -> Bracketed:
        local = self.moment.astimezone(zone)
        return Bracketed.of(self.before,
                            f"{local:%Y-%m-%d %H:%M:%S} {offset_label(self.moment, zone)}")


def _in_zone(value: str | Said, zone: dt.tzinfo) -> str | Said | None:
    """A finding's value with its times in `zone` (`Said.swapping`: None leaves it as it is,
    a sentence walked in turn); a list's items too (a record's summary)."""
    if isinstance(value, _Instant):
        return value.in_zone(zone)
    if isinstance(value, Listed):
        return Listed.of(_in_zone(item, zone) or item for item in value.items)
    return None


def _when(micros: object, before: str = "") -> str:
    """µs since 1970 as the number stored and the time it means (exactly, no float), after
    `before` (a field's name): see `_Instant`."""
    if not isinstance(micros, int) or isinstance(micros, bool):
        return before + _shown(micros) if before else _shown(micros)
    try:
        moment = _EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError:
        return f"{before}{micros}"
    return Told(_Instant.at(f"{before}{micros}", moment))


def _joined(parts: list[str]) -> str:
    """`parts` one after the other, "; " between them in English (as they always were), each
    worded in the reader's language."""
    whole = parts[0]
    for part in parts[1:]:
        whole = told("{before}; {after}", before=whole, after=part)
    return whole


def _shown(value: object) -> str:
    if value is None:
        return told("empty")
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _value(name: str, value: object) -> str:
    return _when(value) if name.endswith("_us") else _shown(value)


def row_key(kind: str, key: Key) -> str:
    """A chained row's key, in words that find it in its table."""
    if kind == chain.REPORT:
        return f"report_id {key[0]!r}"
    if kind == chain.STATE:
        return _when(key[2], f"device {key[0]!r}, check {key[1]!r}, since_us ")
    names = {chain.ADMIN: "entry_id", chain.PRUNE: "seq"}
    return f"{names.get(kind, 'event_id')} {key[0]}"


def parse_key(kind: str, record_key: str, seq: int) -> Key | None:
    """The primary key of the row entry `seq` was written for, from the entry's key (a
    pruning's row is keyed by the entry's seq)."""
    try:
        if kind == chain.PRUNE:
            return (seq,)
        if kind == chain.REPORT:
            return (record_key,)
        if kind == chain.STATE:
            device_id, check_id, since = record_key.rsplit("/", 2)
            return (device_id, check_id, int(since))
        if kind in (chain.WAIVER, chain.DEVICE):
            return (int(record_key.rsplit("/", 1)[1]),)
        if kind == chain.ADMIN:
            return (int(record_key),)
    except (ValueError, IndexError):
        return None
    return None


def body_pruned(chained: Record, row: Record, pruned_before: int) -> bool:
    """A report body emptied under the retention policy: the chain's prunings cover the time
    it was received (as the verifier tells a pruned body from a deleted one)."""
    received = chained.get("received_us")
    return (row.get("body_bytes") == 0 and isinstance(received, int)
            and received < pruned_before)  # fmt: skip


def differences(chained: Record, row: Record, *, pruned: bool = False) -> list[str]:
    """What differs between an entry's payload and its row now, field by field (a pruned
    report's body aside)."""
    out: list[str] = []
    if not pruned and (chained.get("body_sha256"), chained.get("body_bytes")) != (
        row.get("body_sha256"), row.get("body_bytes")
    ):  # fmt: skip
        out.append(
            told("the report body was changed (SHA-256 {sha}…, {size} bytes; the chain has "
                 "{chain_sha}…, {chain_size} bytes)",
                 sha=str(row.get('body_sha256'))[:16], size=row.get('body_bytes'),
                 chain_sha=str(chained.get('body_sha256'))[:16],
                 chain_size=chained.get('body_bytes'))
        )
    for name in sorted(chained.keys() | row.keys()):
        if name in ("body_sha256", "body_bytes") or chained.get(name) == row.get(name):
            continue
        out.append(
            told("{field} is {here} here, {chained} in the chain",
                 field=name, here=_value(name, row.get(name)),
                 chained=_value(name, chained.get(name)))
        )
    return out


def verdict_problem(
    pair: Pair, last: Record | None, checks: Collection[str] | None
) -> tuple[str, str] | None:
    """What is wrong with a pair's current verdict against the chain's last state change for
    it (`last`), as (English, Chinese gloss); None when nothing is.

    A verdict holds the state of its device's newest report, since when that state has held:
    exactly the last state change's state and since (ingest writes both in one transaction,
    and so does judging again under a new policy). Its reason and report move on with each
    newer report while the state holds, so the reason must equal the change's only when the
    verdict still names the report that made the change. The time it was judged and collected
    move on too, and are not compared. A verdict without a since (a late older report's, for a
    check its device's newest report did not judge) has no change behind it."""
    verdict = pair.verdict
    if verdict is None:
        if last is None or checks is None or pair.check_id not in checks:
            return None  # a check the policy dropped: its verdicts go, its history stays
        return (
            told("is missing: the chain's last state change says {state} since {since}, and "
                 "the policy judges {check}",
                 state=last.get('state'), since=_when(last.get('since_us')), check=pair.check_id),
            f"缺失（{REMOVED}）",
        )
    wrong: list[str] = []
    if verdict.report_device != verdict.device_id:
        wrong.append(
            told('it names report {report}, which is not stored', report=repr(verdict.report_id))
            if verdict.report_device is None
            else told("it names report {report} of device {device}",
                      report=repr(verdict.report_id), device=repr(verdict.report_device))
        )
    if last is None:
        if verdict.since_us is not None:
            wrong.append(
                told('it says {state} since {here_since}, and the chain holds no state '
                     'change of this device on this check',
                     state=verdict.state, here_since=_when(verdict.since_us))
            )
    else:
        if verdict.state != last.get("state"):
            wrong.append(
                told('state is {here} here, {chained} in the chain',
                     here=_shown(verdict.state), chained=_shown(last.get('state')))
            )
        if verdict.since_us is not None and verdict.since_us != last.get("since_us"):
            wrong.append(
                told('since is {here_since} here, {since} in the chain',
                     here_since=_when(verdict.since_us), since=_when(last.get('since_us')))
            )
        if verdict.report_id == last.get("report_id") and verdict.reason != last.get("reason"):
            wrong.append(
                told('reason is {here} here, {chained} in the chain',
                     here=_shown(verdict.reason), chained=_shown(last.get('reason')))
            )
    if not wrong:
        return None
    return told("does not match the last state change in the chain: {differences}",
                differences=_joined(wrong)), (
        f"与证据链中最后一次状态变更{DIFFERS}（{EDITED}）"
    )


def waiver_problem(waiver: WaiverRow) -> tuple[str, str, int | None] | None:
    """What is wrong with a waiver against its events (which step 2 holds to the chain), as
    (English, Chinese, the event id it is about); None when nothing is."""
    added = [e for e in waiver.events if e[1] == "add"]
    revoked = [e for e in waiver.events if e[1] == "revoke"]
    if not added:
        return "has no add event in the chain: it was added outside the collector", (
            f"不在证据链中（{ADDED}）"
        ), None  # fmt: skip
    if revoked and waiver.revoked_us != revoked[0][2]:
        here = (told("not revoked") if waiver.revoked_us is None
                else told('revoked at {revoked}', revoked=_when(waiver.revoked_us)))  # fmt: skip
        return (
            told("is {here} here, revoked at {chained} in the chain",
                 here=here, chained=_when(revoked[0][2])),
            f"撤销状态与证据链{DIFFERS}（{EDITED}）",
            revoked[0][0],
        )
    if not revoked and waiver.revoked_us is not None:
        return (
            told("is revoked at {revoked} here, and the chain holds no revoke event",
                 revoked=_when(waiver.revoked_us)),
            f"撤销状态与证据链{DIFFERS}（{EDITED}）",
            added[0][0],
        )
    return None


# --- the check ----------------------------------------------------------------------------------


class _Ranges:
    """A table's keys in ranges, each with the rows not yet matched by a chain entry."""

    def __init__(self, ranges: list[tuple[Key, int]]) -> None:
        self.starts = [start for start, _ in ranges]
        self.left = [count for _, count in ranges]

    def index(self, key: Key) -> int:
        return bisect.bisect_right(self.starts, key) - 1

    def cross_off(self, key: Key) -> None:
        at = self.index(key)
        if at >= 0:
            self.left[at] -= 1

    def bounds(self, at: int) -> tuple[Key, Key | None]:
        end = self.starts[at + 1] if at + 1 < len(self.starts) else None
        return self.starts[at], end

    def extra(self) -> int:
        return sum(n for n in self.left if n > 0)


@dataclass
class _Corrections:
    """The state history rows found changed, so that verdicts are held to the chain's
    history, not to the edited table's: per (device, check), the chain's version of each
    edited or removed row (by since) and the since of each added row. Bounded: past
    `CORRECTIONS` rows, `full` (pairs beyond are compared with the table as it is)."""

    chained: dict[tuple[str, str], dict[int, tuple[int, Record]]] = field(default_factory=dict)
    added: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    rows: int = 0
    full: bool = False

    def _room(self) -> bool:
        self.rows += 1
        self.full = self.full or self.rows > CORRECTIONS
        return not self.full

    def chain(self, key: Key, seq: int, record: Record) -> None:
        if self._room():
            self.chained.setdefault((key[0], key[1]), {})[key[2]] = (seq, record)

    def add(self, key: Key) -> None:
        if self._room():
            self.added.setdefault((key[0], key[1]), set()).add(key[2])

    def touched(self, pair: tuple[str, str]) -> bool:
        return pair in self.chained or pair in self.added

    def last(
        self, pair: tuple[str, str], history: list[Record]
    ) -> tuple[Record, int | None] | None:
        """The chain's last state change for a pair whose history was changed: the table's
        rows that answer to it, the added ones left out, with the chain's removed and edited
        rows in their place."""
        added, chained = self.added.get(pair, set()), self.chained.get(pair, {})
        rows: dict[int, tuple[Record, int | None]] = {
            since: (r, None) for r in history
            if (since := _number(r["since_us"])) not in added and since not in chained
        }  # fmt: skip
        rows.update((since, (record, seq)) for since, (seq, record) in chained.items())
        return rows[max(rows)] if rows else None


class TableCheck:
    """One run of the check over `tables`. `run` yields the findings as they are found;
    `names`: past that many, rows found added are counted (`unnamed`) instead of named, as
    naming them costs a read of the chain per range."""

    def __init__(
        self, tables: Tables, *, checks: Collection[str] | None = None,
        names: int | None = None, progress: Progress | None = None,
    ) -> None:  # fmt: skip
        self._tables = tables
        self._checks = None if checks is None else frozenset(checks)
        self._names = names
        self._progress = progress
        self._corrections = _Corrections()
        self._waiting: list[tuple[Finding, str, str]] = []  # finding, kind, entry key
        self._stored = fact_checks.StoredFacts(tables.fact_parts)
        self._pruned_before = 0
        self.yielded = 0
        self.unnamed = 0
        self.entries = 0

    def run(self) -> Iterator[Finding]:
        with self._tables.consistent():
            ranges = {kind: _Ranges(list(self._tables.range_starts(kind, RANGE)))
                      for kind in _TABLES}  # fmt: skip
            last_seq = self._tables.chain_last_seq()
            self._pruned_before = self._tables.pruned_before()
            steps: list[Iterator[Finding]] = [
                self._chain(ranges, last_seq),
                *(self._added(kind, ranges[kind], last_seq) for kind in _TABLES),
                self._verdicts(last_seq),
                self._waivers(last_seq),
                self._resolve(last_seq),
                checkpoint_findings(self._tables, last_seq),
            ]
            for step in steps:
                for finding in step:
                    self.yielded += 1
                    yield finding

    def _say(self, stage: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(stage, done, total)

    # step 2 -----------------------------------------------------------------------------------

    def _chain(self, ranges: dict[str, _Ranges], last_seq: int) -> Iterator[Finding]:
        expected, prev_hash = 1, chain.GENESIS
        sealed = SealedOnce()
        for batch in batches.bounded(
            self._tables.chain_entries, self._tables.chain_index, 1, last_seq
        ):
            for entry in batch:
                yield from _links(entry, expected, prev_hash)
                yield from sealed.check(entry)
                expected, prev_hash = entry.seq + 1, entry.hash
            self.entries += len(batch)
            for group in _groups(self._tables, batch, self._pruned_before):
                for key in group.keys:
                    ranges[chain.REPORT].cross_off(key)
                yield from group.findings
            facts = held_fact_groups(self._tables, batch, self._pruned_before)
            for entry, held in facts:
                for report_id in held.keys:
                    ranges[chain.REPORT].cross_off((report_id,))
                yield from fact_findings(entry, held)
            yield from unstored_findings(facts, self._stored)
            for kind in _TABLES:
                yield from self._compare(kind, [e for e in batch if e.kind == kind], ranges[kind])
            self._say(told("chain entries"), batch[-1].seq, last_seq)

    def _compare(self, kind: str, batch: list[chain.Entry], ranges: _Ranges) -> Iterator[Finding]:
        for judged in _judged(self._tables, kind, batch, self._pruned_before):
            if judged.row is not None and judged.key is not None:
                ranges.cross_off(judged.key)
            if judged.finding is None:
                continue
            if kind == chain.STATE and judged.key is not None and judged.chained is not None:
                self._corrections.chain(judged.key, judged.entry.seq, judged.chained)
            yield judged.finding

    # step 3 -----------------------------------------------------------------------------------

    def _added(self, kind: str, ranges: _Ranges, last_seq: int) -> Iterator[Finding]:
        """Rows of ranges with rows left over that no chain entry names: the chain's keys of
        this kind are read once per group of such ranges (a few tens of thousands of rows).
        Past the findings wanted, such rows are counted, not looked for."""
        suspects = [at for at, left in enumerate(ranges.left) if left > 0]
        for start in range(0, len(suspects), SUSPECT_ROWS // RANGE):
            group = suspects[start : start + SUSPECT_ROWS // RANGE]
            if self._names is not None and self.yielded >= self._names:
                self.unnamed += sum(ranges.left[at] for at in group)
                self._corrections.full = self._corrections.full or kind == chain.STATE
                continue
            self._say(told("{table} rows without an entry",
                           table=_TABLES[kind]), start, len(suspects))
            chained = self._chained_keys(kind, ranges, set(group), last_seq)
            for at in group:
                first, end = ranges.bounds(at)
                added = [key for batch in self._tables.keys_between(kind, first, end)
                         for key in batch if key not in chained][: ranges.left[at]]  # fmt: skip
                rows = self._tables.records(kind, added)
                for key in added:
                    if kind == chain.STATE:
                        self._corrections.add(key)
                    yield Finding(_TABLES[kind], row_key(kind, key), None,
                                  told("was added outside the collector: no chain entry "
                                       "records it ({summary})",
                                       summary=_summary(kind, rows.get(key, {}))),
                                  f"不在证据链中（{ADDED}）")  # fmt: skip

    def _chained_keys(self, kind: str, ranges: _Ranges, group: set[int], last_seq: int) -> set[Key]:
        """The keys of the chain's entries of `kind` that fall in the ranges of `group`."""
        found: set[Key] = set()
        for seq, text in self._keys_of(kind, last_seq):
            key = parse_key(kind, text, seq)
            if key is not None and ranges.index(key) in group:
                found.add(key)
        return found

    def _keys_of(self, kind: str, last_seq: int) -> Iterator[tuple[int, str]]:
        """(seq, key) of the chain's entries of `kind` up to `last_seq`, KEYS_BATCH sequence
        numbers at a time. Past a window with no entry the next entry is looked up at once:
        a copy inserted at seq 10**18 made the windows up to it too many to ever read."""
        first = 1
        while first <= last_seq:
            keys = self._tables.chain_keys(kind, first, first + KEYS_BATCH - 1)
            yield from keys
            following = first + KEYS_BATCH
            if not keys and following <= last_seq:
                ahead = self._tables.chain_index(following, last_seq, 1)
                if not ahead:
                    return
                following = ahead[0][0]
            first = following

    # step 4 -----------------------------------------------------------------------------------

    def _verdicts(self, last_seq: int) -> Iterator[Finding]:
        done = 0
        for batch in self._tables.pairs():
            for pair in batch:
                key = (pair.device_id, pair.check_id)
                last: Record | None = pair.last
                seq: int | None = None
                if self._corrections.touched(key):
                    history = self._tables.history(pair.device_id, pair.check_id)
                    held = self._corrections.last(key, history)
                    last, seq = held if held is not None else (None, None)
                problem = verdict_problem(pair, last, self._checks)
                if problem is None:
                    continue
                finding = Finding("check_results", f"device {pair.device_id!r}, check"
                                  f" {pair.check_id!r}", seq, *problem)  # fmt: skip
                if seq is None and last is not None:
                    since = _number(last["since_us"])
                    entry_key = chain.state_key(pair.device_id, pair.check_id, since)
                    yield from self._wait(finding, chain.STATE, entry_key, last_seq)
                else:
                    yield finding
            done += len(batch)
            self._say(told("verdicts"), done, 0)

    # step 5 -----------------------------------------------------------------------------------

    def _waivers(self, last_seq: int) -> Iterator[Finding]:
        for batch in self._tables.waivers():
            for waiver in batch:
                problem = waiver_problem(waiver)
                if problem is None:
                    continue
                english, chinese, event_id = problem
                finding = Finding("waivers", f"waiver_id {waiver.waiver_id!r}", None, english,
                                  chinese)  # fmt: skip
                if event_id is None:
                    yield finding
                else:
                    entry_key = f"{waiver.waiver_id}/{event_id}"
                    yield from self._wait(finding, chain.WAIVER, entry_key, last_seq)

    # sequence numbers ---------------------------------------------------------------------------

    def _wait(self, finding: Finding, kind: str, key: str, last_seq: int) -> Iterator[Finding]:
        """Hold a finding until its entry's sequence number is read (in one pass for many)."""
        self._waiting.append((finding, kind, key))
        if len(self._waiting) >= UNRESOLVED:
            yield from self._resolve(last_seq)

    def _resolve(self, last_seq: int) -> Iterator[Finding]:
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        seqs: dict[tuple[str, str], int] = {}
        wanted = {(kind, key) for _, kind, key in waiting}
        for kind in {kind for kind, _ in wanted}:
            for seq, key in self._keys_of(kind, last_seq):
                if (kind, key) in wanted:
                    seqs.setdefault((kind, key), seq)
        for finding, kind, key in waiting:
            yield dataclasses.replace(finding, seq=seqs.get((kind, key)))


@dataclass(frozen=True)
class _Judged:
    """One entry beside the row it was written for."""

    entry: chain.Entry
    key: Key | None  # the row's key (None: the entry's key cannot be read)
    chained: Record | None  # the entry's record (None: not readable)
    row: Record | None  # the row as it is (None: not found)
    finding: Finding | None  # what is wrong, if anything


def _judged(
    tables: Tables, kind: str, batch: list[chain.Entry], pruned_before: int,
    bodies: dict[str, bytes] | None = None, *, rows: dict[Key, Record] | None = None,
) -> Iterator[_Judged]:  # fmt: skip
    """Each entry of `kind` in `batch` beside the row it was written for (the report bodies
    read handed to `bodies`, when given; the rows read already, `rows`)."""
    keyed = [(e, parse_key(kind, e.key, e.seq)) for e in batch if e.kind == kind]
    if rows is None:
        rows = _rows(tables, kind, keyed, bodies)
    table = _TABLES[kind]
    edited = f"{DIFFERS}（{EDITED}）"
    for entry, key in keyed:
        if key is None:
            unread = told('names no {table} row (its key cannot be read)', table=table)
            where = f"entry key {entry.key!r}"
            yield _Judged(entry, None, None, None,
                          Finding("evidence_chain", where, entry.seq, unread, edited))  # fmt: skip
            continue
        row = rows.get(key)
        if row is not None and kind != chain.PRUNE and _is_entry(kind, row, entry.payload):
            # The row is its entry, byte for byte (the common case, a million times for a
            # quarter's export): no field-by-field walk, and the payload needs no parse.
            entry.known_record(row)
            yield _Judged(entry, key, row, row, None)
            continue
        try:
            chained = entry.record()
        except ValueError:
            yield _Judged(entry, key, None, None, Finding(
                "evidence_chain", f"entry key {entry.key!r}", entry.seq,
                "its payload is not JSON", edited))  # fmt: skip
            continue
        if row is None:
            yield _Judged(entry, key, chained, None, Finding(
                table, row_key(kind, key), entry.seq,
                told("is missing: the chain records it ({summary})",
                     summary=_summary(kind, chained)),
                f"在证据链中，数据表中没有（{REMOVED}）"))  # fmt: skip
            continue
        if kind == chain.PRUNE:  # the table keeps some of its entry's fields
            chained = {name: chained.get(name) for name in row}
        pruned = kind == chain.REPORT and body_pruned(chained, row, pruned_before)
        wrong = differences(chained, row, pruned=pruned)
        finding = None if not wrong else Finding(
            table, row_key(kind, key), entry.seq,
            told("differs from its chain entry: {differences}", differences=_joined(wrong)),
            f"与证据链{edited}")  # fmt: skip
        yield _Judged(entry, key, chained, row, finding)


# A batch's reports are read by the time they were received: they were written one after the
# other, so the rows received meanwhile are the batch's own. Where many more were received
# then (a clock that jumped back, reports left out of the chain), and for the rows the walk
# did not find (deleted, or their time edited), they are read by id.
_RECEIVED_SLACK = 100


def _rows(
    tables: Tables, kind: str, keyed: list[tuple[chain.Entry, Key | None]],
    bodies: dict[str, bytes] | None,
) -> dict[Key, Record]:  # fmt: skip
    """The rows of a batch's entries of one kind, by key."""
    keys = [key for _, key in keyed if key is not None]
    if kind != chain.REPORT or not keys:
        return tables.records(kind, keys, bodies)
    # A report's entry is written when it is received (`at_us`, never earlier than the entry
    # before): a row received earlier than its entry's time is read by id below.
    times = [e.at_us for e, _ in keyed]
    limit = 2 * len(keys) + _RECEIVED_SLACK
    rows = tables.reports_received(min(times), max(times), limit, bodies) or {}
    missing = [key for key in keys if key not in rows]
    if missing:
        rows.update(tables.records(kind, missing, bodies))
    return rows


def _is_entry(kind: str, row: Record, payload: bytes) -> bool:
    """Whether a row written out is its entry's payload, byte for byte."""
    if kind == chain.REPORT:
        return chain.report_canonical(row) == payload
    return chain.is_canonical(row, payload)


def group_span(entry: chain.Entry) -> tuple[int, int] | None:
    """(first_n, last_n) of a report group entry, from its key (None: it cannot be read)."""
    found = chain.group_range(entry.key)
    if found is None:
        return None
    first, last = found
    # A seal holds at most sealing.SEAL_REPORTS; a far wider range is an edited key, whose
    # rows are not read (its reports are held to their rows by id).
    return (first, last) if 0 < first <= last < first + GROUP_ROWS else None


@dataclass
class _Group:
    """A report group entry beside the rows its reports were stored as."""

    findings: list[Finding] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)  # the rows found for its reports


def _groups(
    tables: Tables, batch: list[chain.Entry], pruned_before: int,
    bodies: dict[str, bytes] | None = None,
) -> Iterator[_Group]:  # fmt: skip
    """Each report group of a batch held to its rows (`_group`), the rows of them all read in
    one statement: a batch's groups are consecutive in the order stored."""
    groups = [(e, group_span(e)) for e in batch if e.kind == chain.REPORT_GROUP]
    spans = [span for _, span in groups if span is not None]
    low = min((first for first, _ in spans), default=0)
    high = max((last for _, last in spans), default=-1)
    if not spans:
        rows: list[tuple[int, Key, Record]] = []
    elif high - low < GROUP_ROWS:
        rows = tables.reports_numbered(low, high, bodies)
    else:  # far apart (edited keys): each group alone
        rows = [row for span in spans for row in tables.reports_numbered(*span, bodies)]
    numbers = [n for n, _, _ in rows]
    for entry, span in groups:
        mine = []
        if span is not None:
            low, high = bisect.bisect_left(numbers, span[0]), bisect.bisect_right(numbers, span[1])
            mine = [(key, record) for _, key, record in rows[low:high]]
        yield _group(tables, entry, pruned_before, bodies, mine)


@dataclass(frozen=True)
class Written:
    """A report group's reports as written, column by column in the group's order: what its
    line of bodies and the report's figures take of them (a list each, not a tuple a
    report: a quarter's export holds a million)."""

    report_ids: list[str]
    devices: list[str]
    received: list[int]
    bodies: list[bytes]


def groups_as_written(
    tables: Tables, batch: list[chain.Entry]
) -> dict[int, Written] | None:  # fmt: skip
    """The common case of `_group` for every report group of a batch at once: each group's
    payload is, byte for byte, what the rows numbered in its range write (their canonical
    records, `chain.report_canonical_of`), without a record made of each row. Each group's
    reports by its seq; None where any group is not (an edited row or key, a pruned body, a
    value typed in by hand): `_groups` then says what differs."""
    groups = [(entry, group_span(entry)) for entry in batch if entry.kind == chain.REPORT_GROUP]
    spans = [span for _, span in groups if span is not None]
    if len(spans) < len(groups):
        return None
    if not spans:
        return {}
    low, high = min(first for first, _ in spans), max(last for _, last in spans)
    if high - low >= GROUP_ROWS:
        return None
    rows = tables.reports_whole(low, high)
    numbers = [row[8] for row in rows]
    held: dict[int, Written] = {}
    sha256, canonical_of = hashlib.sha256, chain.report_canonical_of
    for (entry, _), (first, last) in zip(groups, spans, strict=True):
        mine = rows[bisect.bisect_left(numbers, first) : bisect.bisect_right(numbers, last)]
        bodies = [row[6] for row in mine]
        canonical = [canonical_of(row[:6], sha256(body).hexdigest(), len(body))
                     for row, body in zip(mine, bodies, strict=True)]  # fmt: skip
        if None in canonical:
            return None
        if chain.group_canonical(first, last, cast("list[bytes]", canonical)) != entry.payload:
            return None
        held[entry.seq] = Written([row[0] for row in mine], [row[1] for row in mine],
                                  [row[2] for row in mine], bodies)  # fmt: skip
    return held


# At most this span of numbers is read for a batch's groups at once (bounded memory, whatever
# an edited key says); past it, group by group.
GROUP_ROWS = 50_000


def _group(
    tables: Tables, entry: chain.Entry, pruned_before: int,
    bodies: dict[str, bytes] | None, rows: list[tuple[Key, Record]],
) -> _Group:  # fmt: skip
    """A report group held to the rows numbered in its range: written out from them, it must
    be its payload byte for byte (the common case, once per group). Otherwise each of its
    reports is held to its row, and a row of the range it does not hold is named as added."""
    span = group_span(entry)
    if span is not None:
        records = [record for _, record in rows]
        written = chain.group_canonical(*span, [chain.report_canonical(r) for r in records])
        if written == entry.payload:
            entry.known_record({"first_n": span[0], "last_n": span[1], "reports": records})
            return _Group(keys=[key for key, _ in rows])
    found = _Group()
    try:
        reports = chain.as_reports(entry)
    except ValueError:
        found.findings.append(Finding(
            "evidence_chain", f"entry key {entry.key!r}", entry.seq,
            told("its payload is not a group of reports"), f"{DIFFERS}（{EDITED}）"))  # fmt: skip
        return found
    by_key = dict(rows)
    missing = [(r.key,) for r in reports if (r.key,) not in by_key]
    if missing:  # a report the group holds but its range does not: numbered elsewhere?
        by_key.update(tables.records(chain.REPORT, missing, bodies))
    for judged in _judged(tables, chain.REPORT, reports, pruned_before, bodies, rows=by_key):
        if judged.row is not None and judged.key is not None:
            found.keys.append(judged.key)
        if judged.finding is not None:
            found.findings.append(judged.finding)
    held = {(r.key,) for r in reports}
    for key, record in rows:
        if key not in held:
            found.findings.append(Finding(
                "reports", row_key(chain.REPORT, key), entry.seq,
                told("was added outside the collector: its number falls in this report group, "
                     "which does not hold it ({summary})",
                     summary=_summary(chain.REPORT, record)),
                f"不在证据链中（{ADDED}）"))  # fmt: skip
    return found


# The kinds of chain entries that seal a range of report numbers: format 4's and 5's groups.
SEALS = (chain.REPORT_GROUP, fact_groups.REPORT_FACTS)


def held_fact_groups(
    tables: Tables, batch: list[chain.Entry], pruned_before: int, *, rows_too: bool = True
) -> list[tuple[chain.Entry, fact_checks.Held]]:  # fmt: skip
    """Each format-5 report group of a batch held to its rows (`fact_checks.hold`), the rows
    of them all read in one statement where their ranges are close, as `_groups` reads.

    Not `rows_too` (an export): where the groups' numbers are every row's of their range,
    none pruned, each group is taken from its payload without reading its rows. A format-5
    bundle is made from the chain and the facts stored by their digests (each hashed as the
    export reads it: `fact_shipping`), not from the rows, so a row edited by hand changes
    nothing an export ships; `audit check` compares every row."""
    groups = [(e, group_span(e)) for e in batch if e.kind == fact_groups.REPORT_FACTS]
    if not rows_too and groups:
        counted = _counted_fact_groups(tables, groups)
        if counted is not None:
            return counted
    spans = [span for _, span in groups if span is not None]
    low = min((first for first, _ in spans), default=0)
    high = max((last for _, last in spans), default=-1)
    if not spans:
        rows: list[FactRow] = []
    elif high - low < GROUP_ROWS:
        rows = tables.fact_rows(low, high)
    else:  # far apart (edited keys): each group alone
        rows = [row for span in spans for row in tables.fact_rows(*span)]
    numbers = [row.n for row in rows]
    out = []
    for entry, span in groups:
        mine: list[FactRow] = []
        if span is not None:
            low, high = bisect.bisect_left(numbers, span[0]), bisect.bisect_right(numbers, span[1])
            mine = rows[low:high]
        out.append((entry, fact_checks.hold(entry, span, mine, tables.fact_rows_of,
                                            pruned_before)))  # fmt: skip
    return out


def _counted_fact_groups(
    tables: Tables, groups: list[tuple[chain.Entry, tuple[int, int] | None]]
) -> list[tuple[chain.Entry, fact_checks.Held]] | None:
    """The groups from their payloads, where their spans follow each other, each holds a
    record for every number of its span, and the table holds one row for every number of
    theirs, none pruned (one count for them all); None otherwise."""
    out = []
    spans: list[tuple[int, int]] = []
    for entry, span in groups:
        held = None if span is None else fact_checks.from_columns(entry, span)
        if span is None or held is None or (spans and span[0] != spans[-1][1] + 1):
            return None
        spans.append(span)
        out.append((entry, held))
    rows, pruned = tables.numbered_count(spans[0][0], spans[-1][1])
    return out if (rows, pruned) == (spans[-1][1] - spans[0][0] + 1, 0) else None


def unstored_findings(
    groups: list[tuple[chain.Entry, fact_checks.Held]], stored: fact_checks.StoredFacts
) -> list[Finding]:  # fmt: skip
    """Each report of these format-5 groups whose body is kept but whose fact set, or a part
    it names, is not stored as its digest says (deleted or edited in `fact_parts`): the
    export ships what is stored, and the body could not be rebuilt."""
    problems = stored.problems([held.kept_sets() for _, held in groups])
    found = []
    for entry, held in groups if problems else ():
        for report_id, fact_set in held.kept_reports():
            problem = problems.get(fact_set)
            if problem is not None:
                found.append(_unstored(entry.seq, report_id, fact_set, problem))
    return found


def unstored_named(
    tables: Tables, unstored: list[tuple[int, str, fact_checks.Unstored]]
) -> list[Finding]:  # fmt: skip
    """`unstored` (seq of a format-5 group, fact set, what is wrong: what the export found
    reading it, `fact_shipping.FactLines`) as a finding for each report of the group that
    names that fact set (the group read again: only where something is wrong)."""
    found: list[Finding] = []
    by_seq: dict[int, dict[str, fact_checks.Unstored]] = {}
    for seq, fact_set, problem in unstored:
        by_seq.setdefault(seq, {})[fact_set] = problem
    for entry in tables.chain_at(sorted(by_seq)):
        wrong = by_seq[entry.seq]
        with contextlib.suppress(ValueError):  # held to its rows already
            columns = fact_groups.columns(entry)
            for report_id, fact_set in zip(columns["report_id"], columns["fact_set"],
                                           strict=True):  # fmt: skip
                if fact_set in wrong:
                    found.append(_unstored(entry.seq, str(report_id), fact_set, wrong[fact_set]))
    return found


def _unstored(seq: int, report_id: str, fact_set: str, problem: fact_checks.Unstored) -> Finding:
    """A report whose fact set (hex) is not stored as its record names it."""
    what, at = problem
    short, part = fact_set[:16], at.hex()[:16]
    if what == "missing":
        said = told("its facts are missing from the store (fact set {fact_set}…: {digest}… is"
                    " not stored)", fact_set=short, digest=part)
        gloss = f"与证据链{DIFFERS}（{REMOVED}）"
    else:
        said = told("its facts were changed in the store (fact set {fact_set}…: {digest}…"
                    " does not hash to its digest)", fact_set=short, digest=part)
        gloss = f"与证据链{DIFFERS}（{EDITED}）"
    return Finding("reports", row_key(chain.REPORT, (report_id,)), seq, said, gloss)


def fact_findings(entry: chain.Entry, held: fact_checks.Held) -> list[Finding]:
    """What `fact_checks.hold` found of a format-5 group, in the words of the others."""
    edited = f"{DIFFERS}（{EDITED}）"
    if held.unreadable:
        return [Finding("evidence_chain", f"entry key {entry.key!r}", entry.seq,
                        told("its payload is not a group of reports"), edited)]  # fmt: skip
    found = [
        Finding("reports", row_key(chain.REPORT, (str(record.get("report_id")),)), entry.seq,
                told("is missing: the chain records it ({summary})",
                     summary=_summary(chain.REPORT, record)),
                f"在证据链中，数据表中没有（{REMOVED}）")
        for record in held.missing
    ]  # fmt: skip
    for record, wrong in held.differing:
        said: list[str] = [
            told("its body was deleted, and no pruning in the chain covers it")
            if name == "body" else
            told("{field} is {here} here, {chained} in the chain", field=name,
                 here=_value(name, here), chained=_value(name, chained))
            for name, here, chained in wrong
        ]  # fmt: skip
        found.append(Finding(
            "reports", row_key(chain.REPORT, (str(record.get("report_id")),)), entry.seq,
            told("differs from its chain entry: {differences}", differences=_joined(said)),
            f"与证据链{edited}"))  # fmt: skip
    for row in held.added:
        summary = dict(zip(("report_id", "device_id", "received_us"), row.metadata, strict=False))
        found.append(Finding(
            "reports", row_key(chain.REPORT, (row.report_id,)), entry.seq,
            told("was added outside the collector: its number falls in this report group, "
                 "which does not hold it ({summary})", summary=_summary(chain.REPORT, summary)),
            f"不在证据链中（{ADDED}）"))  # fmt: skip
    return found


class PeriodCheck:
    """What an export checks of its own period, batch by batch as it writes it: each
    entry's row is still in its table, unchanged. (Rows added outside the chain, and the
    current verdicts, are `audit check`'s: they need a pass over whole tables.)"""

    def __init__(self, tables: Tables, *, limit: int = 50) -> None:
        self._tables, self._limit = tables, limit
        self._pruned_before = tables.pruned_before()
        self._sealed = SealedOnce()
        self.found: list[Finding] = []
        self.total = 0
        self.entries = 0

    @property
    def limit(self) -> int:
        """Findings kept at most (the rest are counted)."""
        return self._limit

    @property
    def pruned_before(self) -> int:
        """What the batches' rows are held to (`batch_rows`): bodies received before this were
        pruned under the retention policy."""
        return self._pruned_before

    def sealed(self, seals: list[tuple[int, tuple[int, int]]], entries: int) -> None:
        """The part of a run's check that needs the runs before it, in order: the numbers
        its `entries` entries' groups seal, (seq, (first, last)) each (`SealedOnce`). The
        rest is `batch_rows`, perhaps in a process beside the export (`evidence/check_pool`),
        its findings handed to `take`."""
        self.entries += entries
        for seq, span in seals:
            for finding in self._sealed.check_span(seq, span):
                self._found(finding)

    def take(self, findings: list[Finding], total: int) -> None:
        """Count a batch's findings of `batch_rows`: `total` in all, of which `findings` were
        kept (the first ones, at most this check's limit)."""
        for finding in findings:
            self._found(finding)
        self.total += total - len(findings)

    def opened_from(self, through: int) -> None:
        """Check the checkpoint the period's opening comes from (`checkpoint_used`)."""
        for finding in checkpoint_used(self._tables, through):
            self._found(finding)

    def _found(self, finding: Finding) -> None:
        self.total += 1
        if len(self.found) < self._limit:
            self.found.append(finding)

    def findings(self) -> Findings:
        return Findings(self.found, self.total, self.entries)


def batch_rows(
    tables: Tables, batch: list[chain.Entry], pruned_before: int, *, groups: bool = True
) -> tuple[list[Finding], dict[str, bytes]]:
    """Each entry of a batch held to the row its key names, and the report bodies read for
    it by report id, as checked (the exporter writes the very bytes it checked); its report
    groups left out when not `groups` (held already: `groups_as_written`). Needs nothing of
    the batches before it: a process beside the export can do it."""
    found: list[Finding] = []
    bodies: dict[str, bytes] = {}
    for group in _groups(tables, batch, pruned_before, bodies) if groups else ():
        found += group.findings
    for kind in _TABLES:
        for judged in _judged(tables, kind, batch, pruned_before, bodies):
            if judged.finding is not None:
                found.append(judged.finding)
    return found, bodies


def checkpoint_findings(tables: Tables, last_seq: int) -> Iterator[Finding]:
    """Each checkpoint against the chain: folded again from the one before it (one pass over
    the chain in all), it must name the same opening entries. A checkpoint is an index an
    operator could edit, and an export opens its period from it: a FAIL left out of it would
    be left out of the bundle's opening, which the verifier cannot see."""
    opening = Opening()
    for seq, at_us, recorded in tables.checkpoints():
        if seq > last_seq:
            yield Finding("evidence_checkpoints", f"seq {seq}", None,
                          told("is past the chain's last entry (seq {last})", last=last_seq),
                          f"{DIFFERS}（{EDITED}）")  # fmt: skip
            return
        opening.fold(tables.opening_entries(opening.through + 1, seq))
        opening.through = seq
        opening.forget_expired(at_us)
        expected = opening.seqs()
        if recorded != expected:
            yield _checkpoint_differs(seq, expected, recorded)
            opening = Opening()  # judge the next one by the chain alone
            opening.fold(tables.opening_entries(1, seq))
            opening.through = seq
            opening.forget_expired(at_us)


class SealedOnce:
    """Report groups seal numbers in increasing order, each once (read in sequence order): a
    group sealing a number an earlier group sealed counts its reports twice in every bundle
    and figure (a seal made again after its report_groups row was deleted by hand)."""

    def __init__(self) -> None:
        self._order = chain.SealOrder()

    def check(self, entry: chain.Entry) -> Iterator[Finding]:
        span = group_span(entry) if entry.kind in SEALS else None
        if span is not None:
            yield from self.check_span(entry.seq, span)

    def check_span(self, seq: int, span: tuple[int, int]) -> Iterator[Finding]:
        """A group at `seq` sealing the numbers `span`."""
        earlier = self._order.resealed(seq, span)
        if earlier is not None:
            yield Finding(
                "evidence_chain", f"seq {seq}", seq,
                told("seals reports {first}–{last}, but seq {earlier} sealed them up to"
                     " {through} already: reports counted twice (was a report_groups row"
                     " deleted?)", first=span[0], last=span[1], earlier=earlier[0],
                     through=earlier[1]),
                f"重复封存（{EDITED}）",
            )  # fmt: skip


def _checkpoint_differs(seq: int, expected: list[int], recorded: list[int]) -> Finding:
    missing = sorted(set(expected) - set(recorded))[:5]
    extra = sorted(set(recorded) - set(expected))[:5]
    return Finding(
        "evidence_checkpoints", f"seq {seq}", seq,
        told("does not hold the opening the chain gives (missing seq {missing}, not "
             "the latest: seq {extra}); exports of periods starting after it open "
             "wrongly until it is deleted (the next export records it again)",
             missing=missing, extra=extra),
        f"{DIFFERS}（{EDITED}）",
    )  # fmt: skip


def checkpoint_used(tables: Tables, through: int) -> Iterator[Finding]:
    """The checkpoint an export opens its period from (the latest at or before entry
    `through`), folded again from the checkpoint before it (or the chain's start): it must name
    the same opening entries. An edited one (a FAIL left out) made the export sign a report
    that leaves out a failure, which the verifier cannot see. One interval of the chain, not
    all of it: `audit check` holds every checkpoint to the chain from its start."""
    before: tuple[int, int, list[int]] | None = None
    used: tuple[int, int, list[int]] | None = None
    for recorded in tables.checkpoints():
        if recorded[0] > through:
            break
        before, used = used, recorded
    if used is None:
        return
    opening = Opening()
    if before is not None:
        opening.fold(tables.chain_at(before[2]))
        opening.through = before[0]
    opening.fold(tables.opening_entries(opening.through + 1, used[0]))
    opening.through = used[0]
    opening.forget_expired(used[1])
    expected = opening.seqs()
    if used[2] != expected:
        yield _checkpoint_differs(used[0], expected, used[2])


def _links(entry: chain.Entry, expected: int, prev_hash: bytes) -> Iterator[Finding]:
    """The chain itself: in sequence, each entry linked to the one before and matching its
    own hash (the tables are held to it, so it must hold first)."""
    if entry.seq != expected:
        yield Finding("evidence_chain", f"seq {expected}–{entry.seq - 1}", entry.seq,
                      told("is missing: the chain skips these entries"),
                      f"缺失（{REMOVED}）")  # fmt: skip
    elif entry.prev_hash != prev_hash:
        yield Finding("evidence_chain", f"seq {entry.seq}", entry.seq,
                      told("does not link to the entry before it"),
                      f"{DIFFERS}（{EDITED}）")  # fmt: skip
    if entry.recomputed() != entry.hash:
        yield Finding("evidence_chain", f"seq {entry.seq}", entry.seq,
                      told("does not match its own hash: its content was changed"),
                      f"{DIFFERS}（{EDITED}）")  # fmt: skip


def _number(value: object) -> int:
    """A number the tables or the chain hold (a time, an id): an int on both engines."""
    if not isinstance(value, int):
        raise TypeError(f"expected a number, not {value!r}")
    return value


def _summary(kind: str, record: Record) -> str:
    """The few fields that tell a reader which record it is."""
    names = {
        chain.REPORT: ("device_id", "received_us"),
        chain.STATE: ("state", "reason", "report_id"),
        chain.WAIVER: ("waiver_id", "action", "at_us"),
        chain.DEVICE: ("device_id", "action", "at_us"),
        chain.ADMIN: ("actor", "command", "outcome", "at_us"),
        chain.PRUNE: ("at_us", "before_us", "reports"),
    }[kind]
    fields = [_when(record.get(name), f"{name} ") if name.endswith("_us")
              else f"{name} {_shown(record.get(name))}" for name in names]
    return Told(Listed.of(f.said if isinstance(f, Told) else f for f in fields))

"""Reports sealed into the evidence chain in groups (schema 14).

A stored report gets the next number of the reports table (`n`, taken under the store's
write lock, so numbers follow the order of commits however many collectors share the
database) and no chain entry of its own. Every report stored since the last seal is then
sealed by one chain entry of kind `reports` (`evidence.chain.REPORT_GROUP`): the records of
its reports in stored order, each as a `report` entry's payload held it. An entry per report
cost the ingest path a hash, a JSON payload and an index row per report, and an audit bundle
a line to write, check and verify per report; an hour of a 10,000-device fleet is hundreds
of groups instead of ten thousand entries.

A report waits at most `SEAL_AFTER_US` for its seal: the write that stores a report seals
once the oldest unsealed report is that old or `SEAL_REPORTS` wait; `serve` seals what is due
every few seconds (a quiet collector's last reports); an export and `audit check` seal
everything first. Until sealed, a report is acknowledged and stored (its row is append-only
like every other) but not yet in the chain: the chain pins it within that time.

Rows written before schema 14 keep their own `report` entries (`n` is NULL).

In format 5 (`report_format.py`, schema 30) a report is stored as format 5 or 4, chosen
by whether its collector met its fact set, or its device's facts repeating, lately
(`fact_parts.cut_chosen`), and a group in which at least half were stored as format 5 is
sealed as a `report_facts` entry
(`evidence/fact_groups.py`): each report's own bytes and the SHA-256 of its fact set, as
columns; any other group as `reports`. Of a row stored as format 5 in a `reports` group the
seal puts the body together and hashes it; of any other row in a `report_facts` group
(stored as format 4, or before the store's format changed, or a body whose facts cannot be
placed) it cuts the whole body and keeps its fact set and parts in `fact_parts`, as ingest
would have, so that every report a `report_facts` entry names has them there until
retention prunes its body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devposture.collector.evidence import chain, fact_groups, fact_sets
from devposture.collector.store.base import Part
from devposture.collector.store.chain import Appender, padded
from devposture.collector.store.engine import Cursor
from devposture.collector.store.fact_parts import Bodies, Cut, fact_cuts, fact_set_named, write
from devposture.collector.store.report_format import FORMAT_5, records_of

# Defaults of a report's longest wait for its seal, and of the most reports one seal holds.
SEAL_AFTER_US = 30_000_000
SEAL_REPORTS = 1000
# What a seal reads of its reports: a group's records are built from these columns as the
# ingest path would have chained each report (`chain.report_payload`).
_COLUMNS = (
    "n, report_id, device_id, received_us, collected_us, agent_version, clock_skew_ms, body,"
    " parts"
)


def next_number(cur: Cursor) -> int:
    """The number the next stored report takes (under the write lock: in commit order)."""
    row = cur.execute("SELECT MAX(n) FROM reports").fetchone()
    return 1 if row is None or row[0] is None else int(row[0]) + 1


# A stored report's record as its seal holds it: format 4's canonical JSON, or format 5's
# (metadata, own bytes, fact set digest) (`fact_groups.group_rows`).
FactRecord = tuple[tuple[object, ...], bytes, bytes]
Sealable = bytes | FactRecord
Known = tuple[dict[int, Sealable], ...]  # records made as reports were stored, by number


def sealed_record(metadata: Sequence[object], body: bytes) -> bytes:
    """A stored report's record as its seal holds it (canonical JSON, `chain.report_payload`):
    made by the seal from a row, or by the write that stores the report from the body in hand
    (`Known`), or by the benchmark's builder."""
    return chain.report_canonical(chain.report_payload(metadata, body))


def made_record(metadata: Sequence[object], body: bytes, stored: Cut) -> Sealable:
    """The record of a report being stored as `stored`, for its seal, in its row's format:
    format 5's where the row names a fact set (`fact_parts.cut_facts`), else format 4's."""
    digest = fact_set_named(stored.recipe)
    if digest is not None:
        return (tuple(metadata), stored.own, digest)
    return sealed_record(metadata, body)


def as_facts(formats: Sequence[bool]) -> bool:
    """Whether a group whose reports were stored in these formats (True: format 5) is sealed
    as `report_facts`: where at least half were. A report stored as format 4 is one whose
    fact set its collector does not expect to meet again (`fact_parts.cut_chosen`); a group
    of mostly such reports (a daily fleet's) exports faster as format 4's bodies than as
    fact sets each shipped once. The others of the group are sealed in the group's format
    all the same."""
    return bool(formats) and 2 * sum(formats) >= len(formats)


def _take(known: Known, n: int) -> Sealable | None:
    for records_ in known:
        if n in records_:
            return records_.pop(n)
    return None


def records(
    cur: Cursor, after: int, through: int, known: Known = (), *, facts: bool | None = False
) -> list[tuple[int, Sealable]]:  # fmt: skip
    """(n, record) of the reports numbered (after, through], in order, all of one format:
    format 5's where `facts`, format 4's where not, and where None that of at least half
    the reports (`as_facts`). `known`: records the caller made when it stored the reports
    (taken out as used); the others, and those of the other format, are made from their
    rows."""
    span = range(after + 1, through + 1)
    if all(any(n in records_ for records_ in known) for n in span):
        made: dict[int, Sealable | None] = {n: _take(known, n) for n in span}
        rows: list[Sequence[Any]] = []
    else:  # numbers rolled back are never stored: the rows say which are
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM reports WHERE n > ? AND n <= ? ORDER BY n",  # noqa: S608
            (after, through),
        ).fetchall()
        made = {int(row[0]): _take(known, int(row[0])) for row in rows}
    if facts is None:
        by_row = {int(row[0]): fact_set_named(row[8]) is not None for row in rows}
        facts = as_facts([isinstance(m, tuple) if m is not None else by_row[n]
                          for n, m in made.items()])  # fmt: skip
    other = [n for n, m in made.items() if m is None or isinstance(m, tuple) != facts]
    if other:
        wanted = set(other)
        unknown = [row for row in rows or _rows(cur, other) if int(row[0]) in wanted]
        if facts:
            made.update(_fact_records(cur, unknown))
        else:
            for row in Bodies(cur).rows(unknown, 7):
                made[int(row[0])] = sealed_record(row[1:7], bytes(row[7]))
    out: list[tuple[int, Sealable]] = []
    for n, record in made.items():
        assert record is not None
        out.append((n, record))
    return out


def _rows(cur: Cursor, numbers: Sequence[int]) -> list[Sequence[Any]]:
    """The rows of the reports numbered `numbers` (a few of a group: those whose record the
    seal makes in the group's other format)."""
    rows: dict[int, Sequence[Any]] = {}
    for chunk in padded(list(numbers)):
        marks = ", ".join("?" * len(chunk))
        for row in cur.execute(
            f"SELECT {_COLUMNS} FROM reports WHERE n IN ({marks})",  # noqa: S608
            chunk,
        ).fetchall():
            rows[int(row[0])] = row
    return [rows[n] for n in sorted(rows)]


def fact_set_parts(cut: fact_sets.Cut) -> list[tuple[bytes, bytes]]:
    """(digest, bytes) of a cut's fact set and each part it names: what `fact_parts` keeps
    for a report a `report_facts` entry names."""
    return [(cut.fact_set_sha256(), cut.fact_set),
            *zip(fact_sets.digests(cut.fact_set), cut.parts, strict=True)]  # fmt: skip


def other_record(
    metadata: Sequence[object], body: bytes, facts: bool
) -> tuple[Sealable, list[tuple[bytes, bytes]]]:  # fmt: skip
    """A report's record in a group's format where it was stored in the other (`records`
    reads its row for it; the benchmark's builder holds its body): format 5's, with its
    fact set and parts to keep, or format 4's."""
    if not facts:
        return sealed_record(metadata, body), []
    made = fact_sets.cut(body)
    return (tuple(metadata), made.own, made.fact_set_sha256()), fact_set_parts(made)


def _fact_records(cur: Cursor, rows: list[Sequence[Any]]) -> dict[int, Sealable]:
    """Format 5's records of rows read by `records`. A row stored otherwise is cut from its
    whole body, its fact set and parts kept in `fact_parts` (the export ships them from there)."""
    made: dict[int, Sealable] = {}
    kept: dict[bytes, tuple[bytes, bytes, int]] = {}
    empty = fact_sets.cut(b"")
    for row, found in zip(rows, fact_cuts(Bodies(cur), rows, 7), strict=True):
        # A body emptied (no row a seal meets) is cut as the empty body.
        own, digest, cut = found or (empty.own, empty.fact_set_sha256(), empty)
        made[int(row[0])] = (tuple(row[1:7]), own, digest)
        if cut is None:  # stored as format 5: its fact set and parts are there
            continue
        received = int(row[3])
        for d, part in fact_set_parts(cut):
            if d not in kept or kept[d][2] < received:
                kept[d] = (d, part, received)
    write(cur, list(kept.values()))
    return made


def seal(
    cur: Cursor, chained: Appender, *, now_us: int, after_us: int = SEAL_AFTER_US,
    most: int = SEAL_REPORTS, force: bool = False, top: int | None = None,
    known: Known = (), report_format: int | None = None,
) -> int:  # fmt: skip
    """Seal the unsealed reports, on the cursor of a write transaction, when they are due:
    the oldest waited `after_us`, or `most` wait (or `force`). One group entry per `most`
    reports. `top`: the highest number stored, when the caller knows it. `known`: records
    made as the reports were stored (`records`). `report_format`: the store's
    (`report_format.py`), read here when not given. Returns how many reports were sealed."""
    first = cur.execute(
        "SELECT n, received_us FROM reports WHERE n > COALESCE((SELECT last_n FROM"
        " report_groups ORDER BY seq DESC LIMIT 1), 0) ORDER BY n LIMIT 1"
    ).fetchone()
    if first is None:
        return 0
    if top is None:
        top = int(cur.execute("SELECT MAX(n) FROM reports").fetchone()[0])
    last = int(first[0]) - 1
    waiting = top - last  # at most: numbers of reports rolled back are never stored
    waited = now_us - int(first[1])
    # A clock set back (received "in the future") is due at once: the reports would have
    # waited until the clock caught up, hours perhaps, outside the chain.
    if not force and waiting < most and 0 <= waited < after_us:
        return 0
    # Only once a seal is due (not on every write that stores a report: the chain is read
    # back from its head to the latest seal, all the entries written since).
    through = _chained_through(cur)
    if through > last:  # a report_groups row deleted by hand: never seal again
        last = through
        if last >= top:
            return 0
    # Format 4's store seals format 4; format 5's chooses per group (`as_facts`).
    facts = None if (records_of(cur) if report_format is None else report_format) == FORMAT_5 \
        else False  # fmt: skip
    sealed = 0
    while last < top:
        through = min(top, last + most)
        numbered = records(cur, last, through, known, facts=facts)
        if numbered:
            low, high = numbered[0][0], numbered[-1][0]
            kind, payload = group_payload(low, high, [r for _, r in numbered])
            seq = chained.append_canonical(kind, chain.group_key(low, high), payload,
                                           at_us=now_us)  # fmt: skip
            cur.execute(
                "INSERT INTO report_groups(seq, first_n, last_n, reports) VALUES (?, ?, ?, ?)",
                (seq, low, high, len(numbered)),
            )
            sealed += len(numbered)
        last = through
    return sealed


def group_payload(low: int, high: int, made: Sequence[Sealable]) -> tuple[str, bytes]:
    """The chain kind and payload of a group of records (all of one format): what the seal
    writes, and the benchmark's builder."""
    facts = [m for m in made if isinstance(m, tuple)]
    if not facts:
        return chain.REPORT_GROUP, chain.group_canonical(low, high, made)  # type: ignore[arg-type]
    rows, ids_cut = fact_groups.group_rows([m[0] for m in facts], [(m[1], m[2]) for m in facts])
    return fact_groups.REPORT_FACTS, fact_groups.group_canonical(low, high, rows, ids_cut)


def _chained_through(cur: Cursor) -> int:
    """The highest report number the chain's group entries seal past the latest report_groups
    row (0 when none): that row, deleted by hand, had the reports of its group sealed a second
    time, each counted twice in every bundle and figure. Only entries after the latest row are
    read: those written since the last seal."""
    row = cur.execute(
        "SELECT record_key FROM evidence_chain WHERE kind IN (?, ?) AND seq > COALESCE("
        "(SELECT MAX(seq) FROM report_groups), 0) ORDER BY seq DESC LIMIT 1",
        (chain.REPORT_GROUP, fact_groups.REPORT_FACTS),
    ).fetchone()
    span = None if row is None else chain.group_range(str(row[0]))
    return 0 if span is None else span[1]


class Sealing(Part):
    """`Store.sealing`: sealing what waits, outside a report write."""

    def seal_due(self, now_us: int, *, after_us: int = SEAL_AFTER_US) -> int:
        """Seal the reports that waited `after_us` (serve, every few seconds)."""
        with self._write() as cur:
            return seal(cur, Appender(cur), now_us=now_us, after_us=after_us)

    def seal_all(self, now_us: int | None = None) -> int:
        """Seal every report stored (an export or `audit check` first: all of what was
        acknowledged is in the chain they read), written at `now_us` (default: now)."""
        with self._write() as cur:
            return seal(cur, Appender(cur), force=True,
                        now_us=chain.now_us() if now_us is None else now_us)  # fmt: skip

    def waiting(self) -> int:
        """How many reports wait for their seal."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM reports WHERE n > COALESCE((SELECT last_n FROM report_groups"
            " ORDER BY seq DESC LIMIT 1), 0)"
        ).fetchone()
        return int(row[0])

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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from devposture.collector.evidence import chain
from devposture.collector.store.base import Part
from devposture.collector.store.chain import Appender
from devposture.collector.store.engine import Cursor
from devposture.collector.store.fact_parts import Bodies

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


Known = tuple[dict[int, bytes], ...]  # records made as reports were stored, by number


def sealed_record(metadata: Sequence[object], body: bytes) -> bytes:
    """A stored report's record as its seal holds it (canonical JSON, `chain.report_payload`):
    made by the seal from a row, or by the write that stores the report from the body in hand
    (`Known`), or by the benchmark's builder."""
    return chain.report_canonical(chain.report_payload(metadata, body))


def _take(known: Known, n: int) -> bytes | None:
    for records_ in known:
        if n in records_:
            return records_.pop(n)
    return None


def records(
    cur: Cursor, after: int, through: int, known: Known = ()
) -> Iterator[tuple[int, bytes]]:
    """(n, canonical record) of the reports numbered (after, through], in order. `known`:
    records the caller made when it stored the reports (taken out as used); the others are
    read from their rows."""
    span = range(after + 1, through + 1)
    if all(any(n in records_ for records_ in known) for n in span):
        for n in span:
            made = _take(known, n)
            assert made is not None
            yield n, made
        return
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM reports WHERE n > ? AND n <= ? ORDER BY n",  # noqa: S608
        (after, through),
    ).fetchall()
    taken = {int(row[0]): _take(known, int(row[0])) for row in rows}
    unknown = Bodies(cur).rows([r for r in rows if taken[int(r[0])] is None], 7)
    for row in unknown:
        taken[int(row[0])] = sealed_record(row[1:7], bytes(row[7]))
    for row in rows:
        record = taken[int(row[0])]
        assert record is not None
        yield int(row[0]), record


def seal(
    cur: Cursor, chained: Appender, *, now_us: int, after_us: int = SEAL_AFTER_US,
    most: int = SEAL_REPORTS, force: bool = False, top: int | None = None,
    known: Known = (),
) -> int:  # fmt: skip
    """Seal the unsealed reports, on the cursor of a write transaction, when they are due:
    the oldest waited `after_us`, or `most` wait (or `force`). One group entry per `most`
    reports. `top`: the highest number stored, when the caller knows it. `known`: records
    made as the reports were stored (`records`). Returns how many reports were sealed."""
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
    sealed = 0
    while last < top:
        through = min(top, last + most)
        numbered = list(records(cur, last, through, known))
        if numbered:
            low, high = numbered[0][0], numbered[-1][0]
            payload = chain.group_canonical(low, high, [r for _, r in numbered])
            seq = chained.append_canonical(chain.REPORT_GROUP, chain.group_key(low, high),
                                           payload, at_us=now_us)  # fmt: skip
            cur.execute(
                "INSERT INTO report_groups(seq, first_n, last_n, reports) VALUES (?, ?, ?, ?)",
                (seq, low, high, len(numbered)),
            )
            sealed += len(numbered)
        last = through
    return sealed


def _chained_through(cur: Cursor) -> int:
    """The highest report number the chain's group entries seal past the latest report_groups
    row (0 when none): that row, deleted by hand, had the reports of its group sealed a second
    time, each counted twice in every bundle and figure. Only entries after the latest row are
    read: those written since the last seal."""
    row = cur.execute(
        "SELECT record_key FROM evidence_chain WHERE kind = ? AND seq > COALESCE("
        "(SELECT MAX(seq) FROM report_groups), 0) ORDER BY seq DESC LIMIT 1",
        (chain.REPORT_GROUP,),
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

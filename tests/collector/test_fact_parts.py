"""Report bodies stored as their own bytes plus the fact parts a fleet repeats (schema 16):
cut and put back byte for byte, each part stored once, read back whole by every reader,
deleted by retention only when no kept body names it, and held to the chain by `audit check`.

The bodies are real serialized PostureReports (tests/e2e/fleet.py's Linux laptop), with the
facts a day changes, as a fleet sends them; the store is written through its own writers."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devposture.collector.evidence import body_parts
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.store import CheckResult, ReportRecord, Store, database_errors, fact_parts
from devposture.collector.store.base import to_us
from devposture.collector.store.fact_parts import SLACK_US, Bodies, MissingPart
from devposture.collector.store.report_format import FORMAT_4
from devposture.collector.store.target import DatabaseTarget
from devposture.v1 import devposture_pb2 as pb
from tests.collector.enrolled import enroll
from tests.databases import fresh_database, raw, unguarded
from tests.e2e.fleet import closed_session, posture_report

T0 = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def _report(device_id: str, at: dt.datetime, *, pending: int = 0, host: str = "PC-1") -> bytes:
    """A laptop's report at `at`: its facts change with the day (`posture_report`) and with
    `pending` updates; its id and times with every report."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    home = closed_session("TP-LINK_5G_8A1C", day - 3 * HOUR, day + 7 * HOUR, public=False)
    report = posture_report(device_id, at, hostname=host, updates_pending=pending,
                            sessions=[home])  # fmt: skip
    report.report_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{device_id}/{to_us(at)}"))
    report.delivery.coalesced_total = to_us(at) % 7
    return report.SerializeToString()


# --- the cut, pure -------------------------------------------------------------------------------


def test_a_real_report_is_cut_at_its_repeated_facts_and_put_back_byte_for_byte() -> None:
    body = _report("d" * 32, T0)
    own, parts = body_parts.split(body)
    assert len(parts) >= 4 and len(own) < len(body) // 2
    numbers = {n for n, s, _ in body_parts.field_runs(body) if any(o == s for o, _ in parts)}
    assert 1 not in numbers and {5, 10, 11, 15} <= numbers  # host, antivirus, firewall, backups
    refs = [(offset, body_parts.digest(p)) for offset, p in parts]
    named = {body_parts.digest(p): p for _, p in parts}
    assert body_parts.assemble_stored(own, body_parts.pack(refs), named) == body
    # The next hour's report of the same device repeats every part; only its own bytes differ.
    later_own, later_parts = body_parts.split(_report("d" * 32, T0 + HOUR))
    assert [p for _, p in later_parts] == [p for _, p in parts] and later_own != own


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field as the wire has it (tag, length, bytes)."""
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.tuples(st.sampled_from([1, 2, 4, 5, 10, 13, 15, 30, 200, 5000]),
                  st.binary(max_size=400)),
        min_size=1, max_size=12,
    ),
    tail=st.sampled_from([b"", b"\x08\x96\x01", b"\x1d\x00\x00\x80\x3f", b"\x19" + bytes(8)]),
)  # fmt: skip
def test_any_field_order_unknown_fields_and_repeats_come_back_exactly(
    pieces: list[tuple[int, bytes]], tail: bytes
) -> None:
    """Bytes as an agent of another version might send them: fields out of order, unknown
    numbers, a repeated field split by another, varints, fixed32 and fixed64 fields."""
    body = b"".join(_field(n, p) for n, p in pieces) + tail
    own, parts = body_parts.split(body)
    named = {body_parts.digest(p): p for _, p in parts}
    recipe = body_parts.pack([(o, body_parts.digest(p)) for o, p in parts])
    assert body_parts.assemble_stored(own, recipe, named) == body
    assert own  # never empty: an empty body means pruned
    assert all(len(p) >= body_parts.PART_MIN for _, p in parts)


@pytest.mark.parametrize(
    "body",
    [b"\x0b\x0c", b"\x12\x05abc", b"\x0a", b"\x00\x01", b"body of dev-01 report 3"],
    ids=["a group", "truncated", "no length", "field 0", "not protobuf"],
)
def test_bytes_that_cannot_be_walked_are_kept_whole(body: bytes) -> None:
    assert body_parts.split(body) == (body, [])


def test_recipes_that_do_not_fit_are_refused() -> None:
    part = b"\x52" + bytes([70]) + b"p" * 70
    good = body_parts.pack([(3, body_parts.digest(part))])
    assert body_parts.assemble_stored(b"abcdef", good, {body_parts.digest(part): part}) == (
        b"abc" + part + b"def"
    )
    with pytest.raises(ValueError, match="shorter than its recipe says"):
        body_parts.assemble(b"ab", [(3, body_parts.digest(part))], lambda d: part)
    with pytest.raises(ValueError, match="does not fit"):  # the second part inside the first
        body_parts.assemble(b"abcdef", [(0, b"x" * 32), (5, b"y" * 32)], lambda d: part)
    with pytest.raises(ValueError, match="not whole references"):
        body_parts.unpack(good[:-1])


# --- the store, both engines ---------------------------------------------------------------------


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    return fresh_database(tmp_path, "db.sqlite")


@pytest.fixture
def store(target: DatabaseTarget) -> Store:
    """A store in format 4, whose bodies these tests cut (format 5's: test_fact_set_rows)."""
    opened = Store.open(target)
    opened.report_format.write(FORMAT_4)
    for n in range(3):
        enroll(opened, f"dev-{n}", T0 - DAY)
    return opened


def _record(device_id: str, at: dt.datetime, body: bytes) -> ReportRecord:
    report = pb.PostureReport.FromString(body)
    return ReportRecord(report.report_id, device_id, at, at, "1.4.2", body, "PC", "linux",
                        "Debian", "12")  # fmt: skip


def _store(
    store: Store, device_id: str, at: dt.datetime, *, pending: int = 0, host: str = "PC-1"
) -> tuple[str, bytes]:
    body = _report(device_id, at, pending=pending, host=host)
    record = _record(device_id, at, body)
    store.reports.store_reports([(record, [CheckResult("firewall", "PASS", "on")])])
    return record.report_id, body


def _count(store: Store, sql: str) -> int:
    return int(store._db.execute(sql).fetchone()[0])


def test_a_fleets_repeated_facts_are_stored_once_and_every_body_reads_back_whole(
    store: Store,
) -> None:
    sent: dict[str, bytes] = {}
    for hour in range(6):
        group: list[tuple[ReportRecord, list[CheckResult]]] = []
        for n in range(3):
            body = _report(f"dev-{n}", T0 + hour * HOUR, host=f"PC-{n}")
            group.append((_record(f"dev-{n}", T0 + hour * HOUR, body), []))
            sent[group[-1][0].report_id] = body
        store.reports.store_reports(group)
    # A day later the facts' dates moved: new parts, once for the fleet.
    later, body = _store(store, "dev-0", T0 + DAY)
    sent[later] = body
    parts_of = {d for b in sent.values() for _, p in body_parts.split(b)[1]
                for d in [body_parts.digest(p)]}  # fmt: skip
    assert _count(store, "SELECT COUNT(*) FROM fact_parts") == len(parts_of) < 3 * 7
    stored_own = _count(store, "SELECT SUM(length(body)) FROM reports")
    assert stored_own < sum(map(len, sent.values())) // 2
    assert store.reports.report_bodies(list(sent)) == sent
    assert all(store.reports.report_body(r) == b for r, b in sent.items())
    assert all(store.device_pages.report_body(r) == b for r, b in sent.items())
    latest = {r: b for _, r, _, b in store.reports.latest_reports()}
    assert latest[later] == sent[later]
    # The chain holds each report's SHA-256 of the bytes as sent, and the tables agree.
    store.sealing.seal_all(to_us(T0 + 2 * DAY))
    findings = table_disagreements(store)
    assert findings.ok, findings


def test_a_reader_fetches_each_part_once_and_keeps_no_more_than_its_bound(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every report's sequence of parts is its own (its host name, the day's dates), so a
    reader keeps parts by digest: a quarter's export fetches each part once. Past the bound
    it starts again, and every body still reads back whole."""
    sent: dict[str, bytes] = {}
    for day in range(3):
        for n in range(3):
            report_id, body = _store(store, f"dev-{n}", T0 + day * DAY, host=f"PC-{n}")
            sent[report_id] = body
    rows = store._db.execute("SELECT report_id, body, parts FROM reports ORDER BY n").fetchall()
    assert len({bytes(r[2]) for r in rows}) == len(rows)  # no two reports share a sequence
    parts_named = {digest for r in rows for _, digest in body_parts.unpack(bytes(r[2]))}
    fetched: list[int] = []
    real_fetch = fact_parts.fetch

    def counted(db: object, digests: list[bytes]) -> dict[bytes, bytes]:
        fetched.append(len(digests))
        return real_fetch(db, digests)  # type: ignore[arg-type]

    monkeypatch.setattr(fact_parts, "fetch", counted)
    bodies = Bodies(store._db)
    for row in rows:  # one row a batch, as a reader of one report at a time would
        assert bodies.rows([row], 1)[0][1] == sent[row[0]]
    assert sum(fetched) == len(parts_named)
    # A bound of one report's parts (a batch's are kept while its bodies are made): the
    # reader forgets and fetches again, never wrong.
    bound = max(sum(len(p) for _, p in body_parts.split(b)[1]) for b in sent.values())
    assert bound < _count(store, "SELECT SUM(length(part)) FROM fact_parts")
    monkeypatch.setattr(fact_parts, "PARTS_BYTES_MOST", bound)
    fetched.clear()
    small = Bodies(store._db)
    for row in rows:
        assert small.rows([row], 1)[0][1] == sent[row[0]]
        assert sum(len(p) for p in small._parts.values()) <= bound
    assert sum(fetched) > len(parts_named)
    # Batches that each hold a report met in the batch before and a new one: forgetting to
    # make room must keep what the batch itself needs (an hourly quarter's export failed
    # with a KeyError here before).
    again = Bodies(store._db)
    for first in range(len(rows) - 1):
        pair = rows[first : first + 2]
        assert [r[1] for r in again.rows(pair, 1)] == [sent[r[0]] for r in pair]


def test_a_repeated_part_is_written_again_only_once_half_its_slack_has_passed(
    store: Store,
) -> None:
    """`last_us`, which retention's clean-up goes by, stays within SLACK_US of the newest
    report naming the part, without a write for every report (time as data: received)."""
    start = T0.replace(hour=0, minute=30)  # the day's facts hold until midnight
    _store(store, "dev-0", start)
    [(digest, last)] = store._db.execute(
        "SELECT digest, last_us FROM fact_parts ORDER BY length(part) DESC LIMIT 1"
    ).fetchall()
    assert last == to_us(start)

    def last_us() -> int:
        row = store._db.execute("SELECT last_us FROM fact_parts WHERE digest = ?", (digest,))
        return int(row.fetchone()[0])

    # Same facts within the day.
    step = dt.timedelta(microseconds=SLACK_US // 4)
    _store(store, "dev-0", start + step)
    assert last_us() == to_us(start)  # known to this process, recent enough: not written
    _store(store, "dev-0", start + 3 * step)
    assert last_us() == to_us(start + 3 * step)  # past half the slack: raised
    # Another process (a second collector) knows nothing and writes it: raised, never lowered.
    other = Store.open(store.target)
    try:
        _store(other, "dev-1", start + 2 * step)
    finally:
        other.close()
    assert last_us() == to_us(start + 3 * step)


def test_retention_deletes_the_parts_only_pruned_bodies_named(store: Store) -> None:
    # dev-0 reports for ten days with 5 pending updates, then 0 from day 10; dev-1 reported
    # once, on day 0, with 9 pending: its only report stays current (its verdicts name it).
    for day in range(12):
        _store(store, "dev-0", T0 + day * DAY, pending=5 if day < 10 else 0)
    _, kept_body = _store(store, "dev-1", T0, pending=9)
    store.sealing.seal_all(to_us(T0 + 12 * DAY))
    head = store.evidence.chain_head()
    assert head is not None and store.checkpoints.advance(head.at_us) is not None
    before = _count(store, "SELECT COUNT(*) FROM fact_parts")
    pruned = store.retention.prune(retention_days=400, now_us=to_us(T0 + 411 * DAY))
    assert pruned is not None and pruned.reports == 11  # dev-0's days 0-10 (day 10's < cutoff)
    after = {bytes(r[0]) for r in store._db.execute("SELECT digest FROM fact_parts")}
    wanted = set()
    for body in store.reports.report_bodies(store.reports.report_ids()).values():
        if body:
            wanted |= {body_parts.digest(p) for _, p in body_parts.split(body)[1]}
    # Every part a kept body names is there (dev-1's first, dev-0's last), and parts no kept
    # body names are gone, but those within the slack of the cutoff (day 10 and 11's).
    assert wanted <= after and len(after) < before
    assert store.reports.report_body(
        pb.PostureReport.FromString(kept_body).report_id) == kept_body
    pending_part = body_parts.split(_report("dev-0", T0 + 2 * DAY, pending=5))[1]
    assert not {body_parts.digest(p) for _, p in pending_part} & after - wanted


def test_only_emptying_a_body_and_its_recipe_gets_past_the_append_only_guard(
    store: Store, target: DatabaseTarget
) -> None:
    report_id, _ = _store(store, "dev-0", T0)
    other = raw(target)
    try:
        for sql, params in [
            ("UPDATE reports SET parts = NULL WHERE report_id = ?", (report_id,)),
            ("UPDATE reports SET body = ? WHERE report_id = ?", (b"", report_id)),
            ("UPDATE reports SET parts = ? WHERE report_id = ?", (b"\x00" * 36, report_id)),
        ]:
            with pytest.raises(database_errors(), match="reports are append-only"):
                other.execute(sql, params)
        other.execute("UPDATE reports SET body = ?, parts = NULL WHERE report_id = ?",
                      (b"", report_id))  # fmt: skip
    finally:
        other.close()


@pytest.mark.parametrize("how", ["edited", "deleted"])
def test_a_fact_part_changed_behind_the_collectors_back_is_named(
    store: Store, target: DatabaseTarget, how: str
) -> None:
    ids = [_store(store, f"dev-{n}", T0 + n * HOUR, host=f"PC-{n}")[0] for n in range(3)]
    store.sealing.seal_all(to_us(T0 + DAY))
    assert table_disagreements(store).ok
    body = _report("dev-0", T0)
    [part] = [body[s:e] for n, s, e in body_parts.field_runs(body) if n == 10]  # antivirus
    with unguarded(target) as db:
        if how == "edited":  # the same length, one byte changed
            db.execute("UPDATE fact_parts SET part = ? WHERE digest = ?",
                       (part[:-1] + bytes([part[-1] ^ 1]), body_parts.digest(part)))  # fmt: skip
        else:
            db.execute("DELETE FROM fact_parts WHERE digest = ?", (body_parts.digest(part),))
    found = table_disagreements(Store.open(target))
    assert not found.ok
    named = found.text()
    assert all(f"[report_id '{r}']" in named for r in ids)
    assert "the report body was changed" in named
    # A reader that needs the whole body says which report and part, not a wrong body.
    if how == "deleted":
        fresh = Store.open(target)
        with pytest.raises(MissingPart, match=ids[0]):
            fresh.reports.report_body(ids[0])
    bodies = Bodies(store._db, lenient=True)
    row = store._db.execute("SELECT report_id, body, parts FROM reports WHERE report_id = ?",
                            (ids[0],)).fetchone()  # fmt: skip
    assert bodies.rows([row], 1)[0][1] is not None


@pytest.mark.sqlite_only  # SQLite keeps any type in any column; PostgreSQL's bytea only bytes
@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE fact_parts SET part = 'x' WHERE digest = :digest",  # text, not bytes
        "UPDATE fact_parts SET part = part || x'ff' WHERE digest = :digest",  # `||` makes text
        "UPDATE reports SET body = 'firewall on' WHERE report_id = :report",
        "UPDATE reports SET body = body || x'ff' WHERE report_id = :report",  # not even UTF-8
    ],
)
def test_a_part_or_body_typed_as_text_by_hand_is_named_not_a_crash(
    store: Store, target: DatabaseTarget, edit: str
) -> None:
    # An operator's sqlite3 session stores text where the collector stores bytes: audit check
    # and the export crashed (TypeError), or blamed the file's permissions (text that is not
    # UTF-8 could not even be read), where they name the reports whose bodies changed.
    ids = [_store(store, f"dev-{n}", T0 + n * HOUR, host=f"PC-{n}")[0] for n in range(3)]
    store.sealing.seal_all(to_us(T0 + DAY))
    body = _report("dev-0", T0)
    [part] = [body[s:e] for n, s, e in body_parts.field_runs(body) if n == 10]  # antivirus
    with unguarded(target) as db:
        db.execute(edit.replace(":digest", "?").replace(":report", "?"),
                   (body_parts.digest(part),) if ":digest" in edit else (ids[0],))  # fmt: skip
    found = table_disagreements(Store.open(target))
    assert not found.ok
    named = found.text()
    assert f"[report_id '{ids[0]}']" in named and "the report body was changed" in named
    if ":digest" in edit:  # every report holding the antivirus part
        assert all(f"[report_id '{r}']" in named for r in ids)


def test_a_report_stored_before_schema_16_keeps_its_whole_body(
    store: Store, target: DatabaseTarget
) -> None:
    """Rows written before the cut have their whole body and no recipe: read as they are."""
    body = _report("dev-2", T0)
    record = _record("dev-2", T0, body)
    with unguarded(target) as db:
        db.execute(
            "INSERT INTO reports(report_id, device_id, received_us, collected_us, agent_version,"
            " clock_skew_ms, body, parts, n) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, NULL)",
            (record.report_id, "dev-2", to_us(T0), to_us(T0), "1.4.2", body),
        )
    assert store.reports.report_body(record.report_id) == body
    assert _count(store, "SELECT COUNT(*) FROM fact_parts") == 0
    store.sealing.seal_all(to_us(T0 + DAY))
    assert table_disagreements(store).ok is False  # no chain entry of its own: named as added

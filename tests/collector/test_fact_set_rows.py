"""Reports stored and sealed in bundle format 5 (schema 30, `store/report_format.py`), on
both engines: a row keeps its own fields and names its fact set, kept once beside its parts;
its body reads back byte for byte; the seal writes `report_facts` entries from which every
body is rebuilt from the chain and the stored fact sets and parts; a store that changes
format seals on without a gap, whichever way; retention deletes only what no kept body names.

The bodies are real serialized PostureReports (tests/e2e/fleet.py's Linux laptop, as
`test_fact_parts.py` makes them), the store written through its own writers."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.evidence import (
    chain,
    export,
    fact_groups,
    fact_sets,
    facts_view,
    signing,
    verify,
)
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.store import CheckResult, ReportRecord, Store, fact_parts
from devposture.collector.store.base import to_us
from devposture.collector.store.fact_parts import FACT_SET_MARK, fetch
from devposture.collector.store.report_format import FORMAT_4, FORMAT_5
from devposture.collector.store.target import DatabaseTarget
from devposture.policy import default_policy
from tests.collector.enrolled import enroll
from tests.collector.test_fact_parts import DAY, HOUR, T0, _record, _report
from tests.databases import fresh_database, unguarded

DEVICES = ("dev-0", "dev-1", "dev-2")


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    target = fresh_database(tmp_path, "db.sqlite")
    with contextlib.closing(Store.open(target)) as opened:
        for device_id in DEVICES:
            enroll(opened, device_id, T0 - DAY)
    return target


def _opened(target: DatabaseTarget, records: int) -> Store:
    """The store, its format set to `records` before its first write."""
    store = Store.open(target)
    store.report_format.write(records)
    return store


@pytest.fixture
def store(target: DatabaseTarget) -> Iterator[Store]:
    with contextlib.closing(_opened(target, FORMAT_5)) as opened:
        yield opened


def _hours(
    store: Store, first: int, hours: int, *, pending: int = 0, step: dt.timedelta = HOUR
) -> dict[str, bytes]:  # fmt: skip
    """Every device's reports every `step` (an hour: each group's write seals the one
    before) from the `first` on, a group each: report id -> body as sent."""
    sent: dict[str, bytes] = {}
    for hour in range(first, first + hours):
        at = T0 + hour * step
        group: list[tuple[ReportRecord, list[CheckResult]]] = []
        for n, device_id in enumerate(DEVICES):
            body = _report(device_id, at, pending=pending, host=f"PC-{n}")
            group.append((_record(device_id, at, body), [CheckResult("firewall", "PASS", "on")]))
            sent[group[-1][0].report_id] = body
        store.reports.store_reports(group)
    return sent


def _rows(store: Store) -> dict[str, tuple[bytes, bytes | None]]:
    """report id -> (body column, parts column) as stored."""
    return {
        str(r[0]): (bytes(r[1]), None if r[2] is None else bytes(r[2]))
        for r in store._db.execute("SELECT report_id, body, parts FROM reports")
    }


def _fact_entries(store: Store) -> list[chain.Entry]:
    head = store.evidence.chain_head()
    entries = store.evidence.chain_entries(1, head.seq) if head else []
    return [e for e in entries if e.kind in (chain.REPORT_GROUP, fact_groups.REPORT_FACTS)]


def _rebuilt(store: Store, entry: chain.Entry) -> dict[str, bytes]:
    """Each report of a `report_facts` entry, rebuilt from its record alone and the fact sets
    and parts the store keeps (what an export ships): report id -> body."""
    cut_ids = fact_groups.ids_cut(entry)
    out: dict[str, bytes] = {}
    for record in fact_groups.records(entry):
        digest = bytes.fromhex(str(record["fact_set"]))
        (packed,) = fetch(store._db, [digest]).values()
        assert hashlib.sha256(packed).digest() == digest
        parts = fetch(store._db, fact_sets.digests(packed))
        assert all(hashlib.sha256(p).digest() == d for d, p in parts.items())
        own = fact_groups.own_bytes(record, cut_ids)
        out[str(record["report_id"])] = fact_sets.rebuild(own, packed, parts.__getitem__)
    return out


def _format_5(rows: dict[str, tuple[bytes, bytes | None]]) -> set[str]:
    """The ids of the rows stored as format 5 (naming a fact set)."""
    return {r for r, (_, parts) in rows.items() if fact_parts.fact_set_named(parts) is not None}


def test_a_report_is_stored_as_format_5_once_its_fact_set_was_met_and_kept_once_with_its_parts(
    store: Store,
) -> None:
    first = _hours(store, 0, 1)
    sent = first | _hours(store, 1, 4)
    later = _hours(store, 24, 1)  # a day later the facts' dates moved: new fact sets
    first |= later
    sent |= later
    rows = _rows(store)
    # A report whose fact set the collector had not met is stored as format 4 stores it (a
    # recipe of its parts); the device's next reports of the day, naming it again, as 5.
    assert _format_5(rows) == set(sent) - set(first)
    named = {parts[1:] for r, (_, parts) in rows.items() if r not in first and parts}
    # Each device's hourly reports of a day share one fact set: three devices, one day.
    assert len(named) == len(DEVICES)
    for report_id, (own, parts) in rows.items():
        if report_id in first:
            assert (own, parts) == fact_parts.cut(sent[report_id]).columns()
            continue
        made = fact_sets.cut(sent[report_id])
        assert own == made.own and parts == FACT_SET_MARK + made.fact_set_sha256()
    # Kept once each: the parts of the format-4 rows' recipes, and the fact set and parts of
    # each report stored as format 5 or sealed in a `report_facts` entry (its seal kept them).
    in_facts = {str(r["report_id"]) for e in _fact_entries(store)
                if e.kind == fact_groups.REPORT_FACTS for r in fact_groups.records(e)}  # fmt: skip
    assert set(first) & in_facts  # the first hour's, sealed with the second
    kept = {bytes(r[0]) for r in store._db.execute("SELECT digest FROM fact_parts")}
    wanted = {d for r, b in sent.items() if r not in first or r in in_facts
              for c in [fact_sets.cut(b)]
              for d in [c.fact_set_sha256(), *fact_sets.digests(c.fact_set)]}  # fmt: skip
    wanted |= {d for r in first for d, _ in fact_parts.cut(sent[r]).parts}
    assert kept == wanted
    # Every reader gets the bodies back byte for byte.
    assert store.reports.report_bodies(list(sent)) == sent
    assert all(store.device_pages.report_body(r) == b for r, b in sent.items())
    latest = {r: b for _, r, _, b in store.reports.latest_reports()}
    assert all(latest[r] == sent[r] for r in latest) and len(latest) == len(DEVICES)


def test_a_report_is_format_5_where_its_fact_set_or_its_devices_repeated_facts_were_met() -> None:
    """`cut_chosen` as a store's writes call it, the parts each writes committed: a device's
    first report is format 4, its next ones 5 for as long as they come within half the slack
    of the one before (here a day and more, hourly), new facts among them too (the device's
    reports repeated their facts within it), and a report after a longer silence is format 4
    again (unless its fact set was met lately: another device's); a device whose every
    report brings new facts stays format 4."""
    chooser = fact_parts.Chooser()
    one = _report("dev-0", T0, host="PC-0")
    changed = _report("dev-0", T0, host="PC-0", pending=3)
    other = _report("dev-1", T0, host="PC-1")

    def stored_as(body: bytes, received: int, device: str = "dev-0") -> int:
        made = fact_parts.cut_chosen(body, received, device, chooser)
        chooser.written.committed(chooser.written.due([(made, received)]))
        return 5 if fact_parts.fact_set_named(made.recipe) is not None else 4

    hour, half = to_us(T0 + HOUR) - to_us(T0), fact_parts.SLACK_US // 2
    hourly = [stored_as(one, k * hour) for k in range(30)]
    assert hourly == [4] + [5] * 29
    assert stored_as(changed, 30 * hour) == 5  # new facts of a device heard an hour ago
    assert [stored_as(other, 29 * hour, "dev-1"), stored_as(other, 30 * hour, "dev-1")] == [4, 5]
    silent = 30 * hour + half + 1
    assert [stored_as(changed, silent), stored_as(changed, silent + hour)] == [4, 5]
    # A device silent as long whose facts another device named lately: format 5.
    assert stored_as(other, silent + hour, "dev-2") == 4  # dev-1's facts, not met lately
    assert stored_as(other, silent + 2 * hour, "dev-3") == 5  # met an hour ago (by dev-2)
    # A device whose facts change with every report, hourly, never repeats them: format 4.
    assert [stored_as(_report("dev-4", T0, host="PC-4", pending=k), k * hour, "dev-4")
            for k in range(5)] == [4] * 5  # fmt: skip


def test_the_seal_writes_fact_records_from_which_every_body_is_rebuilt(store: Store) -> None:
    sent = _hours(store, 0, 4)
    store.sealing.seal_all(to_us(T0 + DAY))
    entries = _fact_entries(store)
    assert entries and {e.kind for e in entries} == {fact_groups.REPORT_FACTS}
    assert all(fact_groups.ids_cut(e) for e in entries)  # an agent writes its ids first
    rebuilt: dict[str, bytes] = {}
    for entry in entries:
        rebuilt |= _rebuilt(store, entry)
    assert rebuilt == sent
    # No fact is in the chain: a record's own bytes are the report's own fields only.
    record = fact_groups.records(entries[0])[0]
    own = fact_groups.own_bytes(record, True)
    body = sent[str(record["report_id"])]
    assert own == fact_sets.cut(body).own and len(own) < len(body) // 4


def test_records_made_as_reports_are_stored_equal_those_read_back_from_the_rows(
    tmp_path: Path,
) -> None:
    payloads: list[list[bytes]] = []
    for name in ("known.sqlite", "rows.sqlite"):
        target = fresh_database(tmp_path, name)
        with contextlib.closing(_opened(target, FORMAT_5)) as store:
            for device_id in DEVICES:
                enroll(store, device_id, T0 - DAY)
            _hours(store, 0, 3)
            if name == "known.sqlite":  # sealed by the store that stored them
                store.sealing.seal_all(to_us(T0 + DAY))
        if name == "rows.sqlite":  # sealed by another, which reads the rows
            with contextlib.closing(Store.open(target)) as other:
                other.sealing.seal_all(to_us(T0 + DAY))
        with contextlib.closing(Store.open(target)) as reader:
            payloads.append([e.payload for e in _fact_entries(reader)])
    assert payloads[0] == payloads[1] and payloads[0]


def test_a_store_that_changes_format_seals_on_without_a_gap(target: DatabaseTarget) -> None:
    """Reports stored as format 4, then as format 5, then as 4 again, sealed each time in the
    store's format of the moment: each report in exactly one group, every body rebuilt (or
    hashed, in a format-4 group) as sent, and the tables agree with the chain."""
    sent: dict[str, bytes] = {}
    second = dt.timedelta(seconds=1)  # none due for its seal until sealed by hand
    with contextlib.closing(_opened(target, FORMAT_4)) as store:
        sent |= _hours(store, 0, 2, step=second)
    with contextlib.closing(_opened(target, FORMAT_5)) as store:
        # Sealed with the format-4 rows before them: its first reports format 4 too (their
        # fact sets new to this collector), the five others format 5.
        sent |= _hours(store, 2, 6, step=second)
        store.sealing.seal_all(to_us(T0 + DAY))
        sent |= _hours(store, 8, 1, step=second)
    with contextlib.closing(_opened(target, FORMAT_4)) as store:
        sent |= _hours(store, 9, 1, step=second)  # format 5's rows sealed as format 4's
        store.sealing.seal_all(to_us(T0 + DAY))
        entries = _fact_entries(store)
        assert [e.kind for e in entries] == [fact_groups.REPORT_FACTS, chain.REPORT_GROUP]
        rebuilt = _rebuilt(store, entries[0])
        assert rebuilt == {r: sent[r] for r in rebuilt} and len(rebuilt) == 8 * len(DEVICES)
        hashed = {r.key: r.record()["body_sha256"] for r in chain.as_reports(entries[1])}
        assert len(hashed) == 2 * len(DEVICES)
        assert len(_format_5(_rows(store))) == 6 * len(DEVICES)
        assert hashed == {r: hashlib.sha256(sent[r]).hexdigest() for r in hashed}
        assert set(rebuilt) | set(hashed) == set(sent)
        assert store.reports.report_bodies(list(sent)) == sent
        findings = table_disagreements(store)
        assert findings.ok, findings


def test_a_body_whose_facts_cannot_be_placed_is_kept_whole_and_sealed_as_one_part(
    store: Store,
) -> None:
    at = T0 + HOUR
    body = b"\x0b\x0c not a message"  # a group's start: the cut cannot walk it
    record = ReportRecord("odd-1", "dev-0", at, at, "1.4.2", body, "PC", "linux", "Debian", "12")
    store.reports.store_reports([(record, [CheckResult("firewall", "PASS", "on")])])
    assert _rows(store)["odd-1"] == (body, None)  # as format 4 keeps it: whole
    assert store.reports.report_body("odd-1") == body
    # Sealed by the write of the next reports (the record made as it was stored), in a
    # group of mostly format 5 (dev-1's reports after its first), its fact set and its one
    # part are in the store for the export to ship.
    group: list[tuple[ReportRecord, list[CheckResult]]] = []
    for minute in (1, 2, 3):
        later = at + dt.timedelta(minutes=minute)
        group.append((_record("dev-1", later, _report("dev-1", later, host="PC-1")), []))
    store.reports.store_reports(group)
    (entry,) = _fact_entries(store)
    assert entry.kind == fact_groups.REPORT_FACTS
    first = fact_groups.records(entry)[0]
    assert first["own"] == "" and _rebuilt(store, entry)["odd-1"] == body


def test_retention_deletes_only_the_fact_sets_and_parts_no_kept_body_names(store: Store) -> None:
    # dev-0: ten days of pending updates, then none; dev-1 and dev-2 reported on day 0 only:
    # their reports stay current (their verdicts name them), and so their fact sets and parts.
    # Twice a day, an hour apart: the second of a day names the fact set the first met, and
    # they are sealed as format 5 (`report_facts`).
    for day in range(12):
        for at in (T0 + day * DAY, T0 + day * DAY + HOUR):
            body = _report("dev-0", at, pending=5 if day < 10 else 0)
            store.reports.store_reports([(_record("dev-0", at, body), [])])
    kept: dict[str, bytes] = {}
    for n, device_id in enumerate(DEVICES[1:], start=1):
        for at in (T0, T0 + HOUR):
            body = _report(device_id, at, pending=9, host=f"PC-{n}")
            record = _record(device_id, at, body)
            store.reports.store_reports([(record, [CheckResult("firewall", "PASS", "on")])])
        kept[record.report_id] = body
    store.sealing.seal_all(to_us(T0 + 12 * DAY))
    assert {e.kind for e in _fact_entries(store)} == {fact_groups.REPORT_FACTS}
    head = store.evidence.chain_head()
    assert head is not None and store.checkpoints.advance(head.at_us) is not None
    before = {bytes(r[0]) for r in store._db.execute("SELECT digest FROM fact_parts")}
    pruned = store.retention.prune(retention_days=400, now_us=to_us(T0 + 411 * DAY))
    assert pruned is not None and pruned.reports >= 22
    after = {bytes(r[0]) for r in store._db.execute("SELECT digest FROM fact_parts")}
    wanted: set[bytes] = set()
    for body in store.reports.report_bodies(store.reports.report_ids()).values():
        if body:
            made = fact_sets.cut(body)
            wanted |= {made.fact_set_sha256(), *fact_sets.digests(made.fact_set)}
    # Every fact set and part a kept body names is there, and what no kept body names is
    # gone but within the slack of the cutoff.
    assert wanted <= after < before
    old = fact_sets.cut(_report("dev-0", T0 + 2 * DAY, pending=5))
    assert old.fact_set_sha256() not in after
    assert store.reports.report_bodies(list(kept)) == kept
    findings = table_disagreements(store)
    assert findings.ok, findings


@pytest.mark.parametrize(
    ("edit", "values", "named"),
    [
        ("UPDATE reports SET body = ? WHERE report_id = ?", ("own", "report"), "own is"),
        ("UPDATE reports SET parts = ? WHERE report_id = ?", ("other", "report"),
         "fact_set is"),
        ("UPDATE reports SET body = ?, parts = NULL WHERE report_id = ?", ("empty", "report"),
         "its body was deleted, and no pruning in the chain covers it"),
        ("DELETE FROM reports WHERE report_id = ?", ("report",),
         "is missing: the chain records it"),
        ("UPDATE fact_parts SET part = ? WHERE digest = ?", ("own", "fact_set"),
         "its facts were changed in the store"),
        ("DELETE FROM fact_parts WHERE digest = ?", ("part",),
         "its facts are missing from the store"),
    ],
)  # fmt: skip
def test_audit_check_names_each_report_whose_row_or_facts_were_changed(
    store: Store, target: DatabaseTarget, edit: str, values: tuple[str, ...], named: str
) -> None:
    sent = _hours(store, 0, 3)
    store.sealing.seal_all(to_us(T0 + DAY))
    assert table_disagreements(store).ok
    report = next(r for r in sent if sent[r] == _report("dev-1", T0 + HOUR, host="PC-1"))
    made = fact_sets.cut(sent[report])
    other = fact_sets.cut(_report("dev-2", T0, host="PC-2"))
    known = {
        "report": report, "own": made.own[:-1] + bytes([made.own[-1] ^ 1]), "empty": b"",
        "other": FACT_SET_MARK + other.fact_set_sha256(), "fact_set": made.fact_set_sha256(),
        "part": fact_sets.digests(made.fact_set)[0],
    }  # fmt: skip
    with unguarded(target) as db:
        db.execute(edit, tuple(known[name] for name in values))
    with contextlib.closing(Store.open(target)) as reopened:
        found = table_disagreements(reopened)
        reopened_rows = _rows(reopened)
    assert not found.ok
    text = found.text()
    assert named in text and f"[report_id '{report}']" in text, text
    if "fact_parts" in edit:  # every report naming that fact set (its device's three hours)
        same = [r for r, b in sent.items() if fact_sets.cut(b).fact_set == made.fact_set]
        assert len(same) == 3 and all(f"[report_id '{r}']" in text for r in same)
        # The device's first report, stored as format 4, is named once more where its
        # recipe named the deleted part too: its body cannot be put together to be cut.
        whole = [
            r
            for r in same
            if fact_parts.fact_set_named(reopened_rows[r][1]) is None
            and any(d == known[values[0]] for d, _ in fact_parts.cut(sent[r]).parts)
        ]
        assert found.total == 3 + len(whole), text
    else:
        assert found.total == 1, text


def _days_on_then_pruned(store: Store) -> None:
    """dev-0 goes on reporting daily for eleven days (no verdicts), the others do not; then
    a checkpoint and retention 400 days later: the others' current reports are kept."""
    for day in range(1, 12):
        at = T0 + day * DAY
        body = _report("dev-0", at, pending=day)
        store.reports.store_reports([(_record("dev-0", at, body), [])])
    store.sealing.seal_all(to_us(T0 + 12 * DAY))
    head = store.evidence.chain_head()
    assert head is not None and store.checkpoints.advance(head.at_us) is not None
    assert store.retention.prune(retention_days=400, now_us=to_us(T0 + 411 * DAY))


def _exported_and_verified(store: Store, tmp_path: Path) -> tuple[Path, str]:
    """The whole history's bundle, and what `audit verify` says of it."""
    out = export.export_bundle(store, default_policy(), tmp_path, start=T0 - DAY,
                               end=dt.datetime.now(dt.UTC), out=tmp_path / "b.zip")  # fmt: skip
    public = signing.load_or_create(tmp_path).public_key()
    return out.path, verify.verify_bundle(out.path, public).text()


def test_retention_keeps_the_fact_set_a_kept_report_stored_before_the_change_was_sealed_with(
    target: DatabaseTarget, tmp_path: Path
) -> None:
    """A device's current report, stored as format 4 and sealed after the store changed to
    format 5 (its fact set written by the seal), is kept by retention: so is that fact set,
    and an export of its period ships it."""
    with contextlib.closing(_opened(target, FORMAT_4)) as store:
        sent = _hours(store, 0, 1, step=dt.timedelta(seconds=1))  # left unsealed
    with contextlib.closing(_opened(target, FORMAT_5)) as store:
        store.sealing.seal_all(to_us(T0 + HOUR))
        _days_on_then_pruned(store)
        kept = {r: b for r, b in store.reports.report_bodies(list(sent)).items() if b}
        assert len(kept) == len(DEVICES)  # each device's current verdicts name its first
        out, text = _exported_and_verified(store, tmp_path)
    assert "NOT VERIFIED" not in text, text
    shown = {item["report_id"] for item in facts_view.report_facts(out)}
    assert set(kept) <= shown


def test_a_reader_past_its_bound_keeps_the_fact_sets_a_batch_of_both_kinds_of_rows_needs(
    target: DatabaseTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of both kinds read together by a reader whose bound is a report's parts: the
    parts it fetches for the batch's recipes must not push out the fact sets it fetched
    first for the same batch."""
    second = dt.timedelta(seconds=1)
    with contextlib.closing(_opened(target, FORMAT_4)) as store:
        sent = _hours(store, 0, 1, step=second)
    with contextlib.closing(_opened(target, FORMAT_5)) as store:
        sent |= _hours(store, 1, 2, step=second, pending=3)
        rows = store._db.execute("SELECT report_id, body, parts FROM reports ORDER BY n").fetchall()
        kinds = [fact_parts.fact_set_named(None if r[2] is None else bytes(r[2])) is None
                 for r in rows]  # fmt: skip
        assert kinds[:6] == [True] * 6 and kinds[6:] == [False] * 3  # format 4, then 5
        monkeypatch.setattr(fact_parts, "PARTS_BYTES_MOST", max(map(len, sent.values())))
        reader = fact_parts.Bodies(store._db)
        for first in range(len(rows) - 1):
            pair = [rows[first + 6], rows[first]] if first < 3 else rows[first : first + 2]
            assert [r[1] for r in reader.rows(pair, 1)] == [sent[r[0]] for r in pair]


def test_a_store_is_in_format_5_unless_set_to_4_and_an_older_one_turns_to_it_when_opened(
    target: DatabaseTarget,
) -> None:
    """Schema 31: no row in `report_format` means format 5 (a store made now, or one of
    schema 30 that set none, as it is opened); a store set to 4 stays in 4."""
    with contextlib.closing(Store.open(target)) as store:
        assert store.report_format.records() == FORMAT_5
        sent = _hours(store, 0, 2)  # a device's second report of a day: format 5
        assert len(_format_5(_rows(store))) == len(sent) // 2
    with unguarded(target) as db:  # as schema 30 left it: no row, which then meant 4
        db.execute("UPDATE schema_version SET version = 30")
    with contextlib.closing(Store.open(target)) as store:
        assert store.report_format.records() == FORMAT_5
        (version,) = store._db.execute("SELECT version FROM schema_version").fetchone()
        assert version == 32
        store.report_format.write(FORMAT_4)
    with unguarded(target) as db:
        db.execute("UPDATE schema_version SET version = 30")
    with contextlib.closing(Store.open(target)) as store:
        assert store.report_format.records() == FORMAT_4
        before = _rows(store)
        sent = _hours(store, 2, 2)
        assert _format_5(_rows(store)) == _format_5(before)  # none stored as 5 since


def test_retention_keeps_the_fact_set_a_kept_report_was_sealed_with_after_the_store_went_back_to_4(
    target: DatabaseTarget, tmp_path: Path
) -> None:
    """A device's current report stored as format 4 (its first) in a group sealed as format 5
    (the seal wrote its fact set), in a store set to format 4 since: retention keeps that
    report, so it keeps its fact set too, and an export of its period ships it."""
    second = dt.timedelta(seconds=1)
    kept: dict[str, bytes] = {}
    with contextlib.closing(_opened(target, FORMAT_5)) as store:
        for k in range(5):  # dev-0's repeated facts: most of the group format 5
            at = T0 + k * second
            store.reports.store_reports([(_record("dev-0", at, _report("dev-0", at)), [])])
        for n, device_id in enumerate(DEVICES[1:], start=1):  # each reports once: format 4
            at = T0 + (5 + n) * second
            body = _report(device_id, at, pending=9, host=f"PC-{n}")
            record = _record(device_id, at, body)
            store.reports.store_reports([(record, [CheckResult("firewall", "PASS", "on")])])
            kept[record.report_id] = body
        store.sealing.seal_all(to_us(T0 + HOUR))
        assert [e.kind for e in _fact_entries(store)] == [fact_groups.REPORT_FACTS]
        assert not _format_5({r: v for r, v in _rows(store).items() if r in kept})
    with contextlib.closing(_opened(target, FORMAT_4)) as store:
        _days_on_then_pruned(store)
        assert store.reports.report_bodies(list(kept)) == kept
        out, text = _exported_and_verified(store, tmp_path)
    assert "NOT VERIFIED" not in text, text
    shown = {item["report_id"] for item in facts_view.report_facts(out)}
    assert set(kept) <= shown

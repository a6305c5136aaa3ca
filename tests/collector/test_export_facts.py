"""An export of a store in format 5 (`report_facts` groups, `fact_shipping.py`), on both
engines: each group's line of `reports.jsonl` ships only the fact sets and parts the bundle's
window lacks, every body is rebuilt byte for byte from its record and the lines before it
(replayed as the verifier's side of the window, `fact_groups.Replay`), the export's workers
write the very bundle its own process writes, and a fact edited in the store stops the export
naming the reports. The bodies are real serialized PostureReports (`test_fact_parts.py`)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.evidence import (
    batches,
    bundle,
    check_pool,
    export,
    fact_groups,
    fact_sets,
    facts_view,
    signing,
    verify,
)
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.store import CheckResult, ReportRecord, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.report_format import FORMAT_5
from devposture.collector.store.target import DatabaseTarget
from devposture.policy import default_policy
from devposture.v1 import devposture_pb2 as pb
from tests.collector.bundle_members import members_of, resigned
from tests.collector.enrolled import enroll
from tests.collector.test_export_workers import _Counted
from tests.collector.test_fact_parts import DAY, HOUR, T0, _record, _report
from tests.databases import fresh_database, unguarded

DEVICES = ("dev-0", "dev-1", "dev-2")


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    return fresh_database(tmp_path, "db.sqlite")


@pytest.fixture
def store(target: DatabaseTarget) -> Iterator[Store]:
    with contextlib.closing(Store.open(target)) as opened:
        for device_id in DEVICES:
            enroll(opened, device_id, T0 - DAY)
        opened.report_format.write(FORMAT_5)
    with contextlib.closing(Store.open(target)) as opened:
        yield opened


def _fleet(store: Store, hours: int) -> dict[str, bytes]:
    """Every device's hourly reports for `hours` hours, a group an hour (each write seals the
    hour before): report id -> body as sent. The facts change with the day."""
    sent: dict[str, bytes] = {}
    for hour in range(hours):
        at = T0 + hour * HOUR
        group: list[tuple[ReportRecord, list[CheckResult]]] = []
        for n, device_id in enumerate(DEVICES):
            body = _report(device_id, at, host=f"PC-{n}")
            group.append((_record(device_id, at, body), [CheckResult("firewall", "PASS", "on")]))
            sent[group[-1][0].report_id] = body
        store.reports.store_reports(group)
    store.sealing.seal_all(to_us(T0 + hours * HOUR))
    return sent


def _export(store: Store, folder: Path, name: str) -> Path:
    # Entries are dated by the collector's clock when written (now), reports by the data.
    return export.export_bundle(store, default_policy(), folder, start=T0 - DAY,
                                end=dt.datetime.now(dt.UTC), out=folder / name).path  # fmt: skip


def _replayed(path: Path) -> tuple[dict[str, bytes], int, int]:
    """Every body of the bundle rebuilt as a verifier would: each format-5 group's line taken
    into the window, then each of its reports' fact set looked up and its body rebuilt.
    Returns the bodies by report id, and how many fact sets and parts were shipped."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(bundle.MANIFEST))
        assert manifest["format"] == bundle.FACTS_FORMAT
        entries = [bundle.parse_entry(json.loads(line))
                   for line in archive.read(bundle.CHAIN).splitlines()]  # fmt: skip
        lines = [fact_groups.parse_line(json.loads(line))
                 for line in archive.read(bundle.REPORTS).splitlines()]  # fmt: skip
    groups = [e for e in entries if e.kind == fact_groups.REPORT_FACTS]
    assert [seq for seq, _, _ in lines] == [e.seq for e in groups]  # one line a group, in order
    replay = fact_groups.Replay()
    bodies: dict[str, bytes] = {}
    shipped_sets = shipped_parts = 0
    for entry, (_, sets, parts) in zip(groups, lines, strict=True):
        assert replay.take(sets, parts) == []
        shipped_sets, shipped_parts = shipped_sets + len(sets), shipped_parts + len(parts)
        cut_ids = fact_groups.ids_cut(entry)
        for record in fact_groups.records(entry):
            assert replay.named(record["fact_set"])
            packed = replay.window.sets.values[str(record["fact_set"])]
            own = fact_groups.own_bytes(record, cut_ids)
            bodies[str(record["report_id"])] = fact_sets.rebuild(own, packed, replay.part)
        replay.done()
    return bodies, shipped_sets, shipped_parts


def test_each_fact_set_and_part_is_shipped_once_and_every_body_is_rebuilt(
    store: Store, tmp_path: Path
) -> None:
    sent = _fleet(store, 30)  # two days: each device's facts change once
    bodies, sets, parts = _replayed(_export(store, tmp_path, "facts.zip"))
    assert bodies == sent
    distinct = {fact_sets.cut(b).fact_set for b in sent.values()}
    assert sets == len(distinct) == 2 * len(DEVICES)
    named = {d for s in distinct for d in fact_sets.digests(s)}
    assert parts == len(named) < sets * 12


def test_the_workers_bundle_is_the_one_the_export_makes_alone(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fleet(store, 30)
    alone = _export(store, tmp_path, "alone.zip")
    _Counted.started = []
    monkeypatch.setattr(check_pool, "workers_for", lambda entries: 2)
    monkeypatch.setattr(check_pool, "Workers", _Counted)
    monkeypatch.setattr(batches, "MOST_READ", 3)  # many runs, several for each worker
    beside = _export(store, tmp_path, "beside.zip")
    (started,) = _Counted.started
    assert isinstance(started, _Counted) and len(started.processes()) == 2
    with zipfile.ZipFile(alone) as one, zipfile.ZipFile(beside) as other:
        for name in (bundle.CHAIN, bundle.INDEX, bundle.REPORTS, bundle.OPENING):
            assert one.read(name) == other.read(name), name


def test_a_fact_deleted_from_the_store_stops_the_export_naming_its_reports(
    store: Store, target: DatabaseTarget, tmp_path: Path
) -> None:
    sent = _fleet(store, 3)
    victim = fact_sets.cut(next(iter(sent.values())))
    with unguarded(target) as db:
        part = fact_sets.digests(victim.fact_set)[2]
        db.execute("DELETE FROM fact_parts WHERE digest = ?", (part,))
    with pytest.raises(export.TablesDisagree) as refused:
        _export(store, tmp_path, "refused.zip")
    named = refused.value.findings.text()
    same = [r for r, b in sent.items() if fact_sets.cut(b).fact_set == victim.fact_set]
    assert len(same) == 3 and all(f"[report_id '{r}']" in named for r in same), named
    assert "its facts are missing from the store" in named
    assert not (tmp_path / "refused.zip").exists()


def _verified(path: Path, data_dir: Path) -> str:
    public = signing.load_or_create(data_dir).public_key()
    return verify.verify_bundle(path, public).text()


def test_the_bundle_verifies_and_its_report_is_drawn_again_from_the_columns(
    store: Store, tmp_path: Path
) -> None:
    sent = _fleet(store, 30)
    path = _export(store, tmp_path, "facts.zip")
    text = _verified(path, tmp_path)
    assert "NOT VERIFIED" not in text, text
    # Every report counts as a record, beside the entries of other kinds.
    kinds = [json.loads(line)["kind"] for line in members_of(path)[bundle.CHAIN].splitlines()]
    others = sum(1 for kind in kinds if kind != fact_groups.REPORT_FACTS)
    assert f"VERIFIED: {len(sent) + others} records" in text, text


def _lines(members: dict[str, bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in members[bundle.REPORTS].splitlines()]


def _put_lines(members: dict[str, bytes], lines: list[dict[str, object]]) -> None:
    members[bundle.REPORTS] = b"".join(
        json.dumps(line, sort_keys=True).encode() + b"\n" for line in lines
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("part", "names a part the bundle does not hold"),  # a part taken off its line
        ("fact set", "is missing: deleted"),  # a fact set taken off: its reports' bodies
        ("line", "is missing: deleted"),  # the whole line of a group
        ("set edited", "is missing: deleted"),  # a fact set changed: not the one named
    ],
)
def test_a_fact_set_or_part_taken_off_or_changed_is_named_by_the_verifier(
    store: Store, tmp_path: Path, change: str, named: str
) -> None:
    """What an insider with the signing key would ship (every digest and the signature made
    again): only the records' own checks can tell."""
    _fleet(store, 30)
    members = members_of(_export(store, tmp_path, "facts.zip"))
    lines = _lines(members)
    first = lines[0]
    assert isinstance(first["sets"], list) and isinstance(first["parts"], list)
    if change == "part":
        first["parts"] = first["parts"][1:]
    elif change == "fact set":
        first["sets"] = first["sets"][1:]
    elif change == "line":
        lines = lines[1:]
    else:
        packed = base64.b64decode(str(first["sets"][0]))
        first["sets"][0] = base64.b64encode(packed[:-1] + bytes([packed[-1] ^ 1])).decode()
    _put_lines(members, lines)
    text = _verified(resigned(members, tmp_path, tmp_path / "forged.zip"), tmp_path)
    assert "NOT VERIFIED" in text and named in text, text


def test_audit_facts_rebuilds_each_body_from_its_record_and_the_window(
    store: Store, tmp_path: Path
) -> None:
    sent = _fleet(store, 30)
    path = _export(store, tmp_path, "facts.zip")
    shown = {item["report_id"]: item["facts"] for item in facts_view.report_facts(path)}
    assert set(shown) == set(sent)
    for report_id, body in sent.items():
        assert shown[report_id] == bundle.facts_of(body)
    one = next(iter(sent))
    (only,) = facts_view.report_facts(path, one)
    assert only["report_id"] == one and only["facts"] == bundle.facts_of(sent[one])


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ("DELETE FROM reports WHERE report_id = ?", "is missing: the chain records it"),
        ("UPDATE reports SET body = ?, parts = NULL WHERE report_id = ?",
         "its body was deleted, and no pruning in the chain covers it"),
    ],
)  # fmt: skip
def test_a_report_row_deleted_or_emptied_by_hand_stops_the_export_naming_it(
    store: Store, target: DatabaseTarget, tmp_path: Path, edit: str, named: str
) -> None:
    sent = _fleet(store, 3)
    victim = sorted(sent)[4]
    with unguarded(target) as db:
        db.execute(edit, (b"", victim) if edit.startswith("UPDATE") else (victim,))
    with pytest.raises(export.TablesDisagree) as refused:
        _export(store, tmp_path, "refused.zip")
    text = refused.value.findings.text()
    assert named in text and f"[report_id '{victim}']" in text, text


def test_a_row_edited_by_hand_changes_nothing_the_export_ships_and_audit_check_names_it(
    store: Store, target: DatabaseTarget, tmp_path: Path
) -> None:
    """A format-5 bundle is made from the chain and the facts stored by their digests: a
    report's row (its own bytes) edited by hand leaves every body in the bundle the one the
    agent sent; `audit check`, which compares every row, names it."""
    sent = _fleet(store, 3)
    victim = sorted(sent)[4]
    own = fact_sets.cut(sent[victim]).own
    with unguarded(target) as db:
        db.execute("UPDATE reports SET body = ? WHERE report_id = ?",
                   (own[:-1] + bytes([own[-1] ^ 1]), victim))  # fmt: skip
    bodies, _, _ = _replayed(_export(store, tmp_path, "facts.zip"))
    assert bodies == sent
    with contextlib.closing(Store.open(target)) as reopened:
        found = table_disagreements(reopened)
    assert not found.ok and f"[report_id '{victim}']" in found.text()


def test_a_period_with_pruned_bodies_exports_and_verifies_leaving_their_facts_out(
    store: Store, tmp_path: Path
) -> None:
    """Retention prunes the bodies of a format-5 store: the export ships no fact set only a
    pruned report names, counts the pruned bodies as the verifier does, and the bundle
    verifies; `audit facts` shows the kept bodies alone."""
    # Twice a day, an hour apart: sealed as format 5 (the second names the fact set the
    # first met, `fact_parts.cut_chosen`).
    for day in range(12):
        for at in (T0 + day * DAY, T0 + day * DAY + HOUR):
            body = _report("dev-0", at, pending=5 if day < 10 else 0)
            store.reports.store_reports([(_record("dev-0", at, body), [])])
    for at in (T0, T0 + HOUR):
        kept = _report("dev-1", at, pending=9, host="PC-1")
        store.reports.store_reports([(_record("dev-1", at, kept),
                                      [CheckResult("firewall", "PASS", "on")])])  # fmt: skip
    twin = pb.PostureReport.FromString(_report("dev-1", T0, pending=9, host="PC-1")).report_id
    store.sealing.seal_all(to_us(T0 + 12 * DAY))
    head = store.evidence.chain_head()
    assert head is not None and store.checkpoints.advance(head.at_us) is not None
    pruned = store.retention.prune(retention_days=400, now_us=to_us(T0 + 411 * DAY))
    assert pruned is not None and pruned.reports >= 20
    path = _export(store, tmp_path, "pruned.zip")
    text = _verified(path, tmp_path)
    assert "NOT VERIFIED" not in text, text
    manifest = json.loads(members_of(path)[bundle.MANIFEST])
    # dev-1's first report, pruned, has the facts of its second, kept (current), in its
    # group: the bundle holds them, its body is rebuilt, and it is not missing as pruned.
    assert manifest["pruned"]["bodies"] == pruned.reports - 1
    shown = {item["report_id"] for item in facts_view.report_facts(path)}
    assert len(shown) == 26 - pruned.reports + 1
    assert pb.PostureReport.FromString(kept).report_id in shown and twin in shown
    shipped = {fact_sets.fact_set_digest(packed).hex()
               for line in members_of(path)[bundle.REPORTS].splitlines()
               for packed in fact_groups.parse_line(json.loads(line))[1]}  # fmt: skip
    kept_bodies = [b for r, b in store.reports.report_bodies(store.reports.report_ids()).items()
                   if b]  # fmt: skip
    assert shipped == {fact_sets.cut(b).fact_set_sha256().hex() for b in kept_bodies}

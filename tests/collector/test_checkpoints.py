"""Checkpoints of the evidence chain (`store.checkpoints`, `evidence.opening`): a period's
opening comes from the latest checkpoint before it and the entries since, and is the same as
walking the whole chain. On both engines."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest

from devposture.collector.compliance import Waiver
from devposture.collector.evidence import batches, bundle, chain, export
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.evidence.opening import Opening
from devposture.collector.store import CheckResult, ReportRecord, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.checkpoints import _pack
from devposture.collector.store.target import DatabaseTarget
from devposture.policy import default_policy
from tests.collector.enrolled import enroll
from tests.databases import fresh_database, raw

T0 = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)
DEVICES = ("d1", "d2", "d3")


def _enroll(store: Store, device_id: str) -> None:
    enroll(store, device_id, T0)


def _history(store: Store, rounds: range) -> None:
    """Each device reports each round; its firewall flips every third round."""
    for n in rounds:
        at = T0 + dt.timedelta(hours=n)
        for device in DEVICES:
            state = "FAIL" if (n // 3 + DEVICES.index(device)) % 2 else "PASS"
            record = ReportRecord(f"{device}-{n}", device, at, at, "1", b"body", "h", "linux",
                                  "Debian", "12")  # fmt: skip
            verdicts = [CheckResult("firewall", state, state.lower()),
                        CheckResult("antivirus", "PASS", "on")]  # fmt: skip
            store.reports.store_report(record, verdicts)


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    return fresh_database(tmp_path, "db.sqlite")


@pytest.fixture
def store(target: DatabaseTarget) -> Store:
    opened = Store.open(target)
    for device in DEVICES:
        _enroll(opened, device)
    _history(opened, range(12))
    opened.waivers.add_waiver(Waiver("w-short", "d1", "firewall", "Li", "rollout", T0,
                                     T0 + dt.timedelta(hours=1)), T0)  # fmt: skip
    opened.waivers.add_waiver(Waiver("w-long", "d2", "firewall", "Li", "new laptop", T0,
                                     T0 + dt.timedelta(days=400)), T0)  # fmt: skip
    opened.identity.set_device_status("d3", "revoked", T0 + dt.timedelta(hours=12), "stolen")
    _history(opened, range(12, 24))
    # As a collector leaves it when it stops (store/sealing.py), at the history's own time.
    opened.sealing.seal_all(now_us=to_us(T0 + dt.timedelta(hours=24)))
    return opened


def _all(store: Store) -> list[chain.Entry]:
    head = store.evidence.chain_head()
    assert head is not None
    return store.evidence.chain_entries(1, head.seq)


def test_the_opening_is_the_latest_entry_per_key_and_the_running_waivers(store: Store) -> None:
    entries = _all(store)
    opening = Opening()
    opening.fold(entries)
    by_seq = {e.seq: e for e in entries}
    held = [by_seq[s] for s in opening.seqs(start_us=chain.now_us())]
    states = {(r["device_id"], r["check_id"]) for e in held if e.kind == chain.STATE
              for r in [e.record()]}  # fmt: skip
    assert states == {(d, c) for d in DEVICES for c in ("firewall", "antivirus")}
    # The last state per device and check: no later state entry for the same key.
    for entry in held:
        if entry.kind == chain.STATE:
            key = entry.key.rsplit("/", 1)[0]
            assert not [e for e in entries if e.kind == chain.STATE and e.seq > entry.seq
                        and e.key.rsplit("/", 1)[0] == key]  # fmt: skip
    # Each device's last report, in the report group that sealed it (with its neighbours).
    reports = {r.key for e in held for r in chain.as_reports(e) if r.kind == chain.REPORT}
    assert {"d1-23", "d2-23", "d3-23"} <= reports
    assert not reports & {f"{d}-{n}" for d in DEVICES for n in range(22)}
    assert [e.record()["action"] for e in held if e.kind == chain.DEVICE] == ["revoked"]
    # The expired waiver is left out; the running one is in.
    assert [e.record()["waiver_id"] for e in held if e.kind == chain.WAIVER] == ["w-long"]


@pytest.mark.parametrize("read", ["at once", "a few entries at a time"])
def test_forward_from_a_checkpoint_gives_what_a_walk_of_the_whole_chain_gives(
    store: Store, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    if read != "at once":  # as a day of a large fleet's groups is read: a few at a time
        monkeypatch.setattr(batches, "MOST_READ", 1)
        monkeypatch.setattr(batches, "LOOK_AHEAD", 3)
    entries = _all(store)
    middle = entries[len(entries) // 2].seq
    walked, folded = store.checkpoints.forward(middle)
    assert folded == len([e for e in entries if e.seq <= middle and e.kind != chain.ADMIN])
    store.checkpoints.record(walked, entries[middle - 1].at_us)
    assert store.checkpoints.latest(entries[-1].seq) == (middle, walked.seqs())
    head = entries[-1].seq
    resumed, folded_after = store.checkpoints.forward(head)
    assert folded_after == len([e for e in entries if e.seq > middle])
    everything = Opening()
    everything.fold(entries)
    assert resumed.seqs() == everything.seqs() and resumed.through == head
    # And before the checkpoint, the checkpoint is not used.
    early, _ = store.checkpoints.forward(middle - 5)
    again = Opening()
    again.fold(e for e in entries if e.seq <= middle - 5)
    assert early.seqs() == again.seqs()


def test_the_collector_records_one_a_day_a_step_at_a_time(store: Store) -> None:
    head = _all(store)[-1]
    day = 86_400_000_000
    assert store.checkpoints.advance(head.at_us, step=10) == 10  # none yet: the first step
    assert store.checkpoints.advance(head.at_us + 1, step=10) == 20  # still far behind
    assert store.checkpoints.advance(head.at_us + 2, step=10_000) is None  # close, and fresh
    assert store.checkpoints.advance(head.at_us + day, step=10_000) == head.seq  # a day on
    assert store.checkpoints.advance(head.at_us + 2 * day, step=10_000) is None  # nothing new
    resumed, folded = store.checkpoints.forward(head.seq)
    everything = Opening()
    everything.fold(_all(store))
    assert folded == 0 and resumed.seqs(start_us=head.at_us) == everything.seqs(head.at_us)


def test_an_export_records_a_checkpoint_that_the_next_export_opens_from(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHECKPOINT_AFTER", 0)
    head = store.evidence.chain_head()
    assert head is not None
    _history(store, range(24, 30))
    # The period starts with the first entry written after `head` (time as the chain says).
    [next_entry] = store.evidence.chain_entries(head.seq + 1, head.seq + 1)
    later = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=next_entry.at_us)
    # Nothing recorded yet: the first export walks the chain and records where it began.
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    first = export.export_bundle(store, default_policy(), tmp_path, start=later, end=end,
                                 out=tmp_path / "a.zip")  # fmt: skip
    assert first.first_seq is not None
    assert store.checkpoints.latest(first.first_seq - 1) is not None
    assert store.checkpoints.latest(first.first_seq - 1)[0] == first.first_seq - 1  # type: ignore[index]
    # The same period again opens from that checkpoint, folding nothing, with the same opening.
    _, folded = store.checkpoints.forward(first.first_seq - 1)
    assert folded == 0
    second = export.export_bundle(store, default_policy(), tmp_path, start=later, end=end,
                                  out=tmp_path / "b.zip")  # fmt: skip
    assert _opening_of(first.path) == _opening_of(second.path)
    everything = Opening()
    everything.fold(e for e in _all(store) if e.seq < first.first_seq)
    assert [e["seq"] for e in _opening_of(first.path)] == everything.seqs(
        start_us=int(later.timestamp() * 1_000_000)
    )


def _opening_of(path: Path) -> list[dict[str, object]]:
    with zipfile.ZipFile(path) as archive:
        return [json.loads(line) for line in archive.read(bundle.OPENING).splitlines()]


def test_audit_check_holds_each_checkpoint_to_the_chain(
    store: Store, target: DatabaseTarget
) -> None:
    """A checkpoint is an index an operator could edit (an export opens its period from it):
    `audit check` folds the chain again and names one that does not hold what it gives."""
    head = _all(store)[-1]
    assert store.checkpoints.advance(head.at_us, step=10) == 10
    assert store.checkpoints.advance(head.at_us, step=30) == 40
    assert store.checkpoints.advance(head.at_us + 86_400_000_000, step=10_000) == head.seq
    checks = [c.check_id for c in default_policy().checks]
    assert table_disagreements(store, checks=checks).ok
    other = raw(target)
    try:  # the second checkpoint made to say what the first said
        other.execute("UPDATE evidence_checkpoints SET entries = (SELECT entries FROM"
                      " evidence_checkpoints WHERE seq = 10) WHERE seq = 40")  # fmt: skip
    finally:
        other.close()
    found = table_disagreements(store, checks=checks)
    assert found.total == 1, found.text()
    assert found.found[0].text().startswith("evidence_checkpoints row [seq 40] (chain seq 40):")
    assert "does not hold the opening the chain gives" in found.found[0].text()


def test_an_export_refuses_to_open_from_an_edited_checkpoint(
    store: Store, target: DatabaseTarget, tmp_path: Path
) -> None:
    # The checkpoint an export opens its period from, with an entry taken out (a device's
    # FAIL, say): the export signed a report that left the failure out, and verified.
    head = _all(store)[-1]
    assert store.checkpoints.advance(head.at_us, step=10) == 10
    assert store.checkpoints.advance(head.at_us, step=30) == 40
    _history(store, range(24, 30))
    later = _all(store)[41]  # the period starts after the checkpoint at seq 40
    start = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=later.at_us)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    genuine = export.export_bundle(store, default_policy(), tmp_path, start=start, end=end,
                                   out=tmp_path / "genuine.zip")  # fmt: skip
    assert genuine.first_seq == later.seq
    recorded = store.checkpoints.latest(40)
    assert recorded is not None and recorded[0] == 40 and len(recorded[1]) > 1
    dropped = recorded[1][0]
    other = raw(target)
    try:
        other.execute("UPDATE evidence_checkpoints SET entries = ? WHERE seq = 40",
                      (_pack(recorded[1][1:]),))  # fmt: skip
    finally:
        other.close()
    with pytest.raises(export.TablesDisagree) as refused:
        export.export_bundle(store, default_policy(), tmp_path, start=start, end=end,
                             out=tmp_path / "refused.zip")  # fmt: skip
    text = str(refused.value)
    assert "evidence_checkpoints row [seq 40]" in text, text
    assert f"missing seq [{dropped}]" in text, text
    assert not (tmp_path / "refused.zip").exists()

"""The chain read in batches bounded by the reports they hold (collector/evidence/batches.py):
a batch of entries once held every row its groups seal, and an hourly quarter's export grew to
683 MB; a fleet ten times larger would hold ten times that."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.evidence import batches, bundle, chain
from devposture.collector.evidence.export import export_bundle
from devposture.collector.store import CheckResult, ReportRecord
from devposture.policy import default_policy
from tests.collector.test_evidence import T0, _moment, _new_collector


def _entry(seq: int, kind: str, key: str, payload_bytes: int = 10) -> chain.Entry:
    return chain.Entry(seq, kind, seq, key, b"x" * payload_bytes, b"\0" * 32, b"\0" * 32)


def _chain() -> list[chain.Entry]:
    """Groups of 1 to 40 reports between state and device entries, as a fleet's chain."""
    entries, n = [], 1
    for seq in range(1, 301):
        if seq % 3:
            size = 1 + (seq * 7) % 40
            entries.append(_entry(seq, chain.REPORT_GROUP, f"{n}-{n + size - 1}", 200 * size))
            n += size
        else:
            entries.append(_entry(seq, chain.STATE, f"d/firewall/{seq}"))
    return entries


class _Chain:
    """A chain's `read` and `index`, noting what each was asked."""

    def __init__(self, entries: list[chain.Entry]) -> None:
        self.entries = {e.seq: e for e in entries}
        self.reads: list[tuple[int, int]] = []
        self.looked: list[tuple[int, int]] = []

    def _between(self, first: int, last: int) -> list[chain.Entry]:
        return [self.entries[s] for s in range(first, last + 1) if s in self.entries]

    def read(self, first: int, last: int) -> list[chain.Entry]:
        self.reads.append((first, last))
        return self._between(first, last)

    def index(self, first: int, last: int, most: int | None = None) -> list[tuple[int, str, str]]:
        self.looked.append((first, last))
        return [(e.seq, e.kind, e.key) for e in self._between(first, last)][:most]


def test_every_entry_once_in_order_and_no_batch_past_its_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batches, "BATCH_REPORTS", 50)
    monkeypatch.setattr(batches, "LOOK_AHEAD", 37)
    entries = _chain()
    stored = _Chain(entries)
    got = list(batches.bounded(stored.read, stored.index, 1, 300))
    assert [e.seq for batch in got for e in batch] == list(range(1, 301))
    for batch in got:
        held = sum(batches.reports_of(e.kind, e.key) for e in batch)
        assert held <= 50 or len(batch) == 1
    # One read a batch, never past the end; each key looked at once, a window at a time.
    assert len(stored.reads) == len(got)
    assert all(first <= last <= 300 for first, last in stored.reads)
    assert stored.looked == [(low, min(low + 36, 300)) for low in range(1, 301, 37)]


def test_a_run_of_small_entries_does_not_size_the_read_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet's certificate renewals (device entries, no reports) and then its report
    groups: sized by the payload just read, the read after them took MOST_READ groups at
    once (177,000 reports of an hourly quarter, 52 MB of payload)."""
    monkeypatch.setattr(batches, "BATCH_REPORTS", 100)
    monkeypatch.setattr(batches, "MOST_READ", 50)
    devices = [_entry(seq, chain.DEVICE, f"d{seq}/e{seq}", 300) for seq in range(1, 201)]
    groups = [_entry(200 + k, chain.REPORT_GROUP, f"{40 * k + 1}-{40 * k + 40}", 12_000)
              for k in range(1, 201)]  # fmt: skip
    stored = _Chain(devices + groups)
    got = list(batches.bounded(stored.read, stored.index, 1, 400))
    assert [e.seq for batch in got for e in batch] == list(range(1, 401))
    # What each read brought into memory at once, not only each batch handed on.
    held = [stored._between(*span) for span in stored.reads]
    assert max(sum(batches.reports_of(e.kind, e.key) for e in read) for read in held) <= 100
    assert max(len(read) for read in held) <= 50


def test_a_group_larger_than_the_bound_goes_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "BATCH_REPORTS", 10)
    entries = [_entry(1, chain.REPORT_GROUP, "1-5"), _entry(2, chain.REPORT_GROUP, "6-40"),
               _entry(3, chain.REPORT, "r41"), _entry(4, chain.REPORT_GROUP, "edited")]  # fmt: skip
    stored = _Chain(entries)
    got = list(batches.bounded(stored.read, stored.index, 1, 4))
    assert [[e.seq for e in batch] for batch in got] == [[1], [2], [3, 4]]


def test_entries_after_a_gap_wider_than_a_look_ahead_still_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows deleted from the chain in the database (what `audit check` and the verifier name)
    leave a gap in the sequence: the entries after it are read all the same."""
    monkeypatch.setattr(batches, "LOOK_AHEAD", 10)
    entries = [e for e in _chain() if not 20 <= e.seq < 75]
    stored = _Chain(entries)
    got = list(batches.bounded(stored.read, stored.index, 1, 300))
    assert [e.seq for batch in got for e in batch] == [e.seq for e in entries]


def test_an_export_in_small_batches_verifies_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups of six reports read three entries at a time and checked four reports at a
    time (a group alone where it holds more): the bundle holds every report and verifies."""
    store, data, key = _new_collector(tmp_path)
    start = _moment()
    for group in range(5):
        items = []
        for n in range(6):
            at = T0 + dt.timedelta(minutes=10 * group + n)
            record = ReportRecord(f"g{group}r{n}", "d1", at, at, "1", b"body %d" % n, "h",
                                  "linux", "Debian", "12")  # fmt: skip
            items.append((record, [CheckResult("firewall", "PASS" if n % 2 else "FAIL", "x")]))
        store.reports.store_reports(items)
    monkeypatch.setattr(batches, "LOOK_AHEAD", 2)
    monkeypatch.setattr(batches, "MOST_READ", 3)
    monkeypatch.setattr(batches, "BATCH_REPORTS", 4)
    out = tmp_path / "small.zip"
    exported = export_bundle(store, default_policy(), data, start=start, end=_moment(), out=out)
    store.close()
    assert exported.counts[chain.REPORT] == 30
    with zipfile.ZipFile(out) as archive:
        lines = [json.loads(line) for line in archive.read(bundle.CHAIN).splitlines()]
    spans = [batches.reports_of(line["kind"], line["key"]) for line in lines
             if line["kind"] == chain.REPORT_GROUP]  # fmt: skip
    assert spans == [6] * 5  # each group more than a batch holds
    assert collector_cli(["audit", "verify", str(out), "--public-key", str(key)]) == 0

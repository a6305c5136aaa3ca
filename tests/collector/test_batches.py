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


def test_every_entry_once_in_order_and_no_batch_past_its_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batches, "BATCH_REPORTS", 50)
    monkeypatch.setattr(batches, "READ_BYTES", 20_000)
    entries = _chain()
    reads: list[tuple[int, int]] = []

    def read(first: int, last: int) -> list[chain.Entry]:
        reads.append((first, last))
        return entries[first - 1 : last]

    got = list(batches.bounded(read, 1, 300))
    assert [e.seq for batch in got for e in batch] == list(range(1, 301))
    for batch in got:
        held = sum(batches.reports_in(e) for e in batch)
        assert held <= 50 or len(batch) == 1
    # The reads follow the payload: about READ_BYTES each after the first, never past the end.
    assert reads[0] == (1, batches.FIRST_READ) or reads[0] == (1, 300)
    assert all(first <= last <= 300 for first, last in reads)
    assert max(last - first + 1 for first, last in reads[1:]) < 100


def test_a_group_larger_than_the_bound_goes_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "BATCH_REPORTS", 10)
    entries = [_entry(1, chain.REPORT_GROUP, "1-5"), _entry(2, chain.REPORT_GROUP, "6-40"),
               _entry(3, chain.REPORT, "r41"), _entry(4, chain.REPORT_GROUP, "edited")]  # fmt: skip
    got = list(batches.bounded(lambda f, last: entries[f - 1 : last], 1, 4))
    assert [[e.seq for e in batch] for batch in got] == [[1], [2], [3, 4]]


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
    monkeypatch.setattr(batches, "FIRST_READ", 3)
    monkeypatch.setattr(batches, "MOST_READ", 3)
    monkeypatch.setattr(batches, "BATCH_REPORTS", 4)
    out = tmp_path / "small.zip"
    exported = export_bundle(store, default_policy(), data, start=start, end=_moment(), out=out)
    store.close()
    assert exported.counts[chain.REPORT] == 30
    with zipfile.ZipFile(out) as archive:
        lines = [json.loads(line) for line in archive.read(bundle.CHAIN).splitlines()]
    spans = [batches.reports_in(bundle.parse_entry(line)) for line in lines
             if line["kind"] == chain.REPORT_GROUP]  # fmt: skip
    assert spans == [6] * 5  # each group more than a batch holds
    assert collector_cli(["audit", "verify", str(out), "--public-key", str(key)]) == 0

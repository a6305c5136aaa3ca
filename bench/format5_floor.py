"""The per-report floor of bundle format 5's records against format 4's, on the benchmark
fleet's own reports (issue 18 item 4; docs/audit-evidence.md, "Format 5").

    .venv/bin/python bench/format5_floor.py --devices 10000 --days 1 --every 1

It makes the reports `bench/audit_quarter.py` stores (`fleet_events`: the same fleet, facts,
ids and times), seals them into groups as ingest does (30 s or 1,000 reports), and times, in
this one process, the work each format costs per report where it is done per report:

* ingest: the body cut for storing and the record the seal chains (format 4:
  `fact_parts.cut` and `sealing.sealed_record`, which hashes the body; format 5:
  `fact_sets.cut` and `fact_groups.group_rows`), then each group's payload;
* export: each group's chain line and its `reports.jsonl` line (format 4: every body in
  base64; format 5: the fact sets and parts the window lacks, `fact_groups.Shipping`),
  deflated by ISA-L at the bundle's level;
* verify: each chain line parsed and its hash recomputed, the group's records read, and each
  report held to its line (format 4: every body decoded and hashed; format 5: the line's
  fact sets and parts hashed into the window, each report's fact set looked up).

These are floors, not the commands: no database, no opening, no index, no printable
report's figures, no check of rows, no zip. CPU time of this process (`time.process_time`),
so another job on the machine does not count.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from isal import isal_zlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.audit_quarter import END, Reported, Shape, fleet_events
from devposture.collector.evidence import bundle, fact_groups, fact_sets
from devposture.collector.evidence.chain import (
    GENESIS,
    REPORT_GROUP,
    Entry,
    entry_hash,
    group_canonical,
    group_records,
)
from devposture.collector.evidence.deflate import LEVEL
from devposture.collector.store import fact_parts
from devposture.collector.store.base import to_us
from devposture.collector.store.sealing import SEAL_AFTER_US, SEAL_REPORTS, sealed_record
from devposture.policy import default_policy

Metadata = tuple[object, ...]
Group = list[tuple[Metadata, bytes]]


def groups(shape: Shape) -> Iterator[Group]:
    """The fleet's reports as ingest seals them: a group once the oldest waited 30 s or
    1,000 wait (store/sealing.py's defaults)."""
    waiting: Group = []
    first_us = 0
    for event in fleet_events(shape, ["token"] * 5, default_policy()):
        if not isinstance(event, Reported):
            continue
        r = event.record
        received = to_us(r.received_at)
        metadata = (r.report_id, r.device_id, received, to_us(r.collected_at), r.agent_version,
                    r.clock_skew_ms)  # fmt: skip
        if not waiting:
            first_us = received
        waiting.append((metadata, r.body))
        if len(waiting) >= SEAL_REPORTS or received - first_us >= SEAL_AFTER_US:
            yield waiting
            waiting = []
    if waiting:
        yield waiting


@dataclass
class Timed:
    """CPU seconds by phase, and bytes."""

    seconds: dict[str, float] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)

    def run(self, phase: str, work: Callable[[], object]) -> object:
        started = time.process_time()
        result = work()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.process_time() - started
        return result

    def add(self, name: str, value: int) -> None:
        self.figures[name] = self.figures.get(name, 0) + value


def _exported(
    timed: Timed, fmt: str, lines: list[tuple[bytes, bytes]],
    work: Callable[[], tuple[bytes, bytes]],
) -> None:  # fmt: skip
    """A group's chain line and reports line made (timed), kept for the verify, counted."""
    made = timed.run(f"{fmt} export", work)
    assert isinstance(made, tuple)
    lines.append(made)
    timed.add(f"{fmt} chain bytes", len(made[0]))
    timed.add(f"{fmt} reports bytes", len(made[1]))


def _chained(seq: int, prev: bytes, kind: str, key: str, payload: bytes) -> Entry:
    digest = entry_hash(prev, seq, kind=kind, at_us=seq, key=key, payload=payload)
    return Entry(seq, kind, seq, key, payload, prev, digest)


@dataclass
class Format4:
    """Format 4, per report: the whole body hashed at the seal, shipped, decoded, hashed."""

    timed: Timed
    deflate: Callable[[bytes], bytes]
    prev: bytes = GENESIS
    lines: list[tuple[bytes, bytes]] = field(default_factory=list)

    def ingest(self, seq: int, group: Group) -> Entry:
        def work() -> bytes:
            for _, body in group:
                fact_parts.cut(body)
            records = [sealed_record(m, body) for m, body in group]
            return group_canonical(1, len(group), records)

        payload = self.timed.run("4 ingest", work)
        assert isinstance(payload, bytes)
        entry = _chained(seq, self.prev, REPORT_GROUP, f"1-{len(group)}", payload)
        self.prev = entry.hash
        return entry

    def export(self, entry: Entry, group: Group) -> None:
        def work() -> tuple[bytes, bytes]:
            bodies = [(str(m[0]), body) for m, body in group]
            return bundle.entry_jsonl(entry), bundle.group_bodies_jsonl(entry.seq, bodies)

        _exported(self.timed, "4", self.lines, work)

    def verify(self) -> None:
        def work() -> int:
            checked = 0
            for chain_line, reports_line in self.lines:
                entry = bundle.parse_entry(orjson.loads(chain_line))
                assert entry.recomputed() == entry.hash
                _, bodies = bundle.parse_group_bodies(json.loads(reports_line))
                found = dict(bodies)
                for record in group_records(entry):
                    body = found[str(record["report_id"])]
                    assert hashlib.sha256(body).hexdigest() == record["body_sha256"]
                    checked += 1
            return checked

        self.timed.run("4 verify", work)


@dataclass
class Format5:
    """Format 5: records name fact sets; the bundle ships each within the window."""

    timed: Timed
    prev: bytes = GENESIS
    shipping: fact_groups.Shipping = field(default_factory=fact_groups.Shipping)
    lines: list[tuple[bytes, bytes]] = field(default_factory=list)
    sets: set[bytes] = field(default_factory=set)

    def ingest(self, seq: int, group: Group) -> tuple[Entry, list[fact_sets.Cut]]:
        def work() -> tuple[bytes, list[fact_sets.Cut]]:
            cuts = [fact_sets.cut(body) for _, body in group]
            rows, cut_ids = fact_groups.group_rows(
                [m for m, _ in group], [fact_groups.own_and_digest(c) for c in cuts]
            )
            return fact_groups.group_canonical(1, len(group), rows, cut_ids), cuts

        made = self.timed.run("5 ingest", work)
        assert isinstance(made, tuple)
        payload, cuts = made
        entry = _chained(seq, self.prev, fact_groups.REPORT_FACTS, f"1-{len(group)}", payload)
        self.prev = entry.hash
        self.sets.update(c.fact_set for c in cuts)
        return entry, cuts

    def export(self, entry: Entry, cuts: Sequence[fact_sets.Cut]) -> None:
        # The store would hand each fact set and part the window lacks, by digest: given here.
        packed = {c.fact_set_sha256().hex(): c.fact_set for c in cuts}
        parts = {d: p for c in cuts
                 for d, p in zip(fact_sets.digests(c.fact_set), c.parts, strict=True)}  # fmt: skip
        named = [str(r) for r in fact_groups.columns(entry)["fact_set"]]

        def work() -> tuple[bytes, bytes]:
            sets, shipped = self.shipping.group(named, packed, parts)
            self.timed.add("5 sets shipped", len(sets))
            self.timed.add("5 parts shipped", len(shipped))
            return bundle.entry_jsonl(entry), fact_groups.line(entry.seq, sets, shipped)

        _exported(self.timed, "5", self.lines, work)

    def verify(self) -> None:
        def work() -> int:
            replay = fact_groups.Replay()
            checked = 0
            for chain_line, reports_line in self.lines:
                entry = bundle.parse_entry(orjson.loads(chain_line))
                assert entry.recomputed() == entry.hash
                _, sets, parts = fact_groups.parse_line(orjson.loads(reports_line))
                assert replay.take(sets, parts) == []
                for digest in fact_groups.columns(entry)["fact_set"]:
                    assert replay.named(digest)
                    checked += 1
                replay.done()
            return checked

        self.timed.run("5 verify", work)


def _deflated(lines: list[tuple[bytes, bytes]], timed: Timed, fmt: str) -> None:
    for k, name in enumerate(("chain", "reports")):
        data = b"".join(pair[k] for pair in lines)
        packed = timed.run(f"{fmt} deflate", functools.partial(isal_zlib.compress, data, LEVEL))
        assert isinstance(packed, bytes)
        timed.add(f"{fmt} {name} deflated", len(packed))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--every", type=float, default=1.0, help="hours between reports")
    args = parser.parse_args(argv)
    shape = Shape(args.devices, args.days, args.every, end=END)
    timed = Timed()
    four, five = Format4(timed, lambda b: b), Format5(timed)
    reports = entries = 0
    started = time.process_time()
    for seq, group in enumerate(groups(shape), start=1):
        reports += len(group)
        entries += 1
        four.export(four.ingest(seq, group), group)
        entry, cuts = five.ingest(seq, group)
        five.export(entry, cuts)
    making = time.process_time() - started - sum(timed.seconds.values())
    four.verify()
    five.verify()
    _deflated(four.lines, timed, "4")
    _deflated(five.lines, timed, "5")
    print(f"{shape.describe()}: {reports:,} reports, {entries:,} groups"
          f" (making the reports: {making:.1f} s of CPU, not counted)")  # fmt: skip
    print(f"distinct fact sets {len(five.sets):,}")
    for phase in ("ingest", "export", "deflate", "verify"):
        a, b = timed.seconds[f"4 {phase}"], timed.seconds[f"5 {phase}"]
        print(f"{phase:8} format 4 {a:7.2f} s {a / reports * 1e6:6.2f} us/report"
              f"   format 5 {b:7.2f} s {b / reports * 1e6:6.2f} us/report")  # fmt: skip
    for name, value in sorted(timed.figures.items()):
        print(f"{name:22} {value:>16,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What an export makes of one run of its period's chain: the run read from the store, each
entry held to its row (`crosscheck.batch_rows`), and its share of the bundle: the lines of
`chain.jsonl`, `index.jsonl` and `reports.jsonl`, the counts, and what the printable
report's figures need of it.

None of it needs the runs before, so a large period's runs are made by processes beside the
export (`check_pool`), which then only puts the pieces together in order: this was nearly all
of a quarter's export, one report at a time in Python, on one core of however many.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from devposture.collector.evidence import bundle, chain, fact_checks, fact_groups
from devposture.collector.evidence.crosscheck import (
    SEALS,
    Finding,
    Tables,
    batch_rows,
    fact_findings,
    group_span,
    groups_as_written,
    held_fact_groups,
)
from devposture.collector.evidence.summary import Heard

# What the report's figures take of an entry: any entry as it is (`Summary.add`), but the
# reports of a run's groups folded here, by the week their groups were written in
# (`Summary.add_heard`).
Figure = chain.Entry | Heard


@dataclass
class RunDone:
    """A run's share of the bundle and of the check, in the chain's order."""

    first_seq: int
    last_seq: int
    entries: int = 0
    last_hash: bytes | None = None
    findings: list[Finding] = field(default_factory=list)  # the first `limit` of them
    found: int = 0  # findings in all
    chain_lines: bytes = b""
    index_lines: bytes = b""
    report_lines: bytes = b""
    counts: dict[str, int] = field(default_factory=dict)  # by kind; a group as its reports
    pruned: int = 0  # reports whose bodies the retention policy deleted
    last_pruned: int = 0  # the last of those received (0: none)
    seals: list[tuple[int, tuple[int, int]]] = field(default_factory=list)  # (seq, numbers)
    figures: list[Figure] = field(default_factory=list)
    # Format 5's groups, whose lines the export writes in order (`fact_shipping`): where each
    # goes in `report_lines` (its byte offset), its seq, each report's fact set (hex, in the
    # group's order, side by side: one string to pickle, not one a report) and the fact sets
    # of the reports whose bodies were pruned.
    fact_lines: list[tuple[int, int, str, list[str]]] = field(default_factory=list)


@dataclass(frozen=True)
class Terms:
    """What every run of one export is made with."""

    pruned_before: int  # bodies received before this were pruned (`PeriodCheck.pruned_before`)
    limit: int  # findings kept at most (`PeriodCheck.limit`)
    week_ends: list[int]  # when the period's weeks end (`Summary.week_ends`)
    # The newest pruning the export sees (`Tables.last_pruning`): a reader of the rows beside
    # it must see the same one, or the bodies it reads are not the export's.
    last_pruning: int = 0


def write_run(tables: Tables, first: int, last: int, terms: Terms) -> RunDone:
    """The entries `first`..`last` (read here, in one statement), checked and written. (The
    fact sets format 5's groups name are held to the store as the export ships them:
    `fact_shipping`.)"""
    entries = tables.chain_entries(first, last)
    out = _Out(RunDone(first, last, entries=len(entries)), terms.week_ends)
    done = out.done
    # The common case first: every group exactly what its rows write. Otherwise each
    # report of the run is held to its row one by one, and what differs is named.
    held = groups_as_written(tables, entries)
    found, bodies = batch_rows(tables, entries, terms.pruned_before, groups=held is None)
    facts = held_fact_groups(tables, entries, terms.pruned_before, rows_too=False)
    for entry, group in facts:
        found += fact_findings(entry, group)
    done.findings, done.found = found[:terms.limit], len(found)
    if found:
        # The export refuses the period, naming these: nothing of the run is written, and no
        # entry of it is read as a record (one that does not answer to its row may hold
        # anything: a payload that is not JSON, a group without its reports' ids). Its seals
        # still count, for the groups after it.
        spans = [(e.seq, group_span(e)) for e in entries if e.kind in SEALS]
        done.seals = [(seq, span) for seq, span in spans if span is not None]
        return done
    chain_lines: list[bytes] = []
    index_lines: list[bytes] = []
    fact_held = {entry.seq: group for entry, group in facts}
    for entry in entries:
        chain_lines.append(bundle.entry_jsonl(entry))
        index_lines.append(bundle.index_jsonl(entry))
        if entry.kind == fact_groups.REPORT_FACTS:
            out.fact_group(entry, fact_held[entry.seq])
        elif entry.kind not in (chain.REPORT, chain.REPORT_GROUP):
            done.counts[entry.kind] = done.counts.get(entry.kind, 0) + 1
            done.figures.append(entry)
        elif held is not None and entry.kind == chain.REPORT_GROUP:
            written = held[entry.seq]
            out.group(entry, list(zip(written.report_ids, written.bodies, strict=True)),
                      written.devices, written.received)  # fmt: skip
        else:
            out.reports(entry, bodies)
    if entries:
        done.last_hash = entries[-1].hash
    done.chain_lines = b"".join(chain_lines)
    done.index_lines = b"".join(index_lines)
    done.report_lines = b"".join(out.lines)
    return done


class _Out:
    """A run's report lines, counts, seals and figures as its entries are written."""

    def __init__(self, done: RunDone, ends: list[int]) -> None:
        self.done, self._ends = done, ends
        self.lines: list[bytes] = []
        self._bytes = 0  # of `lines`
        # The run's groups' reports, folded by the week their group was written in: the
        # figures take a week's reports together; they commute with its other entries.
        self._heard: dict[int, Heard] = {}

    def reports(self, entry: chain.Entry, bodies: dict[str, bytes]) -> None:
        """A report or report group held to its rows one by one (`batch_rows`): the bodies
        read for it, those pruned counted, those missing left out (named as findings)."""
        done = self.done
        records = (chain.group_records(entry) if entry.kind == chain.REPORT_GROUP
                   else [entry.record()])  # fmt: skip
        kept: list[tuple[str, bytes]] = []
        for record in records:
            report_id = str(record["report_id"])
            body = bodies.get(report_id)
            if body == b"":
                done.pruned += 1
                done.last_pruned = max(done.last_pruned, int(str(record["received_us"])))
            elif body is not None:
                kept.append((report_id, body))
        if entry.kind == chain.REPORT_GROUP:
            self.group(entry, kept, [str(r["device_id"]) for r in records],
                       [int(str(r["received_us"])) for r in records])  # fmt: skip
            return
        done.counts[chain.REPORT] = done.counts.get(chain.REPORT, 0) + 1
        if kept:
            self._line(bundle.report_jsonl(entry.seq, *kept[0]))
        done.figures.append(entry)

    def _line(self, line: bytes) -> None:
        self.lines.append(line)
        self._bytes += len(line)

    def fact_group(self, entry: chain.Entry, held: fact_checks.Held) -> None:
        """A format-5 group: its place among the lines (the export writes it, in order), its
        count, pruned bodies, seal and figures."""
        done = self.done
        side_by_side = "".join(held.fact_sets)
        done.fact_lines.append((self._bytes, entry.seq, side_by_side, sorted(held.gone)))
        done.pruned += held.pruned
        done.last_pruned = max(done.last_pruned, held.last_pruned)
        self._counted(entry, held.devices, held.received)

    def group(
        self, entry: chain.Entry, kept: list[tuple[str, bytes]], devices: list[str],
        received: list[int],
    ) -> None:  # fmt: skip
        """A report group's line of the bodies `kept` (report id, body), its count, its seal,
        and its reports' devices and receipts, side by side, folded for the figures."""
        self._line(bundle.group_bodies_jsonl(entry.seq, kept))
        self._counted(entry, devices, received)

    def _counted(self, entry: chain.Entry, devices: list[Any], received: list[Any]) -> None:
        """A group's reports counted, its seal, and their devices and receipts folded for
        the figures."""
        done = self.done
        done.counts[chain.REPORT] = done.counts.get(chain.REPORT, 0) + len(devices)
        span = group_span(entry)
        if span is not None:
            done.seals.append((entry.seq, span))
        written = bisect.bisect_right(self._ends, entry.at_us)
        folded = self._heard.get(written)
        if folded is None:
            folded = self._heard[written] = Heard(entry.at_us)
            done.figures.append(folded)
        folded.add_all(self._ends, written, devices, received)

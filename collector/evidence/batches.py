"""The chain read in batches whose memory is bounded by what they hold, not by how many.

Why: the export and `audit check` read the chain a batch at a time and, for each batch, the
rows of every report its group entries seal (with their bodies). A group seals up to
`sealing.SEAL_REPORTS` (1,000) reports: what a fleet stores in half a minute. Batches of 2,000
entries held 6,000 reports for 10,000 devices reporting daily, but 106,000 for the same fleet
reporting hourly (the export grew to 683 MB) and would hold two million for a fleet of
100,000. Here the entries are read in runs of about `READ_BYTES` of payload (their count
follows the sizes just read), and handed on in batches of at most `BATCH_REPORTS` reports (a
single larger group goes alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from devposture.collector.evidence import chain

# Reports a batch holds at most (their rows, bodies and records: a few kilobytes each in
# memory while the batch is checked and written).
BATCH_REPORTS = 10_000
# Payload bytes read at once, about (a group's payload holds each of its reports' records).
READ_BYTES = 8 << 20
# Entries read at once: at first, and at most.
FIRST_READ, MOST_READ = 256, 2000

Read = Callable[[int, int], list[chain.Entry]]


def reports_in(entry: chain.Entry) -> int:
    """How many reports an entry stands for, from its key (a group's is "first_n-last_n";
    one that cannot be read counts as one: it is held to its rows by id)."""
    if entry.kind == chain.REPORT:
        return 1
    if entry.kind != chain.REPORT_GROUP:
        return 0
    found = chain.group_range(entry.key)
    return 1 if found is None else max(1, found[1] - found[0] + 1)


def bounded(read: Read, first: int, last: int) -> Iterator[list[chain.Entry]]:
    """The entries `first`..`last` in order, in batches of at most BATCH_REPORTS reports."""
    count = FIRST_READ
    while first <= last:
        upto = min(first + count - 1, last)
        entries = read(first, upto)
        yield from _by_reports(entries)
        size = sum(len(entry.payload) for entry in entries)
        count = max(1, min(MOST_READ, count * READ_BYTES // max(size, 1)))
        first = upto + 1


def _by_reports(entries: list[chain.Entry]) -> Iterator[list[chain.Entry]]:
    batch: list[chain.Entry] = []
    held = 0
    for entry in entries:
        reports = reports_in(entry)
        if batch and held + reports > BATCH_REPORTS:
            yield batch
            batch, held = [], 0
        batch.append(entry)
        held += reports
    if batch:
        yield batch

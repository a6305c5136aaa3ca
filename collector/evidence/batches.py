"""The chain read in batches whose memory is bounded by the reports they hold, not by how
many entries they are.

Why: the export and `audit check` read the chain a batch at a time and, for each batch, the
rows of every report its group entries seal (with their bodies). A group seals up to
`sealing.SEAL_REPORTS` (1,000) reports: what a fleet stores in half a minute. Batches of 2,000
entries held 6,000 reports for 10,000 devices reporting daily, but 106,000 for the same fleet
reporting hourly (the export grew to 683 MB) and would hold two million for a fleet of
100,000. Reads sized by the payload bytes just read were no better where the entries change
size: after a run of small ones (a fleet's certificate renewals) the next read took 2,000
groups at once, 52 MB of payload sealing 177,000 reports, and the export's memory stayed
that high. So each read is sized before it is made: the keys of the entries ahead (`Index`:
seq, kind and key, no payload) say how many reports each stands for, and a read takes
entries until it holds `BATCH_REPORTS` reports or `MOST_READ` entries (a single larger group
goes alone). The other kinds' payloads are small (a state change, a device or admin event).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from devposture.collector.evidence import chain
from devposture.collector.evidence.fact_groups import REPORT_FACTS

# Reports a batch holds at most (their rows, bodies and records: a few kilobytes each in
# memory while the batch is checked and written).
BATCH_REPORTS = 10_000
# How many times lighter a format-5 group's report is than a format-4 group's (`reports_of`).
FACTS_WEIGH_LESS = 4
# Entries a batch holds at most, and entries whose keys are looked at ahead at once.
MOST_READ = 2000
LOOK_AHEAD = 2000

# The entries of a range (`read`), and their (seq, kind, key) alone (`index`, the first
# `most` of them when given): the same entries, in sequence order.
Read = Callable[[int, int], list[chain.Entry]]
Index = Callable[[int, int, int | None], list[tuple[int, str, str]]]


def reports_of(kind: str, key: str) -> int:
    """How many reports an entry counts for against a batch's bound, from its kind and key
    (a group's key is "first_n-last_n"; one that cannot be read counts as one: it is held to
    its rows by id; a format-5 group's reports count a quarter each)."""
    if kind == chain.REPORT:
        return 1
    if kind not in (chain.REPORT_GROUP, REPORT_FACTS):
        return 0
    found = chain.group_range(key)
    if found is None:
        return 1
    reports = max(1, found[1] - found[0] + 1)
    # A format-5 group's reports weigh a quarter: no body rides with them, only their records
    # (about 300 bytes each), so a run holds four times as many for the same memory.
    return reports if kind == chain.REPORT_GROUP else max(1, -(-reports // FACTS_WEIGH_LESS))


def bounded(read: Read, index: Index, first: int, last: int) -> Iterator[list[chain.Entry]]:
    """The entries `first`..`last` in order, in batches of at most BATCH_REPORTS reports and
    MOST_READ entries."""
    for low, high in runs(index, first, last):
        entries = read(low, high)
        if entries:
            yield entries


def runs(
    index: Index, first: int, last: int, reports: int | None = None
) -> Iterator[tuple[int, int]]:  # fmt: skip
    """The runs of sequence numbers `bounded` reads, (first, last) each, in order, of at most
    `reports` reports (BATCH_REPORTS): what a reader elsewhere (`evidence/check_pool`) is
    given to read."""
    most = BATCH_REPORTS if reports is None else reports
    ahead: list[tuple[int, str, str]] = []  # the keys of entries from `first` on, not read
    looked = first - 1  # the last seq `index` was asked about
    while first <= last:
        held = taken = 0
        while True:
            if taken == len(ahead):
                if looked >= last:
                    break
                low, looked = looked + 1, min(looked + LOOK_AHEAD, last)
                found = index(low, looked, None)
                if not found and looked < last:
                    # None there (a gap in an edited chain): on to the next entry at once,
                    # however far (one row inserted at seq 10^18 was 5 * 10^14 reads).
                    found = index(looked + 1, last, 1)
                    looked = found[0][0] if found else last
                ahead += found
                continue
            _, kind, key = ahead[taken]
            counted = reports_of(kind, key)
            if taken and (held + counted > most or taken >= MOST_READ):
                break
            held += counted
            taken += 1
        if not taken:
            return
        upto = ahead[taken - 1][0]
        del ahead[:taken]
        yield first, upto
        first = upto + 1

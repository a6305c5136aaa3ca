"""The reference a group commit is held to: each report of the group stored alone, one after
the other in one transaction (`Reports._store_one`), then sealed as `store_reports` seals."""

from __future__ import annotations

from devposture.collector.store import CheckResult, ReportRecord, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.chain import Appender
from devposture.collector.store.fact_parts import cut
from devposture.collector.store.sealing import seal


def store_one_by_one(
    store: Store, group: list[tuple[ReportRecord, list[CheckResult]]],
    held: dict[str, dict[str, int]] | None = None,
) -> list[object]:  # fmt: skip
    outcomes: list[object] = []
    with store.reports._write() as cur:
        chained = Appender(cur)
        for report, results in group:
            cur.execute("SAVEPOINT report")
            stored = cut(report.body)
            # Every part written with its report, none taken as known: the reference.
            parts = [(d, part, to_us(report.received_at)) for d, part in stored.parts]
            outcomes.append(store.reports._store_one(cur, chained, report, results,
                                                     stored=stored, parts=parts,
                                                     held=held))  # fmt: skip
            cur.execute("RELEASE report")
        if group:
            now = max(to_us(report.received_at) for report, _ in group)
            seal(cur, chained, now_us=now, after_us=store.reports.seal_after_us,
                 most=store.reports.seal_reports)  # fmt: skip
    return outcomes

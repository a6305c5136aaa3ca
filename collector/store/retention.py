"""Retention: report bodies older than the policy's `retention_days` are deleted (PIPL's
minimum necessary: the facts an agent sent, Wi-Fi sessions among them, are kept no longer than
an audit needs them).

A pruned report keeps its row, emptied of its body and nothing else (the append-only trigger
lets only that through, schema 12; since schema 16 its recipe of fact parts too, and the parts
no kept body names are deleted: `fact_parts.garbage`), and its chain entry, which holds the
body's SHA-256 and size: the chain verifies across the pruned span. Each pruning is itself
chained (kind `prune`: when, everything received before which time, how many) and kept in
`pruned_spans`, so that an export of a pruned period says plainly what was deleted and when,
and the verifier tells a pruned body from a deleted one.

Only a span the chain has a checkpoint after is pruned (its period's opening is recorded),
and never a body a device's current verdicts name (its page and re-judging read it): those
wait in `retention_kept` until a newer report replaces them, or until the device is retired
(`device retire`: out of service, its facts never read again), which lets them go at the
next pruning. A revoked device's (stolen, compromised) stays while its verdicts name it.
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.collector.evidence import chain
from devposture.collector.store.base import Part
from devposture.collector.store.chain import append
from devposture.collector.store.fact_parts import garbage
from devposture.collector.store.identity import RETIRED

DAY_US = 86_400_000_000
# Bodies one pruning empties at most (a few seconds of the database thread; serve prunes each
# hour, so a backlog from before retention existed is worked off over hours).
LIMIT = 100_000
_PIECE = 500


@dataclass(frozen=True)
class PruneSpan:
    """One pruning, as `pruned_spans` keeps it beside its chain entry."""

    seq: int  # the prune's chain entry
    at_us: int
    before_us: int
    reports: int


class Retention(Part):
    """`Store.retention`."""

    def prune(self, *, retention_days: int, now_us: int, limit: int = LIMIT) -> PruneSpan | None:
        """Empty the bodies of reports received more than `retention_days` before `now_us`
        (and before the latest checkpoint), oldest first, at most `limit`; chain it."""
        cutoff = now_us - retention_days * DAY_US
        row = self._db.execute("SELECT MAX(at_us) FROM evidence_checkpoints").fetchone()
        if row is None or row[0] is None:
            return None
        before = min(cutoff, int(row[0]))
        with self._write() as cur:
            done = cur.execute("SELECT MAX(before_us) FROM pruned_spans").fetchone()[0]
            after = 0 if done is None else int(done)
            # A retired device's (replaced, returned: IT took it out of service) is not:
            # nothing reads its facts again, and it would be kept for ever.
            current = {
                str(r[0]) for r in cur.execute(
                    "SELECT DISTINCT c.report_id FROM check_results c"
                    " JOIN devices d ON d.device_id = c.device_id WHERE d.status <> ?",
                    (RETIRED,),
                )
            }  # fmt: skip
            # Kept earlier because they were current: those replaced since go now.
            kept = cur.execute(
                "SELECT report_id, received_us FROM retention_kept WHERE received_us < ?",
                (before,),
            ).fetchall()
            rows = [] if before <= after else cur.execute(
                "SELECT report_id, received_us FROM reports WHERE received_us >= ?"
                " AND received_us < ? ORDER BY received_us LIMIT ?",
                (after, before, limit),
            ).fetchall()  # fmt: skip
            if len(rows) == limit:
                # Stop short of the last time seen: rows of that same time may lie past it.
                before = int(rows[-1][1])
                rows = [r for r in rows if int(r[1]) < before]
            go = [str(r[0]) for r in [*kept, *rows] if str(r[0]) not in current]
            keep = [(str(r[0]), int(r[1])) for r in rows if str(r[0]) in current]
            for start in range(0, len(go), _PIECE):
                piece = go[start : start + _PIECE]
                marks = ", ".join("?" * len(piece))
                cur.execute(f"UPDATE reports SET body = ?, parts = NULL WHERE report_id IN"  # noqa: S608
                            f" ({marks}) AND length(body) > 0", (b"", *piece))  # fmt: skip
                cur.execute(f"DELETE FROM retention_kept WHERE report_id IN ({marks})", piece)  # noqa: S608
            for report_id, received in keep:
                cur.execute(
                    "INSERT INTO retention_kept(report_id, received_us) VALUES (?, ?)"
                    " ON CONFLICT (report_id) DO NOTHING",
                    (report_id, received),
                )
            if not go:
                return None
            before = max(before, after)
            # The fact parts only pruned bodies named (none of the kept ones' parts).
            garbage(cur, before)
            record = chain.fields(chain.PRUNE_FIELDS, (now_us, before, retention_days, len(go)))
            seq = append(cur, chain.PRUNE, f"prune/{now_us}", record, at_us=now_us)
            cur.execute(
                "INSERT INTO pruned_spans(seq, at_us, before_us, reports) VALUES (?, ?, ?, ?)",
                (seq, now_us, before, len(go)),
            )
        return PruneSpan(seq, now_us, before, len(go))

    def covering(self, received_us: int) -> list[PruneSpan]:
        """The prunings an export names for the bodies of its period that are gone, every
        one received before `received_us` (inclusive): the first that covers them all, and
        the newest since. A body a device's current verdicts named was kept by the first
        and deleted by a later one, once a newer report replaced it (which, is not kept):
        naming the first alone said it was deleted when a bundle made after it still held
        it. Between the two, every body the period lost was deleted. Empty: none covers."""
        rows = self._db.execute(
            "SELECT seq, at_us, before_us, reports FROM pruned_spans WHERE seq IN ("
            "(SELECT MIN(seq) FROM pruned_spans WHERE before_us > ?),"
            " (SELECT MAX(seq) FROM pruned_spans WHERE before_us > ?)) ORDER BY seq",
            (received_us, received_us),
        ).fetchall()
        return [PruneSpan(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]

"""Checkpoints of the evidence chain: how things stood after one entry (`evidence.opening`),
recorded so that an audit export opens its period from the latest checkpoint before it
instead of walking every state change since the first.

A checkpoint is the sorted sequence numbers of the opening entries as of entry `seq`, stored
as 8-byte big-endian deltas, compressed: a 10,000-device fleet's is about 100 KB. It is an
index, not evidence: every entry it names is read from the chain (and verified by its hash in
the bundle), and `forward` refolds from the chain whatever came after it. Collectors record
one a day (server.py, under the hourly lease) and an export records one at its period's start.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

from devposture.collector.evidence import batches
from devposture.collector.evidence.chain import Entry
from devposture.collector.evidence.opening import KINDS, Opening
from devposture.collector.store.base import Part
from devposture.collector.store.chain import Evidence, index, select

DAY_US = 86_400_000_000
# Entries one scheduled checkpoint folds at most (a second or two of the database thread): a
# chain with no checkpoint yet (one written before schema 11) is caught up over a few hours.
STEP = 200_000
_KINDS = ", ".join(f"'{k}'" for k in KINDS)


def _pack(seqs: Sequence[int]) -> bytes:
    deltas = [b - a for a, b in zip([0, *seqs], seqs, strict=False)]
    return zlib.compress(struct.pack(f">{len(deltas)}Q", *deltas), 6)


def _unpack(data: bytes) -> list[int]:
    raw = zlib.decompress(data)
    out, total = [], 0
    for (delta,) in struct.iter_unpack(">Q", raw):
        total += delta
        out.append(total)
    return out


class Checkpoints(Part):
    """`Store.checkpoints`."""

    def latest(self, through: int) -> tuple[int, list[int]] | None:
        """The latest checkpoint at or before entry `through`: (its seq, the opening seqs)."""
        row = self._db.execute(
            "SELECT seq, entries FROM evidence_checkpoints WHERE seq <= ? ORDER BY seq DESC"
            " LIMIT 1",
            (through,),
        ).fetchone()
        return None if row is None else (int(row[0]), _unpack(bytes(row[1])))

    def record(self, opening: Opening, at_us: int) -> None:
        """Keep `opening` as the checkpoint at its last entry, written at `at_us` (once: a
        second is the same). The waivers expired by then are left out: no later period's
        opening holds them (the rule `audit check` folds checkpoints again by)."""
        opening.forget_expired(at_us)
        with self._write() as cur:
            cur.execute(
                "INSERT INTO evidence_checkpoints(seq, at_us, entries) VALUES (?, ?, ?)"
                " ON CONFLICT (seq) DO NOTHING",
                (opening.through, at_us, _pack(opening.seqs())),
            )

    def advance(self, now_us: int, *, every_us: int = DAY_US, step: int = STEP) -> int | None:
        """Record the next checkpoint when the latest is older than `every_us` (or more than
        `step` entries behind the head): at most `step` entries past it. Returns its seq."""
        head = self._db.execute("SELECT MAX(seq) FROM evidence_chain").fetchone()[0]
        if head is None:
            return None
        row = self._db.execute(
            "SELECT seq, at_us FROM evidence_checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        latest, latest_us = (0, 0) if row is None else (int(row[0]), int(row[1]))
        behind = int(head) - latest
        if behind <= 0 or (now_us - latest_us < every_us and behind <= step):
            return None
        opening, _ = self.forward(min(int(head), latest + step))
        [last] = select(self._db, "seq = ?", (opening.through,))
        self.record(opening, last.at_us)
        return opening.through

    def recorded(self) -> Iterator[tuple[int, int, list[int]]]:
        """Every checkpoint, oldest first: (seq, at_us, the opening seqs it holds)."""
        last = 0
        while True:
            row = self._db.execute(
                "SELECT seq, at_us, entries FROM evidence_checkpoints WHERE seq > ?"
                " ORDER BY seq LIMIT 1",
                (last,),
            ).fetchone()
            if row is None:
                return
            last = int(row[0])
            yield last, int(row[1]), _unpack(bytes(row[2]))

    def forward(self, through: int) -> tuple[Opening, int]:
        """The opening as of entry `through`: the latest checkpoint before it, then every
        entry after it folded. Returns it and how many entries were folded."""
        found = self.latest(through)
        opening = Opening()
        if found is not None:
            opening.fold(Evidence(self._db).chain_at(found[1]))
            opening.through = found[0]
        folded = opening.fold(self.kinds_between(opening.through + 1, through))
        opening.through = max(opening.through, through)
        return opening, folded

    def kinds_between(self, first: int, last: int) -> Iterator[Entry]:
        """The entries an opening is folded from, in [first, last], in sequence order, read
        in batches bounded by the reports they seal (evidence/batches.py): a day of an hourly
        fleet's report groups, 5,000 entries at once, took 230 MB."""
        condition = f"seq BETWEEN ? AND ? AND kind IN ({_KINDS})"

        def read(low: int, high: int) -> list[Entry]:
            return select(self._db, condition, (low, high))

        def keys(low: int, high: int, most: int | None = None) -> list[tuple[int, str, str]]:
            return index(self._db, condition, (low, high), most)

        for batch in batches.bounded(read, keys, first, last):
            yield from batch

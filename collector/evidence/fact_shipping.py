"""The lines of `reports.jsonl` for format 5's report groups (`fact_groups.py`), written by
the export's own process in the chain's order.

Each line ships the fact sets and parts the bundle's window lacks (`fact_groups.Shipping`):
the window is one sequence over the whole period, which the verifier replays, so no worker
can write these lines. The workers say where each group's line goes among theirs and which
fact sets its reports name (`RunDone.fact_lines`); this reads from the store, by digest, only
what the window lacks, and holds it to its digest as it reads it: a fleet reporting hourly
ships a fact set when a device's facts change, not with every report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Sequence
from typing import Protocol

from devposture.collector.evidence import fact_groups
from devposture.collector.evidence.fact_checks import Unstored, read_facts

# The store's fact sets and parts by digest (`Tables.fact_parts`).
Fetch = Callable[[Sequence[bytes]], dict[bytes, bytes]]


class _Out(Protocol):
    def write(self, data: bytes, /) -> None: ...


class FactLines:
    """One export's lines of format-5 groups, in the chain's order. Each fact set it reads
    from the store is held to its digest, and each part the fact set names to its own, as
    it is read (every fact set a kept report names is read once at least: the window lacks
    it the first time): one that is not stored as its digest says is not shipped, and is
    listed in `unstored` (seq, fact set, what is wrong) for the export to refuse the period,
    naming the reports."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._shipping = fact_groups.Shipping()
        self.groups = 0  # lines written
        self.unstored: list[tuple[int, str, Unstored]] = []
        # Reports whose bodies were pruned, but whose fact set the bundle holds all the
        # same, at their group, for a kept report that names it too: a verifier rebuilds
        # their bodies, so they are not among the bodies missing as pruned.
        self.pruned_held = 0

    def line(self, seq: int, named: list[str], gone: Sequence[str]) -> bytes:
        """The line of the group at `seq` whose reports name the fact sets `named` (hex, in
        order); `gone`: those of its reports whose bodies were pruned (one a report)."""
        window = self._shipping.window
        pruned = set(gone)
        if gone:  # a fact set a kept report of the group names too is shipped
            left = Counter(named)
            left.subtract(gone)
            pruned -= {d for d, count in left.items() if count > 0}
        look = self._shipping.look(named, pruned)
        packed: dict[str, bytes] = {}
        parts: dict[bytes, bytes] = {}
        if look.lacking:
            before = len(self.unstored)
            packed, parts = self._read(seq, look.lacking, window.parts)
            # Not shipped: the export refuses the period (`unstored`).
            unstored = {text for _, text, _ in self.unstored[before:]}
            if unstored:
                pruned |= unstored
                look = look._replace(lacking=[d for d in look.lacking if d not in unstored])
        if gone:
            held = window.sets.values
            self.pruned_held += sum(1 for d in gone if d in held or d not in pruned)
        # Every fact set the window lacks was read whole or left out as unstored, with the
        # parts it names: the shipping finds all it asks for.
        shipped_sets, shipped_parts = self._shipping.ship(look, packed, parts)
        self.groups += 1
        return fact_groups.line(seq, shipped_sets, shipped_parts)

    def _read(
        self, seq: int, lacking: list[str], held: Container[bytes]
    ) -> tuple[dict[str, bytes], dict[bytes, bytes]]:  # fmt: skip
        """The fact sets `lacking` (hex) and the parts they name that `held` lacks, from the
        store, each held to its digest; what is not is listed in `unstored` and left out."""
        packed, parts, problems = read_facts(self._fetch, lacking, held)
        self.unstored += [(seq, text, problem) for text, problem in problems.items()]
        return packed, parts

    def write(
        self, out: _Out, lines: bytes, groups: list[tuple[int, int, str, list[str]]]
    ) -> None:  # fmt: skip
        """A run's report `lines` with its format-5 groups' lines put in their places
        (`RunDone.report_lines`, `RunDone.fact_lines`: each group's fact sets side by side,
        64 hex digits each)."""
        taken = 0
        for at, seq, side_by_side, gone in groups:
            out.write(lines[taken:at])
            named = [side_by_side[k : k + 64] for k in range(0, len(side_by_side), 64)]
            out.write(self.line(seq, named, gone))
            taken = at
        out.write(lines[taken:])

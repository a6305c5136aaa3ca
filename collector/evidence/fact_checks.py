"""A format-5 report group (`report_facts`, `fact_groups.py`) held to the rows it seals: the
rule of `crosscheck.py` for these entries, as data its caller words (`crosscheck`) and ships
(`batch_work`: each report's fact set, for the bundle's line).

The common case costs one comparison per group: the payload the seal would write from the
rows numbered in the group's range (`fact_groups.group_rows`, as `store/sealing.py` writes
it) is the entry's payload byte for byte. Otherwise each report of the group is held to its
row field by field: its metadata, its own bytes and its fact set's SHA-256, unless its body
was pruned under the retention policy (received before the chain's newest pruning covers);
a report without its row is missing, and a row numbered in the range that the group does not
hold was added. Pure: the rows come from the caller (`Tables.fact_rows`), as `FactRow`s.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from devposture.collector.evidence import chain, fact_groups, fact_sets

_METADATA = fact_groups.COLUMNS[:6]  # report_id, device_id, received_us, collected_us, ...


@dataclass(frozen=True)
class FactRow:
    """A report row as format 5's record names it: its number, metadata (`_METADATA`'s
    order), own bytes and fact set digest; both None where its body was pruned."""

    n: int
    metadata: tuple[object, ...]
    own: bytes | None
    fact_set: bytes | None

    @property
    def report_id(self) -> str:
        return str(self.metadata[0])


# (field, the row's value, the chain's) of what differs; the field "body" says a body is
# gone that no pruning covers.
Difference = tuple[str, object, object]


@dataclass
class Held:
    """What holding one group to its rows found, and what its bundle line needs."""

    unreadable: bool = False  # its payload is not a group's columns
    missing: list[dict[str, object]] = field(default_factory=list)  # records without a row
    differing: list[tuple[dict[str, object], list[Difference]]] = field(default_factory=list)
    added: list[FactRow] = field(default_factory=list)  # rows in its range it does not hold
    keys: list[str] = field(default_factory=list)  # report ids of the rows found
    fact_sets: list[str] = field(default_factory=list)  # each report's (hex), in order
    gone: set[str] = field(default_factory=set)  # those of the reports whose bodies are pruned
    pruned: int = 0  # reports whose bodies were pruned
    last_pruned: int = 0  # the last of those received (0: none)
    reports: list[tuple[str, int]] = field(default_factory=list)  # (device, received)
    # (report id, fact set) of each report found whose body is kept: its facts must be stored
    named: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unreadable or self.missing or self.differing or self.added)


def hold(
    entry: chain.Entry, span: tuple[int, int] | None, rows: Sequence[FactRow],
    others: Callable[[list[str]], dict[str, FactRow]], pruned_before: int,
) -> Held:  # fmt: skip
    """`entry` held to `rows`, those numbered in its `span` (None: its key cannot be read).
    `others(report_ids)`: the rows of reports it holds that are not numbered there."""
    if span is not None and rows and all(r.own is not None for r in rows):
        made, cut = fact_groups.group_rows(
            [r.metadata for r in rows], [(r.own or b"", r.fact_set or b"") for r in rows]
        )
        if fact_groups.group_canonical(*span, made, cut) == entry.payload:
            named = [(str(m[0]), str(m[7])) for m in made]
            reports = [(str(m[1]), int(str(m[2]))) for m in made]
            return Held(keys=[r.report_id for r in rows], fact_sets=[f for _, f in named],
                        reports=reports, named=named)  # fmt: skip
    try:
        records = fact_groups.records(entry)
        ids_cut = fact_groups.ids_cut(entry)
    except ValueError:
        return Held(unreadable=True)
    held = Held()
    by_id = {r.report_id: r for r in rows}
    lacking = [str(r.get("report_id")) for r in records if str(r.get("report_id")) not in by_id]
    if lacking:
        by_id.update(others(lacking))
    for record in records:
        fact_set, received = str(record.get("fact_set")), record.get("received_us")
        held.fact_sets.append(fact_set)
        held.reports.append((str(record.get("device_id")), received if isinstance(received, int)
                             and not isinstance(received, bool) else 0))  # fmt: skip
        row = by_id.get(str(record.get("report_id")))
        if row is None:
            held.missing.append(record)
            continue
        held.keys.append(row.report_id)
        wrong = [(name, here, record.get(name)) for name, here in zip(_METADATA, row.metadata,
                                                                      strict=True)
                 if record.get(name) != here]  # fmt: skip
        if row.own is None:
            if isinstance(received, int) and received < pruned_before:
                held.pruned += 1
                held.last_pruned = max(held.last_pruned, received)
                held.gone.add(fact_set)
            else:
                wrong.append(("body", None, fact_set))
        else:
            wrong += _facts_differ(record, row, ids_cut)
            held.named.append((row.report_id, fact_set))
        if wrong:
            held.differing.append((record, wrong))
    holds = {str(r.get("report_id")) for r in records}
    held.added = [r for r in rows if r.report_id not in holds]
    return held


def _facts_differ(record: dict[str, object], row: FactRow, ids_cut: bool) -> list[Difference]:
    """The own bytes and fact set of a report whose body is kept, against its record."""
    out: list[Difference] = []
    try:
        own = fact_groups.own_bytes(record, ids_cut)
    except ValueError:
        own = None
    if own != row.own:
        here = base64.b64encode(row.own or b"").decode("ascii")
        out.append(("own", here, record.get("own")))
    digest = None if row.fact_set is None else row.fact_set.hex()
    if record.get("fact_set") != digest:
        out.append(("fact_set", digest, record.get("fact_set")))
    return out


# What is wrong with a fact set as stored: ("missing" or "altered", the digest of the fact set
# or of the part it names that is).
Unstored = tuple[str, bytes]
# Fact sets a check remembers as stored whole, about 100 bytes each.
GOOD_MOST = 200_000


class StoredFacts:
    """Whether the fact sets records name are stored as their digests say, each with every
    part it names: what the bundle ships of them (`fact_parts`, read by `fetch`). One per
    export or check (a part edited later is its next one's): each fact set is read and hashed
    once, its parts once each, however many reports name it."""

    def __init__(
        self, fetch: Callable[[Sequence[bytes]], dict[bytes, bytes]], most: int = GOOD_MOST
    ) -> None:  # fmt: skip
        self._fetch, self._most = fetch, most
        self._good: set[bytes] = set()

    def problems(self, digests: Sequence[bytes]) -> dict[bytes, Unstored]:
        """Of these fact set digests, each whose fact set or one of its parts is not stored
        as its digest says, with what is wrong."""
        new = [d for d in dict.fromkeys(digests) if d not in self._good]
        if not new:
            return {}
        found = self._fetch(new)
        problems: dict[bytes, Unstored] = {}
        named: dict[bytes, list[bytes]] = {}
        for digest in new:
            packed = found.get(digest)
            if packed is None:
                problems[digest] = ("missing", digest)
                continue
            try:
                refs = fact_sets.references(packed)
            except ValueError:
                refs = None
            if refs is None or hashlib.sha256(packed).digest() != digest:
                problems[digest] = ("altered", digest)
                continue
            named[digest] = [d for _, d in refs]
        parts = self._fetch(list(dict.fromkeys(d for ds in named.values() for d in ds)))
        for digest, wanted in named.items():
            for d in wanted:
                part = parts.get(d)
                if part is None or hashlib.sha256(part).digest() != d:
                    problems[digest] = ("missing" if part is None else "altered", d)
                    break
        if len(self._good) > self._most:
            self._good.clear()
        self._good.update(d for d in new if d not in problems)
        return problems

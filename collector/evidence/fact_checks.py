"""A format-5 report group (`report_facts`, `fact_groups.py`) held to the rows it seals: the
rule of `crosscheck.py` for these entries, as data its caller words (`crosscheck`) and ships
(`batch_work`: each report's fact set, for the bundle's line).

The common case costs a comparison per column of the group: each of the payload's columns
is the rows' numbered in the group's range (the own bytes with the ids the seal cut put back,
`_as_written`). Otherwise each report of the group is held to its row field by field: its
metadata, its own bytes and its fact set's SHA-256, unless its body was pruned under the
retention policy (received before the chain's newest pruning covers); a report without its
row is missing, and a row numbered in the range that the group does not hold was added. An
export, which makes its bundle from the chain and the stored facts and not from the rows,
takes a group from its payload where the rows were counted whole (`from_columns`). Pure: the
rows come from the caller (`Tables.fact_rows`), as `FactRow`s; `read_facts` and
`StoredFacts` hold the facts a store keeps to their digests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from devposture.collector.evidence import chain, fact_groups, fact_sets

_METADATA = fact_groups.COLUMNS[:6]  # report_id, device_id, received_us, collected_us, ...
DIGEST_HEX = 64  # a fact set's SHA-256 as a record names it


class FactRow(NamedTuple):
    """A report row as format 5's record names it: its number, metadata (`_METADATA`'s
    order), own bytes and fact set digest; both None where its body was pruned. (A tuple: a
    quarter's export makes millions.)"""

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
    gone: list[str] = field(default_factory=list)  # those of the reports whose bodies are pruned
    pruned: int = 0  # reports whose bodies were pruned
    last_pruned: int = 0  # the last of those received (0: none)
    # Each report's device and receipt, for the figures; and its id (columns, as the payload
    # holds them: a quarter's export holds a million reports a minute to their groups).
    devices: list[object] = field(default_factory=list)
    received: list[object] = field(default_factory=list)
    report_ids: list[object] = field(default_factory=list)
    # Which reports' bodies are kept (found, not pruned: their facts must be stored); None:
    # every one.
    kept: list[bool] | None = None

    @property
    def ok(self) -> bool:
        return not (self.unreadable or self.missing or self.differing or self.added)

    def kept_sets(self) -> list[str]:
        """The fact set of each report whose body is kept."""
        if self.kept is None:
            return self.fact_sets
        return [f for f, k in zip(self.fact_sets, self.kept, strict=True) if k]

    def kept_reports(self) -> list[tuple[str, str]]:
        """(report id, fact set) of each report whose body is kept."""
        kept = self.kept or [True] * len(self.fact_sets)
        return [(str(r), f) for r, f, k in zip(self.report_ids, self.fact_sets, kept,
                                               strict=True) if k]  # fmt: skip


def hold(
    entry: chain.Entry, span: tuple[int, int] | None, rows: Sequence[FactRow],
    others: Callable[[list[str]], dict[str, FactRow]], pruned_before: int,
) -> Held:  # fmt: skip
    """`entry` held to `rows`, those numbered in its `span` (None: its key cannot be read).
    `others(report_ids)`: the rows of reports it holds that are not numbered there."""
    written = _as_written(entry, span, rows)
    if written is not None:
        return written
    try:
        records = fact_groups.records(entry)
        ids_cut = fact_groups.ids_cut(entry)
    except ValueError:
        return Held(unreadable=True)
    kept: list[bool] = []
    held = Held(kept=kept)
    by_id = {r.report_id: r for r in rows}
    lacking = [str(r.get("report_id")) for r in records if str(r.get("report_id")) not in by_id]
    if lacking:
        by_id.update(others(lacking))
    for record in records:
        fact_set, received = str(record.get("fact_set")), record.get("received_us")
        held.fact_sets.append(fact_set)
        held.devices.append(str(record.get("device_id")))
        held.received.append(received if isinstance(received, int)
                             and not isinstance(received, bool) else 0)  # fmt: skip
        held.report_ids.append(str(record.get("report_id")))
        row = by_id.get(str(record.get("report_id")))
        kept.append(row is not None and row.own is not None)
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
                held.gone.append(fact_set)
            else:
                wrong.append(("body", None, fact_set))
        else:
            wrong += _facts_differ(record, row, ids_cut)
        if wrong:
            held.differing.append((record, wrong))
    holds = {str(r.get("report_id")) for r in records}
    held.added = [r for r in rows if r.report_id not in holds]
    return held


_PAYLOAD_KEYS = {"columns", "first_n", "ids_cut", "last_n"}


def from_columns(entry: chain.Entry, span: tuple[int, int]) -> Held | None:
    """A group as its payload alone says, where it holds a record for every number of its
    `span` (an export's, whose rows were counted: `crosscheck.held_fact_groups`). None where
    the payload is not a whole group's."""
    whole = _payload(entry, span)
    if whole is None:
        return None
    found, _ = whole
    if (len(found["report_id"]) != span[1] - span[0] + 1
            or not all(isinstance(f, str) and len(f) == DIGEST_HEX for f in found["fact_set"])
            or not all(isinstance(t, int) for t in found["received_us"])
            or not all(isinstance(d, str) for d in found["device_id"])):  # fmt: skip
        return None
    return _held_as_written(found)


def _as_written(
    entry: chain.Entry, span: tuple[int, int] | None, rows: Sequence[FactRow]
) -> Held | None:  # fmt: skip
    """The common case: each column of the payload is the rows' (the ids cut from their own
    bytes where it says so), compared a column at a time. None where anything differs, or a
    body is pruned: `hold` then holds each report to its row and names what differs."""
    if span is None or not rows or any(r.own is None for r in rows):
        return None
    whole = _payload(entry, span)
    if whole is None:
        return None
    found, cut = whole
    metadata = [r.metadata for r in rows]
    if metadata != list(zip(*(found[name] for name in _METADATA), strict=True)):
        return None
    if found["fact_set"] != [r.fact_set.hex() for r in rows if r.fact_set is not None]:
        return None
    try:
        owns = [binascii.a2b_base64(text, strict_mode=True) for text in found["own"]]
        if cut:
            owns = [fact_sets.ids_prefix(m[0], m[1]) + own  # type: ignore[arg-type]
                    for m, own in zip(metadata, owns, strict=True)]  # fmt: skip
    except (binascii.Error, TypeError, ValueError, AttributeError):
        return None
    if owns != [r.own for r in rows]:
        return None
    return _held_as_written(found)


def _payload(entry: chain.Entry, span: tuple[int, int]) -> tuple[dict[str, list[Any]], bool] | None:
    """A group's columns and whether its records cut the ids, where its payload is a whole
    group's of `span` (its keys, no other, and that range); None otherwise."""
    try:
        record = entry.record()
        found = fact_groups.columns(entry)
        cut = fact_groups.ids_cut(entry)
    except ValueError:
        return None
    if set(record) != _PAYLOAD_KEYS or (record["first_n"], record["last_n"]) != span:
        return None
    return found, cut


def _held_as_written(found: dict[str, list[Any]]) -> Held:
    """A group taken as its columns say: every report found, none pruned."""
    report_ids = found["report_id"]
    return Held(keys=report_ids, fact_sets=found["fact_set"], devices=found["device_id"],
                received=found["received_us"], report_ids=report_ids)  # fmt: skip


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
        self._good: set[str] = set()  # hex, as records name them

    def problems(self, digests: Sequence[Sequence[str]]) -> dict[str, Unstored]:
        """Of these lists of fact set digests (hex, as records name them; a group's each),
        each whose fact set or one of its parts is not stored as its digest says, with what is
        wrong; one that is not a digest at all is missing."""
        new = set().union(*digests) - self._good
        if not new:
            return {}
        _, _, problems = read_facts(self._fetch, list(new), ())
        if len(self._good) > self._most:
            self._good.clear()
        self._good.update(t for t in new if t not in problems)
        return problems


def read_facts(
    fetch: Callable[[Sequence[bytes]], dict[bytes, bytes]], wanted: Sequence[str],
    held: Container[bytes],
) -> tuple[dict[str, bytes], dict[bytes, bytes], dict[str, Unstored]]:  # fmt: skip
    """The fact sets `wanted` (hex) and the parts they name that `held` lacks, read from the
    store by `fetch`, each held to its digest: (fact sets that are whole, their parts read,
    what is wrong with each of the others)."""
    problems: dict[str, Unstored] = {}
    digests: dict[str, bytes] = {}
    for text in wanted:
        try:
            digests[text] = bytes.fromhex(text)
        except (ValueError, TypeError):
            problems[text] = ("missing", b"")
    found = fetch(list(digests.values()))
    packed: dict[str, bytes] = {}
    named: dict[str, list[bytes]] = {}
    for text, digest in digests.items():
        value = found.get(digest)
        if value is None:
            problems[text] = ("missing", digest)
            continue
        try:
            refs = fact_sets.references(value)
        except ValueError:
            refs = None
        if refs is None or hashlib.sha256(value).digest() != digest:
            problems[text] = ("altered", digest)
            continue
        packed[text], named[text] = value, [d for _, d in refs]
    needed = dict.fromkeys(d for ds in named.values() for d in ds if d not in held)
    parts = fetch(list(needed))
    for text, names in named.items():
        for d in names:
            if d not in needed:
                continue
            part = parts.get(d)
            if part is None or hashlib.sha256(part).digest() != d:
                problems[text] = ("missing" if part is None else "altered", d)
                del packed[text]
                break
    return packed, parts, problems

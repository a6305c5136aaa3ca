"""A report body as its own bytes and its **fact set**, for chain records that name the facts
instead of hashing the whole body (bundle format 5, issue 18 item 4; docs/audit-evidence.md).

Why: a format-4 record holds the SHA-256 of the whole body, so the export puts every body
together from its parts and hashes it, and the verifier hashes every body: 21.6 million
times for an hourly quarter of 10,000 devices, minutes of Python on two cores. A device's
hourly reports repeat their facts until one changes; only their own fields (id, device,
agent version, times, trigger, delivery figures) differ. A record that holds the report's own
bytes and the SHA-256 of its fact set lets the export and the verifier work once per fact set
and once per part, never per body, and the body can still be rebuilt byte for byte from the
record and the bundle, every piece pinned by a hash the chain holds.

The cut, on the protobuf wire bytes as the agent sent them (so the rebuilt body is those
bytes exactly):

* **own fields** are the runs (`body_parts.field_runs`) of `OWN_FIELDS` (report id, device
  id, agent version, collection time, trigger, delivery): the record keeps them, in order.
  Nothing else stays in the chain, which retention never prunes: every other field, known
  or not, is a fact.
* a **part** is each other run of consecutive fields with one number (a repeated field is
  one part), as `body_parts` cuts, whatever its size.
* the **fact set** is, for each part in order, the number of own fields before it (4 bytes,
  big-endian) and the part's SHA-256 (32 bytes). The index, not a byte offset, places a
  part: a fact set then does not depend on the lengths of the own fields (a report id, a
  time), which differ in every report, so a device's hourly reports share one.
* a body that cannot be walked as a message (a group, a truncated field), or repeats an own
  field with facts between, is one part, at index 0, with no own bytes: it still leaves no
  fact in the chain.

Pure functions and the standard library only: the verifier imports this on a machine
without the collector's database.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devposture.collector.evidence.body_parts import (
    NotSplittable,
    field_runs,
    remembered_digest,
    varint_bytes,
)

# PostureReport's fields that are the report's own, not facts about the device
# (protos/devposture/v1/devposture.proto): report_id, device_id, agent_version, collected_at,
# trigger, delivery.
OWN_FIELDS = frozenset({1, 2, 3, 4, 31, 32})
DIGEST = 32
_REF = struct.Struct(">I32s")  # a fact set's reference: the own fields before it, the digest


@dataclass(frozen=True)
class Cut:
    """A body as a format-5 record names it: its own bytes, its fact set, and its parts (the
    bytes each of the fact set's digests names, in order)."""

    own: bytes
    fact_set: bytes
    parts: tuple[bytes, ...]

    def fact_set_sha256(self) -> bytes:
        return fact_set_digest(self.fact_set)


def cut(body: bytes) -> Cut:
    """`body` cut into its own fields and its fact set (the module's docstring says how)."""
    try:
        runs = field_runs(body)
    except NotSplittable:
        return _whole(body)
    own: list[tuple[int, bytes]] = []  # (field number, bytes) of each own run
    refs: list[bytes] = []
    parts: list[bytes] = []
    for number, start, end in runs:
        if number in OWN_FIELDS:
            if own and own[-1][0] == number:
                # Two runs of one own field with facts between would read back as one run
                # of the own bytes, and the facts could not be placed: not a body an agent
                # writes (each own field is written once), kept as one part.
                return _whole(body)
            own.append((number, body[start:end]))
        else:
            parts.append(body[start:end])
            refs.append(_REF.pack(len(own), remembered_digest(parts[-1])))
    return Cut(b"".join(b for _, b in own), b"".join(refs), tuple(parts))


def _whole(body: bytes) -> Cut:
    """A body this cannot place facts in, as one part with no own bytes."""
    return Cut(b"", _REF.pack(0, hashlib.sha256(body).digest()), (body,))


def ids_prefix(report_id: str, device_id: str) -> bytes:
    """Fields 1 and 2 (report id, device id) as an agent writes them first in a report: what a
    record leaves out of its own bytes when they begin with exactly these, since its columns
    hold both ids (72 of a report's 104 own bytes on the benchmark's fleet)."""
    report, device = report_id.encode("utf-8"), device_id.encode("utf-8")
    if len(report) < 0x80 and len(device) < 0x80:  # one-byte lengths: every agent's ids
        return b"\x0a%c%b\x12%c%b" % (len(report), report, len(device), device)
    return (b"\x0a" + varint_bytes(len(report)) + report
            + b"\x12" + varint_bytes(len(device)) + device)  # fmt: skip


def fact_set_digest(fact_set: bytes) -> bytes:
    """The SHA-256 a record names its fact set by: of the fact set's bytes as packed."""
    return hashlib.sha256(fact_set).digest()


def references(fact_set: bytes) -> list[tuple[int, bytes]]:
    """(own fields before it, digest) of each part of a packed fact set, in order. Raises
    ValueError where the bytes are not whole references or the indices go back. (Read once
    for every fact set a bundle ships: one struct call, not one a reference.)"""
    if len(fact_set) % _REF.size:
        raise ValueError(f"a fact set of {len(fact_set)} bytes is not whole references")
    refs: list[tuple[int, bytes]] = list(_REF.iter_unpack(fact_set))
    indices = [index for index, _ in refs]
    if indices != sorted(indices):
        raise ValueError("a fact set's parts are not in the order of the own fields")
    return refs


def rebuild(own: bytes, fact_set: bytes, part: Callable[[bytes], bytes]) -> bytes:
    """The whole body from a record's own bytes and its fact set, `part(digest)` giving each
    part's bytes. Raises ValueError where they do not fit (own bytes that are not whole
    fields, an index past the own fields); LookupError from `part` passes through."""
    refs = references(fact_set)
    if not refs:
        return own
    try:
        own_runs = field_runs(own)
    except NotSplittable as exc:
        raise ValueError(f"the report's own bytes are not whole fields: {exc}") from None
    if refs[-1][0] > len(own_runs):
        raise ValueError(f"a part follows own field {refs[-1][0]}; the report has {len(own_runs)}")
    pieces: list[bytes] = []
    taken = 0  # own bytes placed so far
    for index, d in refs:
        at = own_runs[index - 1][2] if index else 0
        if at > taken:
            pieces.append(own[taken:at])
            taken = at
        pieces.append(part(d))
    pieces.append(own[taken:])
    return b"".join(pieces)


def digests(fact_set: bytes) -> list[bytes]:
    """The part digests of a packed fact set, in order."""
    return [d for _, d in references(fact_set)]


def distinct(cuts: Sequence[Cut]) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """(fact set digest -> packed fact set, part digest -> part) of `cuts`, each once: what a
    bundle of these reports holds beside their records."""
    sets: dict[bytes, bytes] = {}
    parts: dict[bytes, bytes] = {}
    for c in cuts:
        sets.setdefault(c.fact_set_sha256(), c.fact_set)
        for (_, d), p in zip(references(c.fact_set), c.parts, strict=True):
            parts.setdefault(d, p)
    return sets, parts
